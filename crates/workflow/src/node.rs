//! The boundary between the executor and whatever runs nodes: the [`NodeRunner`] trait and the
//! plain-data types that cross it (the WIT world's types, in Rust terms).

use std::borrow::Cow;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use crate::clock::{Clock, SystemClock};
use crate::template::{Expr, Root, Scope};

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
    /// The execution context: rendered whole for a node that takes it as text, read a path at
    /// a time by one that imports the WIT `context` interface.
    pub context: CallContext<'a>,
    /// When the execution must have moved on (a sync caller's timeout, an async execution's
    /// `--max-run-time`): a call waits for a free instance no longer than this.
    pub deadline: Option<std::time::Instant>,
}

/// The execution context of one node call: the values its config's templates resolve against,
/// except `$secrets`. It is rendered into text only when a node asks for all of it.
#[derive(Clone, Copy)]
pub struct CallContext<'a> {
    scope: Scope<'a>,
    /// `scope.context` already serialised, spliced into [`CallContext::text`] when present.
    trigger_text: Option<&'a RawValue>,
}

impl<'a> CallContext<'a> {
    /// The context of a call whose config was resolved against `scope`.
    pub fn new(scope: Scope<'a>) -> CallContext<'a> {
        CallContext { scope, trigger_text: None }
    }

    /// The same context, with the trigger data's JSON text at hand (an execution serialises it
    /// once for all its calls).
    pub fn with_trigger_text(self, trigger_text: &'a RawValue) -> CallContext<'a> {
        CallContext { trigger_text: Some(trigger_text), ..self }
    }

    /// The whole context as JSON text (WIT `invocation.context`): `$context`,
    /// `$jobsMapByNodeKey`, `$scopes`, `$execution` and `$system`.
    pub fn text(&self) -> String {
        let scope = &self.scope;
        let trigger = match self.trigger_text {
            Some(text) => Cow::Borrowed(text.get()),
            None => Cow::Owned(scope.context.to_string()),
        };
        let jobs = serde_json::to_string(scope.jobs).unwrap_or_default();
        let scopes = serde_json::to_string(scope.scopes).unwrap_or_default();
        format!(
            r#"{{"$context":{trigger},"$jobsMapByNodeKey":{jobs},"$scopes":{scopes},"$execution":{},"$system":{}}}"#,
            scope.execution, scope.system,
        )
    }

    /// The value at `path` (template syntax from a root: `$context.body.order.id`) as JSON
    /// text (WIT `context.get`); `None` when the path reaches nothing, does not parse, or starts
    /// from `$secrets`, which is not part of the context.
    pub fn get(&self, path: &str) -> Option<String> {
        let expr = Expr::parse(path).ok()?;
        if expr.root == Root::Secrets {
            return None;
        }
        expr.find_text(&self.scope)
    }
}

/// The values of a context held in one place, for node calls made outside an execution (tools,
/// benchmarks, tests): the trigger data, no earlier outputs, no loops, no secrets.
#[derive(Debug, Clone)]
pub struct OwnedContext {
    trigger: Value,
    empty: Map<String, Value>,
    execution: Value,
    system: Value,
}

impl OwnedContext {
    /// The context of a call in execution `execution_id` on `trigger` (`{"headers", "query",
    /// "body"}`), at the time now.
    pub fn new(execution_id: &str, trigger: Value) -> OwnedContext {
        OwnedContext {
            trigger,
            empty: Map::new(),
            execution: json!({ "id": execution_id }),
            system: json!({ "now": SystemClock.now().to_string() }),
        }
    }

    /// The context as a call takes it.
    pub fn context(&self) -> CallContext<'_> {
        CallContext::new(Scope {
            context: &self.trigger,
            jobs: &self.empty,
            system: &self.system,
            execution: &self.execution,
            scopes: &self.empty,
            secrets: &self.empty,
        })
    }
}

/// Shows nothing of the values: the scope holds the operator's secrets.
impl std::fmt::Debug for CallContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallContext").finish_non_exhaustive()
    }
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

#[cfg(test)]
mod tests {
    use serde_json::{Map, Value, json};

    use super::CallContext;
    use crate::template::Scope;

    fn object(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn a_call_context_renders_whole_or_answers_one_path() {
        let trigger = json!({"headers": {}, "query": {}, "body": {"order": {"id": 7, "items": [{"sku": "A"}, {"sku": "B"}]}, "n": null}});
        let jobs = object(json!({"first": {"total": 12}}));
        let scopes = object(json!({"each": {"item": "x", "index": 0}}));
        let secrets = object(json!({"TOKEN": "hush"}));
        let (execution, system) = (json!({"id": "e1"}), json!({"now": "2026-12-07T00:00:00Z"}));
        let scope = Scope {
            context: &trigger,
            jobs: &jobs,
            system: &system,
            execution: &execution,
            scopes: &scopes,
            secrets: &secrets,
        };
        let context = CallContext::new(scope);
        let whole: Value = serde_json::from_str(&context.text()).unwrap();
        assert_eq!(
            whole,
            json!({"$context": trigger, "$jobsMapByNodeKey": jobs, "$scopes": scopes, "$execution": execution,
                   "$system": system})
        );
        let trigger_text = serde_json::value::to_raw_value(&trigger).unwrap();
        assert_eq!(context.with_trigger_text(&trigger_text).text(), context.text());

        let get = |path: &str| context.get(path);
        assert_eq!(get("$context.body.order.id").as_deref(), Some("7"));
        assert_eq!(get("$context.body.order.items.sku").as_deref(), Some(r#"["A","B"]"#));
        assert_eq!(get("$context.body.order.items[1]").as_deref(), Some(r#"{"sku":"B"}"#));
        assert_eq!(get("$context.body.n").as_deref(), Some("null"), "a null value is found");
        assert_eq!(get("$jobsMapByNodeKey.first.total").as_deref(), Some("12"));
        assert_eq!(get("$jobsMapByNodeKey").as_deref(), Some(r#"{"first":{"total":12}}"#));
        assert_eq!(get("$scopes.each.item").as_deref(), Some(r#""x""#));
        assert_eq!(get("$execution.id").as_deref(), Some(r#""e1""#));
        for nothing in ["$context.body.missing", "$context.body.order.items[5]", "$context.body.order.id.deeper"] {
            assert_eq!(get(nothing), None, "{nothing}");
        }
        for refused in ["$secrets.TOKEN", "$secrets", "body.order", "$context.body[", ""] {
            assert_eq!(get(refused), None, "{refused}");
        }
        assert!(!format!("{context:?}").contains("hush"), "the debug form shows no secret");
    }
}
