//! The command line (DESIGN §3.5), as clap definitions.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

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
}

/// `hookflow serve` options.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:13000")]
    pub listen: SocketAddr,
    /// Directory for the database and the compiled-component cache.
    #[arg(long, default_value = "./hookflow-data")]
    pub data: PathBuf,
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
    /// Most sync executions running at once; more requests get 503 with Retry-After.
    #[arg(long, default_value_t = 1024)]
    pub max_sync_inflight: usize,
    /// Most async executions waiting or running; more requests get 503 with Retry-After.
    #[arg(long, default_value_t = 100_000)]
    pub max_queue: usize,
    /// How long a client may take to send a request's head, and then its body.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub read_timeout: Duration,
    /// Time budget of one node call.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub node_timeout: Duration,
    /// Memory limit of one node instance.
    #[arg(long, default_value = "64MiB", value_parser = parse_size)]
    pub node_memory: usize,
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
