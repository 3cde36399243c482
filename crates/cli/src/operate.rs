//! `hookflow workflow|executions|refusals|plugin`: the CLI side of the admin API. Each command makes one
//! call (see `remote.rs`) and prints the answer as a table, or as the API's JSON with `--json`.

/// `println!` for command output: a reader that goes away (`hookflow ... | head`) ends the
/// command quietly instead of panicking.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(error) = writeln!(std::io::stdout(), $($arg)*) {
            crate::stdout_failed(&error);
        }
    }};
}

use std::io::Read as _;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context as _;
use hookflow_plugin::{HostConfig, PluginHost};
use hookflow_server::http::ingress::parse_query_example;
use serde_json::{Value, json};

use crate::cli::{ExecutionsCommand, PluginCommand, RefusalsCommand, Remote, SampleArgs, WorkflowCommand};
use crate::remote::{AdminClient, Answer};
use crate::scaffold;

/// Longest output or error shown in a table cell.
const CELL: usize = 60;

/// How a command's answer is printed.
struct Output {
    json: bool,
}

impl Output {
    /// Prints the JSON answer, or what `human` makes of it.
    fn print(&self, answer: &Answer, human: impl FnOnce(&Value)) -> anyhow::Result<()> {
        if self.json {
            outln!("{}", serde_json::to_string_pretty(&answer.body)?);
        } else {
            human(&answer.body);
        }
        Ok(())
    }
}

fn client<C: clap::Subcommand>(remote: &Remote<C>) -> anyhow::Result<(AdminClient, Output)> {
    let token = std::env::var("HOOKFLOW_ADMIN_TOKEN").ok();
    Ok((AdminClient::new(&remote.server, token)?, Output { json: remote.json }))
}

