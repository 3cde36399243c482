//! Fault isolation: nodes that trap, loop forever or eat memory fail their own job within their
//! budget; the engine and the next execution are unaffected. Components that do not fit the
//! `node` world are refused at load.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use hookflow_plugin::{HostConfig, LoadError, PluginHost};
use hookflow_tests::fixture;
use hookflow_workflow::{NodeCall, NodeRunner, OwnedContext};
use serde_json::json;

use crate::util::{cache_dir, plan_on, run_on};

/// A host with tight limits and the misbehaving fixtures installed.
fn host() -> &'static PluginHost {
    static HOST: OnceLock<PluginHost> = OnceLock::new();
    HOST.get_or_init(|| misbehave_host(HostConfig { time_budget: Duration::from_millis(200), ..HostConfig::default() }))
}

/// A host of `config` with a 16 MiB memory limit, the shared cache and the `misbehave` node.
fn misbehave_host(config: HostConfig) -> PluginHost {
    let host = PluginHost::new(HostConfig { memory_limit: 16 << 20, cache_dir: Some(cache_dir()), ..config }).unwrap();
    host.install("misbehave", fixture("misbehave")).unwrap();
    host
}

/// Runs a sync workflow whose first node misbehaves in `mode`, then checks that a healthy execution on
/// the same host still succeeds. Returns the failed job's status and error.
fn run_faulty(mode: &str) -> (String, String, String) {
    let faulty = plan_on(
        host(),
        json!({"sync": true, "nodes": [
            {"key": "bad", "type": "misbehave", "config": {"mode": mode}},
            {"key": "never", "type": "response", "config": {}}
        ]}),
    );
    let trigger = json!({"headers": {}, "query": {}, "body": null});
    let ran = run_on(host(), &faulty, trigger.clone());
    assert_eq!(ran.job_keys(), ["bad"], "nodes after a failed node do not run");
    assert!(ran.answer.is_err(), "a failed node fails the execution");
    let job = &ran.execution.jobs[0];
    let job_status = serde_json::to_value(job.status).unwrap().as_str().unwrap().to_string();

    let healthy = plan_on(
        host(),
        json!({"sync": true, "nodes": [
            {"key": "ok", "type": "response", "config": {"body": "fine"}}
        ]}),
    );
    let next = run_on(host(), &healthy, trigger);
    assert_eq!(next.status(), "resolved", "the next execution on the same engine succeeds");
    assert_eq!(next.reply().body, b"fine");

    (ran.status(), job_status, job.error.clone().unwrap_or_default())
}

#[test]
fn a_trapping_node_fails_its_job_with_error() {
    let (execution, job, message) = run_faulty("trap");
    assert_eq!((execution.as_str(), job.as_str()), ("error", "error"));
    assert!(message.contains("trapped") && message.contains("unreachable"), "{message}");
}

#[test]
fn a_looping_node_is_aborted_at_its_time_budget() {
    let started = Instant::now();
    let (execution, job, message) = run_faulty("spin");
    assert_eq!((execution.as_str(), job.as_str()), ("aborted", "aborted"));
    assert!(message.contains("time budget of 200ms"), "{message}");
    // Not a speed assertion: a budget that is not enforced would hang here far longer.
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[test]
fn a_memory_hog_fails_at_its_memory_limit() {
    let (execution, job, message) = run_faulty("hog");
    assert_eq!((execution.as_str(), job.as_str()), ("error", "error"));
    assert!(message.contains("node exceeded its memory limit of 16777216 bytes"), "{message}");
}

/// Instance slots of [`crowded_host`]: far fewer than the faults run against it.
const CROWDED_SLOTS: u32 = 2;

/// A host with two instance slots, so a slot or pool instance leaked on a fault path runs out
/// within a few dozen faults.
fn crowded_host() -> &'static PluginHost {
    static HOST: OnceLock<PluginHost> = OnceLock::new();
    HOST.get_or_init(|| {
        let config = HostConfig {
            time_budget: Duration::from_millis(20),
            max_instances: CROWDED_SLOTS,
            ..HostConfig::default()
        };
        misbehave_host(config)
    })
}

#[test]
fn many_more_faults_than_instance_slots_leave_every_slot_free() {
    // A leaked slot makes a later call wait forever: the calls run on a thread watched by a
    // deadline.
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let host = crowded_host();
        let trigger = json!({"headers": {}, "query": {}, "body": null});
        // More faults of each kind than the pool has instances in all (slots, runtime threads'
        // own and warm instances of every built-in type).
        let faults = 100;
        for mode in ["trap", "hog", "spin"] {
            let config = json!({"mode": mode});
            let faulty =
                plan_on(host, json!({"sync": true, "nodes": [{"key": "bad", "type": "misbehave", "config": config}]}));
            for n in 0..faults {
                let ran = run_on(host, &faulty, trigger.clone());
                assert!(matches!(ran.status().as_str(), "error" | "aborted"), "{mode} #{n}: {}", ran.status());
            }
        }
        let healthy = plan_on(
            host,
            json!({"sync": true, "nodes": [{"key": "ok", "type": "response", "config": {"body": "fine"}}]}),
        );
        let calls: Vec<_> = (0..=CROWDED_SLOTS).map(|_| run_on(host, &healthy, trigger.clone()).status()).collect();
        let _ = done.send(calls);
    });
    let statuses = finished
        .recv_timeout(Duration::from_secs(120))
        .expect("calls stopped finding a free instance slot (or a fault panicked): a fault path leaked one");
    assert!(statuses.iter().all(|status| status == "resolved"), "{statuses:?}");
}

