//! The command line (docs/operating.md), as clap definitions.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use hookflow_plugin::{HostPattern, HostPatternError, is_valid_type_name};

/// hookflow: a webhook workflow engine whose nodes are WebAssembly components.
#[derive(Debug, Parser)]
#[command(name = "hookflow", version, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the engine: listen for webhooks and run their workflows.
    #[command(after_help = "Examples:\n  hookflow serve --demo\n  hookflow serve --listen 0.0.0.0:13000 \
                             --workflows ./workflows --public-url https://hooks.example.com")]
    Serve(Box<ServeArgs>),
    /// Turn an example request into the path list of a trigger's request configuration.
    #[command(subcommand)]
    Parse(ParseCommand),
    /// Manage the workflows of a running server.
    #[command(after_help = "Examples:\n  hookflow workflow add order.json\n  hookflow workflow list\n  \
                             HOOKFLOW_ADMIN_TOKEN=... hookflow workflow show orders --server http://10.0.0.5:13000")]
    Workflow(Remote<WorkflowCommand>),
    /// Read, cancel and re-run the executions of a running server.
    #[command(after_help = "Examples:\n  hookflow executions list --workflow orders --status failed\n  \
                             hookflow executions show 01KB2Y7V9X3T4G6M8P0R2S4W6Y\n  \
                             hookflow executions rerun --workflow orders --status error --since 2h --dry-run")]
    Executions(Remote<ExecutionsCommand>),
    /// Read the log of trigger requests a running server refused.
    #[command(after_help = "Examples:\n  hookflow refusals list --workflow orders\n  \
                             hookflow refusals list --code invalid_signature --since 1h")]
    Refusals(Remote<RefusalsCommand>),
    /// Manage the node types (WebAssembly components) of a running server.
    #[command(after_help = "Examples:\n  hookflow plugin list\n  hookflow plugin add scorer ./scorer.wasm")]
    Plugin(Remote<PluginCommand>),
}

/// A command that talks to a running server's admin API. The token comes from
/// `HOOKFLOW_ADMIN_TOKEN` (needed when the server has one, or is not on this machine).
#[derive(Debug, Args)]
pub struct Remote<C: Subcommand> {
    /// The server's URL.
    #[arg(long, global = true, env = "HOOKFLOW_SERVER", default_value = "http://127.0.0.1:13000")]
    pub server: String,
    /// Print the API's JSON answer instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: C,
}

