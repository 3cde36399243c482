//! A cluster for the tests: `hookflow serve` processes on one PostgreSQL database, HAProxy in
//! front of them (`hookflow-test-haproxy`: `examples/cluster/haproxy.cfg`, health-checking
//! `/readyz`), and a loopback server that counts the calls the nodes' `http-request` nodes make.

use std::collections::HashMap;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};

pub use hookflow_test_haproxy::Balancer;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{Serve, TOKEN, fresh_dir, http};

/// Nodes of one cluster.
pub struct Cluster {
    /// The database they share.
    pub url: String,
    /// The nodes (`None` once killed).
    pub nodes: Vec<Option<Serve>>,
    /// Each node's data directory.
    dirs: Vec<PathBuf>,
    /// What every node is started with.
    args: Vec<String>,
    /// How many workflows each node prints at start.
    endpoints: usize,
}

impl Cluster {
    /// Starts `count` nodes on `url` with the workflows of `workflows` (a directory), a 2 s lease,
    /// the admin token [`TOKEN`], and `extra` arguments.
    pub fn start(name: &str, url: &str, count: usize, workflows: &Path, endpoints: usize, extra: &[&str]) -> Cluster {
        // One compiled-component cache for all: the first node fills it, the others find it.
        let cache = fresh_dir(&format!("{name}-cache"));
        std::fs::create_dir_all(&cache).unwrap();
        let mut args: Vec<String> = ["--store", url, "--admin-token", TOKEN, "--lease", "2s", "--workflows"]
            .iter()
            .map(ToString::to_string)
            .collect();
        args.push(workflows.display().to_string());
        args.extend(extra.iter().map(ToString::to_string));
        let dirs: Vec<PathBuf> = (0..count)
            .map(|index| {
                let dir = fresh_dir(&format!("{name}-node{index}"));
                std::fs::create_dir_all(&dir).unwrap();
                std::os::unix::fs::symlink(&cache, dir.join("component-cache")).unwrap();
                dir
            })
            .collect();
        let mut cluster = Cluster { url: url.to_string(), nodes: Vec::new(), dirs, args, endpoints };
        for index in 0..count {
            let node = cluster.start_node(index);
            cluster.nodes.push(Some(node));
        }
        cluster
    }

    fn start_node(&self, index: usize) -> Serve {
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        Serve::start_with(&self.dirs[index], &args, self.endpoints)
    }

    /// The address of node `index`.
    pub fn address(&self, index: usize) -> SocketAddr {
        self.node(index).address
    }

    /// Node `index` (panics when it was killed).
    pub fn node(&self, index: usize) -> &Serve {
        self.nodes[index].as_ref().unwrap_or_else(|| panic!("node {index} is gone"))
    }

    /// Every live node's address.
    pub fn addresses(&self) -> Vec<SocketAddr> {
        self.nodes.iter().flatten().map(|node| node.address).collect()
    }

    /// Kills node `index` with SIGKILL.
    pub fn kill(&mut self, index: usize) {
        if let Some(node) = self.nodes[index].take() {
            node.kill();
        }
    }

    /// Sends `signal` (`-STOP`, `-CONT`) to node `index`.
    pub fn signal(&self, index: usize, signal: &str) {
        let pid = self.node(index).child.id().to_string();
        assert!(Command::new("kill").args([signal, &pid]).status().unwrap().success());
    }
}

/// An admin call to `address` with the token.
pub fn admin(address: SocketAddr, method: &str, path: &str, body: Option<&Value>) -> http::HttpResponse {
    let token = format!("Bearer {TOKEN}");
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut headers = vec![("Authorization", token.as_str())];
    if !body.is_empty() {
        headers.push(("Content-Type", "application/json"));
    }
    http::request(address, method, path, &headers, body.as_bytes())
}

/// The nodes `GET /api/cluster` lists, as `(address, id, executions)`.
pub fn cluster_nodes(address: SocketAddr) -> Vec<(String, i64, u64)> {
    let listed = admin(address, "GET", "/api/cluster", None);
    assert_eq!(listed.status, 200, "{}", listed.text());
    let items = listed.json()["items"].as_array().cloned().unwrap_or_default();
    items
        .iter()
        .map(|node| {
            let address = node["address"].as_str().unwrap_or_default().to_string();
            (address, node["id"].as_i64().unwrap_or(-1), node["executions"].as_u64().unwrap_or(0))
        })
        .collect()
}

/// Waits until `check` holds (at most `within`), polling every 50 ms.
pub fn wait_until(what: &str, within: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check() {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// HAProxy in front of the nodes (`examples/cluster/haproxy.cfg`), routing once its health
/// checks have seen them ready.
pub fn balancer(name: &str, nodes: &[SocketAddr]) -> Balancer {
    let config = fresh_dir(&format!("{name}-haproxy")).with_extension("cfg");
    let balancer = Balancer::start(&config, nodes).unwrap_or_else(|why| panic!("{why}"));
    let address = balancer.address;
    wait_until("HAProxy routes", Duration::from_secs(10), || {
        http::try_send_raw(address, &http::request_bytes(address, "GET", "/readyz", &[], b""), false)
            .is_ok_and(|answer| answer.status == 200)
    });
    balancer
}

/// A loopback HTTP server that records every call's JSON body `{"execution", "node"}` — what an
/// `http-request` node of the tests sends — and answers `200 {}`.
pub struct Counter {
    /// Where it listens.
    pub address: SocketAddr,
    hits: Arc<Mutex<HashMap<(String, String), usize>>>,
}

impl Counter {
    /// Starts it on a thread of its own.
    pub fn start() -> Counter {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let hits: Arc<Mutex<HashMap<(String, String), usize>>> = Arc::default();
        let recorded = hits.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                let recorded = recorded.clone();
                std::thread::spawn(move || answer(stream, &recorded));
            }
        });
        Counter { address, hits }
    }

    /// How many times each `(execution, node)` was called.
    pub fn hits(&self) -> HashMap<(String, String), usize> {
        self.hits.lock().unwrap().clone()
    }
}

fn answer(stream: TcpStream, hits: &Mutex<HashMap<(String, String), usize>>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(stream);
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0u8; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    if let Ok(call) = serde_json::from_slice::<Value>(&body) {
        let key = (
            call["execution"].as_str().unwrap_or_default().to_string(),
            call["node"].as_str().unwrap_or_default().to_string(),
        );
        *hits.lock().unwrap().entry(key).or_default() += 1;
    }
    let mut stream = reader.into_inner();
    let _ = stream.write_all(
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}",
    );
}
