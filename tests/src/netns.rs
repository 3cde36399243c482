//! A second host for tests that need a peer which is not loopback: a network namespace joined to
//! this one by a veth pair, made with iproute2 (`ip netns`, root only) and removed on drop.

use std::net::Ipv4Addr;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU8, Ordering};

/// A network namespace with its own address on a /30 shared with this host.
pub struct RemoteHost {
    name: String,
    /// This host's end of the link, where the remote host reaches us.
    pub local_ip: Ipv4Addr,
    /// The remote host's address, the peer address our servers see.
    pub remote_ip: Ipv4Addr,
}

fn ip(args: &[&str]) {
    let output = Command::new("ip").args(args).output().unwrap_or_else(|error| {
        panic!("this test needs iproute2's `ip` (Debian package iproute2) to make a second host: {error}")
    });
    assert!(
        output.status.success(),
        "`ip {}` failed (making a network namespace needs root): {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}

impl RemoteHost {
    /// Makes the namespace and its link; panics with what is missing when it cannot.
    pub fn create() -> RemoteHost {
        static NEXT: AtomicU8 = AtomicU8::new(0);
        let unique = format!("{}{}", std::process::id() % 100_000, NEXT.fetch_add(1, Ordering::Relaxed));
        let name = format!("hookflow-{unique}");
        // A /30 in 10.213/16 chosen by the process id, so parallel test runs rarely meet.
        let octet = u8::try_from(std::process::id() % 63).unwrap_or(0) * 4;
        let subnet = u8::try_from(std::process::id() / 63 % 250).unwrap_or(0);
        let (local_ip, remote_ip) =
            (Ipv4Addr::new(10, 213, subnet, octet + 1), Ipv4Addr::new(10, 213, subnet, octet + 2));
        let (outside, inside) = (format!("hfa{unique}"), format!("hfb{unique}"));
        ip(&["netns", "add", &name]);
        let host = RemoteHost { name, local_ip, remote_ip };
        ip(&["link", "add", &outside, "type", "veth", "peer", "name", &inside]);
        ip(&["link", "set", &inside, "netns", &host.name]);
        ip(&["addr", "add", &format!("{local_ip}/30"), "dev", &outside]);
        ip(&["link", "set", &outside, "up"]);
        ip(&["netns", "exec", &host.name, "ip", "addr", "add", &format!("{remote_ip}/30"), "dev", &inside]);
        ip(&["netns", "exec", &host.name, "ip", "link", "set", &inside, "up"]);
        host
    }

    /// Runs `program` inside the namespace.
    pub fn run(&self, program: &str, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.name, program])
            .args(args)
            .output()
            .unwrap_or_else(|error| panic!("ip netns exec {program}: {error}"))
    }

    /// An HTTP request from the remote host with curl: `(status, body)`.
    pub fn curl(&self, method: &str, url: &str) -> (u16, String) {
        let output = self.run("curl", &["-sS", "--max-time", "20", "-X", method, "-w", "\n%{http_code}", url]);
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "curl {url} from {}: {}",
            self.remote_ip,
            String::from_utf8_lossy(&output.stderr)
        );
        let (body, status) = text.rsplit_once('\n').unwrap_or(("", &text));
        (status.trim().parse().unwrap_or(0), body.to_string())
    }
}

impl Drop for RemoteHost {
    /// Deleting the namespace deletes the veth pair with it.
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "delete", &self.name]).output();
    }
}
