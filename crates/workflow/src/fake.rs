//! A [`NodeRunner`] for unit tests: no WebAssembly, behaviour read from each node's config.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::node::{Directive, EndStatus, NodeCall, NodeFailure, NodeInfo, NodeOutcome, NodeRunner, Reply};

/// Node types whose behaviour is their resolved config: `{"do": "continue" | "branch" |
/// "respond" | "end" | "error" | "timeout", ...}`; `output` is their output (default: the
/// config). `loop` outputs `{"items": config.items}` and runs its `body`; `delay` outputs
/// `{"durationMs": config.ms}`; `quiet` is `fake` that may not answer the caller (for async
/// workflows). Every call is written down.
#[derive(Default)]
pub(crate) struct FakeRunner {
    calls: Mutex<Vec<String>>,
}

impl FakeRunner {
    /// The node keys called, in order.
    pub(crate) fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }
}

impl NodeRunner for FakeRunner {
    fn describe(&self, node_type: &str) -> Option<Arc<NodeInfo>> {
        let branches: &[&str] = match node_type {
            "fake" | "quiet" => &["yes", "no"],
            "loop" => &["body"],
            "delay" => &[],
            _ => return None,
        };
        Some(Arc::new(NodeInfo {
            name: node_type.into(),
            version: "0".into(),
            config_schema: json!({}),
            branches: branches.iter().map(|name| name.to_string()).collect(),
            may_respond: node_type == "fake",
        }))
    }

    fn run(&self, node_type: &str, call: &NodeCall<'_>) -> Result<NodeOutcome, NodeFailure> {
        self.calls.lock().unwrap().push(call.node_key.to_string());
        let config: Value = serde_json::from_str(call.config).unwrap();
        let output = config.get("output").cloned().unwrap_or_else(|| config.clone());
        let outcome = |directive| Ok(NodeOutcome { output: output.clone(), directive });
        match node_type {
            "loop" => {
                let output = json!({"items": config["items"]});
                return Ok(NodeOutcome { output, directive: Directive::Branch("body".into()) });
            }
            "delay" => {
                return Ok(NodeOutcome { output: json!({"durationMs": config["ms"]}), directive: Directive::Continue });
            }
            _ => {}
        }
        let text = |name: &str| config[name].as_str().unwrap_or_default().to_string();
        match config["do"].as_str().unwrap_or("continue") {
            "continue" => outcome(Directive::Continue),
            "branch" => outcome(Directive::Branch(text("to"))),
            "respond" => outcome(Directive::Respond {
                reply: Reply { status: 200, headers: Vec::new(), body: text("body").into_bytes() },
                keep_running: config["keepRunning"] == json!(true),
            }),
            "end" if text("status") == "failed" => outcome(Directive::End(EndStatus::Failed)),
            "end" => outcome(Directive::End(EndStatus::Resolved)),
            "error" => Err(NodeFailure::Error(text("message"))),
            "timeout" => Err(NodeFailure::Timeout("node ran past its time budget of 1s".into())),
            other => panic!("the fake node cannot {other:?}"),
        }
    }
}

/// A `fake` node with this key and config.
pub(crate) fn fake(key: &str, config: Value) -> Value {
    json!({"key": key, "type": "fake", "config": config})
}

/// `node` with these branches.
pub(crate) fn with_branches(mut node: Value, branches: Value) -> Value {
    node["branches"] = branches;
    node
}
