//! Black-box tests of the engine: real components, real files, real sockets.

#![allow(clippy::unwrap_used)]

mod admin;
mod editing;
mod executor;
mod failures;
mod faults;
mod framing;
mod hardening;
mod hostile;
mod idempotency;
mod languages;
mod nodes;
mod operations;
mod outbound;
mod senders;
mod signatures;
mod trigger;
mod util;
mod validation;
mod waiting;
