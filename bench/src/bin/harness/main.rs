//! The engine of `bench/run`: starts each system on loopback, checks that it answers the demo flow
//! correctly, drives it with `wrk` at each connection count after a warm-up, reads its memory from
//! `/proc`, then prints one table — every figure with its ratio to the baseline and to hookflow
//! measured in the same run — and writes the same as JSON.
//!
//! ```text
//! harness --bin-dir DIR --wrk-script FILE [--peers DIR] [--with-peers] [--seconds 10]
//!         [--warmup 3] [--connections 32,128] [--no-growth] [--nodes 1,5,20] [--json FILE]
//!         [--store postgres [--cluster 1,2,3]]
//! ```
//!
//! `--store postgres` measures the stores instead ([`store`]): the async flow on redb and on
//! PostgreSQL with each `--cluster` node count, with the CPU, write-ahead log and statements each
//! execution costs.
//!
//! Every row has the CPU time (user + system, from `/proc/<pid>/stat`, the process and its
//! children) the system spent per request over the load, and its multiple of the baseline's with
//! the same body. The growth rows (left out with `--no-growth`) post bodies of 100 B, 10 KB and
//! 100 KB to the baseline and to hookflow sync chains of 1, 5 and 10 nodes (N − 1 passing
//! conditions and a response; a fresh server for each row) at the first connection count; two
//! summaries follow the table:
//! what a 100 KB body adds over a 100 B one against what it adds to the baseline, and what each
//! extra node adds against a whole baseline request.
//!
//! `--nodes` adds, per count N, a hookflow sync workflow of N nodes (N − 1 passing conditions and
//! a response), for the cost of a growing workflow.
//!
//! Systems: `baseline` (a bare axum server answering `200 ok`), `hookflow` (the demo workflows:
//! sync condition + response, and async durable enqueue), and with `--with-peers` Node-RED and n8n
//! (installed by `bench/peers/install` under `--peers`) on the same flow. A system that cannot be
//! installed or started is reported as not run, with the reason.

use std::fs;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hookflow_test_http as http;
use serde_json::{Value, json};

mod procfs;
mod store;

/// The body every system is sent.
const BODY: &str = r#"{"status": "paid", "order": 42}"#;

/// The body sizes of the growth rows, and their chain lengths.
const GROWTH_BODIES: [usize; 3] = [100, 10 * 1024, 100 * 1024];
const GROWTH_CHAINS: [u32; 3] = [1, 5, 10];

fn main() {
    let options = <Options as clap::Parser>::parse();
    let scratch = std::env::temp_dir().join(format!("hookflow-bench-{}", std::process::id()));
    let _ = fs::remove_dir_all(&scratch);
    if let Err(error) = fs::create_dir_all(&scratch) {
        eprintln!("harness: cannot create {}: {error}", scratch.display());
        std::process::exit(1);
    }
    if options.store == StoreChoice::Postgres {
        let rows = store::compare(&options, &scratch);
        let json = json!({"machine": machine(), "seconds": options.seconds, "warmupSeconds": options.warmup,
            "loadGenerator": "wrk -t2", "stores": rows});
        write_json(&options.json, &json);
        let _ = fs::remove_dir_all(&scratch);
        return;
    }
    let mut report = Report::default();
    for system in systems(&options, &scratch) {
        eprintln!("== {}", system.name);
        report.measure(&options, system);
    }
    report.print(&options);
    write_json(&options.json, &report.to_json(&options));
    let _ = fs::remove_dir_all(&scratch);
}

fn write_json(path: &Path, json: &Value) {
    match fs::write(path, format!("{json:#}\n")) {
        Ok(()) => println!("\nJSON: {}", path.display()),
        Err(error) => eprintln!("harness: cannot write {}: {error}", path.display()),
    }
}

/// Which store `--store` compares redb with.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum StoreChoice {
    /// The usual systems (baseline, hookflow on redb, peers).
    Redb,
    /// redb side by side with PostgreSQL at each `--cluster` node count.
    Postgres,
}

