//! Workflows: the definition model, validation into a runnable plan, templates, execution
//! records and the executor. Pure logic: nodes are called through [`NodeRunner`]; nothing here
//! touches the network, the disk or wasmtime.

mod clock;
mod example;
mod execution;
mod executor;
#[cfg(test)]
mod fake;
mod limits;
mod model;
mod node;
mod plan;
mod retry;
mod secrets;
pub mod template;
pub mod timestamp;
mod trial;

pub use clock::{Clock, ManualClock, SystemClock};
pub use example::example_paths;
pub use execution::{Execution, ExecutionIds, ExecutionStatus, FIRST_ATTEMPT, Job, JobStatus, Next, TriggerText};
pub use executor::{Executor, Observer, Ran, caller_reply, execute};
pub use limits::{ExecutionLimits, MAX_NESTING, MAX_RECORDED_VALUE, nesting_of, nests_deeper_than, recorded};
pub use model::{
    ApiKey, BasicAuth, Handshake, HeaderSpec, Idempotency, Node, Options, RateLimit, RequestSpec, Retry, SECRET_MASK,
    SecretSlot, Signature, SignatureEncoding, Trigger, TriggerResponse, Variable, Workflow, parse_address_block,
    parse_duration, standard_webhooks_key, standard_webhooks_public_key,
};
pub use node::{
    CallContext, Directive, EndStatus, NodeCall, NodeFailure, NodeInfo, NodeOutcome, NodeRunner, OwnedContext, Reply,
};
pub use plan::{
    Fault, NodeKind, Plan, PlanNode, ValidationError, compile, is_header_name, is_header_value, is_valid_key,
    parse_workflow,
};
pub use retry::{RetryPolicy, downstream_retry_after, is_retryable};
pub use secrets::{SecretError, Secrets};
pub use trial::{Sample, Trial, TrialDirective, try_node};
