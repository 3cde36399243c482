//! The admin API over HTTP: workflows, executions, parse, plugins, health, auth.

use hookflow_tests::http::{self, HttpResponse};
use serde_json::{Value, json};

use crate::util::TestServer;

const TOKEN: &str = "s3cret-admin-token";

fn call(server: &TestServer, method: &str, path: &str, body: Option<&Value>) -> HttpResponse {
    let bearer = format!("Bearer {TOKEN}");
    let mut headers = vec![("Authorization", bearer.as_str())];
    let body = body.map(Value::to_string).unwrap_or_default();
    if !body.is_empty() {
        headers.push(("Content-Type", "application/json"));
    }
    http::request(server.address, method, path, &headers, body.as_bytes())
}

fn with_token() -> TestServer {
    TestServer::start(&[], |config| config.admin_token = Some(TOKEN.into()))
}

fn guarded(title: &str) -> Value {
    json!({"title": title, "sync": true,
           "trigger": {"basicAuth": {"username": "shop", "password": "pw"}},
           "nodes": [{"key": "r", "type": "response", "config": {"body": title}}]})
}

#[test]
fn health_probes_need_no_token() {
    let server = with_token();
    assert_eq!(http::request(server.address, "GET", "/healthz", &[], b"").status, 200);
    let ready = http::request(server.address, "GET", "/readyz", &[], b"");
    assert_eq!((ready.status, ready.json()["status"].clone()), (200, json!("ready")));
}

#[test]
fn the_admin_api_needs_its_token() {
    let server = with_token();
    let none = http::request(server.address, "GET", "/api/workflows", &[], b"");
    assert_eq!((none.status, none.error_code()), (401, "unauthorized".to_string()));
    let wrong = http::request(server.address, "GET", "/api/workflows", &[("Authorization", "Bearer nope")], b"");
    assert_eq!(wrong.status, 401);
    assert_eq!(call(&server, "GET", "/api/workflows", None).status, 200);

    // Without a token the API answers loopback clients (this test is one).
    let open = TestServer::start(&[], |_| {});
    assert_eq!(http::request(open.address, "GET", "/api/workflows", &[], b"").status, 200);
}

#[test]
fn workflow_lifecycle() {
    let server = with_token();
    let created = call(&server, "POST", "/api/workflows", Some(&guarded("v1")));
    assert_eq!(created.status, 201, "{}", created.text());
    let workflow = created.json();
    let key = workflow["key"].as_str().unwrap().to_string();
    assert_eq!(key.len(), 16, "a generated key");
    assert!(key.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_lowercase()));
    assert_eq!(workflow["url"], json!(format!("http://{}/api/webhook:trigger/{key}", server.address)));
    assert_eq!(workflow["version"], json!(1));
    assert_eq!(workflow["trigger"]["basicAuth"]["password"], json!("********"), "secrets are masked");
    assert!(workflow["createdAt"].is_string());

    let webhook = |auth: &str| server.post(&key, &[("Authorization", auth)], b"");
    let credentials = "Basic c2hvcDpwdw=="; // shop:pw
    assert_eq!(webhook(credentials).text(), "v1");

    let duplicate = call(&server, "POST", "/api/workflows", Some(&json!({"key": key, "sync": true})));
    assert_eq!((duplicate.status, duplicate.error_code()), (409, "conflict".to_string()));
    let invalid = call(&server, "POST", "/api/workflows", Some(&json!({"nodes": [{"key": "a", "type": "nonesuch"}]})));
    assert_eq!((invalid.status, invalid.error_code()), (422, "validation_failed".to_string()));
    assert_eq!(invalid.json()["error"]["faults"][0]["path"], json!("nodes[0].type"));

    // A replacement that sends the masked password back keeps the stored one.
    let mut replacement = call(&server, "GET", &format!("/api/workflows/{key}"), None).json();
    replacement["nodes"][0]["config"]["body"] = json!("v2");
    let replaced = call(&server, "PUT", &format!("/api/workflows/{key}"), Some(&replacement));
    assert_eq!(replaced.status, 200, "{}", replaced.text());
    assert_eq!(replaced.json()["version"], json!(2));
    assert_eq!(webhook(credentials).text(), "v2", "the old password still works");

    assert_eq!(call(&server, "POST", &format!("/api/workflows/{key}/disable"), None).json()["enabled"], json!(false));
    assert_eq!(webhook(credentials).status, 404);
    assert_eq!(call(&server, "POST", &format!("/api/workflows/{key}/enable"), None).status, 200);
    assert_eq!(webhook(credentials).status, 200);

    assert_eq!(call(&server, "DELETE", &format!("/api/workflows/{key}"), None).status, 204);
    assert_eq!(call(&server, "GET", &format!("/api/workflows/{key}"), None).status, 404);
    assert_eq!(call(&server, "DELETE", &format!("/api/workflows/{key}"), None).status, 404);
    assert_eq!(webhook(credentials).status, 404);
}

