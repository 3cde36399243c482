//! The boundary between the executor and whatever runs nodes: the [`NodeRunner`] trait and the
//! plain-data types that cross it (the WIT world's types, in Rust terms).

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Runs nodes by type name. The plugin host implements it with WebAssembly components.
pub trait NodeRunner {
    /// What an installed node type declares about itself; `None` when no such type is installed.
    fn describe(&self, node_type: &str) -> Option<Arc<NodeInfo>>;

    /// Runs one node once.
    fn run(&self, node_type: &str, call: &NodeCall<'_>) -> Result<NodeOutcome, NodeFailure>;
}

/// What a node type declares about itself (WIT `node-info`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeInfo {
    /// The name the component gives itself.
    pub name: String,
    /// The component's own version.
    pub version: String,
    /// JSON Schema of the node's config.
    pub config_schema: Value,
    /// Branch names the node may pick.
    pub branches: Vec<String>,
    /// Whether the node may answer the HTTP caller.
    pub may_respond: bool,
}

/// One call of a node (WIT `invocation`, plus the tags the host logs with).
#[derive(Debug, Clone, Copy)]
pub struct NodeCall<'a> {
    /// The execution this call belongs to.
    pub execution_id: &'a str,
    /// The node's key in the workflow.
    pub node_key: &'a str,
    /// The resolved config, as JSON text.
    pub config: &'a str,
    /// The execution context, as JSON text.
    pub context: &'a str,
    /// When the execution must have moved on (a sync caller's timeout, an async execution's
    /// `--max-run-time`): a call waits for a free instance no longer than this.
    pub deadline: Option<std::time::Instant>,
}

/// A successful node run (WIT `outcome`).
#[derive(Debug, Clone, PartialEq)]
pub struct NodeOutcome {
    /// The node's output, stored as its job result.
    pub output: Value,
    /// What happens next.
    pub directive: Directive,
}

/// What the executor does after a node returns (WIT `directive`).
#[derive(Debug, Clone, PartialEq)]
pub enum Directive {
    /// Go on with the next node.
    Continue,
    /// Run the named branch of the node, then go on.
    Branch(String),
    /// Answer the caller; end the execution unless `keep_running`.
    Respond {
        /// The answer.
        reply: Reply,
        /// Whether the execution goes on after answering.
        keep_running: bool,
    },
    /// End the execution with this status.
    End(EndStatus),
}

/// How a node may end an execution (WIT `end-status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndStatus {
    /// Success.
    Resolved,
    /// A deliberate failure.
    Failed,
}

/// An HTTP answer (WIT `reply`); stored (body as base64) for idempotent repeats and results.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    /// Status code, 100–599.
    pub status: u16,
    /// Header names and values, in order.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    #[serde(with = "base64_bytes")]
    pub body: Vec<u8>,
}

impl Reply {
    /// The same reply with a header set (replacing any of the same name).
    pub fn with_header(mut self, name: &str, value: &str) -> Reply {
        self.headers.retain(|(existing, _)| !existing.eq_ignore_ascii_case(name));
        self.headers.push((name.to_string(), value.to_string()));
        self
    }
}

/// Bytes as a base64 string in JSON.
mod base64_bytes {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        STANDARD.decode(String::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

/// Why a node run produced no outcome.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeFailure {
    /// The node returned an error, trapped, broke its memory limit or misbehaved.
    #[error("{0}")]
    Error(String),
    /// The node ran past its time budget.
    #[error("{0}")]
    Timeout(String),
}
