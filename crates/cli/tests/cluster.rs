//! A cluster as operators run one: three `hookflow serve` processes on one PostgreSQL server
//! (private to the test run), HAProxy in front, real kills. Each test is bounded; the figures
//! they print (takeover times, counts) are what the cluster guarantees, measured.
#![allow(missing_docs, clippy::unwrap_used)]

mod support;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hookflow_test_postgres::PgServer;
use hookflow_workflow::timestamp::Timestamp;
use serde_json::{Value, json};
use support::cluster::{Cluster, Counter, admin, balancer, cluster_nodes, wait_until};
use support::{fresh_dir, http};

/// The lease the nodes run with (`--lease 2s`), and how long a takeover may take: the lease runs
/// out, then a node's reaper (every third of a lease) frees the claims and a claimer takes them
/// (at once on the notice, else within its poll).
const LEASE: Duration = Duration::from_secs(2);
const TAKEOVER_BOUND: Duration = Duration::from_millis(2000 + 700 + 1000 + 1500);

/// One cluster at a time: three nodes, a database and a balancer share two cores, and the
/// takeover bounds are about the cluster, not about a neighbour's load.
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn workflows_dir(name: &str, workflows: &[Value]) -> std::path::PathBuf {
    let dir = fresh_dir(name);
    std::fs::create_dir_all(&dir).unwrap();
    for workflow in workflows {
        std::fs::write(dir.join(format!("{}.json", workflow["key"].as_str().unwrap())), workflow.to_string()).unwrap();
    }
    dir
}

fn now_ms() -> u64 {
    u64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis()).unwrap()
}

fn millis(value: &Value) -> u64 {
    Timestamp::parse(value.as_str().unwrap_or_default()).map(|t| t.0).unwrap_or(0)
}

/// What one sender of [`load`] sent: `(sent at, acknowledged execution id or None)` each.
type Sent = Vec<(u64, Option<String>)>;

