//! `--store postgres [--cluster 1,2,3]`: the async demo flow (a durable enqueue, then a condition
//! node) on the redb store and on PostgreSQL with each node count — more than one node behind
//! HAProxy (`examples/cluster/haproxy.cfg`) — in the same run. Per row: accepted requests per
//! second, p99, how fast the backlog then drains, and what one execution costs from the start of
//! the load until the backlog is empty: CPU time of hookflow's processes and of PostgreSQL's,
//! write-ahead-log bytes and statements (`pg_stat_statements`). PostgreSQL is a private server
//! of the run (`hookflow-test-postgres`) with its defaults for durability (`fsync`,
//! `synchronous_commit` on).

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hookflow_test_haproxy::Balancer;
use hookflow_test_postgres::PgServer;
use serde_json::{Value, json};

use crate::{BODY, Options, free_port, procfs, request_once, wrk};

/// The flow every row loads: `demo-payment-async`.
const PATH: &str = "/api/webhook:trigger/demo-payment-async";

/// The admin token of the cluster nodes.
const TOKEN: &str = "bench-token";

/// One measured configuration.
struct Row {
    store: &'static str,
    nodes: usize,
    connections: u32,
    outcome: Result<Cost, String>,
}

/// What one load cost.
struct Cost {
    requests_per_second: f64,
    p99_ms: f64,
    errors: u64,
    accepted: u64,
    drained_per_second: f64,
    hookflow_us: f64,
    postgres_us: Option<f64>,
    wal_bytes: Option<f64>,
    statements: Option<f64>,
}

/// Runs every configuration, prints the table and returns the rows as JSON.
pub(crate) fn compare(options: &Options, scratch: &Path) -> Value {
    let ticks = procfs::clock_ticks();
    let server = PgServer::start_with("bench", &["shared_preload_libraries=pg_stat_statements"]);
    let mut rows = Vec::new();
    for &connections in &options.connections {
        eprintln!("== redb, 1 node, c={connections}");
        rows.push(Row {
            store: "redb",
            nodes: 1,
            connections,
            outcome: measure(options, scratch, None, 1, connections, ticks),
        });
        for &nodes in &options.cluster {
            eprintln!("== postgres, {nodes} nodes, c={connections}");
            let outcome = measure(options, scratch, Some(&server), nodes, connections, ticks);
            rows.push(Row { store: "postgres", nodes, connections, outcome });
        }
    }
    print(options, &rows);
    json!(rows.iter().map(|row| to_json(&rows, row)).collect::<Vec<_>>())
}

