//! The claims of an embedded store, in memory: one process owns its redb file, so who holds a
//! queued execution needs no disk (after a restart every queued execution is free to claim
//! again). The durable `queue` table says what is unfinished; this says who runs it and when
//! the free ones come due. The writer changes it after each commit, so nothing becomes
//! claimable before it is durable.

use std::collections::{BTreeSet, HashMap};

use crate::{Claimed, Owner, WorkflowQueue};

/// One unfinished async execution.
#[derive(Debug)]
struct Entry {
    workflow: String,
    /// When it may be claimed (milliseconds since the epoch, the server's clock).
    run_at: u64,
    owner: Option<Owner>,
    /// An operator asked to cancel it.
    cancel: bool,
    /// A delay node holds it until `run_at`.
    waiting: bool,
    /// A cancel is being written for it: no claim may take it meanwhile.
    canceling: bool,
}

/// Who holds which queued execution.
#[derive(Debug, Default)]
pub(crate) struct LocalQueue {
    entries: HashMap<String, Entry>,
    /// Entries nobody holds, by when they come due.
    free: BTreeSet<(u64, String)>,
    /// How many entries each workflow has held.
    held: HashMap<String, usize>,
}

/// Most free entries one claim looks at (entries of workflows at their `max_running` are
/// skipped, and stay where they are).
const MAX_SCANNED: usize = 10_000;

impl LocalQueue {
    /// An unfinished execution found in the `queue` table at open: free, due at once.
    pub(crate) fn restore(&mut self, id: &str, workflow: &str) {
        self.insert(id, workflow, 0, None);
    }

    /// A newly queued execution.
    pub(crate) fn insert(&mut self, id: &str, workflow: &str, run_at: u64, owner: Option<Owner>) {
        let entry =
            Entry { workflow: workflow.to_string(), run_at, owner, cancel: false, waiting: false, canceling: false };
        match owner {
            Some(_) => *self.held.entry(entry.workflow.clone()).or_default() += 1,
            None => {
                self.free.insert((run_at, id.to_string()));
            }
        }
        self.entries.insert(id.to_string(), entry);
    }

    /// Who holds `id`, if anyone.
    pub(crate) fn owner_of(&self, id: &str) -> Option<Owner> {
        self.entries.get(id).and_then(|entry| entry.owner)
    }

    /// Whether `id` is unfinished.
    pub(crate) fn contains(&self, id: &str) -> bool {
        self.entries.contains_key(id)
    }

    /// Claims up to `limit` free entries due by `now`.
    pub(crate) fn claim(
        &mut self,
        owner: Owner,
        limit: usize,
        now: u64,
        max_running: &HashMap<String, u32>,
    ) -> Vec<Claimed> {
        let mut taken = Vec::new();
        let mut picked: HashMap<&str, usize> = HashMap::new();
        for (run_at, id) in self.free.iter().take(MAX_SCANNED) {
            if *run_at > now || taken.len() == limit {
                break;
            }
            let Some(entry) = self.entries.get(id) else { continue };
            if entry.canceling {
                continue;
            }
            let workflow = entry.workflow.as_str();
            if let Some(max) = max_running.get(workflow) {
                let held = self.held.get(workflow).copied().unwrap_or(0) + picked.get(workflow).copied().unwrap_or(0);
                if held >= usize::try_from(*max).unwrap_or(usize::MAX) {
                    continue;
                }
            }
            *picked.entry(workflow).or_default() += 1;
            taken.push((*run_at, id.clone()));
        }
        taken
            .into_iter()
            .filter_map(|(run_at, id)| {
                self.free.remove(&(run_at, id.clone()));
                let entry = self.entries.get_mut(&id)?;
                entry.owner = Some(owner);
                let waited = std::mem::take(&mut entry.waiting);
                *self.held.entry(entry.workflow.clone()).or_default() += 1;
                Some(Claimed { id, workflow: entry.workflow.clone(), takeovers: 0, cancel: entry.cancel, waited })
            })
            .collect()
    }

    /// When the next free entry comes due after `now`.
    pub(crate) fn next_due(&self, now: u64) -> Option<u64> {
        self.free.range((now.saturating_add(1), String::new())..).next().map(|(run_at, _)| *run_at)
    }

    /// Puts a held entry back, free from `run_at`, waiting in a delay.
    pub(crate) fn release(&mut self, id: &str, run_at: u64) {
        let Some(entry) = self.entries.get_mut(id) else { return };
        if let Some(_owner) = entry.owner.take() {
            decrement(&mut self.held, &entry.workflow);
        } else {
            self.free.remove(&(entry.run_at, id.to_string()));
        }
        entry.run_at = run_at;
        entry.waiting = true;
        self.free.insert((run_at, id.to_string()));
    }

    /// Forgets a finished entry.
    pub(crate) fn remove(&mut self, id: &str) {
        let Some(entry) = self.entries.remove(id) else { return };
        match entry.owner {
            Some(_) => decrement(&mut self.held, &entry.workflow),
            None => {
                self.free.remove(&(entry.run_at, id.to_string()));
            }
        }
    }

    /// Marks a free entry that is not waiting as being canceled, so no claim takes it while its
    /// cancel is written; `false` when it is held, waiting or gone.
    pub(crate) fn begin_cancel(&mut self, id: &str) -> bool {
        match self.entries.get_mut(id) {
            Some(entry) if entry.owner.is_none() && !entry.waiting && !entry.canceling => {
                entry.canceling = true;
                true
            }
            _ => false,
        }
    }

    /// A cancel that was not written after all: the entry may be claimed again.
    pub(crate) fn abandon_cancel(&mut self, id: &str) {
        if let Some(entry) = self.entries.get_mut(id) {
            entry.canceling = false;
        }
    }

    /// Asks whoever claims or holds `id` to cancel it; a waiting one comes due at `now`.
    pub(crate) fn request_cancel(&mut self, id: &str, now: u64) {
        let Some(entry) = self.entries.get_mut(id) else { return };
        entry.cancel = true;
        if entry.owner.is_none() && entry.run_at > now {
            self.free.remove(&(entry.run_at, id.to_string()));
            entry.run_at = now;
            self.free.insert((now, id.to_string()));
        }
    }

    /// How many entries each workflow has, queued or held and waiting.
    pub(crate) fn counts(&self) -> HashMap<String, WorkflowQueue> {
        let mut counts: HashMap<String, WorkflowQueue> = HashMap::new();
        for entry in self.entries.values() {
            let count = counts.entry(entry.workflow.clone()).or_default();
            if entry.waiting { count.waiting += 1 } else { count.queued += 1 }
        }
        counts
    }

    /// How many entries there are.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// How many entries are held.
    pub(crate) fn held(&self) -> usize {
        self.held.values().sum()
    }
}

fn decrement(held: &mut HashMap<String, usize>, workflow: &str) {
    if let Some(count) = held.get_mut(workflow) {
        *count = count.saturating_sub(1);
        if *count == 0 {
            held.remove(workflow);
        }
    }
}
