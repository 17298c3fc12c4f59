//! Who the client is: the TCP peer, or, behind a trusted reverse proxy,
//! the address the proxy says it saw.
//!
//! Only a peer inside `server.trusted_proxies` is believed. Its
//! `X-Forwarded-For` (every such header, in order, comma-separated) is read
//! from the right: each proxy appends the address it saw, so the right-most
//! entry that is not itself a trusted proxy is the client. Entries to its
//! left were written by the client and are never believed. If every entry is
//! trusted the left-most is the client; an entry that does not parse ends the
//! walk, and the last trusted hop seen is used. A peer outside the list is the
//! client whatever headers it sends, so a direct caller cannot pick its own
//! address.
//!
//! Pure: no I/O, unit-tested below.

use std::net::{IpAddr, SocketAddr};

use http::HeaderMap;

use crate::config::IpNet;

/// The header proxies append the address they saw to.
const FORWARDED_FOR: &str = "x-forwarded-for";

/// Whether `ip` is one of the trusted proxies.
pub fn is_trusted(trusted: &[IpNet], ip: IpAddr) -> bool {
    trusted.iter().any(|n| n.contains(ip))
}

/// The client's address for a request from `peer` with `headers`.
pub fn client_ip(trusted: &[IpNet], peer: IpAddr, headers: &HeaderMap) -> IpAddr {
    if !is_trusted(trusted, peer) {
        return peer;
    }
    let mut hops: Vec<&str> = Vec::new();
    for value in headers.get_all(FORWARDED_FOR) {
        let Ok(v) = value.to_str() else {
            return peer;
        };
        hops.extend(v.split(',').map(str::trim));
    }
    let mut client = peer;
    for hop in hops.iter().rev() {
        let Some(ip) = parse_hop(hop) else {
            return client;
        };
        client = ip;
        if !is_trusted(trusted, ip) {
            return ip;
        }
    }
    client
}

/// One `X-Forwarded-For` entry: `1.2.3.4`, `1.2.3.4:5678`, `::1` or
/// `[::1]:80`. IPv4-mapped IPv6 addresses become IPv4.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let ip = hop
        .parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))?;
    Some(match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| IpNet::parse(n).unwrap()).collect()
    }

    fn headers(xff: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in xff {
            h.append(FORWARDED_FOR, v.parse().unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        let t = nets(&["10.0.0.0/8"]);
        let h = headers(&["1.1.1.1"]);
        assert_eq!(client_ip(&t, ip("203.0.113.9"), &h), ip("203.0.113.9"));
        assert_eq!(client_ip(&[], ip("10.0.0.1"), &h), ip("10.0.0.1"));
    }

    #[test]
    fn the_right_most_untrusted_hop_is_the_client() {
        let t = nets(&["10.0.0.0/8"]);
        // The client forged "6.6.6.6"; the proxy appended what it saw.
        let h = headers(&["6.6.6.6, 198.51.100.7, 10.1.1.1"]);
        assert_eq!(client_ip(&t, ip("10.0.0.2"), &h), ip("198.51.100.7"));
        // Several headers count as one list, in order.
        let h = headers(&["6.6.6.6", "198.51.100.7:4431"]);
        assert_eq!(client_ip(&t, ip("10.0.0.2"), &h), ip("198.51.100.7"));
    }

    #[test]
    fn odd_headers_fall_back_to_the_last_trusted_hop() {
        let t = nets(&["10.0.0.0/8"]);
        let peer = ip("10.0.0.2");
        assert_eq!(client_ip(&t, peer, &headers(&[])), peer);
        assert_eq!(client_ip(&t, peer, &headers(&["unknown"])), peer);
        assert_eq!(
            client_ip(&t, peer, &headers(&["garbage, 10.3.3.3"])),
            ip("10.3.3.3")
        );
        // Every hop trusted: the left-most is as far as anyone can tell.
        assert_eq!(
            client_ip(&t, peer, &headers(&["10.9.9.9, 10.3.3.3"])),
            ip("10.9.9.9")
        );
    }

    #[test]
    fn ipv6_forms_parse_and_mapped_addresses_become_ipv4() {
        let t = nets(&["::1"]);
        let h = headers(&["[2001:db8::7]:443"]);
        assert_eq!(client_ip(&t, ip("::1"), &h), ip("2001:db8::7"));
        let h = headers(&["::ffff:198.51.100.7"]);
        assert_eq!(client_ip(&t, ip("::1"), &h), ip("198.51.100.7"));
    }
}
