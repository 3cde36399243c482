//! Validation: a [`Workflow`] definition becomes a [`Plan`] — every node's type looked up, every
//! template compiled — or a list of faults, each naming its JSON path
//! (`nodes[0].branches.true[1].type`).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

use serde_json::Value;

use super::limits::ExecutionLimits;
use super::model::{
    Handshake, Node, SECRET_MASK, Signature, Workflow, parse_address_block, parse_duration, standard_webhooks_key,
    standard_webhooks_public_key,
};
use super::node::{NodeInfo, NodeRunner};
use super::secrets::Secrets;
use super::template::{Root, Step, Template, join_key, parse_value_path};
use crate::execution::ExecutionStatus;
use crate::retry::MAX_ATTEMPTS;

/// A validated workflow, ready to run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The definition the plan was made from.
    pub workflow: Workflow,
    /// The compiled top-level chain.
    pub nodes: Vec<PlanNode>,
    /// What one execution of the plan may hold; the catalog applies the server's flags.
    pub limits: ExecutionLimits,
    /// What `$secrets` resolves to, and what its records mask; the catalog sets the server's.
    pub secrets: Arc<Secrets>,
}

impl Plan {
    /// How many nodes the plan has in every branch, or `None` if one fails `test`.
    pub fn count_nodes_if(&self, test: &impl Fn(&PlanNode) -> bool) -> Option<usize> {
        fn chain(nodes: &[PlanNode], test: &impl Fn(&PlanNode) -> bool) -> Option<usize> {
            nodes.iter().try_fold(0, |count, node| {
                let branches = node.branches.values().try_fold(0, |sum, branch| Some(sum + chain(branch, test)?))?;
                test(node).then_some(count + 1 + branches)
            })
        }
        chain(&self.nodes, test)
    }
}

/// A node of a plan.
#[derive(Debug, Clone)]
pub struct PlanNode {
    /// The node's key.
    pub key: String,
    /// The node's type.
    pub node_type: String,
    /// What the type declares.
    pub info: Arc<NodeInfo>,
    /// The compiled config.
    pub config: Template,
    /// Compiled branches by name.
    pub branches: BTreeMap<String, Vec<PlanNode>>,
    /// How the executor treats the node beyond its directive.
    pub kind: NodeKind,
}

/// Built-in node types the executor gives more than a call: their names are reserved, so no
/// custom plugin can take them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    /// Called, and its directive followed.
    Plain,
    /// `loop`: its `body` branch runs once per item of its output's `items`, with
    /// `$scopes.<key>` set.
    Loop,
    /// `delay`: the execution waits `durationMs` of its output, durably, before going on.
    Delay,
}

impl NodeKind {
    /// The kind of a node type.
    pub fn of(node_type: &str) -> NodeKind {
        match node_type {
            "loop" => NodeKind::Loop,
            "delay" => NodeKind::Delay,
            _ => NodeKind::Plain,
        }
    }
}

/// A definition that cannot run, with every fault found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ValidationError {
    /// The faults, in document order.
    pub faults: Vec<Fault>,
}

/// One fault of a definition.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Fault {
    /// JSON path of the faulty value, e.g. `nodes[0].branches.true[1].type`.
    pub path: String,
    /// What is wrong there.
    pub message: String,
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, fault) in self.faults.iter().enumerate() {
            if index > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {}", fault.path, fault.message)?;
        }
        Ok(())
    }
}

impl ValidationError {
    fn single(path: impl Into<String>, message: impl Into<String>) -> ValidationError {
        ValidationError { faults: vec![Fault { path: path.into(), message: message.into() }] }
    }
}