/// Runs `hookflow workflow ...`.
pub async fn workflow(remote: Remote<WorkflowCommand>) -> anyhow::Result<()> {
    let (client, out) = client(&remote)?;
    match remote.command {
        WorkflowCommand::Add { file } => {
            let answer = client.post("/api/workflows", Some(read_definition(&file)?)).await?;
            out.print(&answer, |w| {
                outln!("created {} (version {})\nPOST {}", text(&w["key"]), w["version"], text(&w["url"]))
            })
        }
        WorkflowCommand::List { limit, cursor } => {
            let answer =
                client.get(&format!("/api/workflows?limit={limit}{}", param("cursor", cursor.as_deref()))).await?;
            out.print(&answer, |page| {
                let rows = items(page)
                    .map(|w| {
                        vec![
                            text(&w["key"]),
                            mode(w).into(),
                            yes_no(&w["enabled"]),
                            w["version"].to_string(),
                            count_nodes(&w["nodes"]).to_string(),
                            text(&w["url"]),
                        ]
                    })
                    .collect();
                table(&["KEY", "MODE", "ENABLED", "VERSION", "NODES", "URL"], rows);
                more(page, "hookflow workflow list --cursor");
            })
        }
        WorkflowCommand::Show { key } => {
            let answer = client.get(&format!("/api/workflows/{}", segment(&key))).await?;
            out.print(&answer, print_workflow)
        }
        WorkflowCommand::Replace { key, file } => {
            let answer = client
                .put(
                    &format!("/api/workflows/{}", segment(&key)),
                    "application/json",
                    read_definition(&file)?.into_bytes(),
                )
                .await?;
            out.print(&answer, |w| outln!("replaced {}: now version {}", text(&w["key"]), w["version"]))
        }
        WorkflowCommand::Enable { key } => {
            let answer = client.post(&format!("/api/workflows/{}/enable", segment(&key)), None).await?;
            out.print(&answer, |w| outln!("enabled {}: POST {}", text(&w["key"]), text(&w["url"])))
        }
        WorkflowCommand::Disable { key } => {
            let answer = client.post(&format!("/api/workflows/{}/disable", segment(&key)), None).await?;
            out.print(&answer, |w| outln!("disabled {}: its URL answers 404 until it is enabled", text(&w["key"])))
        }
        WorkflowCommand::Versions { key } => {
            let answer = client.get(&format!("/api/workflows/{}/versions", segment(&key))).await?;
            out.print(&answer, |page| {
                let rows = items(page)
                    .map(|v| {
                        let current = if v["current"].as_bool() == Some(true) { "*" } else { "" };
                        let definition = &v["definition"];
                        vec![
                            format!("{}{current}", v["version"]),
                            yes_no(&definition["enabled"]),
                            count_nodes(&definition["nodes"]).to_string(),
                            text(&definition["title"]),
                        ]
                    })
                    .collect();
                table(&["VERSION", "ENABLED", "NODES", "TITLE"], rows);
                outln!("(* current)");
            })
        }
        WorkflowCommand::Restore { key, number: version } => {
            let answer =
                client.post(&format!("/api/workflows/{}/versions/{version}/restore", segment(&key)), None).await?;
            out.print(&answer, |w| {
                outln!("restored version {version} of {} as version {}", text(&w["key"]), w["version"])
            })
        }
        WorkflowCommand::Rm { key } => {
            let answer = client.delete(&format!("/api/workflows/{}", segment(&key))).await?;
            out.print(&answer, |_| outln!("deleted {key}"))
        }
        WorkflowCommand::Test { key, sample } => {
            let answer = client
                .post(&format!("/api/workflows/{}/test", segment(&key)), Some(sample_trigger(&sample)?.to_string()))
                .await?;
            let queued = answer.status.as_u16() == 202;
            out.print(&answer, |execution| {
                print_execution(execution);
                if queued {
                    outln!("queued: follow it with hookflow executions show {}", text(&execution["id"]));
                }
            })
        }
        WorkflowCommand::TestNode { key, node, sample, jobs, config } => {
            let mut test = json!({"trigger": sample_trigger(&sample)?});
            if let Some(jobs) = jobs {
                test["jobs"] = serde_json::from_str(&jobs).context("--jobs is not JSON")?;
            }
            if let Some(config) = config {
                test["config"] = serde_json::from_str(&config).context("--config is not JSON")?;
            }
            let path = format!("/api/workflows/{}/nodes/{}/test", segment(&key), segment(&node));
            let answer = client.post(&path, Some(test.to_string())).await?;
            out.print(&answer, |trial| {
                outln!("status:    {}", text(&trial["status"]));
                outln!("config:    {}", cell(trial["config"].to_string()));
                outln!("output:    {}", cell(trial["output"].to_string()));
                if !trial["directive"].is_null() {
                    outln!("directive: {}", trial["directive"]);
                }
                if !trial["error"].is_null() {
                    outln!("error:     {}", text(&trial["error"]));
                }
            })
        }
    }
}

/// The sample trigger `{"headers", "query", "body"}` of a test run's flags.
fn sample_trigger(sample: &SampleArgs) -> anyhow::Result<Value> {
    let body = match sample.body.as_deref() {
        None => Value::Null,
        Some(text) => {
            let text = match text.strip_prefix('@') {
                Some(file) => std::fs::read_to_string(file).with_context(|| format!("cannot read {file}"))?,
                None => text.to_string(),
            };
            serde_json::from_str(&text).context("--body is not JSON")?
        }
    };
    let query = sample.query.as_deref().map_or_else(|| json!({}), parse_query_example);
    let mut headers = serde_json::Map::new();
    for header in &sample.headers {
        let (name, value) =
            header.split_once(':').with_context(|| format!("--header {header:?} is not `Name: value`"))?;
        headers.insert(name.trim().to_ascii_lowercase(), Value::String(value.trim().to_string()));
    }
    Ok(json!({"headers": headers, "query": query, "body": body}))
}