/// Command-line options.
#[derive(clap::Parser)]
#[command(about = "Runs bench/run's systems under wrk and prints one table")]
struct Options {
    /// Where the release binaries are (`hookflow`, `baseline`).
    #[arg(long)]
    bin_dir: PathBuf,
    /// The wrk script that posts the demo body and prints one JSON line.
    #[arg(long, default_value = "bench/wrk/post.lua")]
    wrk_script: PathBuf,
    /// Where `bench/peers/install` put Node-RED and n8n.
    #[arg(long, default_value = "peers")]
    peers: PathBuf,
    /// Also measure Node-RED and n8n on the same flow.
    #[arg(long)]
    with_peers: bool,
    /// Seconds of load per row.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Seconds of load before each row, not measured.
    #[arg(long, default_value_t = 3)]
    warmup: u64,
    /// Connection counts, one row each.
    #[arg(long, value_delimiter = ',', default_value = "32,128")]
    connections: Vec<u32>,
    /// Leave out the growth rows (body size × chain length, at the first connection count).
    #[arg(long)]
    no_growth: bool,
    /// Workflow sizes for the scaling rows (none by default).
    #[arg(long, value_delimiter = ',')]
    nodes: Vec<u32>,
    /// Where the JSON report goes.
    #[arg(long, default_value = "bench-results.json")]
    json: PathBuf,
    /// `postgres`: compare the stores (the async flow on redb and on PostgreSQL) instead.
    #[arg(long, value_enum, default_value = "redb")]
    store: StoreChoice,
    /// With `--store postgres`: node counts of the PostgreSQL rows (more than one behind HAProxy).
    #[arg(long, value_delimiter = ',', default_value = "1")]
    cluster: Vec<usize>,
}

/// A system under test: how to start it and what to load.
struct System {
    name: String,
    /// Why it cannot run at all (not installed), if so.
    unavailable: Option<String>,
    /// Builds the command for a port.
    command: Box<dyn Fn(u16) -> Command>,
    /// How long it may take to answer correctly after start.
    start_timeout: Duration,
    /// Measure the start-up time: start once, stop, and time a second start (warm caches).
    measure_startup: bool,
    targets: Vec<Target>,
}

/// One URL path of a system, loaded at each connection count.
struct Target {
    workflow: String,
    path: String,
    /// The status and a part of the body of a correct answer.
    status: u16,
    body_contains: &'static str,
    /// An async workflow: after each load, wait for hookflow's backlog (`/metrics`) to drain and
    /// report how fast it did.
    drains: bool,
    /// What is posted.
    body: String,
    /// Loaded at the first connection count only (the growth rows).
    first_connections_only: bool,
}

impl Target {
    /// A target posting the demo body at every connection count.
    fn demo(workflow: &str, path: &str, status: u16, body_contains: &'static str, drains: bool) -> Target {
        Target {
            workflow: workflow.into(),
            path: path.into(),
            status,
            body_contains,
            drains,
            body: BODY.into(),
            first_connections_only: false,
        }
    }
}

fn systems(options: &Options, scratch: &Path) -> Vec<System> {
    let bin = |name: &str| options.bin_dir.join(name);
    let baseline_bin = bin("baseline");
    let hookflow_bin = bin("hookflow");
    let hookflow_data = scratch.join("hookflow-data");
    let mut systems = vec![
        System {
            name: "baseline".into(),
            unavailable: None,
            command: Box::new(move |port| {
                let mut command = Command::new(&baseline_bin);
                command.arg(format!("127.0.0.1:{port}"));
                command
            }),
            start_timeout: Duration::from_secs(10),
            measure_startup: false,
            targets: std::iter::once(Target::demo("200 ok", "/", 200, "ok", false))
                .chain((!options.no_growth).then_some(GROWTH_BODIES).into_iter().flatten().map(|size| Target {
                    workflow: format!("200 ok {}", size_name(size)),
                    body: growth_body(size),
                    first_connections_only: true,
                    ..Target::demo("", "/", 200, "ok", false)
                }))
                .collect(),
        },
        System {
            name: "hookflow".into(),
            unavailable: None,
            command: Box::new(move |port| {
                let mut command = Command::new(&hookflow_bin);
                command.args(["serve", "--demo", "--listen", &format!("127.0.0.1:{port}")]);
                command.arg("--data").arg(&hookflow_data).env("RUST_LOG", "warn");
                command
            }),
            start_timeout: Duration::from_secs(60),
            measure_startup: true,
            targets: vec![
                Target::demo("sync", "/api/webhook:trigger/demo-payment", 200, "\"ok\":true", false),
                Target::demo("async", "/api/webhook:trigger/demo-payment-async", 200, "", true),
            ],
        },
    ];
    if !options.no_growth {
        systems.extend(hookflow_growth(options, scratch));
    }
    if !options.nodes.is_empty() {
        systems.push(hookflow_chains(options, scratch, "hookflow chain", &options.nodes));
    }
    if options.with_peers {
        systems.push(node_red(options, scratch));
        systems.push(n8n(options, scratch, "n8n", None));
        systems.push(n8n(options, scratch, "n8n (legacy expressions)", Some("legacy")));
    }
    systems
}