/// `hookflow workflow` subcommands.
#[derive(Debug, Subcommand)]
pub enum WorkflowCommand {
    /// Create a workflow from a JSON definition (a key is generated when it has none).
    #[command(after_help = "Examples:\n  hookflow workflow add order.json\n  cat order.json | hookflow workflow add -")]
    Add {
        /// The definition's file, or `-` for standard input.
        file: PathBuf,
    },
    /// List the workflows with their mode and webhook URL.
    #[command(after_help = "Examples:\n  hookflow workflow list\n  hookflow workflow list --json | jq '.items[].url'")]
    List {
        /// Most workflows to show.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Start after this key (the `next` of a previous page).
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Show a workflow: its settings, URL and node tree.
    #[command(
        after_help = "Examples:\n  hookflow workflow show orders\n  hookflow workflow show orders --json > orders.json"
    )]
    Show {
        /// The workflow key.
        key: String,
    },
    /// Replace a workflow's definition (a new version; running executions keep theirs).
    #[command(after_help = "Example:\n  hookflow workflow replace orders orders.json")]
    Replace {
        /// The workflow key.
        key: String,
        /// The new definition's file, or `-` for standard input.
        file: PathBuf,
    },
    /// Enable a workflow's webhook URL.
    #[command(after_help = "Example:\n  hookflow workflow enable orders")]
    Enable {
        /// The workflow key.
        key: String,
    },
    /// Disable a workflow: its URL answers 404 until it is enabled again.
    #[command(after_help = "Example:\n  hookflow workflow disable orders")]
    Disable {
        /// The workflow key.
        key: String,
    },
    /// List a workflow's stored versions, newest first.
    #[command(after_help = "Example:\n  hookflow workflow versions orders")]
    Versions {
        /// The workflow key.
        key: String,
    },
    /// Make an earlier version current again (stored as a new version).
    #[command(after_help = "Example:\n  hookflow workflow restore orders 3")]
    Restore {
        /// The workflow key.
        key: String,
        /// The version to bring back.
        #[arg(value_name = "VERSION")]
        number: u64,
    },
    /// Delete a workflow (its executions stay readable).
    #[command(after_help = "Example:\n  hookflow workflow rm orders")]
    Rm {
        /// The workflow key.
        key: String,
    },
    /// Run a workflow on a sample request, without a sender (a test run: no auth or signature
    /// checks, marked `test`); a sync workflow's execution is shown once it ended.
    #[command(after_help = "Examples:\n  hookflow workflow test orders --body '{\"status\": \"paid\"}'\n  \
                             hookflow workflow test orders --body @sample.json --query 'source=shop' --header 'X-Shop: 7'")]
    Test {
        /// The workflow key.
        key: String,
        #[command(flatten)]
        sample: SampleArgs,
    },
    /// Run one node of a workflow on a sample: its config resolved against it, its output and
    /// what it tells the engine to do next (nothing is recorded).
    #[command(after_help = "Examples:\n  hookflow workflow test-node orders check --body '{\"status\": \"paid\"}'\n  \
                             hookflow workflow test-node orders notify --jobs '{\"check\": {\"result\": true}}'")]
    TestNode {
        /// The workflow key.
        key: String,
        /// The node's key.
        node: String,
        #[command(flatten)]
        sample: SampleArgs,
        /// Earlier nodes' outputs by key, as JSON (`$jobsMapByNodeKey`).
        #[arg(long, value_name = "JSON")]
        jobs: Option<String>,
        /// Try this config instead of the stored one, as JSON.
        #[arg(long, value_name = "JSON")]
        config: Option<String>,
    },
}

/// A sample request for a test run.
#[derive(Debug, Args)]
pub struct SampleArgs {
    /// The body, as JSON, or `@FILE` to read it from a file.
    #[arg(long, value_name = "JSON|@FILE")]
    pub body: Option<String>,
    /// The query string (`a=1&b[c]=2`), parsed as requests' queries are.
    #[arg(long, value_name = "QUERY")]
    pub query: Option<String>,
    /// A header, `Name: value` (repeat for more).
    #[arg(long = "header", value_name = "NAME: VALUE")]
    pub headers: Vec<String>,
}

