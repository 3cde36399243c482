//! HAProxy in front of hookflow nodes, as `examples/cluster/haproxy.cfg` (the configuration
//! `docs/cluster.md` shows) sets it up — health checks on `/readyz`, connection retries on another
//! node — with the listen address and the servers replaced: for the cluster tests and the
//! cluster benchmarks. The machine needs Debian's `haproxy` (`scripts/test` installs it).

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running HAProxy; stopped when dropped.
pub struct Balancer {
    child: Child,
    /// Where it listens.
    pub address: SocketAddr,
}

impl Balancer {
    /// Starts HAProxy for `nodes`, its configuration written to `config`, and waits until it
    /// accepts connections.
    pub fn start(config: &Path, nodes: &[SocketAddr]) -> Result<Balancer, String> {
        let address = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map_err(|error| format!("no free port: {error}"))?;
        std::fs::write(config, configuration(address, nodes)?)
            .map_err(|error| format!("cannot write {}: {error}", config.display()))?;
        let mut child = Command::new(binary())
            .args(["-db", "-f"])
            .arg(config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|error| format!("cannot start HAProxy ({error}): install Debian's haproxy"))?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(address).is_err() {
            if Instant::now() > deadline || matches!(child.try_wait(), Ok(Some(_))) {
                let _ = child.kill();
                return Err("HAProxy did not start listening".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Balancer { child, address })
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `examples/cluster/haproxy.cfg` listening on `address`, with a server line per node.
fn configuration(address: SocketAddr, nodes: &[SocketAddr]) -> Result<String, String> {
    let template = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/cluster/haproxy.cfg");
    let template =
        std::fs::read_to_string(&template).map_err(|error| format!("cannot read {}: {error}", template.display()))?;
    let mut config = String::new();
    for line in template.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("server ") {
            continue;
        }
        if trimmed.starts_with("bind ") {
            config.push_str(&format!("    bind {address}\n"));
        } else {
            config.push_str(line);
            config.push('\n');
        }
        if trimmed.starts_with("default-server") {
            for (index, node) in nodes.iter().enumerate() {
                config.push_str(&format!("    server node{index} {node} check\n"));
            }
        }
    }
    Ok(config)
}

fn binary() -> PathBuf {
    ["/usr/sbin/haproxy", "/usr/local/sbin/haproxy", "/usr/bin/haproxy"]
        .iter()
        .map(PathBuf::from)
        .find(|path| path.exists())
        .unwrap_or_else(|| PathBuf::from("haproxy"))
}
