//! A small closed-loop HTTP/1.1 load generator: `CONNECTIONS` keep-alive connections each POST
//! the same JSON body back to back for `SECONDS`, then it prints requests/s, latency
//! percentiles and the status codes seen.
//!
//! `load URL CONNECTIONS SECONDS [BODY]` — the URL must be `http://host:port/path`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: load URL CONNECTIONS SECONDS [BODY]";
    let url = args.get(1).expect(usage);
    let connections: usize = args.get(2).and_then(|n| n.parse().ok()).expect(usage);
    let seconds: u64 = args.get(3).and_then(|n| n.parse().ok()).expect(usage);
    let body = args.get(4).cloned().unwrap_or_else(|| r#"{"status": "paid", "order": 42}"#.into());
    let rest = url.strip_prefix("http://").expect("only http:// URLs");
    let (authority, path) = rest.split_once('/').map_or((rest, "/".to_string()), |(a, p)| (a, format!("/{p}")));
    let address: SocketAddr = authority.parse().expect("the URL needs an IP:port authority");
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );

    let deadline = Instant::now() + Duration::from_secs(seconds);
    let tasks: Vec<_> =
        (0..connections).map(|_| tokio::spawn(connection(address, request.clone().into_bytes(), deadline))).collect();
    let mut latencies = Vec::new();
    let mut statuses = std::collections::BTreeMap::new();
    let mut errors = 0usize;
    for task in tasks {
        let (mut lat, stat, err) = task.await.expect("a connection task panicked");
        latencies.append(&mut lat);
        for (status, count) in stat {
            *statuses.entry(status).or_insert(0usize) += count;
        }
        errors += err;
    }
    latencies.sort();
    let percentile = |p: f64| {
        let index = ((latencies.len() as f64 * p).ceil() as usize).saturating_sub(1);
        latencies.get(index).map_or(0.0, |d: &Duration| d.as_secs_f64() * 1e3)
    };
    println!(
        "{:>10.0} req/s  p50 {:>7.2} ms  p99 {:>7.2} ms  p99.9 {:>7.2} ms  statuses {statuses:?}  errors {errors}",
        latencies.len() as f64 / seconds as f64,
        percentile(0.50),
        percentile(0.99),
        percentile(0.999),
    );
}

/// One keep-alive connection sending requests until the deadline; reconnects after an error.
async fn connection(
    address: SocketAddr,
    request: Vec<u8>,
    deadline: Instant,
) -> (Vec<Duration>, Vec<(u16, usize)>, usize) {
    let mut latencies = Vec::new();
    let mut statuses: Vec<(u16, usize)> = Vec::new();
    let mut errors = 0;
    let mut buffer = vec![0u8; 64 * 1024];
    'connect: while Instant::now() < deadline {
        let Ok(mut stream) = TcpStream::connect(address).await else {
            errors += 1;
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        while Instant::now() < deadline {
            let started = Instant::now();
            if stream.write_all(&request).await.is_err() {
                errors += 1;
                continue 'connect;
            }
            let Some(status) = read_response(&mut stream, &mut buffer).await else {
                errors += 1;
                continue 'connect;
            };
            latencies.push(started.elapsed());
            match statuses.iter_mut().find(|(s, _)| *s == status) {
                Some((_, count)) => *count += 1,
                None => statuses.push((status, 1)),
            }
        }
    }
    (latencies, statuses, errors)
}

/// Reads one response with a `Content-Length` body; returns its status.
async fn read_response(stream: &mut TcpStream, buffer: &mut [u8]) -> Option<u16> {
    let mut filled = 0;
    loop {
        let read = stream.read(&mut buffer[filled..]).await.ok()?;
        if read == 0 {
            return None;
        }
        filled += read;
        let Some(head_end) = buffer[..filled].windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = std::str::from_utf8(&buffer[..head_end]).ok()?;
        let status = head.split(' ').nth(1)?.parse().ok()?;
        let length: usize = head
            .lines()
            .find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("content-length").then(|| value.trim().parse().ok())?
            })
            .unwrap_or(0);
        while filled < head_end + 4 + length {
            let read = stream.read(&mut buffer[filled..]).await.ok()?;
            if read == 0 {
                return None;
            }
            filled += read;
        }
        return Some(status);
    }
}
