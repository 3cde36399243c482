//! The executor against a fake [`NodeRunner`] and a [`ManualClock`]: no WebAssembly, no
//! sleeping. Each test is a workflow and the trace it must leave (`check`).
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use serde_json::{Value, json};

use crate::fake::{FakeRunner, fake, with_branches};
use crate::node::Reply;
use crate::timestamp::Timestamp;
use crate::{Execution, ExecutionStatus, Executor, ManualClock, Observer, Plan, Ran, compile, parse_workflow};

/// Writes down replies and stops the execution when told.
#[derive(Default)]
struct Watcher {
    replies: Vec<String>,
    stop_before_call: Option<usize>,
    jobs_seen: usize,
}

impl Observer for Watcher {
    fn job_finished(&mut self, _job: &crate::Job) {
        self.jobs_seen += 1;
    }

    fn replied(&mut self, reply: &Reply, ends: bool) {
        self.replies.push(format!(
            "{} {}{}",
            reply.status,
            String::from_utf8_lossy(&reply.body),
            if ends { "" } else { " (goes on)" }
        ));
    }

    fn interrupted(&mut self) -> Option<ExecutionStatus> {
        (self.stop_before_call == Some(self.jobs_seen)).then_some(ExecutionStatus::Canceled)
    }
}

/// 2026-01-01T00:00:00Z.
const START: Timestamp = Timestamp(1_767_225_600_000);

fn plan(definition: Value) -> Plan {
    let workflow = parse_workflow(&definition.to_string()).unwrap();
    compile(&workflow, &FakeRunner::default()).unwrap_or_else(|error| panic!("{error}"))
}

fn new_execution(trigger: Value) -> Execution {
    Execution::new(ulid::Ulid::from_parts(START.0, 1), "test", 1, trigger)
}

/// One line per job (`key status output[ -> next][: error]`), then the execution's status and
/// error, then each reply the caller was sent.
fn trace(execution: &Execution, ran: &Ran, watcher: &Watcher) -> String {
    let mut lines: Vec<String> = execution
        .jobs
        .iter()
        .map(|job| {
            let mut line = format!(
                "{} {} {}",
                job.node_key,
                serde_json::to_value(job.status).unwrap().as_str().unwrap(),
                job.output
            );
            match &job.next {
                crate::Next::Continue => {}
                crate::Next::Branch(name) => line.push_str(&format!(" -> {name}")),
                crate::Next::End => line.push_str(" -> end"),
            }
            if let Some(error) = &job.error {
                line.push_str(&format!(": {error}"));
            }
            line
        })
        .collect();
    let mut end = format!("= {}", execution.status.as_str());
    if let Some(error) = &execution.error {
        end.push_str(&format!(": {error}"));
    }
    if let Some(wake_at) = ran.wake_at {
        end.push_str(&format!(" until {wake_at}"));
    }
    lines.push(end);
    lines.extend(watcher.replies.iter().map(|reply| format!("reply {reply}")));
    lines.join("\n")
}

/// Runs `nodes` (a sync workflow) on `trigger` and compares the trace with `expected`.
fn check(nodes: Value, trigger: Value, expected: &str) {
    check_with(json!({"key": "test", "sync": true, "nodes": nodes}), trigger, Watcher::default(), expected);
}

fn check_with(definition: Value, trigger: Value, mut watcher: Watcher, expected: &str) {
    let plan = plan(definition);
    let runner = FakeRunner::default();
    let clock = ManualClock::at(START);
    let mut execution = new_execution(trigger);
    let ran = Executor { runner: &runner, clock: &clock }.run(&plan, &mut execution, &mut watcher);
    assert_eq!(trace(&execution, &ran, &watcher), expected.trim());
}

#[test]
fn a_chain_runs_in_order_and_later_nodes_see_earlier_outputs() {
    check(
        json!([
            fake("a", json!({"output": {"n": 1}})),
            fake(
                "b",
                json!({"seen": "{{$jobsMapByNodeKey.a.n}}", "text": "n={{$jobsMapByNodeKey.a.n}} at {{$system.now}}"})
            ),
        ]),
        json!({"body": {}}),
        r#"
a resolved {"n":1}
b resolved {"seen":1,"text":"n=1 at 2026-01-01T00:00:00.000Z"}
= resolved"#,
    );
}

#[test]
fn a_picked_branch_runs_then_the_chain_goes_on_and_an_absent_one_is_skipped() {
    let node = |key: &str, to: &str| {
        with_branches(
            fake(key, json!({"do": "branch", "to": to})),
            json!({"yes": [fake(&format!("{key}-yes"), json!({}))]}),
        )
    };
    check(
        json!([node("first", "yes"), node("second", "no"), fake("after", json!({"output": "done"}))]),
        json!({}),
        r#"
first resolved {"do":"branch","to":"yes"} -> yes
first-yes resolved {}
second resolved {"do":"branch","to":"no"} -> no
after resolved "done"
= resolved"#,
    );
}

