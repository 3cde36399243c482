//! Helpers shared by the test modules.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{LazyLock, OnceLock};
use std::time::{Duration, Instant};

use hookflow_plugin::{HostConfig, PluginHost};
use hookflow_server::server::{PostgresConfig, Server, ServerConfig};
use hookflow_tests::http::{self, HttpResponse};
use hookflow_workflow::{
    Execution, ExecutionStatus, Observer, Plan, Reply, caller_reply, compile, execute, parse_workflow,
};
use serde_json::Value;

/// Ids of the executions the tests run directly (not through a server).
pub static IDS: LazyLock<hookflow_workflow::ExecutionIds> = LazyLock::new(Default::default);

/// Where the tests cache compiled components, shared by every test and run.
pub fn cache_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("component-cache")
}

/// One plugin host with the built-in nodes, shared by the tests of this binary.
pub fn host() -> &'static PluginHost {
    static HOST: OnceLock<PluginHost> = OnceLock::new();
    HOST.get_or_init(|| PluginHost::new(HostConfig { cache_dir: Some(cache_dir()), ..HostConfig::default() }).unwrap())
}

/// Parses and compiles a workflow against the shared host; panics with the faults.
pub fn plan(definition: Value) -> Plan {
    plan_on(host(), definition)
}

/// Parses and compiles a workflow against `host`; panics with the faults.
pub fn plan_on(host: &PluginHost, definition: Value) -> Plan {
    let workflow = parse_workflow(&definition.to_string()).unwrap_or_else(|e| panic!("parse: {e}"));
    compile(&workflow, host).unwrap_or_else(|e| panic!("compile: {e}"))
}

/// What one execution produced.
pub struct Ran {
    pub execution: Execution,
    /// The answer a sync caller gets: a reply, or the status of a failed execution.
    pub answer: Result<Reply, ExecutionStatus>,
    /// Every reply the executor reported, in order.
    pub replied: Vec<Reply>,
}

impl Ran {
    /// The reply; panics when the execution failed instead.
    pub fn reply(&self) -> &Reply {
        self.answer.as_ref().unwrap_or_else(|status| panic!("no reply: the execution ended {status:?}"))
    }

    /// The reply body as JSON.
    pub fn body(&self) -> Value {
        let body = &self.reply().body;
        serde_json::from_slice(body)
            .unwrap_or_else(|e| panic!("reply body is not JSON ({e}): {}", String::from_utf8_lossy(body)))
    }

    /// A reply header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.reply().headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The node keys of the jobs, in order.
    pub fn job_keys(&self) -> Vec<&str> {
        self.execution.jobs.iter().map(|job| job.node_key.as_str()).collect()
    }

    /// The execution status as its JSON name.
    pub fn status(&self) -> String {
        serde_json::to_value(self.execution.status).unwrap().as_str().unwrap().to_string()
    }
}

/// Runs `plan` once with trigger data `{"headers": {}, "query": {}, "body": body}`.
pub fn run(plan: &Plan, body: Value) -> Ran {
    run_on(host(), plan, serde_json::json!({ "headers": {}, "query": {}, "body": body }))
}

/// Runs `plan` on `host` once with the given trigger data.
pub fn run_on(host: &PluginHost, plan: &Plan, trigger: Value) -> Ran {
    #[derive(Default)]
    struct Recorder(Vec<Reply>);
    impl Observer for Recorder {
        fn replied(&mut self, reply: &Reply, _ends: bool) {
            self.0.push(reply.clone());
        }
    }
    let mut execution = Execution::new(
        IDS.next(hookflow_workflow::timestamp::Timestamp::now()),
        plan.workflow.key.as_deref().unwrap_or("test"),
        1,
        trigger,
    );
    let mut recorder = Recorder::default();
    let reply = execute(host, plan, &mut execution, &mut recorder).reply;
    let answer = caller_reply(&execution, reply);
    Ran { execution, answer, replied: recorder.0 }
}