/// hookflow serving a sync chain of each growth length, loaded with each growth body (at the
/// first connection count): how the cost grows with the body and with the workflow. Each row gets
/// a server of its own on a fresh data directory, so that no row runs on the records (and the
/// peak memory) of the rows before it: the 100 KB rows write about 1 GB of records.
fn hookflow_growth(options: &Options, scratch: &Path) -> Vec<System> {
    let mut systems = Vec::new();
    for size in GROWTH_BODIES {
        for chain in GROWTH_CHAINS {
            let row = format!("hookflow growth {chain} {}", size_name(size));
            let mut system = hookflow_chains(options, scratch, &row, &[chain]);
            system.name = "hookflow growth".into();
            for target in &mut system.targets {
                target.workflow = format!("{} {}", target.workflow, size_name(size));
                target.body = growth_body(size);
                target.first_connections_only = true;
            }
            systems.push(system);
        }
    }
    systems
}

/// `100B`, `10KB`, `100KB`.
fn size_name(size: usize) -> String {
    if size >= 1024 { format!("{}KB", size / 1024) } else { format!("{size}B") }
}

/// A demo body of `size` bytes: the status and order the workflows read, then order lines (many
/// small objects, as real payloads have) up to the size.
fn growth_body(size: usize) -> String {
    let mut body = String::from(r#"{"status": "paid", "order": 42, "items": ["#);
    let mut line = 0;
    loop {
        let item = format!(
            r#"{}{{"sku": "SKU-{line:06}", "qty": {}, "price": 12.5}}"#,
            if line == 0 { "" } else { ", " },
            line % 7 + 1
        );
        if body.len() + item.len() + 2 > size {
            break;
        }
        body.push_str(&item);
        line += 1;
    }
    body.push_str("]}");
    while body.len() < size {
        body.insert(body.len() - 2, ' ');
    }
    body
}

/// hookflow serving one sync workflow per count: `chain-N` runs N − 1 conditions that pass and a
/// response.
fn hookflow_chains(options: &Options, scratch: &Path, name: &str, counts: &[u32]) -> System {
    let workflows = scratch.join(format!("chains-{}", name.replace(' ', "-")));
    let mut unavailable = fs::create_dir_all(&workflows).err().map(|e| e.to_string());
    let mut targets = Vec::new();
    for &count in counts {
        let condition = |n: u32| {
            json!({"key": format!("check{n}"), "type": "condition", "config": {"rejectOnFalse": true,
                "calculation": {"group": {"calculations": [
                    {"calculator": "equal", "operands": ["{{$context.body.status}}", "paid"]}]}}}})
        };
        let mut nodes: Vec<Value> = (1..count).map(condition).collect();
        nodes.push(json!({"key": "answer", "type": "response",
            "config": {"body": {"ok": true, "order": "{{$context.body.order}}"}}}));
        let key = format!("chain-{count}");
        let workflow = json!({"key": key, "sync": true, "nodes": nodes});
        if let Err(error) = fs::write(workflows.join(format!("{key}.json")), workflow.to_string()) {
            unavailable = Some(error.to_string());
        }
        targets.push(Target::demo(
            &format!("{count} node{}", if count == 1 { "" } else { "s" }),
            &format!("/api/webhook:trigger/{key}"),
            200,
            "\"ok\":true",
            false,
        ));
    }
    let hookflow_bin = options.bin_dir.join("hookflow");
    let data = workflows.with_extension("data");
    System {
        name: name.into(),
        unavailable,
        command: Box::new(move |port| {
            let mut command = Command::new(&hookflow_bin);
            command.args(["serve", "--listen", &format!("127.0.0.1:{port}")]).arg("--workflows").arg(&workflows);
            command.arg("--data").arg(&data).env("RUST_LOG", "warn");
            command
        }),
        start_timeout: Duration::from_secs(60),
        measure_startup: false,
        targets,
    }
}

/// Why a peer is not installed, from the marker `bench/peers/install` leaves, if it is not.
fn peer_unavailable(options: &Options, peer: &str, entry: &Path) -> Option<String> {
    let failed = options.peers.join(format!("{peer}.failed"));
    if let Ok(why) = fs::read_to_string(&failed) {
        return Some(format!("install failed: {}", why.lines().last().unwrap_or("").trim()));
    }
    (!entry.exists())
        .then(|| format!("not installed ({} missing; bench/run --with-peers installs it)", entry.display()))
}

fn node_red(options: &Options, scratch: &Path) -> System {
    let entry = options.peers.join("node-red/node_modules/node-red/red.js");
    let user_dir = scratch.join("node-red");
    let settings = PathBuf::from("bench/peers/node-red/settings.js");
    let flows = PathBuf::from("bench/peers/node-red/flows.json");
    let unavailable = peer_unavailable(options, "node-red", &entry);
    System {
        name: "Node-RED".into(),
        unavailable,
        command: Box::new(move |port| {
            let _ = fs::create_dir_all(&user_dir);
            let _ = fs::copy(&flows, user_dir.join("flows.json"));
            let mut command = Command::new("node");
            command.arg(&entry).args(["--port", &port.to_string(), "--settings"]).arg(&settings);
            command.arg("--userDir").arg(&user_dir).arg("flows.json");
            command
        }),
        start_timeout: Duration::from_secs(60),
        measure_startup: false,
        targets: vec![Target::demo("sync", "/demo-payment", 200, "\"ok\":true", false)],
    }
}

fn n8n(options: &Options, scratch: &Path, name: &str, engine: Option<&'static str>) -> System {
    let entry = options.peers.join("n8n/node_modules/n8n/bin/n8n");
    let folder = scratch.join(name.replace([' ', '(', ')'], "-"));
    let workflow = PathBuf::from("bench/peers/n8n/workflow.json");
    let unavailable = peer_unavailable(options, "n8n", &entry);
    System {
        name: name.into(),
        unavailable,
        command: Box::new(move |port| {
            let environment = n8n_environment(&folder, port, engine);
            // Import and activate the workflow, then start.
            let script = format!(
                "set -e; {n8n} import:workflow --input={workflow} >/dev/null; \
                 {n8n} update:workflow --all --active=true >/dev/null; exec {n8n} start",
                n8n = shell_quote(&entry),
                workflow = shell_quote(&workflow),
            );
            let mut command = Command::new("sh");
            command.args(["-c", &script]).envs(environment);
            command
        }),
        start_timeout: Duration::from_secs(240),
        measure_startup: false,
        targets: vec![Target::demo("sync", "/webhook/demo-payment", 200, "\"ok\":true", false)],
    }
}

fn n8n_environment(folder: &Path, port: u16, engine: Option<&str>) -> Vec<(String, String)> {
    let mut environment: Vec<(String, String)> = [
        ("N8N_USER_FOLDER", folder.display().to_string()),
        ("N8N_PORT", port.to_string()),
        ("N8N_LISTEN_ADDRESS", "127.0.0.1".into()),
        ("N8N_DIAGNOSTICS_ENABLED", "false".into()),
        ("N8N_VERSION_NOTIFICATIONS_ENABLED", "false".into()),
        ("N8N_TEMPLATES_ENABLED", "false".into()),
        ("N8N_PERSONALIZATION_ENABLED", "false".into()),
        ("N8N_ENFORCE_SETTINGS_FILE_PERMISSIONS", "false".into()),
        // Its documented settings for throughput: no execution data saved (success, error,
        // progress, manual runs) and SQLite in WAL mode.
        ("EXECUTIONS_DATA_SAVE_ON_SUCCESS", "none".into()),
        ("EXECUTIONS_DATA_SAVE_ON_ERROR", "none".into()),
        ("EXECUTIONS_DATA_SAVE_ON_PROGRESS", "false".into()),
        ("EXECUTIONS_DATA_SAVE_MANUAL_EXECUTIONS", "false".into()),
        ("DB_SQLITE_POOL_SIZE", "2".into()),
        ("N8N_LOG_LEVEL", "warn".into()),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_string(), value))
    .collect();
    if let Some(engine) = engine {
        environment.push(("N8N_EXPRESSION_ENGINE".into(), engine.into()));
    }
    environment
}

