//! Validation against a fake runner's node types: each definition and the faults it is refused
//! with (`faults`), every one named by its JSON path.
#![allow(clippy::unwrap_used)]

use serde_json::{Value, json};

use crate::fake::{FakeRunner, fake, with_branches};
use crate::{ExecutionLimits, compile, parse_workflow};

#[test]
fn each_fault_is_named_by_its_path() {
    let faults = |definition: Value| {
        let workflow = parse_workflow(&definition.to_string()).unwrap();
        compile(&workflow, &FakeRunner::default()).err().unwrap().to_string()
    };
    assert_eq!(
        faults(json!({"sync": true, "nodes": [fake("a", json!({})), {"key": "a", "type": "nope", "config": {}}]})),
        r#"nodes[1].key: duplicate node key "a" (first used at nodes[0].key); nodes[1].type: unknown node type "nope""#
    );
    assert_eq!(
        faults(json!({"sync": false, "nodes": [fake("a", json!({}))]})),
        r#"nodes[0].type: a "fake" node answers the caller, but this workflow is asynchronous: its caller is answered by trigger.response"#
    );
    assert_eq!(
        faults(json!({"sync": true, "nodes": [with_branches(fake("a", json!({})), json!({"maybe": []}))]})),
        r#"nodes[0].branches.maybe: node type "fake" has no branch "maybe" (it declares: yes, no)"#
    );
    let limits = ExecutionLimits::default();
    assert_eq!(limits.max_jobs, 10_000, "the default a plan starts from");
}
