//! Process-wide counters and histograms, rendered as Prometheus text at `GET /metrics`.
//!
//! One registry per process (like the `prometheus` crate's default one): every engine in the
//! process adds to it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// Upper bounds (seconds) of the latency histograms' buckets.
const BUCKETS: &[f64] =
    &[0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0];

/// The registry.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    executions: Mutex<BTreeMap<&'static str, u64>>,
    refusals: Mutex<BTreeMap<(String, &'static str), u64>>,
    retries: Mutex<BTreeMap<String, u64>>,
    dead_letters: Mutex<BTreeMap<String, u64>>,
    node_calls: Mutex<BTreeMap<String, Histogram>>,
    commits: Mutex<Histogram>,
}

#[derive(Debug, Default, Clone)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        if self.counts.is_empty() {
            self.counts = vec![0; BUCKETS.len()];
        }
        for (bucket, bound) in self.counts.iter_mut().zip(BUCKETS) {
            if seconds <= *bound {
                *bucket += 1;
            }
        }
        self.sum += seconds;
        self.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let separator = if labels.is_empty() { "" } else { "," };
        for (index, bound) in BUCKETS.iter().enumerate() {
            let count = self.counts.get(index).copied().unwrap_or(0);
            let _ = writeln!(out, "{name}_bucket{{{labels}{separator}le=\"{bound}\"}} {count}");
        }
        let _ = writeln!(out, "{name}_bucket{{{labels}{separator}le=\"+Inf\"}} {}", self.count);
        let braces = if labels.is_empty() { String::new() } else { format!("{{{labels}}}") };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braces} {}", self.count);
    }
}

/// What the plugin host and the store report, counted in the process's registry.
#[derive(Debug, Clone, Copy)]
pub struct ProcessMetrics;

impl hookflow_plugin::CallObserver for ProcessMetrics {
    fn node_call(&self, node_type: &str, elapsed: Duration) {
        metrics().node_call(node_type, elapsed);
    }
}

impl hookflow_store::CommitObserver for ProcessMetrics {
    fn commit(&self, elapsed: Duration) {
        metrics().commit(elapsed);
    }
}

/// The process's registry.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::default)
}

/// A label value, escaped for the exposition format.
fn label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"")
}

fn locked<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Metrics {
    /// A trigger request answered with `status`.
    pub fn request(&self, workflow: &str, status: u16) {
        *locked(&self.requests).entry((workflow.to_string(), status)).or_default() += 1;
    }

    /// An execution ended with `status`.
    pub fn execution_finished(&self, status: &'static str) {
        *locked(&self.executions).entry(status).or_default() += 1;
    }

    /// A trigger request to `workflow` was refused with `code`.
    pub fn refusal(&self, workflow: &str, code: &'static str) {
        *locked(&self.refusals).entry((workflow.to_string(), code)).or_default() += 1;
    }

    /// An execution of `workflow` failed an attempt and waits for its next one.
    pub fn retry(&self, workflow: &str) {
        *locked(&self.retries).entry(workflow.to_string()).or_default() += 1;
    }

    /// An execution of `workflow` failed its last attempt.
    pub fn dead_letter(&self, workflow: &str) {
        *locked(&self.dead_letters).entry(workflow.to_string()).or_default() += 1;
    }

    /// One node call took `elapsed`.
    pub fn node_call(&self, node_type: &str, elapsed: Duration) {
        locked(&self.node_calls).entry(node_type.to_string()).or_default().observe(elapsed.as_secs_f64());
    }

    /// One store commit took `elapsed`.
    pub fn commit(&self, elapsed: Duration) {
        locked(&self.commits).observe(elapsed.as_secs_f64());
    }

    /// Prometheus text exposition format; `queue_depth` is read from the store (the whole
    /// cluster's backlog), `None` when it could not be.
    pub fn render(&self, queue_depth: Option<u64>) -> String {
        let mut out = String::new();
        out.push_str("# HELP hookflow_trigger_requests_total Trigger requests by workflow and answered status.\n");
        out.push_str("# TYPE hookflow_trigger_requests_total counter\n");
        for ((workflow, status), count) in locked(&self.requests).iter() {
            let workflow = label(workflow);
            let _ =
                writeln!(out, "hookflow_trigger_requests_total{{workflow=\"{workflow}\",status=\"{status}\"}} {count}");
        }
        out.push_str("# HELP hookflow_executions_total Ended executions by status.\n");
        out.push_str("# TYPE hookflow_executions_total counter\n");
        for (status, count) in locked(&self.executions).iter() {
            let _ = writeln!(out, "hookflow_executions_total{{status=\"{status}\"}} {count}");
        }
        out.push_str("# HELP hookflow_refusals_total Refused trigger requests by workflow and error code.\n");
        out.push_str("# TYPE hookflow_refusals_total counter\n");
        for ((workflow, code), count) in locked(&self.refusals).iter() {
            let workflow = label(workflow);
            let _ = writeln!(out, "hookflow_refusals_total{{workflow=\"{workflow}\",code=\"{code}\"}} {count}");
        }
        out.push_str("# HELP hookflow_execution_retries_total Failed attempts followed by another (options.retry).\n");
        out.push_str("# TYPE hookflow_execution_retries_total counter\n");
        for (workflow, count) in locked(&self.retries).iter() {
            let _ = writeln!(out, "hookflow_execution_retries_total{{workflow=\"{}\"}} {count}", label(workflow));
        }
        out.push_str("# HELP hookflow_dead_letters_total Executions that failed their last attempt.\n");
        out.push_str("# TYPE hookflow_dead_letters_total counter\n");
        for (workflow, count) in locked(&self.dead_letters).iter() {
            let _ = writeln!(out, "hookflow_dead_letters_total{{workflow=\"{}\"}} {count}", label(workflow));
        }
        if let Some(depth) = queue_depth {
            out.push_str("# HELP hookflow_queue_depth Async executions accepted and not finished (queued, running or waiting).\n");
            out.push_str("# TYPE hookflow_queue_depth gauge\n");
            let _ = writeln!(out, "hookflow_queue_depth {depth}");
        }
        out.push_str("# HELP hookflow_node_call_seconds Node calls (fresh instance + run) by node type.\n");
        out.push_str("# TYPE hookflow_node_call_seconds histogram\n");
        for (node_type, histogram) in locked(&self.node_calls).iter() {
            histogram.render(&mut out, "hookflow_node_call_seconds", &format!("type=\"{node_type}\""));
        }
        out.push_str("# HELP hookflow_store_commit_seconds Store write transactions (group commits).\n");
        out.push_str("# TYPE hookflow_store_commit_seconds histogram\n");
        locked(&self.commits).render(&mut out, "hookflow_store_commit_seconds", "");
        out
    }
}
