//! What a run returns: the node's output and the directive that tells the engine what to do next.

use serde::Serialize;
use serde_json::Value;

use crate::bindings;

/// How an execution ends when a node ends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndStatus {
    /// It succeeded.
    Resolved,
    /// It failed on purpose.
    Failed,
}

/// An HTTP answer for the caller of a sync workflow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// Status code, 100–599.
    pub status: u16,
    /// Headers, in order.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl Reply {
    /// A JSON answer (`Content-Type: application/json`).
    pub fn json(status: u16, body: &impl Serialize) -> Reply {
        let body = serde_json::to_vec(body).unwrap_or_else(|_| b"null".to_vec());
        Reply { status, headers: vec![("content-type".into(), "application/json".into())], body }
    }

    /// A text answer (`Content-Type: text/plain; charset=utf-8`).
    pub fn text(status: u16, body: &str) -> Reply {
        Reply {
            status,
            headers: vec![("content-type".into(), "text/plain; charset=utf-8".into())],
            body: body.as_bytes().to_vec(),
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.into(), value.into()));
        self
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Next {
    Continue,
    Branch(String),
    Respond(Reply),
    RespondAndContinue(Reply),
    End(EndStatus),
}

/// A successful run.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    output: Value,
    next: Next,
}

impl Outcome {
    /// Go on with the next node; the output is `null` until [`Outcome::with_output`].
    pub fn next() -> Outcome {
        Outcome { output: Value::Null, next: Next::Continue }
    }

    /// Go on with the next node, with this output.
    pub fn continue_with(output: &impl Serialize) -> Outcome {
        Outcome::next().with_output(output)
    }

    /// Run the branch with this name (one the node declared).
    pub fn branch(name: &str) -> Outcome {
        Outcome { output: Value::Null, next: Next::Branch(name.into()) }
    }

    /// Answer the caller and end the execution (resolved). Only nodes that declare `may_respond`.
    pub fn respond(reply: Reply) -> Outcome {
        Outcome { output: Value::Null, next: Next::Respond(reply) }
    }

    /// Answer the caller and go on with the next node. Only nodes that declare `may_respond`.
    pub fn respond_and_continue(reply: Reply) -> Outcome {
        Outcome { output: Value::Null, next: Next::RespondAndContinue(reply) }
    }

    /// End the execution with this status.
    pub fn end(status: EndStatus) -> Outcome {
        Outcome { output: Value::Null, next: Next::End(status) }
    }

    /// Sets the output later nodes see as `$jobsMapByNodeKey.<key>`.
    pub fn with_output(mut self, output: &impl Serialize) -> Outcome {
        self.output = serde_json::to_value(output).unwrap_or(Value::Null);
        self
    }

    /// The output.
    pub fn output(&self) -> &Value {
        &self.output
    }

    /// The branch picked, if the outcome is a branch.
    pub fn picked_branch(&self) -> Option<&str> {
        match &self.next {
            Next::Branch(name) => Some(name),
            _ => None,
        }
    }

    /// The end status, if the outcome ends the execution.
    pub fn end_status(&self) -> Option<EndStatus> {
        match self.next {
            Next::End(status) => Some(status),
            Next::Respond(_) => Some(EndStatus::Resolved),
            _ => None,
        }
    }

    /// The reply, if the outcome answers the caller.
    pub fn reply(&self) -> Option<&Reply> {
        match &self.next {
            Next::Respond(reply) | Next::RespondAndContinue(reply) => Some(reply),
            _ => None,
        }
    }

    pub(crate) fn into_wit(self) -> bindings::Outcome {
        let reply = |reply: Reply| bindings::Reply {
            status: reply.status,
            headers: reply.headers.into_iter().map(|(name, value)| bindings::Header { name, value }).collect(),
            body: reply.body,
        };
        let directive = match self.next {
            Next::Continue => bindings::Directive::Continue,
            Next::Branch(name) => bindings::Directive::Branch(name),
            Next::Respond(r) => bindings::Directive::Respond(reply(r)),
            Next::RespondAndContinue(r) => bindings::Directive::RespondAndContinue(reply(r)),
            Next::End(EndStatus::Resolved) => bindings::Directive::End(bindings::EndStatus::Resolved),
            Next::End(EndStatus::Failed) => bindings::Directive::End(bindings::EndStatus::Failed),
        };
        bindings::Outcome { output: self.output.to_string(), directive }
    }
}
