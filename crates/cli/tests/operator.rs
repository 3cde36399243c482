//! The operator's command line against a real `hookflow serve` process: every `workflow`,
//! `executions` and `plugin` command, their errors and exit codes, and JSON logs.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Serve, fresh_dir, http};

const TOKEN: &str = "operator-token";

/// Runs a client command against `serve` with the admin token in the environment.
fn cli(serve: &Serve, args: &[&str]) -> Output {
    cli_with_token(serve, TOKEN, args)
}

fn cli_with_token(serve: &Serve, token: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hookflow"))
        .args(args)
        .env("HOOKFLOW_SERVER", format!("http://{}", serve.address))
        .env("HOOKFLOW_ADMIN_TOKEN", token)
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    assert!(output.status.success(), "stderr: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn json_out(output: &Output) -> Value {
    serde_json::from_str(&stdout(output)).unwrap()
}

/// Asserts a failure (exit 1) whose message contains `expected`.
fn fails_with(output: &Output, expected: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "stderr: {stderr}");
    assert!(stderr.contains(expected), "expected {expected:?} in: {stderr}");
}

fn write(dir: &Path, name: &str, value: &Value) -> String {
    let path = dir.join(name);
    std::fs::write(&path, value.to_string()).unwrap();
    path.to_str().unwrap().to_string()
}

fn orders(body: &str) -> Value {
    json!({"key": "orders", "title": "Orders", "sync": true,
           "trigger": {"basicAuth": {"username": "shop", "password": "pw"}},
           "nodes": [{"key": "r", "type": "response", "config": {"body": body}}]})
}

fn call_orders(serve: &Serve) -> http::HttpResponse {
    // shop:pw
    http::post(serve.address, "/api/webhook:trigger/orders", &[("Authorization", "Basic c2hvcDpwdw==")], b"")
}

#[test]
fn workflows_are_managed_from_the_command_line() {
    let data = fresh_dir("operator-workflows");
    let files = fresh_dir("operator-files");
    std::fs::create_dir_all(&files).unwrap();
    let serve = Serve::start(&data, &["--admin-token", TOKEN]);

    let listed = stdout(&cli(&serve, &["workflow", "list"]));
    let header = listed.lines().next().unwrap();
    assert!(header.starts_with("KEY") && header.contains("URL"), "{listed}");
    let demo = listed.lines().find(|line| line.starts_with("demo-payment ")).unwrap();
    assert!(demo.contains(" sync ") && demo.contains("/api/webhook:trigger/demo-payment"), "{demo}");

    let added = stdout(&cli(&serve, &["workflow", "add", &write(&files, "v1.json", &orders("v1"))]));
    assert!(added.starts_with("created orders (version 1)"), "{added}");
    assert!(added.contains(&format!("POST http://{}/api/webhook:trigger/orders", serve.address)), "{added}");
    assert_eq!(call_orders(&serve).text(), "v1");
    fails_with(&cli(&serve, &["workflow", "add", &write(&files, "v1.json", &orders("v1"))]), "409 conflict");
    let invalid = json!({"nodes": [{"key": "a", "type": "nope"}]});
    fails_with(
        &cli(&serve, &["workflow", "add", &write(&files, "bad.json", &invalid)]),
        "nodes[0].type: unknown node type",
    );
    fails_with(&cli(&serve, &["workflow", "add", "/nonexistent.json"]), "cannot read /nonexistent.json");

    let shown = json_out(&cli(&serve, &["workflow", "show", "orders", "--json"]));
    assert_eq!(
        (shown["version"].clone(), shown["trigger"]["basicAuth"]["password"].clone()),
        (json!(1), json!("********"))
    );
    let human = stdout(&cli(&serve, &["workflow", "show", "orders"]));
    assert!(human.contains("auth:     basic, user shop") && human.contains("r  (response)"), "{human}");
    fails_with(&cli(&serve, &["workflow", "show", "nope"]), "404 not_found");

    // A replacement that sends the masked password back keeps the stored one.
    let mut replacement = orders("v2");
    replacement["trigger"]["basicAuth"]["password"] = json!("********");
    let replaced = stdout(&cli(&serve, &["workflow", "replace", "orders", &write(&files, "v2.json", &replacement)]));
    assert!(replaced.contains("now version 2"), "{replaced}");
    assert_eq!(call_orders(&serve).text(), "v2");

    let versions = stdout(&cli(&serve, &["workflow", "versions", "orders"]));
    let rows: Vec<&str> = versions.lines().skip(1).take(2).collect();
    assert!(rows[0].starts_with("2*") && rows[1].starts_with("1 "), "{versions}");
    let restored = stdout(&cli(&serve, &["workflow", "restore", "orders", "1"]));
    assert!(restored.contains("restored version 1 of orders as version 3"), "{restored}");
    assert_eq!(call_orders(&serve).text(), "v1", "the stored password was kept through the versions");

    stdout(&cli(&serve, &["workflow", "disable", "orders"]));
    assert_eq!(call_orders(&serve).status, 404);
    stdout(&cli(&serve, &["workflow", "enable", "orders"]));
    assert_eq!(call_orders(&serve).status, 200);
    let page = json_out(&cli(&serve, &["workflow", "list", "--json", "--limit", "1"]));
    assert_eq!(
        (page["items"][0]["key"].clone(), page["nextCursor"].clone()),
        (json!("demo-payment"), json!("demo-payment"))
    );
    stdout(&cli(&serve, &["workflow", "rm", "orders"]));
    assert_eq!(call_orders(&serve).status, 404);
    fails_with(&cli(&serve, &["workflow", "rm", "orders"]), "404 not_found");
    assert_eq!(serve.terminate(), Some(0));
}