fn shell_quote(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', "'\\''"))
}

/// What one load of one target at one connection count gave.
struct Measured {
    requests_per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
    errors: u64,
    /// Of the errors, answers outside 2xx/3xx (the rest are socket errors and timeouts).
    non_2xx: u64,
    peak_rss_mib: f64,
    /// Requests answered during the load.
    requests: u64,
    /// CPU time (user + system) of the system's processes per request, over the load (and, for
    /// an async workflow, the drain that follows it).
    cpu_us: Option<f64>,
    /// For an async workflow: executions left queued when the load ended, and how many per second
    /// the workers then ran until none was left.
    backlog: Option<(u64, f64)>,
}

/// One line of the table.
struct Row {
    system: String,
    workflow: String,
    connections: Option<u32>,
    /// The size of the body posted.
    body_bytes: usize,
    outcome: Result<Measured, String>,
}

/// Per-system facts beyond the rows.
struct Facts {
    system: String,
    idle_rss_mib: Option<f64>,
    startup_ms: Option<f64>,
}

#[derive(Default)]
struct Report {
    rows: Vec<Row>,
    facts: Vec<Facts>,
}

impl Report {
    fn measure(&mut self, options: &Options, system: System) {
        let not_run = |report: &mut Report, why: String| {
            eprintln!("   not run: {why}");
            report.rows.push(Row {
                system: system.name.clone(),
                workflow: "-".into(),
                connections: None,
                body_bytes: 0,
                outcome: Err(why),
            });
        };
        if let Some(why) = &system.unavailable {
            return not_run(self, why.clone());
        }
        let first = &system.targets[0];
        let mut startup_ms = None;
        if system.measure_startup {
            // The first start compiles and caches the components; the second is the one a
            // restarted server pays.
            match Running::start(&system, first) {
                Ok(running) => running.stop(),
                Err(why) => return not_run(self, why),
            }
        }
        let running = match Running::start(&system, first) {
            Ok(running) => running,
            Err(why) => return not_run(self, why),
        };
        if system.measure_startup {
            startup_ms = Some(running.ready_after.as_secs_f64() * 1000.0);
        }
        std::thread::sleep(Duration::from_secs(1));
        let idle_rss_mib = running.memory("VmRSS");
        for target in &system.targets {
            if let Err(why) = running.check(target) {
                self.rows.push(Row {
                    system: system.name.clone(),
                    workflow: target.workflow.clone(),
                    connections: None,
                    body_bytes: target.body.len(),
                    outcome: Err(why),
                });
                continue;
            }
            let counts =
                if target.first_connections_only { &options.connections[..1] } else { &options.connections[..] };
            for &connections in counts {
                let url = format!("http://{}{}", running.address, target.path);
                let _ = wrk(options, &url, connections, options.warmup, &target.body);
                if target.drains {
                    running.drain();
                }
                let ticks_before = procfs::tree_ticks(running.child.id());
                let outcome = wrk(options, &url, connections, options.seconds, &target.body).map(|result| {
                    let backlog = if target.drains { running.drain() } else { None };
                    let ticks = procfs::tree_ticks(running.child.id()).saturating_sub(ticks_before);
                    let cpu_us = (result.requests > 0)
                        .then(|| ticks as f64 / procfs::clock_ticks() * 1e6 / result.requests as f64);
                    Measured { peak_rss_mib: running.memory("VmHWM").unwrap_or(f64::NAN), backlog, cpu_us, ..result }
                });
                match &outcome {
                    Ok(measured) => eprintln!(
                        "   {:<14} c={connections:<4} {:>9.0} req/s  p99 {:.2} ms  CPU {:.0} µs/request{}",
                        target.workflow,
                        measured.requests_per_second,
                        measured.p99_ms,
                        measured.cpu_us.unwrap_or(f64::NAN),
                        measured
                            .backlog
                            .map_or(String::new(), |(left, rate)| format!("  backlog {left} drained at {rate:.0}/s"))
                    ),
                    Err(why) => eprintln!("   {:<6} c={connections:<4} failed: {why}", target.workflow),
                }
                self.rows.push(Row {
                    system: system.name.clone(),
                    workflow: target.workflow.clone(),
                    connections: Some(connections),
                    body_bytes: target.body.len(),
                    outcome,
                });
            }
        }
        running.stop();
        self.facts.push(Facts { system: system.name, idle_rss_mib, startup_ms });
    }