#[test]
fn lists_are_paginated() {
    let server = with_token();
    for n in 0..3 {
        let created = call(&server, "POST", "/api/workflows", Some(&json!({"key": format!("wf-{n}"), "nodes": []})));
        assert_eq!(created.status, 201);
    }
    let first = call(&server, "GET", "/api/workflows?limit=2", None).json();
    let keys: Vec<_> = first["items"].as_array().unwrap().iter().map(|w| w["key"].clone()).collect();
    assert_eq!(keys, [json!("wf-0"), json!("wf-1")]);
    let cursor = first["nextCursor"].as_str().unwrap();
    let second = call(&server, "GET", &format!("/api/workflows?limit=2&cursor={cursor}"), None).json();
    assert_eq!(second["items"][0]["key"], json!("wf-2"));
    assert_eq!(second["nextCursor"], Value::Null);

    let ids: Vec<String> = (0..3)
        .map(|_| {
            let response = server.post("wf-0", &[], b"");
            response.header("x-hookflow-execution").unwrap().to_string()
        })
        .collect();
    for id in &ids {
        server.finished_execution(id);
    }
    let page = call(&server, "GET", "/api/executions?workflow=wf-0&status=resolved&limit=2", None).json();
    let listed: Vec<_> =
        page["items"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(listed, [ids[2].clone(), ids[1].clone()], "newest first");
    let cursor = page["nextCursor"].as_str().unwrap();
    let rest = call(&server, "GET", &format!("/api/executions?workflow=wf-0&limit=2&cursor={cursor}"), None).json();
    assert_eq!(rest["items"][0]["id"], json!(ids[0]));
    assert_eq!(rest["nextCursor"], Value::Null);
    assert_eq!(call(&server, "GET", "/api/executions?status=failed", None).json()["items"], json!([]));
    assert_eq!(call(&server, "GET", "/api/executions?status=bogus", None).status, 422);
}

/// A sync execution's record is written just after its caller is answered; an admin read that
/// comes right after the answer still finds it (the read waits for earlier writes to commit).
#[test]
fn a_sync_execution_is_found_as_soon_as_its_caller_has_the_answer() {
    let server = TestServer::start(&[], |config| {
        config.demo = true;
        config.admin_token = Some(TOKEN.into());
    });
    for order in 0..20 {
        let response = server.post_json("demo-payment", &json!({"status": "paid", "order": order}));
        assert_eq!(response.status, 200);
        let id = response.header("x-hookflow-execution").unwrap().to_string();
        let shown = call(&server, "GET", &format!("/api/executions/{id}"), None);
        assert_eq!(shown.status, 200, "execution {id} not found right after its answer");
        assert_eq!(shown.json()["status"], json!("resolved"));
        let listed = call(&server, "GET", "/api/executions?workflow=demo-payment&limit=1", None).json();
        assert_eq!(listed["items"][0]["id"], json!(id), "the newest execution listed first");
    }
}

#[test]
fn executions_show_their_jobs() {
    let server = TestServer::start(&[], |config| {
        config.demo = true;
        config.admin_token = Some(TOKEN.into());
    });
    let response = server.post_json("demo-payment", &json!({"status": "paid", "order": 9}));
    let id = response.header("x-hookflow-execution").unwrap().to_string();
    server.finished_execution(&id);
    let execution = call(&server, "GET", &format!("/api/executions/{id}"), None).json();
    assert_eq!(execution["status"], json!("resolved"));
    assert_eq!(execution["workflow"], json!("demo-payment"));
    let job = &execution["jobs"][1];
    assert_eq!(job["nodeKey"], json!("ok"));
    assert_eq!(job["input"]["body"]["order"], json!(9), "the resolved input");
    assert!(job["startedAt"].is_string() && job["finishedAt"].is_string());
    assert_eq!(call(&server, "GET", "/api/executions/nonesuch", None).status, 404);
}

#[test]
fn replacing_a_workflow_keeps_the_running_execution_on_its_version() {
    let server = with_token();
    let v1 = json!({"key": "versioned", "sync": false, "nodes": [
        {"key": "v1step", "type": "misbehave", "config": {"mode": "busy", "ms": 800}}]});
    assert_eq!(call(&server, "POST", "/api/workflows", Some(&v1)).status, 201);
    let running = server.post("versioned", &[], b"").header("x-hookflow-execution").unwrap().to_string();
    let v2 =
        json!({"key": "versioned", "sync": false, "nodes": [{"key": "v2step", "type": "condition", "config": {}}]});
    assert_eq!(call(&server, "PUT", "/api/workflows/versioned", Some(&v2)).json()["version"], json!(2));
    let later = server.post("versioned", &[], b"").header("x-hookflow-execution").unwrap().to_string();

    let old = server.finished_execution(&running);
    assert_eq!((old.version, old.jobs[0].node_key.as_str()), (1, "v1step"));
    let new = server.finished_execution(&later);
    assert_eq!((new.version, new.jobs[0].node_key.as_str()), (2, "v2step"));
}

#[test]
fn parse_from_example_and_plugins() {
    let server = with_token();
    let query = call(
        &server,
        "POST",
        "/api/parse/query",
        Some(&json!({"example": "http://localhost:13000/api/webhook:trigger/x?query[0][a]=1&query[1]=x"})),
    );
    assert_eq!(
        query.json(),
        json!({"paths": [{"key": "query"}, {"key": "query[0]"}, {"key": "query[0].a"}, {"key": "query[1]"}]})
    );
    let body = call(&server, "POST", "/api/parse/body", Some(&json!({"example": {"a": 1, "b": {"c": 2}}})));
    assert_eq!(body.json(), json!({"paths": [{"key": "a"}, {"key": "b"}, {"key": "b.c"}]}));
    let bad = http::request(
        server.address,
        "POST",
        "/api/parse/body",
        &[("Authorization", &format!("Bearer {TOKEN}"))],
        b"{oops",
    );
    assert_eq!(bad.status, 400);

    let plugins = call(&server, "GET", "/api/plugins", None).json();
    let names: Vec<_> = plugins["items"].as_array().unwrap().iter().map(|p| p["name"].clone()).collect();
    let expected = ["condition", "delay", "end", "http-request", "json-query", "loop", "misbehave", "response", "set"];
    assert_eq!(names, expected.map(|name| json!(name)));
    assert_eq!(plugins["items"][0]["branches"], json!(["true", "false"]));
    assert_eq!(plugins["items"][0]["digest"].as_str().unwrap().len(), 64);
}

#[test]
fn cancel_and_rerun_executions() {
    let two_steps = json!({"key": "two-steps", "sync": false, "nodes": [
        {"key": "first", "type": "misbehave", "config": {"mode": "busy", "ms": 3000}},
        {"key": "second", "type": "condition", "config": {}}]});
    let server = TestServer::start(&[two_steps], |config| {
        config.admin_token = Some(TOKEN.into());
        config.host.time_budget = std::time::Duration::from_secs(10);
    });

    // A running execution stops before its next node.
    let running = server.post("two-steps", &[], b"").header("x-hookflow-execution").unwrap().to_string();
    server.wait_for_node_calls(1);
    let accepted = call(&server, "POST", &format!("/api/executions/{running}/cancel"), None);
    assert_eq!(accepted.status, 202, "{}", accepted.text());
    let canceled = server.finished_execution(&running);
    assert_eq!(canceled.status, hookflow_workflow::ExecutionStatus::Canceled);
    assert_eq!(canceled.jobs.len(), 1, "the second node never ran");
    let again = call(&server, "POST", &format!("/api/executions/{running}/cancel"), None);
    assert_eq!((again.status, again.error_code()), (409, "conflict".to_string()));

    // A rerun is a new execution on the same trigger data.
    let rerun = call(&server, "POST", &format!("/api/executions/{running}/rerun"), None);
    assert_eq!(rerun.status, 201, "{}", rerun.text());
    let new_id = rerun.json()["id"].as_str().unwrap().to_string();
    assert_ne!(new_id, running);
    let new = server.finished_execution(&new_id);
    assert_eq!(new.status, hookflow_workflow::ExecutionStatus::Resolved);
    assert_eq!(new.trigger, canceled.trigger);
    assert_eq!(call(&server, "POST", "/api/executions/nonesuch/rerun", None).status, 404);
}

#[test]
fn a_queued_execution_is_canceled_at_once() {
    let server = TestServer::start(&[], |config| {
        config.demo = true;
        config.admin_token = Some(TOKEN.into());
        config.dispatch.workers = 0;
    });
    let id = server
        .post_json("demo-payment-async", &json!({"status": "paid"}))
        .header("x-hookflow-execution")
        .unwrap()
        .to_string();
    let canceled = call(&server, "POST", &format!("/api/executions/{id}/cancel"), None);
    assert_eq!((canceled.status, canceled.json()["status"].clone()), (200, json!("canceled")));
    let data = server.stop();
    let restarted = TestServer::start_in(data, |config| {
        config.demo = true;
        config.dispatch.workers = 1;
    });
    // One worker takes the queue in order: once a later execution has finished, a queued
    // earlier one would have been taken first.
    let later = restarted
        .post_json("demo-payment-async", &json!({"status": "paid"}))
        .header("x-hookflow-execution")
        .unwrap()
        .to_string();
    restarted.finished_execution(&later);
    let canceled = restarted.execution(&id).unwrap();
    assert_eq!(canceled.status, hookflow_workflow::ExecutionStatus::Canceled, "it never runs");
    assert!(canceled.jobs.is_empty(), "{:?}", canceled.jobs);
    assert!(!hookflow_tests::block_on(restarted.server().store().is_queued(&id)).unwrap());
}

#[test]
fn plugins_are_uploaded_used_and_removed() {
    let server = with_token();
    let upload = |name: &str, bytes: &[u8]| {
        let bearer = format!("Bearer {TOKEN}");
        http::request(
            server.address,
            "PUT",
            &format!("/api/plugins/{name}"),
            &[("Authorization", bearer.as_str())],
            bytes,
        )
    };
    let component = hookflow_tests::fixture("misbehave");
    let created = upload("scorer", component);
    assert_eq!(created.status, 201, "{}", created.text());
    assert_eq!(created.json()["name"], json!("scorer"));
    assert_eq!(created.json()["digest"].as_str().unwrap().len(), 64);
    assert_eq!(upload("scorer", component).status, 200, "a re-upload replaces");

    let junk = upload("junk", b"\0asm but not really");
    assert_eq!((junk.status, junk.error_code()), (422, "validation_failed".to_string()));
    let other = upload("greeter", hookflow_tests::fixture("other-world"));
    assert_eq!(other.status, 422);
    assert!(other.json()["error"]["message"].as_str().unwrap().contains("does not target the hookflow:node/node"));
    assert_eq!(upload("condition", component).status, 409);

    let workflow = json!({"key": "scored", "sync": true, "nodes": [
        {"key": "s", "type": "scorer", "config": {}},
        {"key": "r", "type": "response", "config": {"body": "scored"}}]});
    assert_eq!(call(&server, "POST", "/api/workflows", Some(&workflow)).status, 201);
    assert_eq!(server.post("scored", &[], b"").text(), "scored", "the uploaded node runs");

    let in_use = call(&server, "DELETE", "/api/plugins/scorer", None);
    assert_eq!(in_use.status, 409);
    assert!(in_use.json()["error"]["message"].as_str().unwrap().contains("scored"));
    assert_eq!(call(&server, "DELETE", "/api/plugins/response", None).status, 409, "built-ins stay");

    // Kept across a restart.
    let data = server.stop();
    let server = TestServer::start_in(data, |config| config.admin_token = Some(TOKEN.into()));
    let names: Vec<Value> = call(&server, "GET", "/api/plugins", None).json()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].clone())
        .collect();
    assert!(names.contains(&json!("scorer")), "{names:?}");

    assert_eq!(call(&server, "POST", "/api/workflows/scored/disable", None).status, 200);
    assert_eq!(call(&server, "DELETE", "/api/plugins/scorer", None).status, 204);
    assert_eq!(call(&server, "DELETE", "/api/plugins/scorer", None).status, 404);
}