#[test]
fn executions_are_read_rerun_and_canceled_from_the_command_line() {
    let data = fresh_dir("operator-executions");
    let serve = Serve::start(&data, &["--admin-token", TOKEN]);
    let paid = http::post(
        serve.address,
        "/api/webhook:trigger/demo-payment",
        &[("Content-Type", "application/json")],
        br#"{"status": "paid", "order": 7}"#,
    );
    let id = paid.header("x-hookflow-execution").unwrap().to_string();
    // A sync execution's record is written after its answer: wait until it is there.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cli(&serve, &["executions", "show", &id]).status.success() {
        assert!(Instant::now() < deadline, "execution {id} was never recorded");
        std::thread::sleep(Duration::from_millis(50));
    }

    let listed = stdout(&cli(&serve, &["executions", "list", "--workflow", "demo-payment", "--since", "1h"]));
    let row = listed.lines().find(|line| line.starts_with(&id)).unwrap_or_else(|| panic!("{id} not in {listed}"));
    assert!(row.contains("demo-payment") && row.contains("resolved"), "{row}");
    let none = stdout(&cli(&serve, &["executions", "list", "--status", "error"]));
    assert!(none.contains("(none)"), "{none}");
    fails_with(&cli(&serve, &["executions", "list", "--since", "last tuesday"]), "neither an RFC 3339 instant");
    fails_with(&cli(&serve, &["executions", "list", "--status", "bogus"]), "422 validation_failed");

    let shown = stdout(&cli(&serve, &["executions", "show", &id]));
    assert!(shown.contains("status:    resolved") && shown.contains("\"order\":7"), "{shown}");
    let job_rows: Vec<&str> = shown.lines().skip_while(|line| !line.starts_with("#")).skip(1).collect();
    assert!(job_rows[0].contains("check") && job_rows[0].contains("condition") && job_rows[0].contains("resolved"));
    assert!(job_rows[1].contains("ok") && job_rows[1].contains("response"), "{shown}");

    let rerun = stdout(&cli(&serve, &["executions", "rerun", &id]));
    let new_id = rerun.split_whitespace().nth(1).unwrap().to_string();
    assert_ne!(new_id, id);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let execution = json_out(&cli(&serve, &["executions", "show", &new_id, "--json"]));
        if execution["status"] == json!("resolved") {
            assert_eq!(execution["trigger"]["body"]["order"], json!(7), "the stored trigger data");
            break;
        }
        assert!(Instant::now() < deadline, "the re-run did not finish: {execution}");
        std::thread::sleep(Duration::from_millis(50));
    }
    fails_with(&cli(&serve, &["executions", "cancel", &id]), "409 conflict");
    assert_eq!(stdout(&cli(&serve, &["executions", "rm", &id])).trim(), format!("deleted {id}"));
    fails_with(&cli(&serve, &["executions", "show", &id]), "404 not_found");
    fails_with(&cli(&serve, &["executions", "show", "01NOSUCHEXECUTION"]), "404 not_found");
    assert_eq!(serve.terminate(), Some(0));
}