    /// What the baseline measured with the row's body at the row's connection count.
    fn baseline_of(&self, row: &Row) -> Option<&Measured> {
        self.measured(|other| {
            other.system == "baseline" && other.connections == row.connections && other.body_bytes == row.body_bytes
        })
    }

    /// The first measured row that `matches`.
    fn measured(&self, matches: impl Fn(&Row) -> bool) -> Option<&Measured> {
        self.rows.iter().filter(|row| matches(row)).find_map(|row| row.outcome.as_ref().ok())
    }

    /// The row's rate as a fraction of the baseline's (with the same body) and of hookflow sync's
    /// at its connections, and its CPU per request as a multiple of the baseline's.
    fn ratios(&self, row: &Row) -> (Option<f64>, Option<f64>, Option<f64>) {
        let (Ok(measured), Some(connections)) = (&row.outcome, row.connections) else { return (None, None, None) };
        let of = |rate: Option<f64>| rate.filter(|rate| *rate > 0.0).map(|rate| measured.requests_per_second / rate);
        let baseline = self.baseline_of(row);
        let sync = self.measured(|other| {
            other.system == "hookflow" && other.workflow == "sync" && other.connections == Some(connections)
        });
        let cpu = measured.cpu_us.zip(baseline.and_then(|b| b.cpu_us)).map(|(cpu, base)| cpu / base);
        (of(baseline.map(|b| b.requests_per_second)), of(sync.map(|s| s.requests_per_second)), cpu)
    }

