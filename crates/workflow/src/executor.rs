//! The executor: walks a [`Plan`]'s chain and branches, calling each node through a
//! [`NodeRunner`], recording one [`Job`] per node run and following each node's directive.

use std::sync::Arc;
use std::time::Duration;

use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use super::execution::{Execution, ExecutionStatus, Job, JobStatus, Next};
use super::limits::{ExecutionLimits, json_size, recorded};
use super::node::{CallContext, Directive, EndStatus, NodeCall, NodeFailure, NodeRunner, Reply};
use super::plan::{NodeKind, Plan, PlanNode};
use super::secrets::Secrets;
use super::template::Scope;
use crate::clock::{Clock, SystemClock};
use crate::timestamp::Timestamp;

/// Hooks into a running execution: progress reports and interruption.
pub trait Observer {
    /// A job finished and was appended to the execution.
    fn job_finished(&mut self, _job: &Job) {}

    /// The first Response node answered; a sync caller may be answered now. `ends`: no node
    /// runs after it (the execution ends with this reply).
    fn replied(&mut self, _reply: &Reply, _ends: bool) {}

    /// When the execution's caller stops waiting (a sync timeout), if it has such a moment.
    fn deadline(&self) -> Option<std::time::Instant> {
        None
    }

    /// Checked before each node: `Some(status)` stops the execution with that status
    /// (`aborted` on a sync timeout, `canceled` by an operator).
    fn interrupted(&mut self) -> Option<ExecutionStatus> {
        None
    }
}

/// An observer that watches nothing.
impl Observer for () {}

/// How far [`execute`] got.
#[derive(Debug, Clone, PartialEq)]
pub struct Ran {
    /// The reply of the first Response node that ran, if any.
    pub reply: Option<Reply>,
    /// Set when a `delay` node holds the execution until then: it is still `started`, its last
    /// job `pending`, and `execute` is to be called again on it once the time has come.
    pub wake_at: Option<Timestamp>,
}

/// Runs `execution` against `plan` with the system clock: [`Executor::run`].
pub fn execute(
    runner: &(impl NodeRunner + ?Sized),
    plan: &Plan,
    execution: &mut Execution,
    observer: &mut dyn Observer,
) -> Ran {
    Executor { runner, clock: &SystemClock }.run(plan, execution, observer)
}

/// Runs executions: calls nodes through `runner`, reads the time from `clock`.
pub struct Executor<'a, R: ?Sized> {
    /// Calls the nodes.
    pub runner: &'a R,
    /// The time of job records, `$system.now`, delays and node deadlines.
    pub clock: &'a dyn Clock,
}

impl<R: NodeRunner + ?Sized> Executor<'_, R> {
    /// Runs `execution` against `plan` until it ends or a `delay` node makes it wait.
    ///
    /// An execution that already holds jobs (one resumed after a restart or a delay) replays
    /// its leading resolved jobs — their outputs and where they led — without calling their
    /// nodes again, and runs from the first node that has no resolved job. A `pending` delay job
    /// right after them resolves once its time has come, or makes the execution wait again.
    pub fn run(&self, plan: &Plan, execution: &mut Execution, observer: &mut dyn Observer) -> Ran {
        run(self.runner, self.clock, plan, execution, observer)
    }
}

fn run(
    runner: &(impl NodeRunner + ?Sized),
    clock: &dyn Clock,
    plan: &Plan,
    execution: &mut Execution,
    observer: &mut dyn Observer,
) -> Ran {
    execution.status = ExecutionStatus::Started;
    let resolved = execution.jobs.iter().take_while(|job| job.status == JobStatus::Resolved).count();
    let pending = execution.jobs.get(resolved).is_some_and(|job| job.status == JobStatus::Pending);
    let recorded = resolved + usize::from(pending);
    execution.jobs.truncate(recorded);
    let mut run = Run {
        plan_limits: plan.limits,
        secrets: &plan.secrets,
        sync: plan.workflow.sync,
        replay: 0,
        recorded,
        runner,
        clock,
        observer,
        trigger_json: execution.trigger_json(),
        execution_value: json!({ "id": execution.id }),
        system: None,
        execution,
        outputs: Map::new(),
        scopes: Map::new(),
        loop_items: Vec::new(),
        reply: None,
        recorded_bytes: 0,
        node_time_ms: 0,
    };
    let halt = run.chain(&plan.nodes);
    let reply = run.reply;
    let status = match halt {
        Some(Halt::Wait(wake_at)) => return Ran { reply, wake_at: Some(wake_at) },
        Some(Halt::End(status)) => status,
        None => ExecutionStatus::Resolved,
    };
    execution.status = status;
    execution.finished_at = Some(clock.now());
    // A delay that was waiting when an operator canceled the execution.
    for job in execution.jobs.iter_mut().filter(|job| job.status == JobStatus::Pending) {
        job.status = JobStatus::Canceled;
        job.finished_at = clock.now();
    }
    Ran { reply, wake_at: None }
}