#[test]
fn a_branch_the_type_does_not_declare_is_a_node_error() {
    check(
        json!([fake("a", json!({"do": "branch", "to": "maybe"})), fake("never", json!({}))]),
        json!({}),
        r#"
a error {"do":"branch","to":"maybe"} -> end: node picked branch "maybe", which its type "fake" does not declare
= error"#,
    );
}

#[test]
fn a_response_answers_once_and_ends_unless_told_to_keep_running() {
    check(
        json!([
            fake("first", json!({"do": "respond", "body": "one", "keepRunning": true, "output": null})),
            fake("second", json!({"do": "respond", "body": "two", "output": null})),
            fake("never", json!({})),
        ]),
        json!({}),
        r#"
first resolved null
second resolved null -> end
= resolved
reply 200 one (goes on)"#,
    );
}

#[test]
fn node_failures_end_the_execution_with_their_status() {
    check(
        json!([fake("a", json!({"do": "error", "message": "bad input"})), fake("never", json!({}))]),
        json!({}),
        "a error null -> end: bad input\n= error",
    );
    check(
        json!([fake("a", json!({"do": "timeout"}))]),
        json!({}),
        "a aborted null -> end: node ran past its time budget of 1s\n= aborted",
    );
    check(
        json!([fake("a", json!({"do": "end", "status": "failed", "output": null})), fake("never", json!({}))]),
        json!({}),
        "a failed null -> end\n= failed",
    );
}

#[test]
fn a_loop_runs_its_body_once_per_item_with_its_scope() {
    let looped = with_branches(
        json!({"key": "each", "type": "loop", "config": {"items": "{{$context.body.items}}"}}),
        json!({"body": [fake("item", json!({"output": "{{$scopes.each.sequence}}/{{$scopes.each.length}}: {{$scopes.each.item}}"}))]}),
    );
    check(
        json!([looped, fake("after", json!({"output": "{{$jobsMapByNodeKey.each.length}}"}))]),
        json!({"body": {"items": ["x", "y"]}}),
        r#"
each resolved {"items":["x","y"]} -> body
item resolved "1/2: x"
item resolved "2/2: y"
after resolved 2
= resolved"#,
    );
}

#[test]
fn the_job_limit_ends_the_execution_and_names_itself() {
    let definition = json!({"key": "test", "sync": true, "options": {"maxJobs": 2},
        "nodes": [fake("a", json!({})), fake("b", json!({})), fake("c", json!({}))]});
    check_with(
        definition,
        json!({}),
        Watcher::default(),
        r#"
a resolved {}
b resolved {}
c error null -> end: execution exceeded options.maxJobs (2)
= error: execution exceeded options.maxJobs (2)"#,
    );
}

#[test]
fn an_interruption_stops_the_execution_before_the_next_node() {
    let watcher = Watcher { stop_before_call: Some(1), ..Watcher::default() };
    check_with(
        json!({"key": "test", "sync": true, "nodes": [fake("a", json!({})), fake("b", json!({}))]}),
        json!({}),
        watcher,
        "a resolved {}\n= canceled",
    );
}

#[test]
fn a_delay_waits_until_its_time_and_a_resumed_run_replays_what_ran() {
    let plan = plan(json!({"key": "test", "sync": false, "nodes": [
        {"key": "before", "type": "quiet", "config": {"output": 1}},
        {"key": "wait", "type": "delay", "config": {"ms": 60_000}},
        {"key": "after", "type": "quiet", "config": {"output": "{{$jobsMapByNodeKey.before}}"}},
    ]}));
    let runner = FakeRunner::default();
    let clock = ManualClock::at(START);
    let executor = Executor { runner: &runner, clock: &clock };
    let mut execution = new_execution(json!({}));
    let mut watcher = Watcher::default();

    let ran = executor.run(&plan, &mut execution, &mut watcher);
    let waiting = "before resolved 1\nwait pending {\"durationMs\":60000}\n= started until 2026-01-01T00:01:00.000Z";
    assert_eq!(trace(&execution, &ran, &watcher), waiting);

    clock.advance(Duration::from_secs(59));
    let ran = executor.run(&plan, &mut execution, &mut watcher);
    assert_eq!(trace(&execution, &ran, &watcher), waiting, "a minute has not passed");

    clock.advance(Duration::from_secs(1));
    let ran = executor.run(&plan, &mut execution, &mut watcher);
    assert_eq!(
        trace(&execution, &ran, &watcher),
        "before resolved 1\nwait resolved {\"durationMs\":60000}\nafter resolved 1\n= resolved"
    );
    assert_eq!(runner.calls(), ["before", "wait", "after"], "replayed jobs are not called again");
    assert_eq!(execution.jobs[1].finished_at, Timestamp(START.0 + 60_000), "the delay ends when the clock says");
}