    /// How the cost grows: the CPU a 100 KB body adds over a 100 B one, against the baseline's
    /// (target ≤ 3×), and what each extra node adds, against a whole baseline request (target
    /// ≤ 25 %). One line each, from the growth rows.
    fn growth(&self) -> Vec<String> {
        let cpu = |system: &str, workflow: String| {
            self.measured(|row| row.system == system && row.workflow == workflow).and_then(|m| m.cpu_us)
        };
        let (small, large) = (size_name(GROWTH_BODIES[0]), size_name(GROWTH_BODIES[2]));
        let mut lines = Vec::new();
        let base_small = cpu("baseline", format!("200 ok {small}"));
        let base_extra = cpu("baseline", format!("200 ok {large}")).zip(base_small).map(|(l, s)| l - s);
        for chain in GROWTH_CHAINS {
            let name = |size: &str| format!("{chain} node{} {size}", if chain == 1 { "" } else { "s" });
            let extra =
                cpu("hookflow growth", name(&large)).zip(cpu("hookflow growth", name(&small))).map(|(l, s)| l - s);
            if let (Some(extra), Some(base_extra)) = (extra, base_extra) {
                lines.push(format!(
                    "a {large} body over a {small} one, {chain}-node chain: +{extra:.0} µs CPU per request, baseline +{base_extra:.0} µs: {:.1}× (target ≤ 3×)",
                    extra / base_extra.max(1.0)
                ));
            }
        }
        let (first, last) = (GROWTH_CHAINS[0], GROWTH_CHAINS[2]);
        for size in GROWTH_BODIES.map(size_name) {
            let short = cpu("hookflow growth", format!("{first} node {size}"));
            let long = cpu("hookflow growth", format!("{last} nodes {size}"));
            let base = cpu("baseline", format!("200 ok {size}"));
            if let (Some(short), Some(long), Some(base)) = (short, long, base) {
                let per_node = (long - short) / f64::from(last - first);
                lines.push(format!(
                    "each extra node with a {size} body: +{per_node:.1} µs CPU per request, {:.0} % of a baseline request (target ≤ 25 %)",
                    per_node / base * 100.0
                ));
            }
        }
        lines
    }

    fn print(&self, options: &Options) {
        println!(
            "\n{} s per load after {} s of warm-up, loopback, wrk -t2; {}",
            options.seconds,
            options.warmup,
            machine()
        );
        println!(
            "{:<26} {:<14} {:>5} {:>10} {:>8} {:>8} {:>8} {:>7} {:>9} {:>8} {:>9} {:>9} {:>10}",
            "system",
            "flow",
            "conns",
            "req/s",
            "p50 ms",
            "p99 ms",
            "p99.9 ms",
            "errors",
            "peak RSS",
            "CPU µs",
            "÷ base",
            "÷ hookflow",
            "CPU ÷ base"
        );
        for row in &self.rows {
            let connections = row.connections.map_or("-".into(), |c| c.to_string());
            match &row.outcome {
                Ok(m) => {
                    let (base, hookflow, cpu) = self.ratios(row);
                    let ratio = |r: Option<f64>| r.map_or("-".into(), |r| format!("{r:.3}"));
                    println!(
                        "{:<26} {:<14} {:>5} {:>10.0} {:>8.2} {:>8.2} {:>8.2} {:>7} {:>5.0} MiB {:>8} {:>9} {:>9} {:>10}",
                        row.system,
                        row.workflow,
                        connections,
                        m.requests_per_second,
                        m.p50_ms,
                        m.p99_ms,
                        m.p999_ms,
                        m.errors,
                        m.peak_rss_mib,
                        m.cpu_us.map_or("-".into(), |cpu| format!("{cpu:.0}")),
                        ratio(base),
                        ratio(hookflow),
                        cpu.map_or("-".into(), |cpu| format!("{cpu:.2}×"))
                    );
                }
                Err(why) => println!("{:<26} {:<14} {:>5} not run: {why}", row.system, row.workflow, connections),
            }
        }
        for row in &self.rows {
            if let (Ok(Measured { backlog: Some((left, rate)), .. }), Some(connections)) =
                (&row.outcome, row.connections)
            {
                println!(
                    "{} {} c={connections}: {left} executions queued at the end of the load, drained at {rate:.0}/s",
                    row.system, row.workflow
                );
            }
        }
        for line in self.growth() {
            println!("{line}");
        }
        // The growth rows' servers are one system each: their idle memory is printed once.
        let mut printed = std::collections::HashSet::new();
        for facts in self.facts.iter().filter(|facts| printed.insert(facts.system.as_str())) {
            let idle = facts.idle_rss_mib.map_or("-".into(), |mib| format!("{mib:.0} MiB"));
            let startup = facts.startup_ms.map_or(String::new(), |ms| format!(", start-up to first answer {ms:.0} ms"));
            println!("{}: idle RSS {idle}{startup}", facts.system);
        }
    }

