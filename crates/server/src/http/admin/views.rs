//! The shapes the admin API answers with (docs/operating.md), as typed values: the handlers build
//! them, serde writes them, and the OpenAPI document is derived from them.

use serde::Serialize;
use serde_json::Value;

use hookflow_plugin::Plugin;
pub use hookflow_workflow::SECRET_MASK as MASK;
use hookflow_workflow::Workflow;
use hookflow_workflow::timestamp::Timestamp;

/// A page of a listing.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Listing<T> {
    /// The items of this page.
    pub items: Vec<T>,
    /// Pass as `?cursor=` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// A deployed workflow: its definition (secrets masked) and its bookkeeping.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowView {
    /// The definition, with passwords and signing secrets replaced by `********`.
    #[serde(flatten)]
    pub definition: Workflow,
    /// Starts at 1; each change adds one.
    pub version: u64,
    /// The full webhook URL (built from `--public-url` when given).
    pub url: String,
    /// When version 1 was stored.
    pub created_at: Option<Timestamp>,
    /// When the current version was stored.
    pub updated_at: Option<Timestamp>,
    /// The workflow's newest execution, if it has run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_execution: Option<LastExecution>,
}

/// A workflow's newest execution, as its listing shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LastExecution {
    /// Its id (a ULID; its time is when it was created).
    pub id: String,
    /// Its status.
    pub status: String,
    /// When it was created.
    pub created_at: Timestamp,
}

impl WorkflowView {
    /// The view of a definition, with its secrets masked.
    pub fn masked(definition: &Workflow, version: u64, url: String) -> WorkflowView {
        WorkflowView {
            definition: masked(definition),
            version,
            url,
            created_at: None,
            updated_at: None,
            last_execution: None,
        }
    }
}

/// A definition with its secrets (passwords, signing secrets, API keys, handshake tokens)
/// replaced by [`MASK`].
pub fn masked(definition: &Workflow) -> Workflow {
    let mut definition = definition.clone();
    for (_, secret) in definition.trigger.secrets_mut() {
        *secret = MASK.into();
    }
    definition
}

/// One stored version of a workflow.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VersionView {
    /// The version number.
    pub version: u64,
    /// Whether it is the version new requests run on.
    pub current: bool,
    /// Its definition, secrets masked.
    pub definition: Workflow,
}

/// An installed node type.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PluginView {
    /// The node type name workflows use in `type`.
    pub name: String,
    /// Whether it is embedded in the binary (built-ins cannot be replaced or deleted).
    pub builtin: bool,
    /// SHA-256 of the component bytes, hex.
    pub digest: String,
    /// The version the component declares.
    pub version: String,
    /// JSON Schema of the node's `config`.
    pub config_schema: Value,
    /// Names of the branches the node may pick.
    pub branches: Vec<String>,
    /// Whether the node may answer the HTTP caller.
    pub may_respond: bool,
}

impl From<&Plugin> for PluginView {
    fn from(plugin: &Plugin) -> PluginView {
        PluginView {
            name: plugin.name.clone(),
            builtin: plugin.builtin,
            digest: plugin.digest.clone(),
            version: plugin.info.version.clone(),
            config_schema: plugin.info.config_schema.clone(),
            branches: plugin.info.branches.clone(),
            may_respond: plugin.info.may_respond,
        }
    }
}

/// `{"example": ...}`: any JSON for `/api/parse/body`.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
pub struct Example {
    /// The example.
    pub example: Value,
}

/// `{"example": "<URL or query string>"}` for `/api/parse/query` (read as an [`Example`]).
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code, reason = "describes the body /api/parse/query takes; only read by the schema derive")]
pub struct QueryExample {
    /// A full URL, or its query part with or without `?`.
    pub example: String,
}

/// The variables an example offers, as the trigger's `request` lists take them.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PathList {
    /// `[{"key": "a"}, {"key": "b"}, {"key": "b.c"}]`.
    pub paths: Vec<PathEntry>,
}

/// One path of an example.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PathEntry {
    /// The path, e.g. `items[0].sku`.
    pub key: String,
}