/// `hookflow executions` subcommands.
#[derive(Debug, Subcommand)]
pub enum ExecutionsCommand {
    /// List executions, newest first.
    #[command(after_help = "Examples:\n  hookflow executions list\n  \
                             hookflow executions list --workflow orders --status error --since 2h\n  \
                             hookflow executions list --since 2026-11-29T00:00:00Z --until 2026-11-30T00:00:00Z")]
    List {
        /// Only this workflow's.
        #[arg(long)]
        workflow: Option<String>,
        /// Only this status: queued, started, resolved, failed, error, aborted, canceled.
        #[arg(long)]
        status: Option<String>,
        /// Only those created since: an RFC 3339 instant, or a duration ago (`2h`, `30m`, `7days`).
        #[arg(long)]
        since: Option<String>,
        /// Only those created before: an RFC 3339 instant, or a duration ago.
        #[arg(long)]
        until: Option<String>,
        /// Only dead letters (executions that failed their last retry).
        #[arg(long)]
        dead_letter: bool,
        /// Most executions to show.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Continue after this execution id (the `next` of a previous page).
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Show an execution with its jobs: status, duration, output or error of each node.
    #[command(after_help = "Examples:\n  hookflow executions show 01KB2Y7V9X3T4G6M8P0R2S4W6Y\n  \
                             hookflow executions show 01KB2Y7V9X3T4G6M8P0R2S4W6Y --json | jq '.jobs[0].input'")]
    Show {
        /// The execution id.
        id: String,
    },
    /// Cancel a queued or running async execution.
    #[command(after_help = "Example:\n  hookflow executions cancel 01KB2Y7V9X3T4G6M8P0R2S4W6Y")]
    Cancel {
        /// The execution id.
        id: String,
    },
    /// Delete a finished execution's record.
    #[command(after_help = "Example:\n  hookflow executions rm 01KB2Y7V9X3T4G6M8P0R2S4W6Y")]
    Rm {
        /// The execution id.
        id: String,
    },
    /// Run an execution's workflow again on its stored trigger data (in the background) — or,
    /// without an id, every finished execution the filters match that was not re-run before
    /// (a redrive).
    #[command(after_help = "Examples:\n  hookflow executions rerun 01KB2Y7V9X3T4G6M8P0R2S4W6Y\n  \
                             hookflow executions rerun --workflow orders --status error --since 2h --dry-run\n  \
                             hookflow executions rerun --workflow orders --dead-letter")]
    Rerun {
        /// The execution id; without one, the filters choose.
        #[arg(conflicts_with_all = ["workflow", "status", "dead_letter", "since", "until", "dry_run"])]
        id: Option<String>,
        /// Only this workflow's.
        #[arg(long)]
        workflow: Option<String>,
        /// Only these statuses (repeat, or comma-separated; default error, aborted, failed).
        #[arg(long, value_delimiter = ',')]
        status: Vec<String>,
        /// Only dead letters (executions that failed their last retry).
        #[arg(long)]
        dead_letter: bool,
        /// Only those created since: an RFC 3339 instant, or a duration ago (`2h`).
        #[arg(long)]
        since: Option<String>,
        /// Only those created before: an RFC 3339 instant, or a duration ago.
        #[arg(long)]
        until: Option<String>,
        /// Count the matches; re-run nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// `hookflow refusals` subcommands.
#[derive(Debug, Subcommand)]
pub enum RefusalsCommand {
    /// List refused trigger requests, newest first, with why each was refused.
    #[command(after_help = "Examples:\n  hookflow refusals list\n  \
                             hookflow refusals list --workflow orders --code invalid_signature --since 1h")]
    List {
        /// Only this workflow's.
        #[arg(long)]
        workflow: Option<String>,
        /// Only this error code (invalid_signature, unauthorized, forbidden, rate_limited, …).
        #[arg(long)]
        code: Option<String>,
        /// Only those since: an RFC 3339 instant, or a duration ago (`2h`).
        #[arg(long)]
        since: Option<String>,
        /// Most refusals to show.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Continue after this refusal id (the `next` of a previous page).
        #[arg(long)]
        cursor: Option<String>,
    },
}

/// `hookflow plugin` subcommands.
#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// List the installed node types.
    #[command(after_help = "Example:\n  hookflow plugin list")]
    List,
    /// Install (or replace) a node type from a component built for the `node` world.
    #[command(after_help = "Example:\n  hookflow plugin add scorer target/wasm32-wasip2/release/scorer.wasm")]
    Add {
        /// The node type name workflows will use in `type`.
        name: String,
        /// The component file (.wasm).
        file: PathBuf,
    },
    /// Start a new node project that builds and passes its own tests out of the box.
    #[command(after_help = "Examples:\n  hookflow plugin new --lang rust greeter\n  \
                             hookflow plugin new --lang python greeter --dir ./nodes/greeter\n  \
                             hookflow plugin new --lang js greeter")]
    New {
        /// The language.
        #[arg(long, value_enum)]
        lang: Lang,
        /// The node type name (also the project's name).
        name: String,
        /// Where to create the project (default: ./<name>).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Tell whether a component fits the `node` world and print what it declares (no server
    /// needed: the component is compiled and described here).
    #[command(after_help = "Example:\n  hookflow plugin check target/wasm32-wasip2/release/scorer.wasm")]
    Check {
        /// The component file (.wasm).
        file: PathBuf,
    },
    /// Delete an uploaded node type (refused while an enabled workflow uses it).
    #[command(after_help = "Example:\n  hookflow plugin rm scorer")]
    Rm {
        /// The node type name.
        name: String,
    },
}

/// Which store `serve` keeps its state in.
#[derive(Clone)]
pub enum StoreArg {
    /// A redb file in `--data`.
    Redb,
    /// A PostgreSQL database (its URL).
    Postgres(String),
}

impl std::fmt::Debug for StoreArg {
    /// Never the URL: it may hold a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StoreArg::Redb => "redb",
            StoreArg::Postgres(_) => "postgres://…",
        })
    }
}