    fn to_json(&self, options: &Options) -> Value {
        let rows: Vec<Value> = self
            .rows
            .iter()
            .map(|row| {
                let (base, hookflow, cpu) = self.ratios(row);
                match &row.outcome {
                    Ok(m) => json!({
                        "system": row.system, "workflow": row.workflow, "connections": row.connections,
                        "bodyBytes": row.body_bytes,
                        "requestsPerSecond": m.requests_per_second, "p50Ms": m.p50_ms, "p99Ms": m.p99_ms,
                        "p999Ms": m.p999_ms, "errors": m.errors, "non2xx": m.non_2xx, "peakRssMib": m.peak_rss_mib,
                        "cpuMicrosPerRequest": m.cpu_us, "cpuRatioToBaseline": cpu,
                        "ratioToBaseline": base, "ratioToHookflow": hookflow,
                        "backlogAtEnd": m.backlog.map(|(left, _)| left),
                        "drainedPerSecond": m.backlog.map(|(_, rate)| rate),
                    }),
                    Err(why) => json!({
                        "system": row.system, "workflow": row.workflow, "connections": row.connections,
                        "notRun": why,
                    }),
                }
            })
            .collect();
        let facts: Vec<Value> = self
            .facts
            .iter()
            .map(|f| json!({"system": f.system, "idleRssMib": f.idle_rss_mib, "startupMs": f.startup_ms}))
            .collect();
        json!({
            "machine": machine(), "seconds": options.seconds, "warmupSeconds": options.warmup,
            "loadGenerator": "wrk -t2", "rows": rows, "systems": facts, "growth": self.growth(),
        })
    }
}

/// `2 cores, Intel(R) Xeon(R) ...`.
fn machine() -> String {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo.lines().find_map(|line| line.strip_prefix("model name")).unwrap_or(": unknown");
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cores} cores, {}", model.trim_start_matches([' ', '\t', ':']).trim())
}

/// A started system, killed when dropped (its log kept, for a failure's reason).
struct Running {
    child: Child,
    address: SocketAddr,
    ready_after: Duration,
    log: PathBuf,
}

