//! One node run on its own, on a sample of what it may read (the console's and the CLI's "test
//! this node"): its config resolved against the sample, one call through the [`NodeRunner`], and
//! what the node answered — its output and its directive — without an execution or a record.

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::clock::Clock;
use crate::execution::JobStatus;
use crate::node::{CallContext, Directive, EndStatus, NodeCall, NodeFailure, NodeRunner};
use crate::secrets::Secrets;
use crate::template::{Scope, Template};

/// What a node is tried on: the trigger data and the outputs of the nodes before it.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    /// `$context`: `{"headers", "query", "body"}`.
    pub trigger: Value,
    /// `$jobsMapByNodeKey`: earlier nodes' outputs by key.
    pub jobs: Map<String, Value>,
    /// `$scopes`: `{"<loop key>": {"item", "index", "length"}}` of enclosing loops.
    pub scopes: Map<String, Value>,
}

/// What a tried node did.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Trial {
    /// How the call ended, as its job would: `resolved`, `failed` (it ended the execution
    /// `failed`), `error` or `aborted`.
    pub status: JobStatus,
    /// Its config with templates resolved against the sample (secrets masked).
    pub config: Value,
    /// What it output (secrets masked).
    pub output: Value,
    /// What it told the engine to do next; absent when the call failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub directive: Option<TrialDirective>,
    /// Why the call failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A node's directive, as a trial shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum TrialDirective {
    /// Go on with the next node.
    Continue,
    /// Run this branch.
    Branch {
        /// The branch's name.
        branch: String,
    },
    /// Answer the caller.
    Respond {
        /// The status code.
        status: u16,
        /// The headers, in order.
        headers: Vec<(String, String)>,
        /// The body, as text (lossy for bytes that are not UTF-8).
        body: String,
        /// Whether the execution goes on after answering.
        #[serde(rename = "continue")]
        keep_running: bool,
    },
    /// End the execution.
    End {
        /// `resolved` or `failed`.
        status: &'static str,
    },
}

/// Runs one node of type `node_type` with `config` on `sample`, once.
pub fn try_node(
    runner: &(impl NodeRunner + ?Sized),
    clock: &dyn Clock,
    secrets: &Secrets,
    node: (&str, &str),
    config: &Template,
    sample: &Sample,
) -> Trial {
    let (node_key, node_type) = node;
    let system = json!({ "now": clock.now().to_string() });
    let execution = json!({ "id": "test" });
    let scope = Scope {
        context: &sample.trigger,
        jobs: &sample.jobs,
        system: &system,
        execution: &execution,
        scopes: &sample.scopes,
        secrets: secrets.values(),
    };
    let mut resolved = config.resolve(&scope);
    let call = NodeCall {
        execution_id: "test",
        node_key,
        config: &resolved.to_string(),
        context: CallContext::new(scope),
        deadline: None,
    };
    let result = runner.run(node_type, &call);
    secrets.mask_value(&mut resolved);
    Secrets::mask_credential_headers(&mut resolved);
    let (status, mut output, directive, error) = match result {
        Ok(outcome) => {
            let failed = outcome.directive == Directive::End(EndStatus::Failed);
            let status = if failed { JobStatus::Failed } else { JobStatus::Resolved };
            (status, outcome.output, Some(shown(outcome.directive)), None)
        }
        Err(NodeFailure::Error(message)) => (JobStatus::Error, Value::Null, None, Some(message)),
        Err(NodeFailure::Timeout(message)) => (JobStatus::Aborted, Value::Null, None, Some(message)),
    };
    secrets.mask_value(&mut output);
    let error = error.map(|error| secrets.mask_text(&error).unwrap_or(error));
    Trial { status, config: resolved, output, directive, error }
}

fn shown(directive: Directive) -> TrialDirective {
    match directive {
        Directive::Continue => TrialDirective::Continue,
        Directive::Branch(branch) => TrialDirective::Branch { branch },
        Directive::Respond { reply, keep_running } => TrialDirective::Respond {
            status: reply.status,
            headers: reply.headers,
            body: String::from_utf8_lossy(&reply.body).into_owned(),
            keep_running,
        },
        Directive::End(EndStatus::Resolved) => TrialDirective::End { status: "resolved" },
        Directive::End(EndStatus::Failed) => TrialDirective::End { status: "failed" },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::fake::FakeRunner;
    use crate::timestamp::Timestamp;

    #[test]
    fn a_node_is_called_once_with_its_config_resolved_against_the_sample() {
        let runner = FakeRunner::default();
        let config = Template::compile(
            &json!({"values": {"order": "{{$context.body.order}}", "n": "{{$jobsMapByNodeKey.a.n}}"}}),
            "config",
        )
        .unwrap();
        let sample = Sample {
            trigger: json!({"headers": {}, "query": {}, "body": {"order": 7}}),
            jobs: [("a".to_string(), json!({"n": 2}))].into_iter().collect(),
            scopes: Map::new(),
        };
        let trial =
            try_node(&runner, &ManualClock::at(Timestamp(0)), &Secrets::default(), ("s", "fake"), &config, &sample);
        assert_eq!(trial.status, JobStatus::Resolved);
        assert_eq!(trial.config, json!({"values": {"order": 7, "n": 2}}));
        assert_eq!(trial.directive, Some(TrialDirective::Continue));
        assert_eq!(runner.calls(), ["s"]);

        let failing = Template::compile(&json!({"do": "end", "status": "failed"}), "config").unwrap();
        let trial =
            try_node(&runner, &ManualClock::at(Timestamp(0)), &Secrets::default(), ("e", "fake"), &failing, &sample);
        assert_eq!(
            (trial.status, trial.directive),
            (JobStatus::Failed, Some(TrialDirective::End { status: "failed" }))
        );
        let broken = Template::compile(&json!({"do": "error", "message": "boom"}), "config").unwrap();
        let trial =
            try_node(&runner, &ManualClock::at(Timestamp(0)), &Secrets::default(), ("x", "fake"), &broken, &sample);
        assert_eq!((trial.status, trial.error.as_deref(), trial.directive), (JobStatus::Error, Some("boom"), None));
    }
}
