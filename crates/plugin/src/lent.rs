//! The current call's [`CallContext`] lent to its store for the duration of one `run`, so that the
//! `context` import can read it without the engine copying the context into the store.

#![allow(unsafe_code)]

use hookflow_workflow::CallContext;

use super::InstanceStore;

/// Where a store keeps the context lent to it; empty outside [`with_context`].
#[derive(Default)]
pub struct LentContext(Option<CallContext<'static>>);

impl LentContext {
    /// The context of the call running now, if any.
    pub fn get(&self) -> Option<&CallContext<'_>> {
        self.0.as_ref()
    }
}

/// Runs `run` with `context` lent to the store, and takes it back when `run` returns or
/// unwinds.
pub fn with_context<T>(
    store: &mut InstanceStore,
    context: CallContext<'_>,
    run: impl FnOnce(&mut InstanceStore) -> T,
) -> T {
    /// Empties the store's [`LentContext`] when dropped.
    struct TakeBack<'s>(&'s mut InstanceStore);

    impl Drop for TakeBack<'_> {
        fn drop(&mut self) {
            self.0.data_mut().context_mut().0 = None;
        }
    }

    // SAFETY: the widened lifetime is never observed. The context is reachable only through the
    // store's `LentContext`, whose `get` hands it out for no longer than a borrow of the store,
    // and `TakeBack` removes it before this function returns or unwinds, while everything it
    // borrows is still alive (it outlives this call).
    let widened = unsafe { std::mem::transmute::<CallContext<'_>, CallContext<'static>>(context) };
    store.data_mut().context_mut().0 = Some(widened);
    let guard = TakeBack(store);
    run(&mut *guard.0)
}