/// Runs `hookflow executions ...`.
pub async fn executions(remote: Remote<ExecutionsCommand>) -> anyhow::Result<()> {
    let (client, out) = client(&remote)?;
    match remote.command {
        ExecutionsCommand::List { workflow, status, since, until, dead_letter, limit, cursor } => {
            let since = since.map(|since| instant(&since)).transpose()?;
            let until = until.map(|until| instant(&until)).transpose()?;
            let query = [
                param("workflow", workflow.as_deref()),
                param("status", status.as_deref()),
                param("since", since.as_deref()),
                param("until", until.as_deref()),
                param("deadLetter", dead_letter.then_some("true")),
                param("cursor", cursor.as_deref()),
            ]
            .concat();
            let answer = client.get(&format!("/api/executions?limit={limit}{query}")).await?;
            let mut again = String::from("hookflow executions list");
            for (flag, value) in
                [("--workflow", &workflow), ("--status", &status), ("--since", &since), ("--until", &until)]
            {
                if let Some(value) = value {
                    again.push_str(&format!(" {flag} {value}"));
                }
            }
            if dead_letter {
                again.push_str(" --dead-letter");
            }
            again.push_str(" --cursor");
            out.print(&answer, |page| {
                let rows = items(page)
                    .map(|e| {
                        vec![
                            text(&e["id"]),
                            text(&e["workflow"]),
                            e["version"].to_string(),
                            text(&e["status"]),
                            text(&e["createdAt"]),
                            duration(&e["createdAt"], &e["finishedAt"]),
                        ]
                    })
                    .collect();
                table(&["ID", "WORKFLOW", "VERSION", "STATUS", "CREATED", "DURATION"], rows);
                more(page, &again);
            })
        }
        ExecutionsCommand::Show { id } => {
            let answer = client.get(&format!("/api/executions/{}", segment(&id))).await?;
            out.print(&answer, print_execution)
        }
        ExecutionsCommand::Cancel { id } => {
            let answer = client.post(&format!("/api/executions/{}/cancel", segment(&id)), None).await?;
            let running = answer.status.as_u16() == 202;
            out.print(&answer, |e| match running {
                true => outln!("{}: running; it stops before its next node", text(&e["id"])),
                false => outln!("{}: {}", text(&e["id"]), text(&e["status"])),
            })
        }
        ExecutionsCommand::Rm { id } => {
            let answer = client.delete(&format!("/api/executions/{}", segment(&id))).await?;
            out.print(&answer, |_| outln!("deleted {id}"))
        }
        ExecutionsCommand::Rerun { id: Some(id), .. } => {
            let answer = client.post(&format!("/api/executions/{}/rerun", segment(&id)), None).await?;
            out.print(&answer, |e| {
                outln!("queued {} ({} version {})", text(&e["id"]), text(&e["workflow"]), e["version"]);
                outln!("follow it with: hookflow executions show {}", text(&e["id"]));
            })
        }
        ExecutionsCommand::Rerun { id: None, workflow, status, dead_letter, since, until, dry_run } => {
            let mut filter = json!({"dryRun": dry_run});
            if let Some(workflow) = workflow {
                filter["workflow"] = workflow.into();
            }
            if !status.is_empty() {
                filter["status"] = status.into();
            }
            if dead_letter {
                filter["deadLetter"] = true.into();
            }
            if let Some(since) = since {
                filter["since"] = instant(&since)?.into();
            }
            if let Some(until) = until {
                filter["until"] = instant(&until)?.into();
            }
            let answer = client.post("/api/executions/rerun", Some(filter.to_string())).await?;
            out.print(&answer, |redrive| {
                let matched = redrive["matched"].as_u64().unwrap_or(0);
                let queued = redrive["queued"].as_array().map_or(0, Vec::len);
                if dry_run {
                    outln!("matched: {matched} (a dry run: nothing was re-run)");
                } else {
                    outln!("matched: {matched}, re-runs queued: {queued}");
                    for id in redrive["queued"].as_array().into_iter().flatten().take(10) {
                        outln!("  {}", text(id));
                    }
                    if queued > 10 {
                        outln!("  … (all of them with --json)");
                    }
                }
            })
        }
    }
}