/// The answer a sync caller gets: the Response node's reply, else `200` with
/// `{"executionId", "status": "resolved"}` when the execution resolved; `Err` with the status
/// when it ended otherwise (the caller answers `500 execution_failed`).
pub fn caller_reply(execution: &Execution, reply: Option<Reply>) -> Result<Reply, ExecutionStatus> {
    if let Some(reply) = reply {
        return Ok(reply);
    }
    if execution.status != ExecutionStatus::Resolved {
        return Err(execution.status);
    }
    let body = json!({ "executionId": execution.id, "status": "resolved" });
    Ok(Reply {
        status: 200,
        headers: vec![("content-type".into(), "application/json".into())],
        body: body.to_string().into_bytes(),
    })
}

struct Run<'a, R: ?Sized> {
    /// What the execution may hold.
    plan_limits: ExecutionLimits,
    /// `$secrets`, and what the records mask.
    secrets: &'a Secrets,
    /// Sync executions are bounded by the sync timeout instead of `--max-run-time`.
    sync: bool,
    runner: &'a R,
    clock: &'a dyn Clock,
    observer: &'a mut dyn Observer,
    execution: &'a mut Execution,
    /// The trigger data serialised once, spliced into every node's context.
    trigger_json: Arc<RawValue>,
    /// `$execution`.
    execution_value: Value,
    /// `$system` as of a millisecond: the nodes started within one share it.
    system: Option<(Timestamp, Value)>,
    /// `$jobsMapByNodeKey`.
    outputs: Map<String, Value>,
    /// `$scopes`: the current item of each loop being run, by the loop's key.
    scopes: Map<String, Value>,
    /// The items of the loop node that just ran, handed to [`Run::iterate`]; kept out of
    /// `outputs` so that each body node's context does not carry the whole list.
    loop_items: Vec<Value>,
    reply: Option<Reply>,
    /// How many recorded jobs have been replayed.
    replay: usize,
    /// How many jobs were recorded before this run (the replayable ones).
    recorded: usize,
    /// Bytes of job inputs and outputs recorded so far (against `--max-record`).
    recorded_bytes: usize,
    /// Node time spent so far, delays not counted (against `--max-run-time`).
    node_time_ms: u64,
}

/// What the executor does after one node.
enum Step {
    Next,
    Branch(String),
    End(ExecutionStatus),
    Wait(Timestamp),
}

/// Why a chain stopped before its last node.
enum Halt {
    /// The execution ended with this status.
    End(ExecutionStatus),
    /// A delay node holds the execution until then.
    Wait(Timestamp),
}