/// A health probe's answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok` (liveness) or `ready` (readiness).
    pub status: String,
    /// How many node types are installed (readiness only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plugins: Option<usize>,
}

/// A node of the cluster.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterNodeView {
    /// Its current identity (a node that lost its lease joins again under a new one).
    pub id: i64,
    /// Where it serves (its `--public-url`, else its listen address).
    pub address: String,
    /// When it joined under this identity.
    pub started_at: Timestamp,
    /// When it last renewed its lease.
    pub renewed_at: Timestamp,
    /// How many executions it holds now.
    pub executions: u64,
}

impl From<hookflow_store::ClusterNode> for ClusterNodeView {
    fn from(node: hookflow_store::ClusterNode) -> ClusterNodeView {
        ClusterNodeView {
            id: node.id,
            address: node.address,
            started_at: node.started_at,
            renewed_at: node.renewed_at,
            executions: node.executions,
        }
    }
}

/// A refused trigger request, from the refusal log.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RefusalView {
    /// Its id (a ULID of its time); pass the last one as `?cursor=` for older ones.
    pub id: String,
    /// When it was refused.
    pub time: Timestamp,
    /// The workflow's key.
    pub workflow: String,
    /// The request's method.
    pub method: String,
    /// The status answered.
    pub status: u16,
    /// The error code answered (`invalid_signature`, `unauthorized`, `rate_limited`, …).
    pub code: String,
    /// The error message answered.
    pub reason: String,
    /// The client's address (behind `--trusted-proxies`: the forwarded one).
    pub client: String,
    /// The workflow's configured headers of the request, lower-case, secrets masked.
    pub headers: std::collections::BTreeMap<String, String>,
}

impl From<hookflow_store::Refusal> for RefusalView {
    fn from(refusal: hookflow_store::Refusal) -> RefusalView {
        RefusalView {
            id: refusal.id,
            time: refusal.time,
            workflow: refusal.workflow,
            method: refusal.method,
            status: refusal.status,
            code: refusal.code,
            reason: refusal.reason,
            client: refusal.client,
            headers: refusal.headers,
        }
    }
}

/// Which executions `POST /api/executions/rerun` re-runs.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RedriveRequest {
    /// Only this workflow's executions.
    pub workflow: Option<String>,
    /// Only executions that ended with one of these statuses (default `error`, `aborted`,
    /// `failed`); finished statuses only.
    pub status: Option<Vec<String>>,
    /// Only dead letters (`true`), or only executions that are not (`false`).
    pub dead_letter: Option<bool>,
    /// Only executions created at or after this RFC 3339 instant.
    #[schema(format = DateTime)]
    pub since: Option<String>,
    /// Only executions created before this RFC 3339 instant.
    #[schema(format = DateTime)]
    pub until: Option<String>,
    /// Count the matches without re-running them.
    #[serde(default)]
    pub dry_run: bool,
}

/// What a redrive matched and queued.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RedriveView {
    /// How many executions matched (those re-run before never match again).
    pub matched: usize,
    /// The ids of the reruns queued (empty in a dry run).
    pub queued: Vec<String>,
}

/// The name of one of the operator's secrets.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SecretName {
    /// Use it as `{{$secrets.NAME}}`.
    pub name: String,
}

/// A workflow's activity (or every workflow's) over the last hour or day, for the dashboard.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActivityView {
    /// The workflow; absent for every workflow together.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workflow: Option<String>,
    /// `hour` (60 points, a minute each) or `day` (96 points, 15 minutes each).
    pub range: String,
    /// Seconds each point covers.
    pub step_seconds: u64,
    /// Oldest first; the last covers the current step.
    pub points: Vec<ActivityPoint>,
}

/// What happened in one step.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActivityPoint {
    /// When the step starts.
    pub time: Timestamp,
    /// Trigger requests answered.
    pub requests: u64,
    /// Of them, refused.
    pub refusals: u64,
    /// Executions that ended, by status.
    pub executions: std::collections::BTreeMap<String, u64>,
    /// The median duration (creation to end) of the executions that ended, in milliseconds.
    pub p50_ms: Option<f64>,
    /// The 99th percentile of those durations, in milliseconds.
    pub p99_ms: Option<f64>,
}