/// Starts the nodes (and the balancer), warms up, loads, waits for the backlog to drain, and
/// measures what that cost.
fn measure(
    options: &Options,
    scratch: &Path,
    server: Option<&PgServer>,
    nodes: usize,
    connections: u32,
    ticks: f64,
) -> Result<Cost, String> {
    let name = format!("{}-{nodes}-{connections}", if server.is_some() { "postgres" } else { "redb" });
    let database = server.map(|server| {
        let url = server.fresh_database(&name);
        let database = url.rsplit('/').next().unwrap_or_default().to_string();
        (url, database)
    });
    let mut running: Vec<Node> = Vec::new();
    for index in 0..nodes {
        let data = scratch.join(format!("{name}-node{index}"));
        running.push(Node::start(options, &data, database.as_ref().map(|(url, _)| url.as_str()))?);
    }
    let addresses: Vec<SocketAddr> = running.iter().map(|node| node.address).collect();
    let balancer =
        if nodes > 1 { Some(Balancer::start(&scratch.join(format!("{name}.cfg")), &addresses)?) } else { None };
    let target = balancer.as_ref().map_or(addresses[0], |balancer| balancer.address);
    wait_for(|| request_once(target, "POST", PATH, BODY).is_ok_and(|(status, _)| status == 200))?;
    if let (Some(server), Some((_, database))) = (server, &database) {
        server.psql(database, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements");
    }
    let url = format!("http://{target}{PATH}");
    let _ = wrk(options, &url, connections, options.warmup, BODY);
    drain(addresses[0])?;

    let before = Snapshot::take(&running, server, database.as_ref().map(|(_, database)| database.as_str()));
    let loaded = wrk(options, &url, connections, options.seconds, BODY)?;
    let drained_from = Instant::now();
    let left = depth(addresses[0]).unwrap_or(0);
    drain(addresses[0])?;
    let drain_seconds = drained_from.elapsed().as_secs_f64();
    let after = Snapshot::take(&running, server, database.as_ref().map(|(_, database)| database.as_str()));

    let accepted = ((loaded.requests_per_second * options.seconds as f64) as u64).saturating_sub(loaded.non_2xx).max(1);
    let per = |value: f64| value / accepted as f64;
    let us = |ticks_used: u64| per(ticks_used as f64 * 1e6 / ticks);
    Ok(Cost {
        requests_per_second: loaded.requests_per_second,
        p99_ms: loaded.p99_ms,
        errors: loaded.errors,
        accepted,
        drained_per_second: if left == 0 || drain_seconds == 0.0 { 0.0 } else { left as f64 / drain_seconds },
        hookflow_us: us(after.hookflow.saturating_sub(before.hookflow)),
        postgres_us: after.postgres.zip(before.postgres).map(|(after, before)| us(after.saturating_sub(before))),
        wal_bytes: wal_difference(server, database.as_ref(), &before, &after).map(per),
        statements: after
            .statements
            .zip(before.statements)
            .map(|(after, before)| per(after.saturating_sub(before) as f64)),
    })
}

/// A `hookflow serve --demo` process; killed when dropped.
struct Node {
    child: Child,
    address: SocketAddr,
}

impl Node {
    fn start(options: &Options, data: &Path, url: Option<&str>) -> Result<Node, String> {
        let port = free_port()?;
        let mut command = Command::new(options.bin_dir.join("hookflow"));
        command.args(["serve", "--demo", "--listen", &format!("127.0.0.1:{port}")]).arg("--data").arg(data);
        if let Some(url) = url {
            command.args(["--store", url, "--admin-token", TOKEN]);
        }
        let child = command
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|error| format!("cannot start hookflow: {error}"))?;
        let node = Node { child, address: SocketAddr::from(([127, 0, 0, 1], port)) };
        wait_for(|| request_once(node.address, "GET", "/readyz", "").is_ok_and(|(status, _)| status == 200))?;
        Ok(node)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && !matches!(self.child.try_wait(), Ok(Some(_))) {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Counters read before and after a load.
struct Snapshot {
    /// CPU clock ticks of hookflow's processes.
    hookflow: u64,
    /// CPU clock ticks of PostgreSQL's processes (the postmaster and its children).
    postgres: Option<u64>,
    /// `pg_current_wal_lsn()`.
    wal: Option<String>,
    /// Statements executed in the database.
    statements: Option<u64>,
}

impl Snapshot {
    fn take(nodes: &[Node], server: Option<&PgServer>, database: Option<&str>) -> Snapshot {
        let hookflow = nodes.iter().map(|node| procfs::cpu_ticks(node.child.id())).sum();
        let postgres = server.and_then(PgServer::pid).map(procfs::tree_ticks);
        let wal = server.zip(database).map(|(server, database)| server.psql(database, "SELECT pg_current_wal_lsn()"));
        let statements = server.zip(database).and_then(|(server, database)| {
            server
                .psql(
                    database,
                    "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements WHERE dbid = \
                     (SELECT oid FROM pg_database WHERE datname = current_database())",
                )
                .parse()
                .ok()
        });
        Snapshot { hookflow, postgres, wal, statements }
    }
}

fn wal_difference(
    server: Option<&PgServer>,
    database: Option<&(String, String)>,
    before: &Snapshot,
    after: &Snapshot,
) -> Option<f64> {
    let (server, (_, database)) = server.zip(database)?;
    let (before, after) = (before.wal.as_ref()?, after.wal.as_ref()?);
    server.psql(database, &format!("SELECT pg_wal_lsn_diff('{after}', '{before}')")).parse().ok()
}

/// The cluster's backlog, read from a node's `/metrics`.
fn depth(address: SocketAddr) -> Option<u64> {
    let (_, metrics) = request_once(address, "GET", "/metrics", "").ok()?;
    let line = metrics.lines().find(|line| line.starts_with("hookflow_queue_depth"))?;
    line.split_whitespace().last()?.parse::<f64>().ok().map(|depth| depth.max(0.0) as u64)
}

/// Waits (at most 300 s) until the backlog is empty.
fn drain(address: SocketAddr) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(300);
    while depth(address).ok_or("no queue depth in /metrics")? > 0 {
        if Instant::now() > deadline {
            return Err("the backlog did not drain within 300 s".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

fn wait_for(mut ready: impl FnMut() -> bool) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !ready() {
        if Instant::now() > deadline {
            return Err("no correct answer within 120 s".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// The row's rate as a fraction of redb's at its connection count.
fn of_redb(rows: &[Row], row: &Row) -> Option<f64> {
    let Ok(cost) = &row.outcome else { return None };
    let redb = rows.iter().find(|other| other.store == "redb" && other.connections == row.connections)?;
    let Ok(redb) = &redb.outcome else { return None };
    (redb.requests_per_second > 0.0).then(|| cost.requests_per_second / redb.requests_per_second)
}

fn print(options: &Options, rows: &[Row]) {
    println!(
        "\nasync demo flow, durable; {} s per load after {} s of warm-up, loopback, wrk -t2; {}; more than one node behind HAProxy",
        options.seconds,
        options.warmup,
        crate::machine()
    );
    println!(
        "{:<9} {:>5} {:>5} {:>9} {:>8} {:>7} {:>10} {:>12} {:>12} {:>10} {:>10} {:>7}",
        "store",
        "nodes",
        "conns",
        "req/s",
        "p99 ms",
        "errors",
        "drained/s",
        "hookflow µs",
        "postgres µs",
        "WAL B",
        "statements",
        "÷ redb"
    );
    let optional =
        |value: Option<f64>, decimals: usize| value.map_or("-".to_string(), |value| format!("{value:.decimals$}"));
    for row in rows {
        match &row.outcome {
            Ok(cost) => println!(
                "{:<9} {:>5} {:>5} {:>9.0} {:>8.2} {:>7} {:>10.0} {:>12.0} {:>12} {:>10} {:>10} {:>7}",
                row.store,
                row.nodes,
                row.connections,
                cost.requests_per_second,
                cost.p99_ms,
                cost.errors,
                cost.drained_per_second,
                cost.hookflow_us,
                optional(cost.postgres_us, 0),
                optional(cost.wal_bytes, 0),
                optional(cost.statements, 1),
                optional(of_redb(rows, row), 3),
            ),
            Err(why) => println!("{:<9} {:>5} {:>5} not run: {why}", row.store, row.nodes, row.connections),
        }
    }
    println!(
        "(per execution: CPU µs of hookflow's and of PostgreSQL's processes, WAL bytes and statements, from the start of the load until the backlog was empty)"
    );
}

fn to_json(rows: &[Row], row: &Row) -> Value {
    match &row.outcome {
        Ok(cost) => json!({
            "store": row.store, "nodes": row.nodes, "connections": row.connections,
            "requestsPerSecond": cost.requests_per_second, "p99Ms": cost.p99_ms, "errors": cost.errors,
            "accepted": cost.accepted, "drainedPerSecond": cost.drained_per_second,
            "hookflowCpuUsPerExecution": cost.hookflow_us, "postgresCpuUsPerExecution": cost.postgres_us,
            "walBytesPerExecution": cost.wal_bytes, "statementsPerExecution": cost.statements,
            "ratioToRedb": of_redb(rows, row),
        }),
        Err(why) => json!({"store": row.store, "nodes": row.nodes, "connections": row.connections, "notRun": why}),
    }
}
