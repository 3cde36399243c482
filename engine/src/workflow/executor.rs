//! The executor: walks a [`Plan`]'s chain and branches, calling each node through a
//! [`NodeRunner`], recording one [`Job`] per node run and following each node's directive
//! (DESIGN §3.2 and §4).

use serde_json::{Map, Value, json};

use super::execution::{Execution, ExecutionStatus, Job, JobStatus, Next};
use super::node::{Directive, EndStatus, NodeCall, NodeFailure, NodeRunner, Reply};
use super::plan::{Plan, PlanNode};
use super::template::Scope;
use crate::timestamp::Timestamp;

/// Hooks into a running execution: progress reports and interruption.
pub trait Observer {
    /// A job finished and was appended to the execution.
    fn job_finished(&mut self, _job: &Job) {}

    /// The first Response node answered; a sync caller may be answered now.
    fn replied(&mut self, _reply: &Reply) {}

    /// Checked before each node: `Some(status)` stops the execution with that status
    /// (`aborted` on a sync timeout, `canceled` by an operator).
    fn interrupted(&mut self) -> Option<ExecutionStatus> {
        None
    }
}

/// An observer that watches nothing.
impl Observer for () {}

/// Runs `execution` to its end against `plan` and returns the reply of the first Response node
/// that ran, if any.
///
/// An execution that already holds jobs (one resumed after a restart) replays its leading
/// resolved jobs — their outputs and where they led — without calling their nodes again, and
/// runs from the first node that has no resolved job.
pub fn execute(
    runner: &(impl NodeRunner + ?Sized),
    plan: &Plan,
    execution: &mut Execution,
    observer: &mut dyn Observer,
) -> Option<Reply> {
    execution.status = ExecutionStatus::Started;
    let resolved = execution.jobs.iter().take_while(|job| job.status == JobStatus::Resolved).count();
    execution.jobs.truncate(resolved);
    let mut run = Run {
        replay: 0,
        recorded: resolved,
        runner,
        observer,
        trigger_json: execution.trigger.to_string(),
        execution_value: json!({ "id": execution.id }),
        execution,
        outputs: Map::new(),
        reply: None,
    };
    let status = run.chain(&plan.nodes).unwrap_or(ExecutionStatus::Resolved);
    let reply = run.reply;
    execution.status = status;
    execution.finished_at = Some(Timestamp::now());
    reply
}

/// The answer a sync caller gets (DESIGN §4.4): the Response node's reply, else `200` with
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
    runner: &'a R,
    observer: &'a mut dyn Observer,
    execution: &'a mut Execution,
    /// The trigger data serialised once, spliced into every node's context.
    trigger_json: String,
    /// `$execution`.
    execution_value: Value,
    /// `$jobsMapByNodeKey`.
    outputs: Map<String, Value>,
    reply: Option<Reply>,
    /// How many recorded jobs have been replayed.
    replay: usize,
    /// How many jobs were recorded before this run (the replayable ones).
    recorded: usize,
}

/// What the executor does after one node.
enum Step {
    Next,
    Branch(String),
    End(ExecutionStatus),
}

impl<R: NodeRunner + ?Sized> Run<'_, R> {
    /// Runs a chain; `Some(status)` when the execution ended inside it.
    fn chain(&mut self, chain: &[PlanNode]) -> Option<ExecutionStatus> {
        for node in chain {
            if let Some(status) = self.observer.interrupted() {
                return Some(status);
            }
            match self.node(node) {
                Step::Next => {}
                Step::Branch(name) => {
                    if let Some(branch) = node.branches.get(&name)
                        && let Some(status) = self.chain(branch)
                    {
                        return Some(status);
                    }
                }
                Step::End(status) => return Some(status),
            }
        }
        None
    }

    fn node(&mut self, node: &PlanNode) -> Step {
        if let Some(step) = self.replayed(node) {
            return step;
        }
        let started_at = Timestamp::now();
        let system = json!({ "now": started_at.to_string() });
        let scope = Scope {
            context: &self.execution.trigger,
            jobs: &self.outputs,
            system: &system,
            execution: &self.execution_value,
        };
        let input = node.config.resolve(&scope);
        let config = input.to_string();
        let context = format!(
            r#"{{"$context":{},"$jobsMapByNodeKey":{},"$execution":{},"$system":{}}}"#,
            self.trigger_json,
            Value::Object(self.outputs.clone()),
            self.execution_value,
            system,
        );
        let call =
            NodeCall { execution_id: &self.execution.id, node_key: &node.key, config: &config, context: &context };
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
                    Ok(step) => (JobStatus::Resolved, output, None, step),
                    Err(message) => (JobStatus::Error, output, Some(message), Step::End(ExecutionStatus::Error)),
                }
            }
        };
        if status == JobStatus::Resolved {
            self.outputs.insert(node.key.clone(), output.clone());
        }
        let next = match &step {
            Step::Next => Next::Continue,
            Step::Branch(name) => Next::Branch(name.clone()),
            Step::End(_) => Next::End,
        };
        let job = Job {
            node_key: node.key.clone(),
            node_type: node.node_type.clone(),
            status,
            input,
            output,
            error,
            started_at,
            finished_at: Timestamp::now(),
            next,
        };
        self.observer.job_finished(&job);
        self.execution.jobs.push(job);
        step
    }

    /// Replays the next recorded job when it belongs to this node; a recorded job of another
    /// node (which a pinned version cannot produce) discards the rest of the record.
    fn replayed(&mut self, node: &PlanNode) -> Option<Step> {
        if self.replay == self.recorded {
            return None;
        }
        let job = &self.execution.jobs[self.replay];
        if job.node_key != node.key {
            self.execution.jobs.truncate(self.replay);
            self.recorded = self.replay;
            return None;
        }
        self.replay += 1;
        self.outputs.insert(node.key.clone(), job.output.clone());
        Some(match &job.next {
            Next::Continue => Step::Next,
            Next::Branch(name) => Step::Branch(name.clone()),
            Next::End => Step::End(ExecutionStatus::Resolved),
        })
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
                    self.observer.replied(&reply);
                    self.reply = Some(reply);
                }
                Ok(if keep_running { Step::Next } else { Step::End(ExecutionStatus::Resolved) })
            }
            Directive::End(EndStatus::Resolved) => Ok(Step::End(ExecutionStatus::Resolved)),
            Directive::End(EndStatus::Failed) => Ok(Step::End(ExecutionStatus::Failed)),
        }
    }
}