#[test]
fn a_component_of_another_world_is_refused() {
    let error = host().install("greeter", fixture("other-world")).err().unwrap();
    assert!(matches!(error, LoadError::WrongWorld { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.contains("does not target the hookflow:node/node@0.1.0 world"), "{message}");
    assert!(message.contains("describe"), "the message says what is missing: {message}");
    assert!(host().plugin("greeter").is_none());
}

#[test]
fn bytes_that_are_not_a_component_are_refused() {
    let error = host().install("junk", b"\0asm not really").err().unwrap();
    assert!(matches!(error, LoadError::Compile { .. }), "{error:?}");
    let error = host().install("Bad Name", fixture("misbehave")).err().unwrap();
    assert!(matches!(error, LoadError::InvalidName(_)), "{error:?}");
    let error = host().install("condition", fixture("misbehave")).err().unwrap();
    assert!(matches!(error, LoadError::BuiltinName(_)), "{error:?}");
}

#[test]
fn installed_plugins_describe_themselves() {
    let condition = host().plugin("condition").unwrap();
    assert!(condition.builtin);
    assert_eq!(condition.info.branches, ["true", "false"]);
    assert!(!condition.info.may_respond);
    assert_eq!(condition.info.config_schema["type"], json!("object"));
    let response = host().plugin("response").unwrap();
    assert!(response.info.may_respond);
    let custom = host().plugin("misbehave").unwrap();
    assert!(!custom.builtin);
    assert_eq!(custom.digest.len(), 64);
    assert_eq!(custom.info.name, "misbehave");
}

#[test]
fn compiled_components_are_cached_on_disk() {
    let dir = std::env::temp_dir().join(format!("hookflow-cache-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let config = HostConfig { cache_dir: Some(dir.clone()), max_instances: 4, ..HostConfig::default() };
    PluginHost::new(config.clone()).unwrap();
    let cached: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(cached.len(), hookflow_plugin::BUILTIN_NODES.len(), "{cached:?}");
    assert!(cached.iter().all(|p| p.extension().is_some_and(|e| e == "cwasm")));

    // A second engine loads the artifacts; a corrupted one is recompiled, not fatal.
    std::fs::write(&cached[0], b"garbage").unwrap();
    let host = PluginHost::new(config).unwrap();
    assert_eq!(host.plugins().len(), hookflow_plugin::BUILTIN_NODES.len());
    assert!(std::fs::metadata(&cached[0]).unwrap().len() > 1000, "the corrupted artifact was rewritten");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Built-ins reuse warm instances: every call, from any thread, answers from its own input, and
/// one whose input grew the guest's memory (after which that instance is dropped) leaves the
/// next calls correct.
#[test]
fn reused_builtin_instances_answer_each_call_from_its_own_input() {
    let context = OwnedContext::new("x", json!({}));
    let call_set = |value: &str| {
        let config = json!({"values": {"echo": value}}).to_string();
        let call = NodeCall {
            execution_id: "x",
            node_key: "set",
            config: &config,
            context: context.context(),
            deadline: None,
        };
        host().run("set", &call).unwrap().output
    };
    std::thread::scope(|scope| {
        for thread in 0..4 {
            scope.spawn(move || {
                for i in 0..200 {
                    let value = format!("thread {thread} call {i}");
                    assert_eq!(call_set(&value), json!({"echo": value}));
                }
            });
        }
    });
    let large = "x".repeat(3 << 20);
    assert_eq!(call_set(&large), json!({"echo": large}));
    assert_eq!(call_set("small again"), json!({"echo": "small again"}));
}

#[test]
fn the_sandbox_refuses_files_sockets_and_name_lookups() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let target = listener.local_addr().unwrap();
    let escaping = plan_on(
        host(),
        json!({"sync": true, "nodes": [{"key": "out", "type": "misbehave", "config": {"mode": "escape", "target": target.to_string()}}]}),
    );
    let ran = run_on(host(), &escaping, json!({"headers": {}, "query": {}, "body": null}));
    assert_eq!(ran.status(), "resolved");
    let attempts = ran.execution.jobs[0].output.as_object().cloned().unwrap_or_default();
    let mut names: Vec<&str> = attempts.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(names, ["list_root", "name_lookup", "read_file", "tcp_connect", "udp_bind", "write_file"]);
    for (attempt, outcome) in &attempts {
        let outcome = outcome.as_str().unwrap_or_default();
        assert!(outcome.starts_with("refused: "), "{attempt} got out of the sandbox: {outcome}");
    }
    assert!(
        matches!(listener.accept(), Err(error) if error.kind() == std::io::ErrorKind::WouldBlock),
        "no connection reached the listener"
    );
}
