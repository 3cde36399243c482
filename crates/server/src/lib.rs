//! The running hookflow engine: the composition root ([`server`]), dispatch (sync, queue,
//! idempotency), the workflow catalog, retention, reload from files, metrics, and the HTTP side
//! (the webhook ingress and the admin API with its console).
//!
//! The map of the code is `ARCHITECTURE.md` at the repository root.

pub mod admin;
pub mod api_error;
pub mod catalog;
pub mod dispatch;
pub mod ingress;
pub mod listener;
pub mod metrics;
pub mod reload;
pub mod retention;
pub mod server;
