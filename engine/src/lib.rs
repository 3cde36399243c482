//! hookflow: a webhook workflow engine whose nodes are WebAssembly components.
//!
//! The map of the code is `ARCHITECTURE.md` at the repository root.

pub mod admin;
pub mod api_error;
pub mod catalog;
pub mod dispatch;
pub mod ingress;
pub mod listener;
pub mod metrics;
pub mod plugin;
pub mod reload;
pub mod retention;
pub mod server;
pub mod store;
pub mod timestamp;
pub mod workflow;