#[test]
fn executions_are_deleted_once_finished_when_the_workflow_says_so() {
    let forgetful = json!({"key": "forgetful", "sync": true, "options": {"deleteExecutionOnStatus": ["resolved"]},
        "nodes": [{"key": "c", "type": "condition", "config": {"rejectOnFalse": true,
            "calculation": {"group": {"calculations": [{"calculator": "equal", "operands": ["{{$context.body.ok}}", true]}]}}}}]});
    let server = TestServer::start(&[forgetful], |_| {});
    let resolved = server.post_json("forgetful", &json!({"ok": true}));
    assert_eq!(resolved.status, 200);
    let failed = server.post_json("forgetful", &json!({"ok": false}));
    assert_eq!(failed.status, 500);
    let failed_id = failed.header("x-hookflow-execution").unwrap();
    assert_eq!(server.finished_execution(failed_id).status, hookflow_workflow::ExecutionStatus::Failed, "kept");
    // Records are written in order: once the later one is visible, the earlier one is settled.
    let resolved_id = resolved.header("x-hookflow-execution").unwrap();
    assert!(server.execution(resolved_id).is_none(), "a resolved execution is deleted");
}

#[test]
fn workflow_and_plugin_files_are_reloaded_without_a_restart() {
    let workflows = crate::util::fresh_dir("hot-workflows");
    let plugins = crate::util::fresh_dir("hot-plugins");
    let hot = |body: &str| json!({"key": "hot", "sync": true, "nodes": [{"key": "r", "type": "response", "config": {"body": body}}]});
    std::fs::write(workflows.join("hot.json"), hot("one").to_string()).unwrap();
    let (w, p) = (workflows.clone(), plugins.clone());
    let server = TestServer::start(&[], move |config| {
        config.workflows_dir = Some(w);
        config.plugins_dir = Some(p);
    });
    assert_eq!(server.post("hot", &[], b"").text(), "one");
    let eventually_at = |key: &str, expected: &str| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        loop {
            let text = server.post(key, &[], b"").text();
            if text == expected {
                return;
            }
            assert!(std::time::Instant::now() < deadline, "still {text:?}, expected {expected:?}");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    };
    let eventually = |expected: &str| eventually_at("hot", expected);

    std::fs::write(workflows.join("hot.json"), hot("two").to_string()).unwrap();
    eventually("two");

    // A broken file is refused; the previous version keeps serving. A file written after it is
    // served once the watcher has looked at both.
    std::fs::write(workflows.join("hot.json"), "{ not json").unwrap();
    let marker =
        json!({"key": "marker", "sync": true, "nodes": [{"key": "r", "type": "response", "config": {"body": "seen"}}]});
    std::fs::write(workflows.join("marker.json"), marker.to_string()).unwrap();
    eventually_at("marker", "seen");
    assert_eq!(server.post("hot", &[], b"").text(), "two");

    // A new node type and a workflow that uses it, dropped in together.
    std::fs::write(plugins.join("late.wasm"), hookflow_tests::fixture("misbehave")).unwrap();
    let uses_late = json!({"key": "hot", "sync": true, "nodes": [
        {"key": "l", "type": "late", "config": {}},
        {"key": "r", "type": "response", "config": {"body": "three"}}]});
    std::fs::write(workflows.join("hot.json"), uses_late.to_string()).unwrap();
    eventually("three");
}

