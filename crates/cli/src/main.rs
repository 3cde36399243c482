//! The `hookflow` binary: parses the command line, runs the command, and maps the outcome to an
//! exit code (0 ok, 1 failure, 2 usage — clap's).

mod cli;
mod operate;
mod remote;
mod scaffold;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser as _;
use hookflow_plugin::HostConfig;
use hookflow_server::dispatch::DispatchConfig;
use hookflow_server::http::ingress::parse_query_example;
use hookflow_server::server::{PostgresConfig, Server, ServerConfig};
use hookflow_workflow::{ExecutionLimits, Secrets, example_paths};
use serde_json::{Value, json};

use cli::{Cli, Command, LogFormat, ParseCommand, ServeArgs, StoreArg};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("hookflow: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve(*args),
        Command::Parse(ParseCommand::Query { example }) => print_paths(&parse_query_example(&example)),
        Command::Parse(ParseCommand::Body { example }) => {
            let example: Value = serde_json::from_str(&example).context("the example body is not valid JSON")?;
            print_paths(&example)
        }
        Command::Workflow(remote) => client_runtime()?.block_on(operate::workflow(remote)),
        Command::Executions(remote) => client_runtime()?.block_on(operate::executions(remote)),
        Command::Refusals(remote) => client_runtime()?.block_on(operate::refusals(remote)),
        Command::Plugin(remote) => client_runtime()?.block_on(operate::plugin(remote)),
    }
}

/// Ends the process when standard output can no longer be written: quietly (exit 0) when the
/// reader went away, as `head` does, with a message (exit 1) otherwise.
fn stdout_failed(error: &std::io::Error) -> ! {
    if error.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    eprintln!("hookflow: cannot write the output: {error}");
    std::process::exit(1);
}

/// The small runtime a client command runs its one call on.
fn client_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().build().context("cannot start the runtime")
}

/// Prints `[{"key": "a"}, {"key": "b"}, {"key": "b.c"}]`.
fn print_paths(example: &Value) -> anyhow::Result<()> {
    let entries: Vec<Value> = example_paths(example).into_iter().map(|key| json!({ "key": key })).collect();
    println!("{}", serde_json::to_string_pretty(&entries)?);
    Ok(())
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    init_logging(args.log_format);
    let secrets = Arc::new(load_secrets(&args)?);
    let mut config = ServerConfig::new(args.listen, args.data);
    config.workflows_dir = args.workflows;
    config.plugins_dir = args.plugins;
    config.demo = args.demo;
    config.public_url = args.public_url;
    config.trusted_proxies.clone_from(&args.trusted_proxies);
    config.keep_refusals = args.keep_refusals;
    config.admin_token = args.admin_token.filter(|token| !token.is_empty());
    config.body_limit = args.body_limit;
    config.host =
        HostConfig { time_budget: args.node_timeout, memory_limit: args.node_memory, ..HostConfig::default() };
    let grants = &mut config.host.grants;
    for (node_type, hosts) in &args.allow_outbound {
        grants.allow_outbound(node_type, hosts);
        let own = (args.listen.ip().to_string(), args.listen.port());
        if config.admin_token.is_none() && hosts.iter().any(|host| host.allows(&own.0, own.1, 80)) {
            tracing::warn!(
                "--allow-outbound {node_type}=... reaches hookflow's own address {}, whose admin API trusts \
                 loopback callers when no --admin-token is set: set one, or grant narrower hosts",
                args.listen
            );
        }
    }
    for (node_type, names) in &args.allow_env {
        for missing in grants.allow_env(node_type, names) {
            tracing::warn!(
                "--allow-env {node_type}={missing}: {missing} is not set, so {node_type} nodes do not see it"
            );
        }
    }
    for (node_type, budget) in &args.node_timeout_for {
        grants.set_time_budget(node_type, *budget);
    }
    config.host.secrets = secrets;
    config.dispatch = DispatchConfig {
        sync_timeout: args.sync_timeout,
        workers: args.workers,
        max_sync_inflight: args.max_sync_inflight,
        max_queue: args.max_queue,
        max_delayed: args.max_delayed,
        max_takeovers: args.max_takeovers,
    };
    if let StoreArg::Postgres(url) = &args.store {
        // Behind a load balancer every request comes from the balancer: loopback means nothing.
        anyhow::ensure!(
            config.admin_token.is_some(),
            "a cluster store (--store postgres://…) needs --admin-token (or HOOKFLOW_ADMIN_TOKEN): behind a load \
             balancer the admin API cannot tell a local caller from anyone else"
        );
        config.postgres = Some(PostgresConfig { lease: args.lease, ..PostgresConfig::new(url) });
    }
    config.limits.read_timeout = args.read_timeout;
    config.limits.max_connections = args.max_connections;
    config.execution_limits = ExecutionLimits::new(args.max_jobs, args.max_record, args.max_run_time);
    config.retention.keep_executions =
        args.keep_executions_days.map(|days| Duration::from_secs(u64::from(days) * 24 * 60 * 60));

    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the runtime")?;
    runtime.block_on(async {
        let server = Server::start(config).await?;
        for endpoint in &server.endpoints {
            let mode = if endpoint.sync { "sync" } else { "async" };
            println!("{:<24} {mode:<5}  POST {}", endpoint.key, endpoint.url);
        }
        if args.demo {
            print_demo_calls(&server);
        }
        wait_for_signal().await?;
        tracing::info!("shutting down: finishing in-flight requests");
        server.stop().await?;
        tracing::info!("stopped");
        anyhow::Ok(())
    })
}