/// An IP address or a CIDR block.
pub fn parse_address_block(text: &str) -> Result<ipnet::IpNet, String> {
    hookflow_workflow::parse_address_block(text)
        .ok_or_else(|| format!("{text:?} is neither an IP address nor a CIDR block (10.0.0.0/8, 2001:db8::/32)"))
}

/// `redb`, or a `postgres://` (`postgresql://`) URL.
pub fn parse_store(text: &str) -> Result<StoreArg, String> {
    match text {
        "redb" => Ok(StoreArg::Redb),
        url if url.starts_with("postgres://") || url.starts_with("postgresql://") => Ok(StoreArg::Postgres(url.into())),
        _ => Err("expected `redb` or a PostgreSQL URL (postgres://USER@HOST/DB)".into()),
    }
}

/// `hookflow serve` options.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:13000")]
    pub listen: SocketAddr,
    /// Directory for the database (with `--store redb`) and the compiled-component cache.
    #[arg(long, default_value = "./hookflow-data")]
    pub data: PathBuf,
    /// Where workflows, executions and the queue are kept: `redb` (a file in --data, for one
    /// process) or a PostgreSQL URL, `postgres://USER[:PASSWORD]@HOST[:PORT]/DB` (add
    /// `?sslmode=require`, and `&sslrootcert=FILE` for a private CA), shared by every node of a
    /// cluster behind a load balancer; a cluster needs --admin-token.
    #[arg(long, env = "HOOKFLOW_STORE", default_value = "redb", value_parser = parse_store, hide_env_values = true)]
    pub store: StoreArg,
    /// A cluster node's lease: how long its claims outlive it when it dies or freezes (renewed
    /// every third of it); another node takes its executions over after that.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub lease: Duration,
    /// How many times an execution may be taken over from a node that died before it ends
    /// `error` ("abandoned after N takeovers") instead of taking the next node down too.
    #[arg(long, default_value_t = 3)]
    pub max_takeovers: u32,
    /// Directory of workflow definitions (*.json) to deploy at start.
    #[arg(long)]
    pub workflows: Option<PathBuf>,
    /// Directory of custom node components (<type>.wasm).
    #[arg(long)]
    pub plugins: Option<PathBuf>,
    /// Deploy the bundled example workflows and print how to call them.
    #[arg(long)]
    pub demo: bool,
    /// Origin for printed webhook URLs, e.g. https://hooks.example.com (default: http://<listen>).
    #[arg(long)]
    pub public_url: Option<String>,
    /// Proxies in front (IPs or CIDR blocks, comma-separated) whose X-Forwarded-For names the
    /// client, for workflows' trigger.ipAllowlist: the client is the right-most hop that is not
    /// one of them.
    #[arg(long, value_name = "CIDR,...", value_delimiter = ',', value_parser = parse_address_block)]
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Refused trigger requests kept in the refusal log per workflow (the oldest dropped); 0
    /// keeps none (they are still counted in /metrics).
    #[arg(long, value_name = "N", default_value_t = hookflow_server::server::DEFAULT_KEEP_REFUSALS)]
    pub keep_refusals: usize,
    /// Bearer token of the admin API (without one it answers loopback clients only).
    #[arg(long, env = "HOOKFLOW_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Largest accepted request body: bytes or a unit (1048576, 1MiB, 512KiB).
    #[arg(long, default_value = "1MiB", value_parser = parse_size)]
    pub body_limit: usize,
    /// How long a sync caller waits for its workflow's answer (30s, 500ms, 2m).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub sync_timeout: Duration,
    /// How many async executions run at once; 0 stores them without running them.
    #[arg(long, default_value_t = 4)]
    pub workers: usize,
    /// Most sync executions running at once; more requests get 503 with Retry-After. Each may
    /// hold one of tokio's 512 blocking threads while it waits for a node instance, so keep it
    /// well below that (the blocking threads also run async executions).
    #[arg(long, default_value_t = 256, value_parser = parse_sync_inflight)]
    pub max_sync_inflight: usize,
    /// Most async executions queued or running (those waiting in a delay not counted); more
    /// requests get 503 with Retry-After. A workflow's `options.maxQueued` sets its own share.
    #[arg(long, default_value_t = 100_000)]
    pub max_queue: usize,
    /// Most async executions waiting in a delay; while it is reached, requests to workflows
    /// holding a delay node get 503 with Retry-After.
    #[arg(long, default_value_t = 100_000)]
    pub max_delayed: usize,
    /// A secret that templates read as `{{$secrets.NAME}}`, e.g. `STRIPE_KEY=sk_live_...`
    /// (also `HOOKFLOW_SECRET_<NAME>` in the environment). Nodes get the value; records, logs
    /// and the admin API show `********` in its place. Repeatable.
    #[arg(long = "secret", value_name = "NAME=VALUE")]
    pub secrets: Vec<String>,
    /// A file of secrets, one `NAME=VALUE` a line (blank lines and `#` comments skipped).
    #[arg(long, value_name = "FILE")]
    pub secrets_file: Option<PathBuf>,
    /// Most jobs one execution may record; past it the execution ends `error`, naming the limit.
    /// A workflow's `options.maxJobs` overrides it.
    #[arg(long, default_value_t = 10_000)]
    pub max_jobs: usize,
    /// Most recorded JSON (job inputs and outputs) of one execution (16MiB); a workflow's
    /// `options.maxRecordBytes` overrides it. A single value over 256KiB is recorded truncated.
    #[arg(long, default_value = "16MiB", value_parser = parse_size)]
    pub max_record: usize,
    /// Most node time of one async execution, delays not counted (1h); a workflow's
    /// `options.maxRunTimeMs` overrides it.
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    pub max_run_time: Duration,
    /// Most open client connections; more wait in the listen backlog until one closes. Lowered
    /// to the open-file limit (ulimit -n) less 64 descriptors kept for the engine itself.
    #[arg(long, default_value_t = 4096)]
    pub max_connections: usize,
    /// How long a client may take to send a request's head (after connecting or after its
    /// last answer), then its body, and to read each answer.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub read_timeout: Duration,
    /// Time budget of one node call.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub node_timeout: Duration,
    /// Memory limit of one node instance.
    #[arg(long, default_value = "64MiB", value_parser = parse_size)]
    pub node_memory: usize,
    /// Let nodes of a type send HTTP requests to these hosts, e.g.
    /// `http-request=api.example.com,*.stripe.com,10.0.0.5:8080` (host = its scheme's default
    /// port; host:port; host:* = any port; *.domain = its subdomains; [::1]:8080). Repeatable.
    /// Default: no network.
    #[arg(long, value_name = "TYPE=HOST,...", value_parser = parse_outbound_grant)]
    pub allow_outbound: Vec<(String, Vec<HostPattern>)>,
    /// Show nodes of a type these environment variables of hookflow's own, e.g.
    /// `http-request=API_TOKEN`. Repeatable. Default: none.
    #[arg(long, value_name = "TYPE=NAME,...", value_parser = parse_env_grant)]
    pub allow_env: Vec<(String, Vec<String>)>,
    /// Time budget of one call of a node type, instead of --node-timeout, e.g.
    /// `my-node=5s`. Repeatable. `http-request` has 60s unless set here.
    #[arg(long, value_name = "TYPE=DURATION", value_parser = parse_type_timeout)]
    pub node_timeout_for: Vec<(String, Duration)>,
    /// Delete finished executions this many days after they were created (default: keep all).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub keep_executions_days: Option<u32>,
    /// Log lines as human-readable text or as one JSON object per line (levels: RUST_LOG).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// How `serve` writes its log (to stderr).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// `2026-11-29T18:00:00Z  INFO execution{id=01K..}: message`.
    Text,
    /// One JSON object per line, with the execution id in its `span` field.
    Json,
}