/// Posts to `path` through `address` from `senders` threads until `running` is cleared, each
/// waiting `pace` between requests.
fn load(
    address: SocketAddr,
    path: &'static str,
    senders: usize,
    pace: Duration,
    running: &Arc<AtomicBool>,
) -> Vec<std::thread::JoinHandle<Sent>> {
    (0..senders)
        .map(|sender| {
            let running = running.clone();
            std::thread::spawn(move || {
                let mut sent = Vec::new();
                let mut n = 0;
                while running.load(Ordering::SeqCst) {
                    let body = format!(r#"{{"sender": {sender}, "n": {n}}}"#);
                    let request = http::request_bytes(
                        address,
                        "POST",
                        path,
                        &[("Content-Type", "application/json")],
                        body.as_bytes(),
                    );
                    let at = now_ms();
                    let acknowledged = match http::try_send_raw(address, &request, false) {
                        Ok(answer) if answer.status == 200 => answer.header("x-hookflow-execution").map(str::to_string),
                        _ => None,
                    };
                    sent.push((at, acknowledged));
                    n += 1;
                    std::thread::sleep(pace);
                }
                sent
            })
        })
        .collect()
}

/// Waits (at most `within`) until every execution in `ids` has ended; returns them as shown.
fn wait_for_the_end(address: SocketAddr, ids: &[String], within: Duration) -> Vec<Value> {
    let deadline = Instant::now() + within;
    let mut ended = Vec::new();
    for id in ids {
        loop {
            let shown = admin(address, "GET", &format!("/api/executions/{id}"), None);
            if shown.status == 200 && !matches!(shown.json()["status"].as_str(), Some("queued" | "started")) {
                ended.push(shown.json());
                break;
            }
            assert!(Instant::now() < deadline, "acknowledged {id} did not end: {}", shown.text());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    ended
}

#[test]
fn killing_the_busiest_node_loses_nothing_acknowledged_and_the_others_take_over() {
    let _serial = one_at_a_time();
    let counter = Counter::start();
    let call = |node: &str| {
        json!({"key": node, "type": "http-request", "config": {
            "url": format!("http://{}/hit", counter.address),
            "data": {"execution": "{{$execution.id}}", "node": node}}})
    };
    let busy = |key: &str| json!({"key": key, "type": "misbehave", "config": {"mode": "busy", "ms": 120}});
    let work = json!({"key": "work", "sync": false,
        "nodes": [call("first"), busy("slow1"), call("second"), busy("slow2"), call("third")]});
    let workflows = workflows_dir("kill-workflows", &[work]);
    let plugins = fresh_dir("kill-plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::write(plugins.join("misbehave.wasm"), hookflow_tests::fixture("misbehave")).unwrap();
    let outbound = format!("http-request={}", counter.address);
    let url = PgServer::shared().fresh_database("kill");
    let mut cluster = Cluster::start(
        "kill",
        &url,
        3,
        &workflows,
        1,
        &["--plugins", plugins.to_str().unwrap(), "--allow-outbound", &outbound, "--workers", "3"],
    );
    let balancer = balancer("kill", &cluster.addresses());

    let running = Arc::new(AtomicBool::new(true));
    let senders = load(balancer.address, "/api/webhook:trigger/work", 3, Duration::from_millis(60), &running);
    std::thread::sleep(Duration::from_millis(2500));
    // The node holding the most executions right now.
    let nodes = cluster_nodes(balancer.address);
    let (busiest_address, busiest_id, held) = nodes.iter().max_by_key(|(_, _, held)| *held).cloned().unwrap();
    let index = (0..3).find(|index| format!("http://{}", cluster.address(*index)) == busiest_address).unwrap();
    let killed_at = now_ms();
    cluster.kill(index);
    std::thread::sleep(Duration::from_millis(5000));
    running.store(false, Ordering::SeqCst);
    let sent: Vec<(u64, Option<String>)> = senders.into_iter().flat_map(|sender| sender.join().unwrap()).collect();
    let acknowledged: Vec<String> = sent.iter().filter_map(|(_, id)| id.clone()).collect();

    let ended = wait_for_the_end(balancer.address, &acknowledged, Duration::from_secs(90));
    for execution in &ended {
        assert_eq!(execution["status"], "resolved", "{execution}");
        let keys: Vec<&str> =
            execution["jobs"].as_array().unwrap().iter().map(|job| job["nodeKey"].as_str().unwrap()).collect();
        assert_eq!(keys, ["first", "slow1", "second", "slow2", "third"], "each job once, in order");
    }
    // No node call ran twice but the one in flight when its node died.
    let hits = counter.hits();
    let twice: Vec<&(String, String)> = hits.iter().filter(|(_, count)| **count > 1).map(|(key, _)| key).collect();
    assert!(hits.values().all(|count| *count <= 2), "a call ran more than twice: {hits:?}");
    let mut rerun_executions: HashSet<&str> = HashSet::new();
    for (execution, _) in &twice {
        assert!(rerun_executions.insert(execution), "execution {execution} re-ran more than one call");
    }
    assert!(
        u64::try_from(twice.len()).unwrap() <= held,
        "{} calls ran twice, the dead node held only {held}: {twice:?}",
        twice.len()
    );
    // Taken over within the lease and a poll: an execution that was running when the node died
    // (a job started before the kill, the next one after it, more than a second later) resumed
    // at that next job.
    let mut takeovers = Vec::new();
    for execution in &ended {
        let starts: Vec<u64> =
            execution["jobs"].as_array().unwrap().iter().map(|job| millis(&job["startedAt"])).collect();
        let resumed = starts.windows(2).find(|pair| pair[0] < killed_at && pair[1] >= killed_at + 1000);
        if let Some(pair) = resumed {
            takeovers.push(pair[1] - killed_at);
        }
    }
    let slowest = takeovers.iter().max().copied().unwrap_or(0);
    println!(
        "kill -9 of node {busiest_id} holding {held}: {} requests sent, {} acknowledged, all resolved; \
         {} calls re-ran; {} executions taken over, the slowest after {slowest} ms (lease {LEASE:?})",
        sent.len(),
        acknowledged.len(),
        twice.len(),
        takeovers.len()
    );
    assert!(!takeovers.is_empty(), "the dead node held executions that others took over");
    assert!(
        slowest <= u64::try_from(TAKEOVER_BOUND.as_millis()).unwrap(),
        "a takeover took {slowest} ms, more than {TAKEOVER_BOUND:?}"
    );
    // Traffic through the balancer went on: once its health checks saw the node gone, every
    // request was answered.
    let late: Vec<&(u64, Option<String>)> = sent.iter().filter(|(at, _)| *at > killed_at + 2000).collect();
    assert!(late.len() > 20 && late.iter().all(|(_, id)| id.is_some()), "requests after the kill failed");
    wait_until("the dead node is reaped", Duration::from_secs(20), || {
        cluster_nodes(balancer.address).iter().all(|(_, id, _)| *id != busiest_id)
    });
}

#[test]
fn a_node_frozen_past_its_lease_writes_nothing_more_and_rejoins() {
    let _serial = one_at_a_time();
    let slow = json!({"key": "slow", "sync": false,
        "nodes": [{"key": "work", "type": "misbehave", "config": {"mode": "busy", "ms": 3000}},
                  {"key": "after", "type": "set", "config": {"values": {"done": true}}}]});
    let workflows = workflows_dir("freeze-workflows", &[slow]);
    let plugins = fresh_dir("freeze-plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::write(plugins.join("misbehave.wasm"), hookflow_tests::fixture("misbehave")).unwrap();
    let url = PgServer::shared().fresh_database("freeze");
    let cluster = Cluster::start(
        "freeze",
        &url,
        3,
        &workflows,
        1,
        &["--plugins", plugins.to_str().unwrap(), "--node-timeout-for", "misbehave=20s"],
    );
    let frozen = cluster.address(1);
    let other = cluster.address(0);
    let old_id = cluster_nodes(other).iter().find(|(address, _, _)| *address == format!("http://{frozen}")).unwrap().1;
    // Posted to the node that will freeze: it claims the execution as it accepts it.
    let accepted = http::post(frozen, "/api/webhook:trigger/slow", &[], b"");
    assert_eq!(accepted.status, 200, "{}", accepted.text());
    let id = accepted.header("x-hookflow-execution").unwrap().to_string();
    wait_until("the frozen node holds it", Duration::from_secs(10), || {
        cluster_nodes(other).iter().any(|(address, _, held)| *address == format!("http://{frozen}") && *held == 1)
    });
    std::thread::sleep(Duration::from_millis(500));
    cluster.signal(1, "-STOP");
    let stopped_at = Instant::now();

    // Another node takes it over once the lease has run out, and runs it to its end.
    let ended = wait_for_the_end(other, std::slice::from_ref(&id), Duration::from_secs(60)).remove(0);
    let taken_over_after = stopped_at.elapsed();
    assert_eq!(ended["status"], "resolved", "{ended}");
    assert!(cluster_nodes(other).iter().all(|(_, node, _)| *node != old_id), "the frozen node's lease is gone");

    cluster.signal(1, "-CONT");
    // It finishes the node call it was in (the rest of 3 s), finds its claim gone, stops and
    // joins again under a new identity.
    wait_until("the frozen node joins again", Duration::from_secs(20), || {
        cluster_nodes(other).iter().any(|(address, node, _)| *address == format!("http://{frozen}") && *node != old_id)
    });
    wait_until("it is ready again", Duration::from_secs(20), || {
        http::request(frozen, "GET", "/readyz", &[], b"").status == 200
    });
    std::thread::sleep(Duration::from_millis(3500));
    let after = admin(other, "GET", &format!("/api/executions/{id}"), None).json();
    assert_eq!(after, ended, "nothing the frozen node wrote after losing its claim landed");
    // And it takes work again.
    let fresh = http::post(frozen, "/api/webhook:trigger/slow", &[], b"");
    let fresh_id = fresh.header("x-hookflow-execution").unwrap().to_string();
    assert_eq!(wait_for_the_end(other, &[fresh_id], Duration::from_secs(30))[0]["status"], "resolved");
    println!(
        "SIGSTOP past the lease: taken over and finished {taken_over_after:?} after the stop; the frozen node rejoined"
    );
}

#[test]
fn a_database_crash_loses_nothing_acknowledged_and_the_nodes_recover_without_a_restart() {
    let _serial = one_at_a_time();
    let quick = json!({"key": "quick", "sync": false, "nodes": [{"key": "c", "type": "condition", "config": {}}]});
    let workflows = workflows_dir("pgcrash-workflows", &[quick]);
    let server = PgServer::start("pgcrash");
    let url = server.fresh_database("pgcrash");
    let cluster = Cluster::start("pgcrash", &url, 2, &workflows, 1, &[]);
    let balancer = balancer("pgcrash", &cluster.addresses());

    let running = Arc::new(AtomicBool::new(true));
    let senders = load(balancer.address, "/api/webhook:trigger/quick", 4, Duration::from_millis(20), &running);
    std::thread::sleep(Duration::from_millis(1500));
    server.stop_immediate();
    std::thread::sleep(Duration::from_millis(2000));
    server.start_again();
    std::thread::sleep(Duration::from_millis(4000));
    running.store(false, Ordering::SeqCst);
    let sent: Vec<(u64, Option<String>)> = senders.into_iter().flat_map(|sender| sender.join().unwrap()).collect();
    let acknowledged: Vec<String> = sent.iter().filter_map(|(_, id)| id.clone()).collect();

    for address in cluster.addresses() {
        wait_until("the node is ready again", Duration::from_secs(30), || {
            http::request(address, "GET", "/readyz", &[], b"").status == 200
        });
    }
    let ended = wait_for_the_end(balancer.address, &acknowledged, Duration::from_secs(90));
    assert!(ended.iter().all(|execution| execution["status"] == "resolved"), "every acknowledged execution resolved");
    let after = http::post(balancer.address, "/api/webhook:trigger/quick", &[], b"");
    assert_eq!(after.status, 200, "{}", after.text());
    let id = after.header("x-hookflow-execution").unwrap().to_string();
    assert_eq!(wait_for_the_end(balancer.address, &[id], Duration::from_secs(30))[0]["status"], "resolved");
    println!(
        "PostgreSQL stopped (immediate) for 2 s under load: {} requests, {} acknowledged, all resolved, \
         {} refused while it was down; the nodes recovered without a restart",
        sent.len(),
        acknowledged.len(),
        sent.len() - acknowledged.len()
    );
}

#[test]
fn the_catalog_components_and_idempotency_keys_are_shared() {
    let _serial = one_at_a_time();
    let events = json!({"key": "events", "sync": false, "trigger": {"idempotency": {"header": "Idempotency-Key"}},
        "nodes": [{"key": "c", "type": "condition", "config": {}}]});
    let orders = json!({"key": "orders", "sync": true, "trigger": {"idempotency": {"header": "Idempotency-Key"}},
        "nodes": [{"key": "r", "type": "response", "config": {"statusCode": 201, "body": {"id": "{{$execution.id}}"}}}]});
    let workflows = workflows_dir("shared-workflows", &[events, orders]);
    let url = PgServer::shared().fresh_database("shared");
    let cluster = Cluster::start("shared", &url, 3, &workflows, 2, &[]);
    let (a, b, c) = (cluster.address(0), cluster.address(1), cluster.address(2));

    // A workflow created on one node is served by another within 2 s.
    let created = admin(a, "POST", "/api/workflows", Some(&json!({"key": "fresh", "sync": true, "nodes": []})));
    assert_eq!(created.status, 201, "{}", created.text());
    let since = Instant::now();
    wait_until("node C serves it", Duration::from_secs(2), || {
        http::post(c, "/api/webhook:trigger/fresh", &[], b"").status == 200
    });
    let served_after = since.elapsed();
    // Disabled on another, refused everywhere within 2 s.
    assert_eq!(admin(b, "POST", "/api/workflows/fresh/disable", None).status, 200);
    wait_until("node A refuses it", Duration::from_secs(2), || {
        http::post(a, "/api/webhook:trigger/fresh", &[], b"").status == 404
    });

    // An idempotency key repeated on another node starts nothing: async and sync.
    let key = [("Idempotency-Key", "evt_1")];
    let first = http::post(a, "/api/webhook:trigger/events", &key, b"");
    let repeat = http::post(c, "/api/webhook:trigger/events", &key, b"");
    assert_eq!((first.status, repeat.status), (200, 200));
    assert_eq!(repeat.header("x-hookflow-execution"), first.header("x-hookflow-execution"));
    let listed = admin(b, "GET", "/api/executions?workflow=events", None).json();
    assert_eq!(listed["items"].as_array().unwrap().len(), 1, "one execution: {listed}");
    let key = [("Idempotency-Key", "order_1")];
    let first = http::post(b, "/api/webhook:trigger/orders", &key, b"");
    let repeat = http::post(a, "/api/webhook:trigger/orders", &key, b"");
    assert_eq!(first.status, 201, "{}", first.text());
    assert_eq!((repeat.status, repeat.text()), (201, first.text()), "the repeat on another node gets the first answer");
    assert_eq!(admin(c, "GET", "/api/executions?workflow=orders", None).json()["items"].as_array().unwrap().len(), 1);

    // A component uploaded on one node is installed on every node within 5 s.
    let uploaded = http::request(
        a,
        "PUT",
        "/api/plugins/shared-node",
        &[("Authorization", &format!("Bearer {}", support::TOKEN)), ("Content-Type", "application/wasm")],
        hookflow_tests::fixture("misbehave"),
    );
    assert_eq!(uploaded.status, 201, "{}", uploaded.text());
    let since = Instant::now();
    wait_until("node C has the component", Duration::from_secs(5), || {
        admin(c, "GET", "/api/plugins", None).json()["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "shared-node")
    });
    let installed_after = since.elapsed();
    let uses = json!({"key": "uses", "sync": true, "nodes": [{"key": "n", "type": "shared-node", "config": {}}]});
    assert_eq!(admin(c, "POST", "/api/workflows", Some(&uses)).status, 201);
    wait_until("node B runs it", Duration::from_secs(2), || {
        http::post(b, "/api/webhook:trigger/uses", &[], b"").status == 200
    });
    assert_eq!(admin(b, "DELETE", "/api/workflows/uses", None).status, 204);
    assert_eq!(admin(b, "DELETE", "/api/plugins/shared-node", None).status, 204);
    wait_until("node A uninstalled it", Duration::from_secs(5), || {
        !admin(a, "GET", "/api/plugins", None).json()["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "shared-node")
    });
    let nodes: HashMap<String, u64> = cluster_nodes(a).into_iter().map(|(address, _, held)| (address, held)).collect();
    assert_eq!(nodes.len(), 3, "{nodes:?}");
    println!(
        "a workflow created on A served by C after {served_after:?}; a component uploaded on A installed on C after {installed_after:?}"
    );
}

#[test]
fn an_execution_taken_over_too_often_ends_in_error() {
    let _serial = one_at_a_time();
    let quick = json!({"key": "quick", "sync": false, "nodes": [{"key": "c", "type": "condition", "config": {}}]});
    let workflows = workflows_dir("takeovers-workflows", &[quick]);
    let url = PgServer::shared().fresh_database("takeovers");
    let database = url.rsplit('/').next().unwrap().to_string();
    // Accepted by a node without workers: it waits on the queue.
    let idle = Cluster::start("takeovers-idle", &url, 1, &workflows, 1, &["--workers", "0", "--max-takeovers", "3"]);
    let accepted = http::post(idle.address(0), "/api/webhook:trigger/quick", &[], b"");
    let id = accepted.header("x-hookflow-execution").unwrap().to_string();
    drop(idle);
    // As if four nodes had died running it.
    PgServer::shared().psql(&database, &format!("UPDATE hookflow.queue SET takeovers = 4 WHERE id = '{id}'"));
    let cluster = Cluster::start("takeovers", &url, 1, &workflows, 1, &["--max-takeovers", "3"]);
    let ended = wait_for_the_end(cluster.address(0), std::slice::from_ref(&id), Duration::from_secs(30)).remove(0);
    assert_eq!(ended["status"], "error", "{ended}");
    assert_eq!(ended["error"], "abandoned after 4 takeovers (--max-takeovers 3): the nodes running it kept dying");
    assert_eq!(ended["jobs"], json!([]), "its nodes did not run again");
}

#[test]
fn a_cluster_store_needs_an_admin_token_and_a_postgres_url() {
    let data = fresh_dir("store-flags");
    let no_token =
        support::hookflow(&["serve", "--data", data.to_str().unwrap(), "--store", "postgres://hookflow@127.0.0.1:1/h"]);
    assert_eq!(no_token.status.code(), Some(1));
    let message = String::from_utf8_lossy(&no_token.stderr);
    assert!(message.contains("needs --admin-token"), "{message}");
    let bogus = support::hookflow(&["serve", "--data", data.to_str().unwrap(), "--store", "mysql://x"]);
    assert_eq!(bogus.status.code(), Some(2), "a usage error");
    assert!(String::from_utf8_lossy(&bogus.stderr).contains("expected `redb` or a PostgreSQL URL"));
    // An unreachable database is a clear failure, not a hang.
    let unreachable = support::hookflow(&[
        "serve",
        "--data",
        data.to_str().unwrap(),
        "--admin-token",
        "t",
        "--store",
        "postgres://hookflow@127.0.0.1:1/h?connect_timeout=2",
    ]);
    assert_eq!(unreachable.status.code(), Some(1));
    let message = String::from_utf8_lossy(&unreachable.stderr);
    assert!(message.contains("cannot open the database postgres://127.0.0.1:1/h"), "{message}");
    assert!(!message.contains("hookflow@"), "no user or password in messages: {message}");
}
