//! Who is calling, and whether they may: the client's address is the socket's — or, when the
//! socket's is a trusted proxy (`--trusted-proxies`), the right-most `X-Forwarded-For` hop that is
//! not one (the left-most hops are whatever the client wrote) — checked against the workflow's
//! `trigger.ipAllowlist`.

use std::net::IpAddr;

use axum::http::HeaderMap;
use ipnet::IpNet;

use crate::http::api_error::{ApiError, ErrorCode};

/// The calling client's address.
pub fn client_address(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let peer = peer.to_canonical();
    if !is_trusted(peer, trusted) {
        return peer;
    }
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .filter(|hop| !hop.is_empty())
        .collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        // A hop that is not an address was written by whoever is behind it: it is no proxy's.
        let Some(address) = parse_hop(hop) else { return IpAddr::from([0, 0, 0, 0]) };
        client = address;
        if !is_trusted(address, trusted) {
            break;
        }
    }
    client
}

/// `203.0.113.7`, `203.0.113.7:4711`, `2001:db8::1` or `[2001:db8::1]:4711`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(address) = hop.parse::<IpAddr>() {
        return Some(address.to_canonical());
    }
    if let Ok(socket) = hop.parse::<std::net::SocketAddr>() {
        return Some(socket.ip().to_canonical());
    }
    None
}

fn is_trusted(address: IpAddr, trusted: &[IpNet]) -> bool {
    trusted.iter().any(|net| net.contains(&address))
}

/// Refuses a client outside a non-empty allowlist (`403 forbidden`).
pub fn check_allowlist(client: IpAddr, allowlist: &[IpNet]) -> Result<(), ApiError> {
    if allowlist.is_empty() || allowlist.iter().any(|net| net.contains(&client)) {
        return Ok(());
    }
    Err(ApiError::new(
        ErrorCode::Forbidden,
        format!("the client address {client} is not in this webhook's trigger.ipAllowlist"),
    ))
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn net(text: &str) -> IpNet {
        hookflow_workflow::parse_address_block(text).unwrap_or_else(|| panic!("{text}"))
    }

    fn check(peer: &str, forwarded: &[&str], trusted: &[&str], expected: &str) {
        let mut headers = HeaderMap::new();
        for value in forwarded {
            headers.append("x-forwarded-for", HeaderValue::from_str(value).unwrap_or_else(|e| panic!("{e}")));
        }
        let trusted: Vec<IpNet> = trusted.iter().map(|text| net(text)).collect();
        let peer: IpAddr = peer.parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(client_address(peer, &headers, &trusted).to_string(), expected, "{peer} {forwarded:?} {trusted:?}");
    }

    #[test]
    fn the_client_is_the_right_most_untrusted_hop_behind_trusted_proxies() {
        check("198.51.100.9", &["203.0.113.7"], &[], "198.51.100.9");
        check("10.0.0.2", &["203.0.113.7"], &["10.0.0.0/8"], "203.0.113.7");
        check("10.0.0.2", &["1.2.3.4, 203.0.113.7, 10.0.0.5"], &["10.0.0.0/8"], "203.0.113.7");
        check("10.0.0.2", &["1.2.3.4", "203.0.113.7"], &["10.0.0.0/8"], "203.0.113.7");
        check("10.0.0.2", &[], &["10.0.0.0/8"], "10.0.0.2");
        check("10.0.0.2", &["10.0.0.7"], &["10.0.0.0/8"], "10.0.0.7");
        check("::ffff:10.0.0.2", &["[2001:db8::1]:443"], &["10.0.0.0/8"], "2001:db8::1");
        check("10.0.0.2", &["not-an-address"], &["10.0.0.0/8"], "0.0.0.0");
    }

    #[test]
    fn an_allowlist_lets_in_only_its_blocks() {
        let allowlist = [net("203.0.113.0/24"), net("2001:db8::/32")];
        let allowed = |address: &str| check_allowlist(address.parse().unwrap_or_else(|e| panic!("{e}")), &allowlist);
        assert!(allowed("203.0.113.200").is_ok());
        assert!(allowed("2001:db8:1::5").is_ok());
        assert!(allowed("198.51.100.1").is_err());
        assert!(check_allowlist("198.51.100.1".parse().unwrap_or_else(|e| panic!("{e}")), &[]).is_ok());
    }
}
