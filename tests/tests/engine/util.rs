//! Helpers shared by the test modules.

use std::path::PathBuf;
use std::sync::OnceLock;

use hookflow::plugin::{HostConfig, PluginHost};
use hookflow::workflow::{
    Execution, ExecutionStatus, Observer, Plan, Reply, caller_reply, compile, execute, parse_workflow,
};
use serde_json::Value;

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
        fn replied(&mut self, reply: &Reply) {
            self.0.push(reply.clone());
        }
    }
    let mut execution = Execution::new(plan.workflow.key.as_deref().unwrap_or("test"), 1, trigger);
    let mut recorder = Recorder::default();
    let reply = execute(host, plan, &mut execution, &mut recorder);
    let answer = caller_reply(&execution, reply);
    Ran { execution, answer, replied: recorder.0 }
}
