//! Black-box tests of the hookflow engine live in `tests/tests/engine/`; this library holds what they
//! share: the test components of `fixtures/` (built by the build script), a raw HTTP client and a
//! second host in a network namespace.

pub use hookflow_test_http as http;
pub mod netns;

/// Test components built by `build.rs`: `(name, component bytes)` — `misbehave` (a node that
/// traps, loops forever, allocates without bound or computes for a while, as its config says) and
/// `other-world` (a component that targets another WIT world).
pub const FIXTURES: &[(&str, &[u8])] = include!(concat!(env!("OUT_DIR"), "/fixtures.rs"));

/// The bytes of one fixture component.
pub fn fixture(name: &str) -> &'static [u8] {
    FIXTURES
        .iter()
        .find(|(fixture, _)| *fixture == name)
        .map(|(_, wasm)| *wasm)
        .unwrap_or_else(|| panic!("no fixture component named {name:?}"))
}

/// Waits for `future` on a runtime of its own: for a test thread reading the store (whose reads
/// are async) outside any runtime.
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|error| panic!("a runtime for the test: {error}"))
        .block_on(future)
}