/// A fresh directory under the target's temporary directory.
pub fn fresh_dir(name: &str) -> PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let unique = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}-{unique}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The store the servers of this run use: with `HOOKFLOW_TEST_STORE=postgres`, a fresh database
/// of a private PostgreSQL server for each data directory (a restart finds it again); else the
/// redb file in the data directory.
fn postgres_for(data_dir: &std::path::Path) -> Option<PostgresConfig> {
    if std::env::var("HOOKFLOW_TEST_STORE").ok()? != "postgres" {
        return None;
    }
    let marker = data_dir.join("postgres-url");
    let url = std::fs::read_to_string(&marker).unwrap_or_else(|_| {
        let url = hookflow_test_postgres::PgServer::shared().fresh_database("engine");
        std::fs::write(&marker, &url).unwrap();
        url
    });
    Some(PostgresConfig { lease: Duration::from_secs(2), ..PostgresConfig::new(&url) })
}

/// A hookflow server running in this process on a random loopback port, with its own runtime.
pub struct TestServer {
    runtime: tokio::runtime::Runtime,
    server: Option<Server>,
    /// Where it keeps its data.
    pub data_dir: PathBuf,
    /// The address it listens on.
    pub address: SocketAddr,
}

impl TestServer {
    /// Starts a server on a fresh data directory, deploying `workflows` (as files) and the
    /// misbehaving test node; `configure` may change anything else.
    pub fn start(workflows: &[Value], configure: impl FnOnce(&mut ServerConfig)) -> TestServer {
        let data_dir = fresh_dir("data");
        let workflows_dir = fresh_dir("workflows");
        for (index, workflow) in workflows.iter().enumerate() {
            std::fs::write(workflows_dir.join(format!("{index:02}.json")), workflow.to_string()).unwrap();
        }
        TestServer::start_in(data_dir, |config| {
            config.workflows_dir = Some(workflows_dir);
            configure(config);
        })
    }

    /// Starts a server on an existing data directory (a restart).
    pub fn start_in(data_dir: PathBuf, configure: impl FnOnce(&mut ServerConfig)) -> TestServer {
        let plugins_dir = fresh_dir("plugins");
        std::fs::write(plugins_dir.join("misbehave.wasm"), hookflow_tests::fixture("misbehave")).unwrap();
        let mut config = ServerConfig::new("127.0.0.1:0".parse().unwrap(), data_dir.clone());
        config.postgres = postgres_for(&data_dir);
        config.plugins_dir = Some(plugins_dir);
        config.host.cache_dir = Some(cache_dir());
        config.host.max_instances = 16;
        configure(&mut config);
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let server = runtime.block_on(Server::start(config)).unwrap();
        let address = server.address;
        TestServer { runtime, server: Some(server), data_dir, address }
    }

    /// The running server.
    pub fn server(&self) -> &Server {
        self.server.as_ref().unwrap()
    }

    /// POSTs to a workflow's webhook.
    pub fn post(&self, key: &str, headers: &[(&str, &str)], body: &[u8]) -> HttpResponse {
        http::post(self.address, &format!("/api/webhook:trigger/{key}"), headers, body)
    }

    /// POSTs JSON to a workflow's webhook.
    pub fn post_json(&self, key: &str, body: &Value) -> HttpResponse {
        self.post(key, &[("Content-Type", "application/json")], body.to_string().as_bytes())
    }

    /// An execution from the store, with its jobs.
    pub fn execution(&self, id: &str) -> Option<Execution> {
        hookflow_tests::block_on(self.server().store().execution(id)).unwrap()
    }

    /// Waits (at most 30 s) until an execution has ended, and returns it.
    pub fn finished_execution(&self, id: &str) -> Execution {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(execution) = self.execution(id).filter(|e| e.status.is_final()) {
                return execution;
            }
            assert!(Instant::now() < deadline, "execution {id} did not finish: {:?}", self.execution(id));
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Returns once `count` node calls are running (each holds an instance slot).
    pub fn wait_for_node_calls(&self, count: usize) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.server().host().calls_in_flight() < count {
            assert!(Instant::now() < deadline, "{count} node calls never ran at once");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Stops the server cleanly (as on SIGTERM) and returns its data directory.
    pub fn stop(mut self) -> PathBuf {
        let server = self.server.take().unwrap();
        self.runtime.block_on(server.stop()).unwrap();
        self.data_dir.clone()
    }
}