/// Runs `hookflow refusals ...`.
pub async fn refusals(remote: Remote<RefusalsCommand>) -> anyhow::Result<()> {
    let (client, out) = client(&remote)?;
    match remote.command {
        RefusalsCommand::List { workflow, code, since, limit, cursor } => {
            let since = since.map(|since| instant(&since)).transpose()?;
            let query = [
                param("workflow", workflow.as_deref()),
                param("code", code.as_deref()),
                param("since", since.as_deref()),
                param("cursor", cursor.as_deref()),
            ]
            .concat();
            let answer = client.get(&format!("/api/refusals?limit={limit}{query}")).await?;
            let mut again = String::from("hookflow refusals list");
            for (flag, value) in [("--workflow", &workflow), ("--code", &code), ("--since", &since)] {
                if let Some(value) = value {
                    again.push_str(&format!(" {flag} {value}"));
                }
            }
            again.push_str(" --cursor");
            out.print(&answer, |page| {
                let rows = items(page)
                    .map(|r| {
                        vec![
                            text(&r["time"]),
                            text(&r["workflow"]),
                            format!("{} {}", r["status"], text(&r["code"])),
                            text(&r["client"]),
                            cell(text(&r["reason"])),
                        ]
                    })
                    .collect();
                table(&["TIME", "WORKFLOW", "ANSWER", "CLIENT", "REASON"], rows);
                more(page, &again);
            })
        }
    }
}

/// Runs `hookflow plugin ...`.
pub async fn plugin(remote: Remote<PluginCommand>) -> anyhow::Result<()> {
    // Local commands: no server, so no --server to get wrong.
    let remote = match remote.command {
        PluginCommand::Check { file } => return check_plugin(&file, remote.json),
        PluginCommand::New { lang, name, dir } => {
            let dir = scaffold::new_node(lang, &name, dir)?;
            outln!("created the {name} node in {}; next:", dir.display());
            outln!("  cd {}", dir.display());
            for step in scaffold::next_steps(lang, &name) {
                outln!("  {step}");
            }
            return Ok(());
        }
        command => Remote { command, ..remote },
    };
    let (client, out) = client(&remote)?;
    match remote.command {
        PluginCommand::List => {
            let answer = client.get("/api/plugins").await?;
            out.print(&answer, |page| {
                let rows = items(page)
                    .map(|p| {
                        let branches: Vec<String> = p["branches"].as_array().into_iter().flatten().map(text).collect();
                        vec![
                            text(&p["name"]),
                            text(&p["version"]),
                            yes_no(&p["builtin"]),
                            if branches.is_empty() { "-".into() } else { branches.join(",") },
                            text(&p["digest"]).chars().take(16).collect(),
                        ]
                    })
                    .collect();
                table(&["NAME", "VERSION", "BUILTIN", "BRANCHES", "DIGEST"], rows);
            })
        }
        PluginCommand::Add { name, file } => {
            let wasm = std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let answer = client.put(&format!("/api/plugins/{}", segment(&name)), "application/wasm", wasm).await?;
            let verb = if answer.status.as_u16() == 201 { "installed" } else { "replaced" };
            out.print(&answer, |p| {
                outln!("{verb} {} {} (sha256 {})", text(&p["name"]), text(&p["version"]), text(&p["digest"]))
            })
        }
        PluginCommand::Check { .. } | PluginCommand::New { .. } => unreachable!("handled above"),
        PluginCommand::Rm { name } => {
            let answer = client.delete(&format!("/api/plugins/{}", segment(&name))).await?;
            out.print(&answer, |_| outln!("deleted {name}"))
        }
    }
}