impl Running {
    /// Starts the system on a free port and waits until `target` answers correctly.
    fn start(system: &System, target: &Target) -> Result<Running, String> {
        let port = free_port()?;
        let log = std::env::temp_dir().join(format!("hookflow-bench-{}-{port}.log", std::process::id()));
        let log_file = fs::File::create(&log).map_err(|e| format!("cannot create {}: {e}", log.display()))?;
        let stderr = log_file.try_clone().map_err(|e| e.to_string())?;
        let started = Instant::now();
        let child = (system.command)(port)
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(stderr)
            .spawn()
            .map_err(|e| format!("cannot start: {e}"))?;
        let mut running =
            Running { child, address: SocketAddr::from(([127, 0, 0, 1], port)), ready_after: Duration::ZERO, log };
        loop {
            if running.check(target).is_ok() {
                running.ready_after = started.elapsed();
                return Ok(running);
            }
            if let Ok(Some(status)) = running.child.try_wait() {
                return Err(format!(
                    "exited ({status}) before answering: {} (log: {})",
                    running.log_tail(),
                    running.log.display()
                ));
            }
            if started.elapsed() > system.start_timeout {
                let why = running.check(target).err().unwrap_or_default();
                return Err(format!(
                    "no correct answer within {:?} ({why}): {}",
                    system.start_timeout,
                    running.log_tail()
                ));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Sends the body once; `Err` says how the answer was wrong.
    fn check(&self, target: &Target) -> Result<(), String> {
        let (status, body) = request_once(self.address, "POST", &target.path, &target.body)?;
        if status == target.status && body.contains(target.body_contains) {
            Ok(())
        } else {
            Err(format!("answered {status} {}", body.chars().take(120).collect::<String>()))
        }
    }

    /// Waits (at most 120 s) until hookflow's queue is empty; the depth it started from and the
    /// executions run per second meanwhile. `None` when the depth cannot be read.
    fn drain(&self) -> Option<(u64, f64)> {
        let depth = || {
            let (_, metrics) = request_once(self.address, "GET", "/metrics", "").ok()?;
            let line = metrics.lines().find(|line| line.starts_with("hookflow_queue_depth"))?;
            line.split_whitespace().last()?.parse::<f64>().ok().map(|depth| depth.max(0.0) as u64)
        };
        let (started, left) = (Instant::now(), depth()?);
        while depth()? > 0 && started.elapsed() < Duration::from_secs(120) {
            std::thread::sleep(Duration::from_millis(10));
        }
        let seconds = started.elapsed().as_secs_f64();
        Some((left, if left == 0 { 0.0 } else { left as f64 / seconds }))
    }

    /// A memory figure of the process from `/proc/<pid>/status`, in MiB.
    fn memory(&self, field: &str) -> Option<f64> {
        let status = fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        let line = status.lines().find(|line| line.starts_with(field))?;
        let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib / 1024.0)
    }

    fn log_tail(&self) -> String {
        let log = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().rev().take(3).collect();
        lines.into_iter().rev().collect::<Vec<_>>().join(" | ")
    }

    /// SIGTERM, then SIGKILL after 10 s; the log is kept only when it holds an error line.
    fn stop(mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && !matches!(self.child.try_wait(), Ok(Some(_))) {
            std::thread::sleep(Duration::from_millis(20));
        }
        let log = fs::read_to_string(&self.log).unwrap_or_default();
        if log.contains("ERROR") || log.contains("error:") {
            eprintln!("   its log has errors: {}", self.log.display());
        } else {
            let _ = fs::remove_file(&self.log);
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port: {e}"))?;
    listener.local_addr().map(|address| address.port()).map_err(|e| e.to_string())
}

/// One request (a POST carries `body`) that asks to close; the status and the body as text.
fn request_once(address: SocketAddr, method: &str, path: &str, body: &str) -> Result<(u16, String), String> {
    let body = if method == "POST" { body.as_bytes() } else { b"" };
    let request = http::request_bytes(address, method, path, &[("Content-Type", "application/json")], body);
    let response = http::try_send_raw(address, &request, false)?;
    Ok((response.status, response.text()))
}

/// Runs wrk for `seconds` and reads the JSON line `bench/wrk/post.lua` prints.
fn wrk(options: &Options, url: &str, connections: u32, seconds: u64, body: &str) -> Result<Measured, String> {
    let output = Command::new("wrk")
        // wrk needs a connection per thread.
        .args([&format!("-t{}", connections.min(2)), &format!("-c{connections}"), &format!("-d{seconds}s")])
        .args(["--timeout", "5s", "-s"])
        .arg(&options.wrk_script)
        .arg(url)
        .env("BENCH_BODY", body)
        .output()
        .map_err(|e| format!("cannot run wrk: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|line| line.starts_with('{'))
        .ok_or_else(|| format!("wrk printed no result: {}", String::from_utf8_lossy(&output.stderr).trim()))?;
    let result: Value = serde_json::from_str(line).map_err(|e| format!("wrk result {line:?}: {e}"))?;
    let field = |name: &str| result[name].as_f64().unwrap_or(0.0);
    let seconds = field("duration_us") / 1e6;
    Ok(Measured {
        requests_per_second: if seconds > 0.0 { field("requests") / seconds } else { 0.0 },
        p50_ms: field("p50_us") / 1000.0,
        p99_ms: field("p99_us") / 1000.0,
        p999_ms: field("p999_us") / 1000.0,
        errors: (field("socket_errors") + field("non_2xx")) as u64,
        non_2xx: field("non_2xx") as u64,
        peak_rss_mib: f64::NAN,
        requests: field("requests") as u64,
        cpu_us: None,
        backlog: None,
    })
}