/// `hookflow parse` subcommands.
#[derive(Debug, Subcommand)]
pub enum ParseCommand {
    /// Paths of an example query: a full URL, or just its query part, with or without `?`.
    #[command(
        after_help = "Example:\n  hookflow parse query 'http://localhost:13000/api/webhook:trigger/abc?query[0][a]=1&query[1]=x'"
    )]
    Query {
        /// The example URL or query string.
        example: String,
    },
    /// Paths of an example JSON body.
    #[command(after_help = "Example:\n  hookflow parse body '{\"a\": 1, \"b\": {\"c\": 2}}'")]
    Body {
        /// The example JSON.
        example: String,
    },
}

/// Languages `plugin new` can start a project in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    /// Rust, with the vendored `hookflow-node` SDK.
    Rust,
    /// Python, built with componentize-py.
    Python,
    /// JavaScript, built with componentize-js.
    Js,
}

/// `--max-sync-inflight`: 1 to 480, below tokio's 512 blocking threads.
fn parse_sync_inflight(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(count) if (1..=480).contains(&count) => Ok(count),
        _ => Err("expected 1 to 480: each sync execution may hold one of 512 blocking threads".into()),
    }
}

/// `1048576`, `512KiB`, `1MiB`, `1GiB`, `10kB`, `2MB` → bytes.
pub fn parse_size(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let number: usize =
        digits.parse().map_err(|_| format!("{text:?} is not a size such as 1048576, 512KiB or 1MiB"))?;
    let multiplier: usize = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" | "k" => 1 << 10,
        "mib" | "m" => 1 << 20,
        "gib" | "g" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        other => return Err(format!("unknown size unit {other:?}; use B, KiB, MiB, GiB, kB, MB or GB")),
    };
    number.checked_mul(multiplier).ok_or_else(|| format!("{text:?} is too large"))
}