#[test]
fn workflows_and_nodes_are_tried_on_samples_from_the_command_line() {
    let data = fresh_dir("operator-test-runs");
    let serve = Serve::start(&data, &["--admin-token", TOKEN]);
    let sample = data.join("sample.json");
    std::fs::write(&sample, r#"{"status": "paid", "order": 7}"#).unwrap();
    let body = format!("@{}", sample.display());

    let ran = stdout(&cli(&serve, &["workflow", "test", "demo-payment", "--body", &body, "--query", "source=cli"]));
    assert!(ran.contains("status:    resolved"), "{ran}");
    let id = ran.lines().find_map(|line| line.strip_prefix("id:")).unwrap().trim().to_string();
    let execution = json_out(&cli(&serve, &["executions", "show", &id, "--json"]));
    assert_eq!(execution["test"], json!(true), "{execution}");
    assert_eq!(execution["trigger"]["query"], json!({"source": "cli"}));
    assert_eq!(execution["jobs"][1]["output"]["body"], json!({"ok": true, "order": 7}));

    let node =
        stdout(&cli(&serve, &["workflow", "test-node", "demo-payment", "check", "--body", r#"{"status": "late"}"#]));
    assert!(node.contains("status:    resolved") && node.contains(r#""branch":"false""#), "{node}");
    let tried = json_out(&cli(
        &serve,
        &[
            "workflow",
            "test-node",
            "demo-payment",
            "ok",
            "--body",
            r#"{"order": 9}"#,
            "--config",
            r#"{"statusCode": 201, "body": "{{$context.body.order}}"}"#,
            "--json",
        ],
    ));
    assert_eq!(tried["config"], json!({"statusCode": 201, "body": 9}), "{tried}");
    assert_eq!(tried["directive"]["status"], json!(201), "{tried}");

    fails_with(&cli(&serve, &["workflow", "test-node", "demo-payment", "nope"]), "404 not_found");
    fails_with(&cli(&serve, &["workflow", "test", "nope"]), "404 not_found");
    fails_with(&cli(&serve, &["workflow", "test", "demo-payment", "--body", "{oops"]), "--body is not JSON");
    fails_with(
        &cli(&serve, &["workflow", "test", "demo-payment", "--body", "@/nonexistent.json"]),
        "cannot read /nonexistent.json",
    );
    assert_eq!(serve.terminate(), Some(0));
}

#[test]
fn refusals_and_failures_are_found_and_redriven_from_the_command_line() {
    let data = fresh_dir("operator-failures");
    let files = fresh_dir("operator-failures-files");
    std::fs::create_dir_all(&files).unwrap();
    let serve = Serve::start(&data, &["--admin-token", TOKEN]);
    let strict = json!({"key": "strict", "sync": true, "nodes": [{"key": "paid", "type": "condition", "config": {
        "rejectOnFalse": true, "calculation": {"group": {"type": "and", "calculations": [
            {"calculator": "equal", "operands": ["{{$context.body.status}}", "paid"]}]}}}}]});
    stdout(&cli(&serve, &["workflow", "add", &write(&files, "strict.json", &strict)]));
    let trigger = "/api/webhook:trigger/strict";
    assert_eq!(http::request(serve.address, "GET", trigger, &[], b"").status, 405);
    let refused = stdout(&cli(&serve, &["refusals", "list", "--workflow", "strict"]));
    let row = refused.lines().nth(1).unwrap_or_default();
    assert!(row.contains("405 method_not_allowed") && row.contains("127.0.0.1"), "{refused}");
    assert!(refused.lines().next().unwrap().starts_with("TIME"), "{refused}");

    let failed = http::post(serve.address, trigger, &[("Content-Type", "application/json")], br#"{"status": "open"}"#);
    assert_eq!(failed.status, 500);
    let id = failed.header("x-hookflow-execution").unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cli(&serve, &["executions", "show", &id]).status.success() {
        assert!(Instant::now() < deadline, "execution {id} was never recorded");
        std::thread::sleep(Duration::from_millis(50));
    }
    let dry = stdout(&cli(&serve, &["executions", "rerun", "--workflow", "strict", "--status", "failed", "--dry-run"]));
    assert_eq!(dry.trim(), "matched: 1 (a dry run: nothing was re-run)");
    let redriven = stdout(&cli(&serve, &["executions", "rerun", "--workflow", "strict", "--since", "1h"]));
    assert!(redriven.starts_with("matched: 1, re-runs queued: 1"), "{redriven}");
    let shown = stdout(&cli(&serve, &["executions", "show", &id]));
    assert!(shown.contains("re-run as: "), "{shown}");
    let rerun = redriven.lines().nth(1).unwrap_or_default().trim().to_string();
    let deadline = Instant::now() + Duration::from_secs(20);
    while json_out(&cli(&serve, &["executions", "show", &rerun, "--json"]))["status"] != "failed" {
        assert!(Instant::now() < deadline, "the rerun {rerun:?} never failed");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The rerun fails as the first did: a redrive now matches it, and not the first again.
    let again = json_out(&cli(&serve, &["executions", "rerun", "--workflow", "strict", "--dry-run", "--json"]));
    assert_eq!(again, json!({"matched": 1, "queued": []}));
    fails_with(&cli(&serve, &["executions", "rerun", "--status", "queued"]), "422 validation_failed");
    let both = cli(&serve, &["executions", "rerun", &id, "--workflow", "strict"]);
    assert_eq!(both.status.code(), Some(2), "an id and a filter are a usage error");
    assert_eq!(serve.terminate(), Some(0));
}

#[test]
fn plugins_are_added_used_and_removed_from_the_command_line() {
    let data = fresh_dir("operator-plugins");
    let files = fresh_dir("operator-plugin-files");
    std::fs::create_dir_all(&files).unwrap();
    let serve = Serve::start(&data, &["--admin-token", TOKEN]);
    // The built-in condition component, installed again under a custom name.
    let (_, condition) = hookflow_plugin::BUILTIN_NODES.iter().find(|(name, _)| *name == "condition").unwrap();
    let wasm = files.join("gate.wasm");
    std::fs::write(&wasm, condition).unwrap();

    let added = stdout(&cli(&serve, &["plugin", "add", "gate", wasm.to_str().unwrap()]));
    assert!(added.starts_with("installed gate 0.1.0 (sha256 "), "{added}");
    let listed = stdout(&cli(&serve, &["plugin", "list"]));
    let row = listed.lines().find(|line| line.starts_with("gate ")).unwrap();
    assert!(row.contains(" no ") && row.contains("true,false"), "{row}");

    let gated = json!({"key": "gated", "sync": true, "nodes": [{"key": "g", "type": "gate", "config": {"rejectOnFalse": true,
        "calculation": {"group": {"calculations": [{"calculator": "equal", "operands": ["{{$context.body.ok}}", true]}]}}}}]});
    stdout(&cli(&serve, &["workflow", "add", &write(&files, "gated.json", &gated)]));
    let json = [("Content-Type", "application/json")];
    assert_eq!(http::post(serve.address, "/api/webhook:trigger/gated", &json, br#"{"ok": true}"#).status, 200);
    assert_eq!(http::post(serve.address, "/api/webhook:trigger/gated", &json, br#"{"ok": false}"#).status, 500);

    fails_with(&cli(&serve, &["plugin", "rm", "gate"]), "used by enabled workflows: gated");
    fails_with(&cli(&serve, &["plugin", "rm", "condition"]), "built-in");
    let text = files.join("notes.wasm");
    std::fs::write(&text, "not a component").unwrap();
    fails_with(&cli(&serve, &["plugin", "add", "notes", text.to_str().unwrap()]), "422 validation_failed");
    stdout(&cli(&serve, &["workflow", "rm", "gated"]));
    assert_eq!(stdout(&cli(&serve, &["plugin", "rm", "gate"])).trim(), "deleted gate");
    assert!(!stdout(&cli(&serve, &["plugin", "list"])).contains("gate "));
    assert_eq!(serve.terminate(), Some(0));
}

#[test]
fn client_errors_say_what_to_do() {
    let data = fresh_dir("operator-errors");
    let serve = Serve::start(&data, &["--admin-token", TOKEN]);
    let wrong = cli_with_token(&serve, "wrong", &["workflow", "list"]);
    fails_with(&wrong, "401 unauthorized");
    let none = cli_with_token(&serve, "", &["workflow", "list"]);
    fails_with(&none, "set HOOKFLOW_ADMIN_TOKEN");
    assert_eq!(serve.terminate(), Some(0));

    let unreachable = Command::new(env!("CARGO_BIN_EXE_hookflow"))
        .args(["workflow", "list", "--server", "http://127.0.0.1:9"])
        .output()
        .unwrap();
    fails_with(&unreachable, "cannot reach the hookflow server at http://127.0.0.1:9");
    let https = Command::new(env!("CARGO_BIN_EXE_hookflow"))
        .args(["plugin", "list", "--server", "https://hooks.example.com"])
        .output()
        .unwrap();
    fails_with(&https, "plain HTTP only");
}

#[test]
fn every_command_has_help_with_examples() {
    let commands: &[&[&str]] = &[
        &["serve"],
        &["parse", "query"],
        &["parse", "body"],
        &["workflow"],
        &["workflow", "add"],
        &["workflow", "list"],
        &["workflow", "show"],
        &["workflow", "replace"],
        &["workflow", "enable"],
        &["workflow", "disable"],
        &["workflow", "versions"],
        &["workflow", "restore"],
        &["workflow", "rm"],
        &["workflow", "test"],
        &["workflow", "test-node"],
        &["executions"],
        &["executions", "list"],
        &["executions", "show"],
        &["executions", "cancel"],
        &["executions", "rm"],
        &["executions", "rerun"],
        &["refusals"],
        &["refusals", "list"],
        &["plugin"],
        &["plugin", "list"],
        &["plugin", "add"],
        &["plugin", "check"],
        &["plugin", "new"],
        &["plugin", "rm"],
    ];
    for command in commands {
        let mut args = command.to_vec();
        args.push("--help");
        let output = Command::new(env!("CARGO_BIN_EXE_hookflow")).args(&args).output().unwrap();
        assert_eq!(output.status.code(), Some(0), "{command:?}");
        let help = String::from_utf8_lossy(&output.stdout);
        assert!(help.contains("Example"), "{command:?} --help has no example:\n{help}");
    }
    let usage = Command::new(env!("CARGO_BIN_EXE_hookflow")).args(["executions", "show"]).output().unwrap();
    assert_eq!(usage.status.code(), Some(2), "a missing argument is a usage error");
    let zero =
        Command::new(env!("CARGO_BIN_EXE_hookflow")).args(["serve", "--keep-executions-days", "0"]).output().unwrap();
    assert_eq!(zero.status.code(), Some(2));
}

#[test]
fn json_logs_carry_the_execution_id() {
    let strict = json!({"key": "strict", "sync": true, "nodes": [{"key": "must-be-ok", "type": "condition", "config": {"rejectOnFalse": true,
        "calculation": {"group": {"calculations": [{"calculator": "equal", "operands": ["{{$context.body.ok}}", true]}]}}}}]});
    let (id, lines) = logged_execution("info", &strict, br#"{"ok": false}"#);
    assert!(lines.iter().any(|line| line["fields"]["message"] == json!("hookflow is listening")));
    let ended = lines_of(&id, &lines)[0];
    assert_eq!(ended["span"]["name"], json!("execution"));
    assert_eq!(ended["fields"]["status"], json!("failed"));
    assert_eq!(ended["fields"]["node"], json!("must-be-ok"));
    assert_eq!(ended["fields"]["workflow"], json!("strict"));
}

#[test]
fn warnings_carry_the_execution_id_when_the_log_is_filtered_to_warn() {
    let broken =
        json!({"key": "broken", "sync": true, "nodes": [{"key": "shape", "type": "set", "config": {"values": 3}}]});
    let (id, lines) = logged_execution("warn", &broken, b"");
    assert!(lines.iter().all(|line| line["level"] != json!("INFO")), "RUST_LOG=warn is obeyed");
    let ended = lines_of(&id, &lines)[0];
    assert_eq!((ended["level"].clone(), ended["fields"]["status"].clone()), (json!("WARN"), json!("error")));
    assert!(ended["fields"]["message"].as_str().unwrap().contains("config.values: invalid type"), "{ended}");
}

/// The log lines of one execution; there must be some.
fn lines_of<'l>(id: &str, lines: &'l [Value]) -> Vec<&'l Value> {
    let of_execution: Vec<&Value> = lines.iter().filter(|line| line["span"]["id"] == json!(id)).collect();
    assert!(!of_execution.is_empty(), "no log line of execution {id}: {lines:?}");
    of_execution
}

/// Serves `workflow` with `--log-format json` at `RUST_LOG=level`, posts `body` to it once,
/// stops the server, and returns the execution id and every log line.
fn logged_execution(level: &str, workflow: &Value, body: &[u8]) -> (String, Vec<Value>) {
    let name = workflow["key"].as_str().unwrap();
    let data = fresh_dir(&format!("operator-logs-{name}"));
    let workflows = fresh_dir(&format!("operator-log-workflows-{name}"));
    std::fs::create_dir_all(&workflows).unwrap();
    write(&workflows, "workflow.json", workflow);
    let log = fresh_dir(&format!("operator-log-file-{name}"));
    std::fs::create_dir_all(&log).unwrap();
    let log = log.join("stderr.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_hookflow"))
        .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
        .args(["--data", data.to_str().unwrap(), "--workflows", workflows.to_str().unwrap()])
        .env("RUST_LOG", level)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line).unwrap();
    let url = line.split_whitespace().last().unwrap();
    let address = url.trim_start_matches("http://").split('/').next().unwrap().parse().unwrap();
    let json = [("Content-Type", "application/json")];
    let answer = http::post(address, &format!("/api/webhook:trigger/{name}"), &json, body);
    assert_eq!(answer.status, 500);
    let id = answer.header("x-hookflow-execution").unwrap().to_string();
    assert!(Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
    assert_eq!(child.wait().unwrap().code(), Some(0));
    let lines = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}")))
        .collect();
    (id, lines)
}

#[test]
fn plugin_check_tells_whether_a_component_fits() {
    let files = fresh_dir("operator-check");
    std::fs::create_dir_all(&files).unwrap();
    let (_, condition) = hookflow_plugin::BUILTIN_NODES.iter().find(|(name, _)| *name == "condition").unwrap();
    let wasm = files.join("condition.wasm");
    std::fs::write(&wasm, condition).unwrap();
    let check = |args: &[&str]| Command::new(env!("CARGO_BIN_EXE_hookflow")).args(args).output().unwrap();

    let report = stdout(&check(&["plugin", "check", wasm.to_str().unwrap()]));
    assert!(report.contains("fits the hookflow:node/node@0.1.0 world"), "{report}");
    assert!(report.contains("name:         condition") && report.contains("branches:     true, false"), "{report}");
    assert!(report.contains("\"rejectOnFalse\""), "the config schema is printed: {report}");
    // Every node built with the Rust SDK reads its context through the `context` import.
    assert!(report.contains("context:      read a path at a time"), "{report}");
    let json = json_out(&check(&["plugin", "check", wasm.to_str().unwrap(), "--json"]));
    assert_eq!((json["name"].clone(), json["mayRespond"].clone()), (json!("condition"), json!(false)));
    assert_eq!(json["readsContext"], json!(true));
    assert_eq!(json["digest"].as_str().unwrap().len(), 64);

    let text = files.join("notes.wasm");
    std::fs::write(&text, "not a component").unwrap();
    fails_with(&check(&["plugin", "check", text.to_str().unwrap()]), "is not a valid WebAssembly component");
    fails_with(&check(&["plugin", "check", "/nonexistent.wasm"]), "cannot read /nonexistent.wasm");
}

#[test]
fn plugin_new_makes_a_rust_node_that_passes_its_tests_builds_and_fits() {
    let root = fresh_dir("operator-scaffold");
    std::fs::create_dir_all(&root).unwrap();
    let project = root.join("greeter");
    let hookflow = |args: &[&str]| Command::new(env!("CARGO_BIN_EXE_hookflow")).args(args).output().unwrap();
    let created =
        stdout(&hookflow(&["plugin", "new", "--lang", "rust", "greeter", "--dir", project.to_str().unwrap()]));
    assert!(created.starts_with("created the greeter node in") && created.contains("cargo test"), "{created}");
    fails_with(
        &hookflow(&["plugin", "new", "--lang", "rust", "greeter", "--dir", project.to_str().unwrap()]),
        "exists already",
    );
    fails_with(&hookflow(&["plugin", "new", "--lang", "rust", "Bad Name"]), "is not a valid node type name");
    fails_with(
        &hookflow(&["plugin", "new", "--lang", "rust", "std", "--dir", root.join("std").to_str().unwrap()]),
        "clashes",
    );
    assert_eq!(hookflow(&["plugin", "new", "--lang", "cobol", "x"]).status.code(), Some(2));

    let target = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("scaffold-target");
    let cargo = |args: &[&str]| {
        let output = Command::new(env!("CARGO"))
            .args(args)
            .arg("--target-dir")
            .arg(&target)
            .current_dir(&project)
            .output()
            .unwrap();
        let log = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        assert!(output.status.success(), "cargo {args:?} failed in the new project:\n{log}");
        log
    };
    let tested = cargo(&["test"]);
    assert!(tested.contains("test result: ok. 2 passed"), "{tested}");
    cargo(&["build", "--release", "--target", "wasm32-wasip2"]);
    let wasm = target.join("wasm32-wasip2/release/greeter.wasm");
    let report = stdout(&hookflow(&["plugin", "check", wasm.to_str().unwrap()]));
    assert!(
        report.contains("fits the hookflow:node/node@0.1.0 world") && report.contains("name:         greeter"),
        "{report}"
    );
    assert!(report.contains("context:      read a path at a time"), "{report}");
}

/// Runs a command in a new project and returns its output; a failure shows all of it.
fn in_project(project: &std::path::Path, program: &str, args: &[&str]) -> String {
    let output =
        Command::new(program).args(args).current_dir(project).output().unwrap_or_else(|e| panic!("{program}: {e}"));
    let log = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{program} {args:?} failed in the new project:\n{log}");
    log
}

/// Makes a project with `plugin new --lang LANG greeter` and returns its directory.
fn new_project(lang: &str) -> std::path::PathBuf {
    let root = fresh_dir(&format!("operator-scaffold-{lang}"));
    std::fs::create_dir_all(&root).unwrap();
    let project = root.join("greeter");
    let output = Command::new(env!("CARGO_BIN_EXE_hookflow"))
        .args(["plugin", "new", "--lang", lang, "greeter", "--dir", project.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(stdout(&output).starts_with("created the greeter node in"));
    assert!(project.join("wit/node.wit").exists(), "the project carries the contract");
    project
}

/// A Python or JavaScript project's component fits the `node` world and, built for
/// `context-reader`, is sent no context text.
fn check_fits(wasm: &std::path::Path) {
    let output = Command::new(env!("CARGO_BIN_EXE_hookflow"))
        .args(["plugin", "check", wasm.to_str().unwrap()])
        .output()
        .unwrap();
    let report = stdout(&output);
    assert!(
        report.contains("fits the hookflow:node/node@0.1.0 world") && report.contains("name:         greeter"),
        "{report}"
    );
    assert!(report.contains("context:      read a path at a time"), "{report}");
}

#[test]
fn plugin_new_makes_a_python_node_that_passes_its_tests_builds_and_fits() {
    let project = new_project("python");
    let tested = in_project(&project, "python3", &["-m", "unittest", "-v"]);
    assert!(tested.contains("Ran 2 tests") && tested.contains("OK"), "{tested}");
    in_project(
        &project,
        "componentize-py",
        &["-d", "wit", "-w", "context-reader", "componentize", "app", "-o", "greeter.wasm"],
    );
    check_fits(&project.join("greeter.wasm"));
}

#[test]
fn plugin_new_makes_a_javascript_node_that_passes_its_tests_builds_and_fits() {
    let project = new_project("js");
    in_project(&project, "npm", &["ci", "--no-audit", "--no-fund"]);
    let tested = in_project(&project, "npm", &["test"]);
    assert!(tested.contains("# pass 3") && tested.contains("# fail 0"), "{tested}");
    in_project(&project, "npm", &["run", "build"]);
    check_fits(&project.join("greeter.wasm"));
}

#[test]
fn secrets_reach_nodes_and_callers_but_never_records_logs_or_views() {
    let (token, signing, from_file) = ("tok-live-7f3a9c", "whsec-other-51", "file-value-88");
    let secretive = json!({"key": "secretive", "sync": true, "nodes": [
        {"key": "auth", "type": "set", "config": {"values": {"header": "Bearer {{$secrets.API_TOKEN}}",
            "both": "{{$secrets.SIGNING}}/{{$secrets.FILE_KEY}}"}}},
        {"key": "reply", "type": "response", "config": {"body": "{{$jobsMapByNodeKey.auth}}"}}]});
    let leaky = json!({"key": "leaky", "sync": true, "nodes": [
        {"key": "broken", "type": "set", "config": {"values": "{{$secrets.API_TOKEN}}"}}]});
    let data = fresh_dir("operator-secrets");
    let workflows = fresh_dir("operator-secrets-workflows");
    std::fs::create_dir_all(&workflows).unwrap();
    write(&workflows, "a.json", &secretive);
    write(&workflows, "b.json", &leaky);
    let files = fresh_dir("operator-secrets-files");
    std::fs::create_dir_all(&files).unwrap();
    let secrets_file = files.join("secrets");
    std::fs::write(&secrets_file, format!("# the file's own\nFILE_KEY={from_file}\n\n")).unwrap();
    let log = files.join("stderr.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_hookflow"))
        .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json", "--secret", &format!("API_TOKEN={token}")])
        .args(["--secrets-file", secrets_file.to_str().unwrap()])
        .args(["--data", data.to_str().unwrap(), "--workflows", workflows.to_str().unwrap()])
        .env("RUST_LOG", "info")
        .env("HOOKFLOW_SECRET_SIGNING", signing)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().unwrap()));
    let line = lines.next().unwrap().unwrap();
    // Keep reading what it prints, so it never writes into a closed pipe.
    std::thread::spawn(move || lines.for_each(drop));
    let url = line.split_whitespace().last().unwrap();
    let address = url.trim_start_matches("http://").split('/').next().unwrap().parse().unwrap();

    let answer = http::post(address, "/api/webhook:trigger/secretive", &[], b"");
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(
        answer.json(),
        json!({"header": format!("Bearer {token}"), "both": format!("{signing}/{from_file}")}),
        "the node got the values and its output reached the caller unchanged"
    );
    let shown_id = answer.header("x-hookflow-execution").unwrap().to_string();
    let failed = http::post(address, "/api/webhook:trigger/leaky", &[], b"");
    assert_eq!(failed.status, 500);
    let failed_id = failed.header("x-hookflow-execution").unwrap().to_string();

    let mut views = Vec::new();
    for path in
        ["/api/executions".to_string(), format!("/api/executions/{shown_id}"), format!("/api/executions/{failed_id}")]
    {
        // A sync execution's record is written just after its answer: wait for it.
        let deadline = Instant::now() + Duration::from_secs(20);
        let view = loop {
            let view = http::request(address, "GET", &path, &[], b"");
            if view.status != 404 || Instant::now() > deadline {
                break view;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(view.status, 200, "{path}: {}", view.text());
        views.push(view.text());
    }
    let shown: Value = serde_json::from_str(&views[1]).unwrap();
    assert_eq!(shown["jobs"][0]["output"]["header"], "Bearer ********");
    assert_eq!(shown["jobs"][0]["output"]["both"], "********/********");
    let broken: Value = serde_json::from_str(&views[2]).unwrap();
    assert!(broken["jobs"][0]["error"].as_str().unwrap().contains("********"), "{broken}");

    assert!(Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
    assert_eq!(child.wait().unwrap().code(), Some(0));
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("execution ended"), "the failure was logged: {logged}");
    let stored = std::fs::read(data.join("hookflow.redb")).unwrap();
    for secret in [token, signing, from_file] {
        for view in &views {
            assert!(!view.contains(secret), "{secret} in a view: {view}");
        }
        assert!(!logged.contains(secret), "{secret} in the log");
        assert!(!stored.windows(secret.len()).any(|window| window == secret.as_bytes()), "{secret} in the database");
    }
}