/// The secrets of `--secrets-file`, then `HOOKFLOW_SECRET_<NAME>`, then `--secret` (a later one
/// replaces an earlier one of the same name).
fn load_secrets(args: &ServeArgs) -> anyhow::Result<Secrets> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    if let Some(file) = &args.secrets_file {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("cannot read --secrets-file {}", file.display()))?;
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let pair = Secrets::parse_pair(line)
                .with_context(|| format!("--secrets-file {} line {}", file.display(), number + 1))?;
            pairs.push(pair);
        }
    }
    for (name, value) in std::env::vars_os() {
        let (Some(name), Ok(value)) = (name.to_str(), value.into_string()) else { continue };
        if let Some(secret) = name.strip_prefix("HOOKFLOW_SECRET_") {
            pairs.push((secret.to_string(), value));
        }
    }
    for flag in &args.secrets {
        pairs.push(Secrets::parse_pair(flag).context("--secret")?);
    }
    let secrets = Secrets::new(pairs.iter().map(|(name, value)| (name.as_str(), value.as_str())))?;
    if !secrets.is_empty() {
        tracing::info!("secrets: {}", secrets.names().collect::<Vec<_>>().join(", "));
    }
    Ok(secrets)
}

/// Logs to stderr at the level `RUST_LOG` asks for (default `info`), as text or JSON lines.
fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logger = tracing_subscriber::fmt().with_writer(std::io::stderr).with_env_filter(filter);
    match format {
        LogFormat::Text => logger.init(),
        LogFormat::Json => logger.json().init(),
    }
}

/// Ready-to-paste `curl` lines for the demo workflows.
fn print_demo_calls(server: &Server) {
    let url = |key: &str| server.endpoints.iter().find(|e| e.key == key).map(|e| e.url.clone());
    let (Some(sync), Some(asynchronous)) = (url("demo-payment"), url("demo-payment-async")) else { return };
    println!();
    println!("Try it:");
    println!(
        "  curl -i -X POST '{sync}' -H 'Content-Type: application/json' -d '{{\"status\": \"paid\", \"order\": 42}}'"
    );
    println!(
        "  curl -i -X POST '{sync}' -H 'Content-Type: application/json' -d '{{\"status\": \"unpaid\", \"order\": 42}}'"
    );
    println!(
        "  curl -i -X POST '{asynchronous}' -H 'Content-Type: application/json' -d '{{\"status\": \"paid\", \"order\": 42}}'"
    );
    println!("  curl -i '{sync}'");
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
async fn wait_for_signal() -> anyhow::Result<()> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot listen for SIGTERM")?;
    tokio::select! {
        interrupted = tokio::signal::ctrl_c() => interrupted.context("cannot listen for SIGINT")?,
        _ = terminate.recv() => {}
    }
    Ok(())
}