/// Parses a definition from JSON text; a type error names its JSON path.
pub fn parse_workflow(json: &str) -> Result<Workflow, ValidationError> {
    // serde would also take a struct written as an array of its fields (`[]` is a workflow with
    // every default): the definition and its parts are objects.
    if let Ok(value) = serde_json::from_str::<Value>(json)
        && let Some(path) = array_in_place_of_object(&value)
    {
        return Err(ValidationError::single(path, "expected a JSON object".to_string()));
    }
    let deserializer = &mut serde_json::Deserializer::from_str(json);
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let path = error.path().to_string();
        let path = if path == "." { String::new() } else { path };
        ValidationError::single(path, error.into_inner().to_string())
    })
}

/// The path of the first part of a definition that is an array where an object belongs.
fn array_in_place_of_object(definition: &Value) -> Option<String> {
    const OBJECTS: [&str; 11] = [
        "trigger",
        "options",
        "trigger.basicAuth",
        "trigger.request",
        "trigger.response",
        "trigger.signature",
        "trigger.idempotency",
        "trigger.apiKey",
        "trigger.handshake",
        "options.retry",
        "options.rateLimit",
    ];
    if !definition.is_object() {
        return Some(String::new());
    }
    let at = |path: &str| path.split('.').try_fold(definition, |value, key| value.get(key));
    if let Some(path) =
        OBJECTS.into_iter().find(|path| at(path).is_some_and(|value| !value.is_object() && !value.is_null()))
    {
        return Some(path.to_string());
    }
    let nodes = definition.get("nodes").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    node_not_object(nodes, "nodes")
}

fn node_not_object(nodes: &[Value], path: &str) -> Option<String> {
    nodes.iter().enumerate().find_map(|(index, node)| {
        let here = format!("{path}[{index}]");
        let Some(node) = node.as_object() else { return Some(here) };
        let branches = node.get("branches").and_then(Value::as_object)?;
        branches.iter().find_map(|(name, chain)| {
            node_not_object(chain.as_array().map(Vec::as_slice).unwrap_or_default(), &format!("{here}.branches.{name}"))
        })
    })
}

/// Validates a definition against the installed node types and compiles it.
pub fn compile(workflow: &Workflow, runner: &(impl NodeRunner + ?Sized)) -> Result<Plan, ValidationError> {
    let mut checker =
        Checker { runner, sync: workflow.sync, faults: Vec::new(), keys: HashMap::new(), loops: Vec::new() };
    checker.check_workflow_fields(workflow);
    checker.collect_keys(&workflow.nodes, "nodes");
    let nodes = checker.chain(&workflow.nodes, "nodes");
    if checker.faults.is_empty() {
        let limits = ExecutionLimits::default().for_workflow(&workflow.options);
        Ok(Plan { workflow: workflow.clone(), nodes, limits, secrets: Arc::default() })
    } else {
        Err(ValidationError { faults: checker.faults })
    }
}

/// Whether a workflow key is well formed: 1–64 of `[A-Za-z0-9_-]`.
pub fn is_valid_key(key: &str) -> bool {
    (1..=64).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Whether a string is an HTTP header name (RFC 9110 token).
pub fn is_header_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Whether a string may be an HTTP header value (no control characters but tab).
pub fn is_header_value(value: &str) -> bool {
    value.bytes().all(|b| b == b'\t' || (b >= 0x20 && b != 0x7f))
}

struct Checker<'r, R: ?Sized> {
    runner: &'r R,
    sync: bool,
    faults: Vec<Fault>,
    /// Node key → path of its first occurrence.
    keys: HashMap<String, String>,
    /// Keys of the loop nodes around the node being checked, outermost first.
    loops: Vec<String>,
}