/// `hookflow plugin check`: compiles and describes a component with the engine's own host, as
/// `--plugins` and upload would, and prints what it declares.
fn check_plugin(file: &Path, json: bool) -> anyhow::Result<()> {
    let wasm = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let host = PluginHost::new(HostConfig::default())?;
    let started = Instant::now();
    // The install name only labels messages; any valid one will do.
    let plugin = host.install("checked", &wasm).with_context(|| format!("{} does not fit", file.display()))?;
    let compile_ms = started.elapsed().as_millis();
    let info = &plugin.info;
    let schema = &info.config_schema;
    if json {
        let report = serde_json::json!({"name": info.name, "version": info.version, "branches": info.branches,
            "mayRespond": info.may_respond, "readsContext": plugin.reads_context, "configSchema": schema,
            "digest": plugin.digest,
            "bytes": wasm.len(), "compileMs": compile_ms});
        outln!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    outln!("{}: fits the hookflow:node/node@0.1.0 world", file.display());
    outln!("name:         {}", info.name);
    outln!("version:      {}", info.version);
    let branches = if info.branches.is_empty() { "-".to_string() } else { info.branches.join(", ") };
    outln!("branches:     {branches}");
    outln!("may respond:  {}", if info.may_respond { "yes" } else { "no" });
    outln!(
        "context:      {}",
        if plugin.reads_context {
            "read a path at a time (imports hookflow:node/context: world context-reader)"
        } else {
            "sent whole, as text in invocation.context"
        }
    );
    outln!("size:         {} bytes (sha256 {})", wasm.len(), plugin.digest);
    outln!("compiled in:  {compile_ms} ms");
    outln!("config schema:\n{}", serde_json::to_string_pretty(schema)?);
    Ok(())
}

fn read_definition(file: &Path) -> anyhow::Result<String> {
    if file == Path::new("-") {
        let mut definition = String::new();
        std::io::stdin().read_to_string(&mut definition).context("cannot read the definition from stdin")?;
        return Ok(definition);
    }
    std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))
}

/// `--since 2h` → the RFC 3339 instant two hours ago; an RFC 3339 instant is passed on.
fn instant(text: &str) -> anyhow::Result<String> {
    if humantime::parse_rfc3339_weak(text).is_ok() {
        return Ok(text.to_string());
    }
    let ago: Duration = humantime::parse_duration(text).map_err(|_| {
        anyhow::anyhow!("{text:?} is neither an RFC 3339 instant (2026-11-29T18:00:00Z) nor a duration (2h)")
    })?;
    let then = SystemTime::now().checked_sub(ago).context("that is too long ago")?;
    Ok(humantime::format_rfc3339_millis(then).to_string())
}

/// `&name=value`, percent-encoded; empty when there is no value.
fn param(name: &str, value: Option<&str>) -> String {
    value.map_or_else(String::new, |value| format!("&{name}={}", segment(value)))
}

/// Percent-encodes everything but unreserved characters, for a path segment or query value.
fn segment(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn items(page: &Value) -> impl Iterator<Item = &Value> {
    page["items"].as_array().into_iter().flatten()
}

fn more(page: &Value, command: &str) {
    if let Some(next) = page["nextCursor"].as_str() {
        outln!("(more: {command} {next})");
    }
}

/// A string value as is; anything else as JSON; `-` for null.
fn text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

fn yes_no(value: &Value) -> String {
    if value.as_bool() == Some(true) { "yes" } else { "no" }.into()
}

fn mode(workflow: &Value) -> &'static str {
    if workflow["sync"].as_bool() == Some(true) { "sync" } else { "async" }
}

fn count_nodes(nodes: &Value) -> usize {
    nodes
        .as_array()
        .into_iter()
        .flatten()
        .map(|node| {
            1 + node["branches"].as_object().into_iter().flatten().map(|(_, chain)| count_nodes(chain)).sum::<usize>()
        })
        .sum()
}

/// Milliseconds between two RFC 3339 instants, or `-`.
fn duration(start: &Value, end: &Value) -> String {
    let instant = |value: &Value| value.as_str().and_then(|text| humantime::parse_rfc3339_weak(text).ok());
    match (instant(start), instant(end)) {
        (Some(start), Some(end)) => match end.duration_since(start) {
            Ok(elapsed) => format!("{} ms", elapsed.as_millis()),
            Err(_) => "0 ms".into(),
        },
        _ => "-".into(),
    }
}