#[test]
fn secrets_never_leave_the_admin_api() {
    const PASSWORD: &str = "basic-pass-7f3a";
    const HUB: [&str; 2] = ["hub-secret-old-91c2", "hub-secret-new-44d8"];
    const STANDARD: &str = "whsec_c3RhbmRhcmQtd2ViaG9va3Mtc2VjcmV0";
    const STRIPE: &str = "whsec_stripe_5e1b";
    const API_KEY: &str = "sk_live_value_0b9e";
    let every_secret = [PASSWORD, HUB[0], HUB[1], STANDARD, STRIPE, API_KEY];
    let hub = |title: &str| {
        json!({"key": "hub", "title": title, "sync": true,
               "trigger": {"basicAuth": {"username": "u", "password": PASSWORD},
                           "signature": {"type": "hmac-sha256", "header": "X-Sig", "secrets": HUB}},
               "nodes": [{"key": "r", "type": "response", "config": {"body": "ok"}}]})
    };
    let standard = json!({"key": "standard", "sync": true, "trigger": {"signature": {"type": "standard-webhooks", "secrets": [STANDARD]}},
                          "nodes": [{"key": "r", "type": "response", "config": {"body": "ok"}}]});
    let stripe = json!({"key": "stripe", "sync": true, "trigger": {"signature": {"type": "stripe", "secrets": [STRIPE]}},
                        "nodes": [{"key": "r", "type": "response", "config": {"body": "ok"}}]});
    let uses = json!({"key": "uses", "sync": false, "nodes": [
        {"key": "s", "type": "set", "config": {"values": {"auth": "Bearer {{$secrets.API_KEY}}"}}}]});
    let server = TestServer::start(&[], |config| {
        config.admin_token = Some(TOKEN.into());
        config.host.secrets = std::sync::Arc::new(hookflow_workflow::Secrets::new([("API_KEY", API_KEY)]).unwrap());
    });

    let mut answers: Vec<(String, HttpResponse)> = Vec::new();
    let mut ask = |method: &str, path: &str, body: Option<&Value>| {
        let answer = call(&server, method, path, body);
        assert!(answer.status < 300, "{method} {path}: {} {}", answer.status, answer.text());
        answers.push((format!("{method} {path}"), answer.clone()));
        answer
    };
    for definition in [hub("one"), standard, stripe, uses] {
        ask("POST", "/api/workflows", Some(&definition));
    }
    ask("PUT", "/api/workflows/hub", Some(&hub("two")));
    ask("POST", "/api/workflows/hub/versions/1/restore", None);
    ask("POST", "/api/workflows/hub/disable", None);
    ask("POST", "/api/workflows/hub/enable", None);
    let id = server.post("uses", &[], b"").header("x-hookflow-execution").unwrap().to_string();
    let ran = server.finished_execution(&id);
    assert_eq!(ran.jobs.len(), 1, "{ran:?}");
    let rerun = ask("POST", &format!("/api/executions/{id}/rerun"), None);
    server.finished_execution(rerun.json()["id"].as_str().unwrap());
    let shown = ask("GET", "/api/workflows/hub", None).json();
    for key in ["standard", "stripe"] {
        ask("GET", &format!("/api/workflows/{key}"), None);
        ask("GET", &format!("/api/workflows/{key}/versions"), None);
    }
    ask("GET", "/api/workflows", None);
    ask("GET", "/api/workflows/hub/versions", None);
    ask("GET", "/api/executions", None);
    ask("GET", "/api/executions?workflow=uses", None);
    let execution = ask("GET", &format!("/api/executions/{id}"), None).json();

    for (request, answer) in &answers {
        for secret in every_secret {
            assert!(!answer.text().contains(secret), "{request} shows {secret:?}: {}", answer.text());
        }
    }
    // Masked where they are, not dropped.
    assert_eq!(shown["trigger"]["basicAuth"]["password"], "********");
    assert_eq!(shown["trigger"]["signature"]["secrets"], json!(["********", "********"]));
    assert_eq!(execution["jobs"][0]["output"]["auth"], "Bearer ********");
}
