//! What the binary's tests share: running `hookflow`, a `hookflow serve` process, fresh data
//! directories, and the raw HTTP client and fixture components of the tests crate.

#![allow(dead_code, reason = "each test binary uses its own part of the support code")]

pub mod cluster;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use serde_json::Value;

use hookflow_store::{PostgresConfig, Store, StoreConfig};
pub use hookflow_tests::http;
use hookflow_workflow::Execution;

/// The admin token of `serve` processes on a PostgreSQL store (a cluster store needs one).
pub const TOKEN: &str = "cluster-test-token";

/// Whether this run's `serve` processes keep their state in PostgreSQL
/// (`HOOKFLOW_TEST_STORE=postgres`) rather than the redb file in `--data`.
pub fn on_postgres() -> bool {
    std::env::var("HOOKFLOW_TEST_STORE").is_ok_and(|store| store == "postgres")
}

/// The database of a data directory's server on this run's private PostgreSQL server (made on
/// first use; a restart on the same directory finds it again).
pub fn postgres_url(data: &Path) -> String {
    let marker = data.join("postgres-url");
    std::fs::read_to_string(&marker).unwrap_or_else(|_| {
        let url = hookflow_test_postgres::PgServer::shared().fresh_database("cli");
        std::fs::create_dir_all(data).unwrap();
        std::fs::write(&marker, &url).unwrap();
        url
    })
}

/// The stored executions `ids` of the server that kept its data in `data` (stopped now).
pub fn stored_executions(data: &Path, ids: &[String]) -> Vec<Option<Execution>> {
    let config = if on_postgres() {
        StoreConfig::Postgres(PostgresConfig::new(&postgres_url(data)))
    } else {
        StoreConfig::Embedded { path: data.join("hookflow.redb") }
    };
    hookflow_tests::block_on(async {
        let store = Store::open(&config, None).await.unwrap();
        let mut executions = Vec::new();
        for id in ids {
            executions.push(store.execution(id).await.unwrap());
        }
        executions
    })
}

pub fn hookflow(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hookflow")).args(args).output().unwrap()
}

pub fn stdout_json(output: &Output) -> Value {
    assert!(output.status.success(), "stderr: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

/// A `hookflow serve` process.
pub struct Serve {
    pub child: Child,
    pub address: SocketAddr,
    pub stdout: Vec<String>,
}

impl Serve {
    /// Starts `hookflow serve --demo` on a random port and reads the URLs it prints.
    pub fn start(data: &Path, extra: &[&str]) -> Serve {
        let mut args = vec!["--demo"];
        args.extend_from_slice(extra);
        Serve::start_with(data, &args, 2)
    }

    /// Starts `hookflow serve ARGS` on a free port and reads the `endpoints` lines it prints.
    pub fn start_with(data: &Path, extra: &[&str], endpoints: usize) -> Serve {
        Serve::start_env(data, extra, endpoints, &[])
    }

    /// [`Serve::start_with`] with extra environment variables. On a PostgreSQL run (unless
    /// `extra` names its own `--store`) it keeps its state in its data directory's database,
    /// with the admin token [`TOKEN`].
    pub fn start_env(data: &Path, extra: &[&str], endpoints: usize, env: &[(&str, &str)]) -> Serve {
        let mut args = vec!["serve", "--listen", "127.0.0.1:0", "--data", data.to_str().unwrap()];
        let url;
        if on_postgres() && !extra.contains(&"--store") {
            url = postgres_url(data);
            args.extend(["--store", url.as_str(), "--lease", "2s"]);
            if !extra.contains(&"--admin-token") {
                args.extend(["--admin-token", TOKEN]);
            }
        }
        args.extend_from_slice(extra);
        let mut child = Command::new(env!("CARGO_BIN_EXE_hookflow"))
            .args(&args)
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        // Read on a thread of its own (and drained after, so the process never blocks on a full
        // pipe): a serve that prints nothing fails the test instead of hanging it.
        let (sender, printed) = std::sync::mpsc::channel();
        let output = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(output).lines().map_while(Result::ok) {
                let _ = sender.send(line);
            }
        });
        assert!(endpoints > 0, "serve prints nothing to wait for without a workflow");
        let mut stdout = Vec::new();
        // The first lines are the workflows' URLs.
        while stdout.len() < endpoints {
            match printed.recv_timeout(std::time::Duration::from_secs(120)) {
                Ok(line) => stdout.push(line),
                // Its stderr (inherited) says why.
                Err(error) => panic!("serve {args:?} printed no URL ({error}); exit status: {:?}", child.try_wait()),
            }
        }
        let url = stdout[0].split_whitespace().last().unwrap().to_string();
        let address = url.trim_start_matches("http://").split('/').next().unwrap().parse().unwrap();
        Serve { child, address, stdout }
    }

    /// The headers an admin call needs (the token, on a PostgreSQL run).
    pub fn admin_headers() -> Vec<(&'static str, String)> {
        if on_postgres() { vec![("Authorization", format!("Bearer {TOKEN}"))] } else { Vec::new() }
    }

    /// An admin API call (with the token a PostgreSQL run needs).
    pub fn admin(&self, method: &str, path: &str) -> http::HttpResponse {
        let headers = Serve::admin_headers();
        let headers: Vec<(&str, &str)> = headers.iter().map(|(name, value)| (*name, value.as_str())).collect();
        http::request(self.address, method, path, &headers, b"")
    }

    /// Sends SIGTERM and returns the exit code.
    pub fn terminate(self) -> Option<i32> {
        self.signal("-TERM")
    }

    /// Sends SIGKILL: a crash.
    pub fn kill(self) {
        self.signal("-KILL");
    }

    fn signal(mut self, signal: &str) -> Option<i32> {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill").args([signal, &pid]).status().unwrap().success());
        self.child.wait().unwrap().code()
    }
}

impl Drop for Serve {
    /// A test that fails half-way leaves no server behind (it would hold the test's output open).
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn fresh_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}