impl<R: NodeRunner + ?Sized> Checker<'_, R> {
    fn fault(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.faults.push(Fault { path: path.into(), message: message.into() });
    }

    fn check_workflow_fields(&mut self, workflow: &Workflow) {
        if let Some(key) = &workflow.key
            && !is_valid_key(key)
        {
            self.fault("key", format!("{key:?} is not a valid key: use 1 to 64 of A-Z a-z 0-9 _ -"));
        }
        let trigger = &workflow.trigger;
        if let Some(auth) = &trigger.basic_auth
            && auth.username.contains(':')
        {
            self.fault("trigger.basicAuth.username", "a Basic auth user name cannot contain ':'");
        }
        if workflow.options.max_concurrency == Some(0) {
            self.fault("options.maxConcurrency", "at least 1: with 0 no execution would ever run");
        }
        let mask_fault = format!("{SECRET_MASK:?} is the mask shown in place of a stored secret, not a secret");
        for (slot, _) in trigger.secrets().into_iter().filter(|(_, secret)| *secret == SECRET_MASK) {
            self.fault(format!("trigger.{}", slot.path), mask_fault.clone());
        }
        if let Some(api_key) = &trigger.api_key {
            match (&api_key.header, &api_key.query) {
                (Some(header), None) if !is_header_name(header) => {
                    self.fault("trigger.apiKey.header", format!("{header:?} is not a valid header name"));
                }
                (None, Some(query)) if query.is_empty() => {
                    self.fault("trigger.apiKey.query", "name the query parameter")
                }
                (Some(_), None) | (None, Some(_)) => {}
                _ => self.fault("trigger.apiKey", "give exactly one of \"header\" and \"query\""),
            }
            if api_key.keys.is_empty() || api_key.keys.iter().any(String::is_empty) {
                self.fault("trigger.apiKey.keys", "give at least one key, none empty");
            }
        }
        for (index, entry) in trigger.ip_allowlist.iter().enumerate() {
            if parse_address_block(entry).is_none() {
                self.fault(
                    format!("trigger.ipAllowlist[{index}]"),
                    format!("{entry:?} is neither an IP address nor a CIDR block (203.0.113.0/24, 2001:db8::/32)"),
                );
            }
        }
        if let Some((field, secret)) = trigger.handshake.as_ref().and_then(Handshake::secret)
            && secret.is_empty()
        {
            self.fault(format!("trigger.handshake.{field}"), "cannot be empty");
        }
        for (index, header) in trigger.request.headers.iter().enumerate() {
            if !is_header_name(&header.key) {
                self.fault(
                    format!("trigger.request.headers[{index}].key"),
                    format!("{:?} is not a valid header name", header.key),
                );
            }
        }
        if let Some(signature) = &trigger.signature {
            self.check_signature(signature);
        }
        for (index, header) in trigger.request.headers.iter().enumerate() {
            if header.key.eq_ignore_ascii_case("authorization")
                || header.key.eq_ignore_ascii_case("proxy-authorization")
            {
                self.fault(
                    format!("trigger.request.headers[{index}].key"),
                    "credentials are never captured into execution records",
                );
            }
        }
        if let Some(idempotency) = &trigger.idempotency {
            match (&idempotency.header, &idempotency.body_path) {
                (Some(header), None) if !is_header_name(header) => {
                    self.fault("trigger.idempotency.header", format!("{header:?} is not a valid header name"));
                }
                (None, Some(path)) => {
                    if let Err(error) = parse_value_path(path) {
                        self.fault("trigger.idempotency.bodyPath", error.to_string());
                    }
                }
                (Some(_), None) => {}
                _ => self.fault("trigger.idempotency", "give exactly one of \"header\" and \"bodyPath\""),
            }
            if idempotency.ttl_seconds == 0 {
                self.fault("trigger.idempotency.ttlSeconds", "must be at least 1");
            }
        }
        if trigger.sync_deadline_ms.is_some() && !workflow.sync {
            self.fault("trigger.syncDeadlineMs", "applies to sync workflows only");
        }
        if let Some(response) = &trigger.response {
            if !(100..=599).contains(&response.status_code) {
                self.fault("trigger.response.statusCode", "expected a status code from 100 to 599");
            }
            for (index, header) in response.headers.iter().enumerate() {
                if !is_header_name(&header.name) {
                    self.fault(
                        format!("trigger.response.headers[{index}].name"),
                        format!("{:?} is not a valid header name", header.name),
                    );
                }
                if !is_header_value(&header.value) {
                    self.fault(
                        format!("trigger.response.headers[{index}].value"),
                        "control characters are not allowed in a header value",
                    );
                }
            }
        }
        self.check_operations(workflow);
        for (index, status) in workflow.options.delete_execution_on_status.iter().enumerate() {
            let known = serde_json::from_value::<ExecutionStatus>(Value::String(status.clone()));
            if !matches!(known, Ok(status) if status.is_final()) {
                self.fault(
                    format!("options.deleteExecutionOnStatus[{index}]"),
                    format!("{status:?} is not a final execution status (resolved, failed, error, aborted, canceled)"),
                );
            }
        }
    }

    /// `options.retry`, `options.onFailure` and `options.rateLimit`.
    fn check_operations(&mut self, workflow: &Workflow) {
        let options = &workflow.options;
        if let Some(retry) = &options.retry {
            if workflow.sync {
                self.fault("options.retry", "applies to async workflows only: a sync caller does not wait for retries");
            }
            if !(1..=MAX_ATTEMPTS).contains(&retry.max_attempts) {
                self.fault("options.retry.maxAttempts", format!("expected 1 to {MAX_ATTEMPTS}"));
            }
            let initial = self.duration("options.retry.initialDelay", &retry.initial_delay);
            let max = self.duration("options.retry.maxDelay", &retry.max_delay);
            if let (Some(initial), Some(max)) = (initial, max)
                && max < initial
            {
                self.fault("options.retry.maxDelay", "cannot be shorter than initialDelay");
            }
        }
        if let Some(target) = &options.on_failure {
            if !is_valid_key(target) {
                self.fault("options.onFailure", format!("{target:?} is not a workflow key"));
            } else if workflow.key.as_deref() == Some(target.as_str()) {
                self.fault("options.onFailure", "a workflow cannot be its own failure hook");
            }
        }
        if let Some(limit) = &options.rate_limit {
            if limit.requests == 0 {
                self.fault("options.rateLimit.requests", "at least 1");
            }
            if limit.burst == Some(0) {
                self.fault("options.rateLimit.burst", "at least 1");
            }
            self.duration("options.rateLimit.per", &limit.per);
        }
    }

    /// A positive duration such as `10s`, or a fault at `path`.
    fn duration(&mut self, path: &str, text: &str) -> Option<std::time::Duration> {
        match parse_duration(text) {
            Some(duration) if !duration.is_zero() => Some(duration),
            _ => {
                self.fault(path, format!("{text:?} is not a positive duration such as \"250ms\", \"10s\" or \"1h\""));
                None
            }
        }
    }

    fn check_signature(&mut self, signature: &Signature) {
        match signature {
            Signature::HmacSha256 { header, .. } if !is_header_name(header) => {
                self.fault("trigger.signature.header", format!("{header:?} is not a valid header name"));
            }
            Signature::StandardWebhooks { secrets, .. } => {
                for (index, secret) in secrets.iter().enumerate() {
                    let valid = if secret.starts_with("whpk_") {
                        standard_webhooks_public_key(secret).is_some()
                    } else {
                        standard_webhooks_key(secret).is_some_and(|key| !key.is_empty())
                    };
                    if !valid {
                        self.fault(
                            format!("trigger.signature.secrets[{index}]"),
                            "expected whsec_ followed by base64, or whpk_ followed by the base64 of a 32-byte ed25519 public key",
                        );
                    }
                }
            }
            _ => {}
        }
        let secrets = signature.secrets();
        if secrets.is_empty() || secrets.iter().any(String::is_empty) {
            self.fault("trigger.signature.secrets", "give at least one secret, none empty");
        }
    }

    /// First pass: every node key with the path of its first occurrence; duplicates are faults.
    fn collect_keys(&mut self, chain: &[Node], path: &str) {
        for (index, node) in chain.iter().enumerate() {
            let node_path = format!("{path}[{index}]");
            if node.key.is_empty() {
                self.fault(format!("{node_path}.key"), "a node key cannot be empty");
            } else if let Some(first) = self.keys.get(&node.key) {
                let message = format!("duplicate node key {:?} (first used at {first})", node.key);
                self.fault(format!("{node_path}.key"), message);
            } else {
                self.keys.insert(node.key.clone(), format!("{node_path}.key"));
            }
            for (name, branch) in &node.branches {
                self.collect_keys(branch, &join_key(&format!("{node_path}.branches"), name));
            }
        }
    }

    fn chain(&mut self, chain: &[Node], path: &str) -> Vec<PlanNode> {
        chain.iter().enumerate().filter_map(|(index, node)| self.node(node, &format!("{path}[{index}]"))).collect()
    }

    fn node(&mut self, node: &Node, path: &str) -> Option<PlanNode> {
        let info = self.runner.describe(&node.node_type);
        match &info {
            None => self.fault(format!("{path}.type"), format!("unknown node type {:?}", node.node_type)),
            Some(info) if info.may_respond && !self.sync => self.fault(
                format!("{path}.type"),
                format!(
                    "a {:?} node answers the caller, but this workflow is asynchronous: its caller is answered by trigger.response",
                    node.node_type
                ),
            ),
            Some(_) if NodeKind::of(&node.node_type) == NodeKind::Delay && self.sync => self.fault(
                format!("{path}.type"),
                "a \"delay\" node waits durably and runs in asynchronous workflows only; this workflow is synchronous",
            ),
            Some(_) => {}
        }
        let kind = NodeKind::of(&node.node_type);
        let config = match Template::compile(&node.config, &format!("{path}.config")) {
            Ok(config) => Some(config),
            Err((fault_path, error)) => {
                self.fault(fault_path, error.to_string());
                None
            }
        };
        if let Some(config) = &config {
            self.check_references(config, &format!("{path}.config"));
        }
        let mut branches = BTreeMap::new();
        if kind == NodeKind::Loop {
            self.loops.push(node.key.clone());
        }
        for (name, chain) in &node.branches {
            let branch_path = join_key(&format!("{path}.branches"), name);
            if let Some(info) = &info
                && !info.branches.contains(name)
            {
                let declared = if info.branches.is_empty() { "none".to_string() } else { info.branches.join(", ") };
                self.fault(
                    branch_path.clone(),
                    format!("node type {:?} has no branch {name:?} (it declares: {declared})", node.node_type),
                );
            }
            branches.insert(name.clone(), self.chain(chain, &branch_path));
        }
        if kind == NodeKind::Loop {
            self.loops.pop();
        }
        Some(PlanNode {
            key: node.key.clone(),
            node_type: node.node_type.clone(),
            info: info?,
            config: config?,
            branches,
            kind,
        })
    }

    /// `$jobsMapByNodeKey.<key>` must name a node of this workflow, `$scopes.<key>` a loop node
    /// around this one.
    fn check_references(&mut self, config: &Template, path: &str) {
        let mut faults = Vec::new();
        for expr in config.exprs() {
            let first = match expr.path.first() {
                Some(Step::Key(key)) => Some(key),
                _ => None,
            };
            match (expr.root, first) {
                (Root::Jobs, Some(key)) if !self.keys.contains_key(key) => {
                    faults.push(format!("$jobsMapByNodeKey.{key} names no node of this workflow"));
                }
                (Root::Scopes, Some(key)) if !self.loops.contains(key) => {
                    faults.push(format!("$scopes.{key} names no loop node around this node"));
                }
                (Root::Scopes, None) => faults.push("$scopes needs a loop node's key: $scopes.<key>.item".into()),
                (Root::Secrets, None) => faults.push("$secrets needs a secret's name: $secrets.<NAME>".into()),
                _ => {}
            }
        }
        for message in faults {
            self.fault(path, message);
        }
    }
}

#[cfg(test)]
mod tests;
