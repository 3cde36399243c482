//! hookflow: a webhook workflow engine whose nodes are WebAssembly components.
//!
//! The map of the code is `ARCHITECTURE.md` at the repository root.

pub mod plugin;
pub mod timestamp;
pub mod workflow;