impl<R: NodeRunner + ?Sized> Run<'_, R> {
    /// Runs a chain; `Some` when the execution ended or must wait inside it.
    fn chain(&mut self, chain: &[PlanNode]) -> Option<Halt> {
        for node in chain {
            if let Some(status) = self.observer.interrupted() {
                return Some(Halt::End(status));
            }
            match self.node(node) {
                Step::Next => {}
                Step::Branch(name) => {
                    let Some(branch) = node.branches.get(&name) else { continue };
                    let halt = match node.kind {
                        NodeKind::Loop => self.iterate(node, branch),
                        NodeKind::Plain | NodeKind::Delay => self.chain(branch),
                    };
                    if halt.is_some() {
                        return halt;
                    }
                }
                Step::End(status) => return Some(Halt::End(status)),
                Step::Wait(until) => return Some(Halt::Wait(until)),
            }
        }
        None
    }

    /// Runs a loop node's body once per item of its output, with `$scopes.<key>` set.
    fn iterate(&mut self, node: &PlanNode, body: &[PlanNode]) -> Option<Halt> {
        let items = std::mem::take(&mut self.loop_items);
        let length = items.len();
        for (index, item) in items.into_iter().enumerate() {
            let scope = json!({ "item": item, "index": index, "sequence": index + 1, "length": length });
            self.scopes.insert(node.key.clone(), scope);
            let halt = self.chain(body);
            if halt.is_some() {
                return halt;
            }
        }
        self.scopes.remove(&node.key);
        None
    }

    fn node(&mut self, node: &PlanNode) -> Step {
        if let Some(step) = self.replayed(node) {
            return step;
        }
        let limits = &self.plan_limits;
        let crossed = if self.execution.jobs.len() >= limits.max_jobs {
            Some(limits.jobs_exceeded())
        } else if !self.sync && Duration::from_millis(self.node_time_ms) >= limits.max_run_time {
            Some(limits.run_time_exceeded())
        } else {
            None
        };
        if let Some(message) = crossed {
            return self.exceeded(node, Value::Null, Value::Null, self.clock.now(), message);
        }
        let started_at = self.clock.now();
        let system = match &mut self.system {
            Some((at, system)) if *at == started_at => &*system,
            slot => &slot.insert((started_at, json!({ "now": started_at.to_string() }))).1,
        };
        let scope = Scope {
            context: &self.execution.trigger,
            jobs: &self.outputs,
            system,
            execution: &self.execution_value,
            scopes: &self.scopes,
            secrets: self.secrets.values(),
        };
        let input = node.config.resolve(&scope);
        let config = input.to_string();
        let context = CallContext::new(scope).with_trigger_text(&self.trigger_json);
        let run_time_left = (!self.sync).then(|| {
            let spent = Duration::from_millis(self.node_time_ms);
            self.clock.instant() + self.plan_limits.max_run_time.saturating_sub(spent)
        });
        let deadline = match (self.observer.deadline(), run_time_left) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let call =
            NodeCall { execution_id: &self.execution.id, node_key: &node.key, config: &config, context, deadline };
        let result = self.runner.run(&node.node_type, &call);

        let (status, output, error, step) = match result {
            Err(NodeFailure::Error(message)) => {
                (JobStatus::Error, Value::Null, Some(message), Step::End(ExecutionStatus::Error))
            }
            Err(NodeFailure::Timeout(message)) => {
                (JobStatus::Aborted, Value::Null, Some(message), Step::End(ExecutionStatus::Aborted))
            }
            Ok(outcome) => {
                let output = outcome.output;
                match self.follow(node, outcome.directive) {
                    Ok(Step::End(ExecutionStatus::Failed)) => {
                        (JobStatus::Failed, output, None, Step::End(ExecutionStatus::Failed))
                    }
                    Ok(Step::Next) if node.kind == NodeKind::Delay => match wake_time(started_at, &output) {
                        Ok(until) if until > self.clock.now() => (JobStatus::Pending, output, None, Step::Wait(until)),
                        Ok(_) => (JobStatus::Resolved, output, None, Step::Next),
                        Err(message) => (JobStatus::Error, output, Some(message), Step::End(ExecutionStatus::Error)),
                    },
                    Ok(step) => (JobStatus::Resolved, output, None, step),
                    Err(message) => (JobStatus::Error, output, Some(message), Step::End(ExecutionStatus::Error)),
                }
            }
        };
        if status == JobStatus::Resolved {
            self.remember(node, &output);
        }
        let finished_at = self.clock.now();
        if node.kind != NodeKind::Delay {
            self.node_time_ms += finished_at.0.saturating_sub(started_at.0);
        }
        let (input, output) = self.record(node, input, output);
        if self.recorded_bytes > self.plan_limits.max_record {
            let message = self.plan_limits.record_exceeded();
            return self.exceeded(node, input, output, started_at, message);
        }
        let next = match &step {
            Step::Next | Step::Wait(_) => Next::Continue,
            Step::Branch(name) => Next::Branch(name.clone()),
            Step::End(_) => Next::End,
        };
        let error = error.map(|error| self.secrets.mask_text(&error).unwrap_or(error));
        let job = Job {
            node_key: node.key.clone(),
            node_type: node.node_type.clone(),
            status,
            input,
            output,
            error,
            started_at,
            finished_at,
            next,
        };
        self.observer.job_finished(&job);
        self.execution.jobs.push(job);
        step
    }

    /// A job's input and output as they are recorded (large ones truncated; a loop's items stay
    /// whole, since a resumed execution re-enters the loop from them), counted against
    /// `--max-record`.
    fn record(&mut self, node: &PlanNode, mut input: Value, mut output: Value) -> (Value, Value) {
        self.secrets.mask_value(&mut input);
        Secrets::mask_credential_headers(&mut input);
        self.secrets.mask_value(&mut output);
        let (input, input_bytes) = recorded(input);
        let (output, output_bytes) = match node.kind {
            NodeKind::Loop => {
                let bytes = json_size(&output);
                (output, bytes)
            }
            NodeKind::Plain | NodeKind::Delay => recorded(output),
        };
        self.recorded_bytes = self.recorded_bytes.saturating_add(input_bytes + output_bytes);
        (input, output)
    }

    /// Ends the execution `error` because it crossed one of its limits: the crossing job and the
    /// execution both carry the message that names the limit.
    fn exceeded(
        &mut self,
        node: &PlanNode,
        input: Value,
        output: Value,
        started_at: Timestamp,
        message: String,
    ) -> Step {
        let job = Job {
            node_key: node.key.clone(),
            node_type: node.node_type.clone(),
            status: JobStatus::Error,
            input,
            output,
            error: Some(message.clone()),
            started_at,
            finished_at: self.clock.now(),
            next: Next::End,
        };
        self.observer.job_finished(&job);
        self.execution.jobs.push(job);
        self.execution.error = Some(message);
        Step::End(ExecutionStatus::Error)
    }

    /// Replays the next recorded job when it belongs to this node; a recorded job of another
    /// node (which a pinned version cannot produce) discards the rest of the record. A pending
    /// delay resolves when its time has come, or makes the execution wait again.
    fn replayed(&mut self, node: &PlanNode) -> Option<Step> {
        if self.replay == self.recorded {
            return None;
        }
        let job = &mut self.execution.jobs[self.replay];
        if job.node_key != node.key {
            self.execution.jobs.truncate(self.replay);
            self.recorded = self.replay;
            return None;
        }
        if job.status == JobStatus::Pending {
            let until = wake_time(job.started_at, &job.output).unwrap_or(job.started_at);
            let now = self.clock.now();
            if until > now {
                return Some(Step::Wait(until));
            }
            job.status = JobStatus::Resolved;
            job.finished_at = now;
            self.observer.job_finished(job);
        }
        self.replay += 1;
        self.recorded_bytes =
            self.recorded_bytes.saturating_add(job.input.to_string().len() + job.output.to_string().len());
        if node.kind != NodeKind::Delay {
            self.node_time_ms += job.finished_at.0.saturating_sub(job.started_at.0);
        }
        let step = match &job.next {
            Next::Continue => Step::Next,
            Next::Branch(name) => Step::Branch(name.clone()),
            Next::End => Step::End(ExecutionStatus::Resolved),
        };
        let output = job.output.clone();
        self.remember(node, &output);
        Some(step)
    }

    /// Makes a resolved node's output visible to later nodes. A loop's items go to the next
    /// [`Run::iterate`] instead, and later nodes see `{"length"}`.
    fn remember(&mut self, node: &PlanNode, output: &Value) {
        let visible = match node.kind {
            NodeKind::Loop => {
                self.loop_items = match output.get("items") {
                    Some(Value::Array(items)) => items.clone(),
                    _ => Vec::new(),
                };
                json!({ "length": self.loop_items.len() })
            }
            NodeKind::Plain | NodeKind::Delay => output.clone(),
        };
        self.outputs.insert(node.key.clone(), visible);
    }

    /// Checks a directive against what the node declared and turns it into a step.
    fn follow(&mut self, node: &PlanNode, directive: Directive) -> Result<Step, String> {
        match directive {
            Directive::Continue => Ok(Step::Next),
            Directive::Branch(name) if node.info.branches.contains(&name) => Ok(Step::Branch(name)),
            Directive::Branch(name) => {
                Err(format!("node picked branch {name:?}, which its type {:?} does not declare", node.node_type))
            }
            Directive::Respond { .. } if !node.info.may_respond => Err(format!(
                "node answered the caller, which its type {:?} does not declare (may-respond)",
                node.node_type
            )),
            Directive::Respond { reply, keep_running } => {
                if self.reply.is_none() {
                    self.observer.replied(&reply, !keep_running);
                    self.reply = Some(reply);
                }
                Ok(if keep_running { Step::Next } else { Step::End(ExecutionStatus::Resolved) })
            }
            Directive::End(EndStatus::Resolved) => Ok(Step::End(ExecutionStatus::Resolved)),
            Directive::End(EndStatus::Failed) => Ok(Step::End(ExecutionStatus::Failed)),
        }
    }
}

/// When a delay job started at `started_at` with this output may go on.
fn wake_time(started_at: Timestamp, output: &Value) -> Result<Timestamp, String> {
    let millis = output
        .get("durationMs")
        .and_then(Value::as_u64)
        .ok_or_else(|| format!("a delay node must output {{\"durationMs\": <whole milliseconds>}}, not {output}"))?;
    Ok(started_at.plus(Duration::from_millis(millis)))
}

/// Writes a JSON map as text without cloning it into a `Value` first.
#[cfg(test)]
mod tests;
