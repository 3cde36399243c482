//! What the binary's tests share: running `hookflow`, a `hookflow serve` process, fresh data
//! directories, and the raw HTTP client and fixture components of the tests crate.

#![allow(dead_code, reason = "each test binary uses its own part of the support code")]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use serde_json::Value;

pub use hookflow_tests::http;

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

    /// [`Serve::start_with`] with extra environment variables.
    pub fn start_env(data: &Path, extra: &[&str], endpoints: usize, env: &[(&str, &str)]) -> Serve {
        let mut args = vec!["serve", "--listen", "127.0.0.1:0", "--data", data.to_str().unwrap()];
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
