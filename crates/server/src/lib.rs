//! The running hookflow engine: the composition root ([`server`]), dispatch (sync, queue,
//! idempotency), the workflow catalog, what a cluster node keeps in step with the others
//! ([`cluster`]), retention, reload from files, metrics, and the HTTP side (the webhook ingress
//! and the admin API with its console).
//!
//! The map of the code is `ARCHITECTURE.md` at the repository root.

pub mod activity;
pub mod catalog;
pub mod cluster;
pub mod dispatch;
pub mod http;
pub mod metrics;
pub mod rate_limit;
pub mod reload;
pub mod retention;
pub mod server;