/// Splits `TYPE=VALUE`, checking the node type's name.
fn split_grant(text: &str) -> Result<(String, &str), String> {
    let (node_type, value) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?}: expected TYPE=VALUE, e.g. http-request=api.example.com"))?;
    let node_type = node_type.trim();
    if !is_valid_type_name(node_type) {
        return Err(format!("{node_type:?} is not a node type name"));
    }
    Ok((node_type.to_string(), value))
}

/// `http-request=api.example.com,127.0.0.1:*` → the type and its host patterns.
pub fn parse_outbound_grant(text: &str) -> Result<(String, Vec<HostPattern>), String> {
    let (node_type, hosts) = split_grant(text)?;
    let hosts = hosts.split(',').map(|host| host.parse().map_err(|e: HostPatternError| e.to_string()));
    Ok((node_type, hosts.collect::<Result<_, _>>()?))
}

/// `http-request=API_TOKEN,REGION` → the type and the variable names.
pub fn parse_env_grant(text: &str) -> Result<(String, Vec<String>), String> {
    let (node_type, names) = split_grant(text)?;
    let names: Vec<String> = names.split(',').map(|name| name.trim().to_string()).collect();
    if let Some(bad) = names.iter().find(|name| name.is_empty() || name.contains('=')) {
        return Err(format!("{bad:?} is not an environment variable name"));
    }
    Ok((node_type, names))
}

/// `my-node=5s` → the type and its time budget.
pub fn parse_type_timeout(text: &str) -> Result<(String, Duration), String> {
    let (node_type, duration) = split_grant(text)?;
    Ok((node_type, parse_duration(duration)?))
}

/// `30s`, `500ms`, `2m` → a duration.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|e| format!("{text:?} is not a duration such as 30s, 500ms or 2m: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("512KiB"), Ok(512 << 10));
        assert_eq!(parse_size("2 MB"), Ok(2_000_000));
        assert!(parse_size("MiB").is_err());
        assert!(parse_size("1 parsec").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("soon").is_err());
    }
}