/// Shortens a cell to [`CELL`] characters.
fn cell(text: String) -> String {
    if text.chars().count() <= CELL {
        return text;
    }
    let mut short: String = text.chars().take(CELL - 1).collect();
    short.push('…');
    short
}

/// Prints rows under headers, columns padded to their widest cell.
fn table(headers: &[&str], rows: Vec<Vec<String>>) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells.iter().zip(&widths).map(|(cell, width)| format!("{cell:<width$}")).collect();
        outln!("{}", padded.join("  ").trim_end());
    };
    line(headers.iter().map(|h| h.to_string()).collect());
    if rows.is_empty() {
        outln!("(none)");
    }
    rows.into_iter().for_each(line);
}

fn print_workflow(workflow: &Value) {
    outln!("key:      {}", text(&workflow["key"]));
    if let Some(title) = workflow["title"].as_str().filter(|title| !title.is_empty()) {
        outln!("title:    {title}");
    }
    outln!("mode:     {}", mode(workflow));
    outln!("enabled:  {}", yes_no(&workflow["enabled"]));
    outln!("version:  {} (updated {})", workflow["version"], text(&workflow["updatedAt"]));
    outln!("url:      POST {}", text(&workflow["url"]));
    let trigger = &workflow["trigger"];
    if let Some(user) = trigger["basicAuth"]["username"].as_str() {
        outln!("auth:     basic, user {user}");
    }
    if let Some(kind) = trigger["signature"]["type"].as_str() {
        outln!("signed:   {kind}");
    }
    outln!("nodes:");
    print_chain(&workflow["nodes"], 1);
}

fn print_chain(nodes: &Value, depth: usize) {
    let indent = "  ".repeat(depth);
    let chain: Vec<&Value> = nodes.as_array().into_iter().flatten().collect();
    if chain.is_empty() {
        outln!("{indent}(none)");
    }
    for node in chain {
        outln!("{indent}{}  ({})", text(&node["key"]), text(&node["type"]));
        for (branch, chain) in node["branches"].as_object().into_iter().flatten() {
            outln!("{indent}  {branch}:");
            print_chain(chain, depth + 2);
        }
    }
}

fn print_execution(execution: &Value) {
    outln!("id:        {}", text(&execution["id"]));
    outln!("workflow:  {} (version {})", text(&execution["workflow"]), execution["version"]);
    outln!("status:    {}", text(&execution["status"]));
    if execution["attempt"].as_u64().unwrap_or(1) > 1 || execution["deadLetter"] == true {
        let dead_letter = if execution["deadLetter"] == true { " (a dead letter: no attempt left)" } else { "" };
        outln!("attempt:   {}{dead_letter}", execution["attempt"]);
    }
    if !execution["retryAt"].is_null() {
        outln!("retry at:  {}", text(&execution["retryAt"]));
    }
    if !execution["rerunAs"].is_null() {
        outln!("re-run as: {}", text(&execution["rerunAs"]));
    }
    if !execution["error"].is_null() {
        outln!("error:     {}", text(&execution["error"]));
    }
    outln!("created:   {}", text(&execution["createdAt"]));
    outln!(
        "finished:  {} ({})",
        text(&execution["finishedAt"]),
        duration(&execution["createdAt"], &execution["finishedAt"])
    );
    outln!("trigger:   {}", cell(execution["trigger"].to_string()));
    let rows = execution["jobs"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(index, job)| {
            let result = match job["error"].as_str() {
                Some(error) => format!("error: {error}"),
                None => job["output"].to_string(),
            };
            vec![
                (index + 1).to_string(),
                text(&job["nodeKey"]),
                text(&job["type"]),
                text(&job["status"]),
                duration(&job["startedAt"], &job["finishedAt"]),
                cell(result),
            ]
        })
        .collect();
    outln!("jobs:");
    table(&["#", "NODE", "TYPE", "STATUS", "DURATION", "OUTPUT / ERROR"], rows);
}
