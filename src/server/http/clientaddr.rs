//! Who the client is: the TCP peer, or, only when that peer is a trusted
//! reverse proxy, the rightmost untrusted hop of `X-Forwarded-For` (or of
//! RFC 7239 `Forwarded: for=`); and the key a client is counted under
//! (IPv4 per address, IPv6 per /64).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use axum::http::HeaderMap;

use crate::server::{ServerError, ServerResult};

/// Hops of a forwarding header looked at, from the right.
const MAX_HOPS: usize = 64;

/// An address block: an address and a prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parse `ADDR` or `ADDR/PREFIX` (IPv4 or IPv6); the error names `s`.
    pub fn parse(s: &str) -> ServerResult<Cidr> {
        let bad = |why: &str| {
            ServerError::config(format!(
                "trusted_proxies: {s:?} is not an address or CIDR block ({why})"
            ))
        };
        let t = s.trim();
        let (addr, prefix) = match t.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (t, None),
        };
        let ip: IpAddr = addr
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .map_err(|_| bad("bad address"))?;
        let ip = ip.to_canonical();
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= max => n,
                _ => return Err(bad("bad prefix length")),
            },
        };
        Ok(Cidr {
            net: mask(ip, prefix),
            prefix,
        })
    }

    /// Whether `ip` is in the block.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        ip.is_ipv4() == self.net.is_ipv4() && mask(ip, self.prefix) == self.net
    }
}

fn mask(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(a) => {
            let m = u32::MAX
                .checked_shl(32 - u32::from(prefix.min(32)))
                .unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(u32::from(a) & m))
        }
        IpAddr::V6(a) => {
            let m = u128::MAX
                .checked_shl(128 - u32::from(prefix.min(128)))
                .unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(a) & m))
        }
    }
}

/// The key a client is counted under: an IPv4 address as is, an IPv6
/// address's /64 (one subscriber's usual allocation), an IPv4-mapped IPv6
/// address as the IPv4 address.
pub fn bucket_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        v4 @ IpAddr::V4(_) => v4,
        v6 => mask(v6, 64),
    }
}

/// Which header a trusted proxy sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2`.
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=client, for=proxy1`.
    Forwarded,
}

impl ForwardedHeader {
    /// `x-forwarded-for` or `forwarded` (any case).
    pub fn parse(s: &str) -> ServerResult<ForwardedHeader> {
        match s.trim().to_ascii_lowercase().as_str() {
            "x-forwarded-for" => Ok(ForwardedHeader::XForwardedFor),
            "forwarded" => Ok(ForwardedHeader::Forwarded),
            _ => Err(ServerError::config(format!(
                "forwarded_header: {s:?} is neither \"x-forwarded-for\" nor \"forwarded\""
            ))),
        }
    }
}

/// The reverse proxies whose forwarding header is believed.
#[derive(Clone, Debug)]
pub struct TrustedProxies {
    blocks: Vec<Cidr>,
    header: ForwardedHeader,
}

impl TrustedProxies {
    /// Parse every entry (errors name the bad one).
    pub fn parse<S: AsRef<str>>(entries: &[S], header: &str) -> ServerResult<TrustedProxies> {
        Ok(TrustedProxies {
            blocks: entries
                .iter()
                .map(|e| Cidr::parse(e.as_ref()))
                .collect::<ServerResult<_>>()?,
            header: ForwardedHeader::parse(header)?,
        })
    }

    /// None: every header ignored.
    pub fn none() -> TrustedProxies {
        TrustedProxies {
            blocks: Vec::new(),
            header: ForwardedHeader::XForwardedFor,
        }
    }

    /// Whether `ip` is a trusted proxy.
    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        self.blocks.iter().any(|b| b.contains(ip))
    }

    /// The client's address: the TCP `peer` unless it is trusted; then the
    /// rightmost hop of the forwarding header that is not itself trusted
    /// (the leftmost if all are). A missing header gives the peer; a
    /// malformed hop met on the way (or too many hops) gives the peer too.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.is_trusted(peer) {
            return peer;
        }
        let name = match self.header {
            ForwardedHeader::XForwardedFor => "x-forwarded-for",
            ForwardedHeader::Forwarded => "forwarded",
        };
        // Several header lines are one list, in order.
        let mut hops: Vec<&str> = Vec::new();
        for v in headers.get_all(name) {
            let Ok(v) = v.to_str() else {
                return peer;
            };
            match self.header {
                ForwardedHeader::XForwardedFor => hops.extend(v.split(',')),
                ForwardedHeader::Forwarded => hops.extend(split_unquoted(v, ',')),
            }
        }
        let mut found = peer;
        for hop in hops.iter().rev().take(MAX_HOPS) {
            let ip = match self.header {
                ForwardedHeader::XForwardedFor => parse_node(hop),
                ForwardedHeader::Forwarded => forwarded_for(hop).and_then(parse_node),
            };
            let Some(ip) = ip else {
                return peer;
            };
            if !self.is_trusted(ip) {
                return ip;
            }
            found = ip;
        }
        if hops.len() > MAX_HOPS {
            return peer;
        }
        found
    }
}

/// Split `s` at `sep` outside double-quoted strings.
fn split_unquoted(s: &str, sep: char) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if quoted && c == '\\' {
            escaped = true;
        } else if c == '"' {
            quoted = !quoted;
        } else if c == sep && !quoted {
            out.push(&s[start..i]);
            start = i + c.len_utf8();
        }
    }
    out.push(&s[start..]);
    out
}

/// The `for=` value of one `Forwarded` element (`for=1.2.3.4;proto=https`).
fn forwarded_for(element: &str) -> Option<&str> {
    let mut value = None;
    for pair in split_unquoted(element, ';') {
        let (k, v) = pair.split_once('=')?;
        if k.trim().eq_ignore_ascii_case("for") {
            if value.is_some() {
                return None;
            }
            let v = v.trim();
            let v = match v.strip_prefix('"') {
                Some(rest) => rest.strip_suffix('"')?,
                None => v,
            };
            value = Some(v);
        }
    }
    value
}

/// An address, with or without a port: `1.2.3.4`, `1.2.3.4:80`, `::1`,
/// `[::1]`, `[::1]:80`. Not `unknown`, not obfuscated names.
fn parse_node(s: &str) -> Option<IpAddr> {
    let s = s.trim();
    if s.is_empty() || s.len() > 64 {
        return None;
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Some(sa.ip().to_canonical());
    }
    let inner = s.strip_prefix('[')?;
    let end = inner.find(']')?;
    let ip: Ipv6Addr = inner[..end].parse().ok()?;
    let rest = &inner[end + 1..];
    if rest.is_empty() || (rest.starts_with(':') && rest[1..].bytes().all(|b| b.is_ascii_digit())) {
        Some(IpAddr::V6(ip).to_canonical())
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn headers(name: &'static str, values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(name, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn ipv6_per_64_ipv4_per_address() {
        assert_eq!(bucket_key(ip("2001:db8:1:2:3:4:5:6")), ip("2001:db8:1:2::"));
        assert_eq!(
            bucket_key(ip("2001:db8:1:2:ffff:ffff:ffff:ffff")),
            bucket_key(ip("2001:db8:1:2::1"))
        );
        assert_ne!(
            bucket_key(ip("2001:db8:1:2::1")),
            bucket_key(ip("2001:db8:1:3::1"))
        );
        assert_eq!(bucket_key(ip("192.0.2.7")), ip("192.0.2.7"));
        assert_ne!(bucket_key(ip("192.0.2.7")), bucket_key(ip("192.0.2.8")));
        assert_eq!(bucket_key(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
        assert_eq!(bucket_key(ip("::1")), ip("::"));
    }

    #[test]
    fn cidrs() {
        let c = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(c.contains(ip("10.200.3.4")) && !c.contains(ip("11.0.0.1")));
        assert!(c.contains(ip("::ffff:10.1.1.1")));
        let c = Cidr::parse("2001:db8::/32").unwrap();
        assert!(c.contains(ip("2001:db8:ffff::1")) && !c.contains(ip("2001:db9::1")));
        assert!(!c.contains(ip("10.0.0.1")));
        assert!(Cidr::parse("127.0.0.1").unwrap().contains(ip("127.0.0.1")));
        assert!(!Cidr::parse("127.0.0.1").unwrap().contains(ip("127.0.0.2")));
        assert!(Cidr::parse("[::1]").unwrap().contains(ip("::1")));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        for bad in [
            "10.0.0.0/33",
            "10.0.0/8",
            "nginx",
            "",
            "::1/129",
            "1.2.3.4/-1",
            "1.2.3.4/",
        ] {
            let e = Cidr::parse(bad).unwrap_err().to_string();
            assert!(e.contains(&format!("{bad:?}")), "{e}");
        }
        let e = TrustedProxies::parse(&["10.0.0.1", "10.0.0.0/40"], "x-forwarded-for")
            .unwrap_err()
            .to_string();
        assert!(e.contains("10.0.0.0/40"), "{e}");
        assert!(TrustedProxies::parse(&["::1"], "x-real-ip").is_err());
    }

    #[test]
    fn forwarded_for_only_from_trusted_peers() {
        let t = TrustedProxies::parse(&["127.0.0.1", "10.0.0.0/8"], "x-forwarded-for").unwrap();
        let h = headers("x-forwarded-for", &["203.0.113.5"]);
        assert_eq!(t.client_ip(ip("127.0.0.1"), &h), ip("203.0.113.5"));
        // An untrusted peer's header is ignored.
        assert_eq!(t.client_ip(ip("198.51.100.1"), &h), ip("198.51.100.1"));
        // No header: the proxy itself.
        assert_eq!(
            t.client_ip(ip("127.0.0.1"), &HeaderMap::new()),
            ip("127.0.0.1")
        );
        // Rightmost untrusted hop: the client put "1.1.1.1" in front.
        let h = headers("x-forwarded-for", &["1.1.1.1, 203.0.113.5, 10.1.2.3"]);
        assert_eq!(t.client_ip(ip("127.0.0.1"), &h), ip("203.0.113.5"));
        // Several header lines are one list.
        let h = headers("x-forwarded-for", &["1.1.1.1", "203.0.113.5", "10.1.2.3"]);
        assert_eq!(t.client_ip(ip("127.0.0.1"), &h), ip("203.0.113.5"));
        // All trusted: the leftmost.
        let h = headers("x-forwarded-for", &["10.9.9.9, 10.1.2.3"]);
        assert_eq!(t.client_ip(ip("127.0.0.1"), &h), ip("10.9.9.9"));
        // Ports, brackets, mapped addresses.
        let h = headers("x-forwarded-for", &["[2001:db8::7]:443"]);
        assert_eq!(t.client_ip(ip("127.0.0.1"), &h), ip("2001:db8::7"));
        let h = headers("x-forwarded-for", &["203.0.113.5:1234"]);
        assert_eq!(t.client_ip(ip("127.0.0.1"), &h), ip("203.0.113.5"));
        let h = headers("x-forwarded-for", &["::ffff:203.0.113.5"]);
        assert_eq!(t.client_ip(ip("::ffff:127.0.0.1"), &h), ip("203.0.113.5"));
        // Garbage where the client would be: the peer.
        for g in [
            "unknown",
            "",
            "evil, ",
            "1.2.3.4.5",
            "[::1",
            "[::1]x",
            "a,b,c",
        ] {
            let h = headers("x-forwarded-for", &[g]);
            assert_eq!(t.client_ip(ip("127.0.0.1"), &h), ip("127.0.0.1"), "{g:?}");
        }
        // Garbage left of the client hop does not matter.
        let h = headers("x-forwarded-for", &["garbage, 203.0.113.5"]);
        assert_eq!(t.client_ip(ip("127.0.0.1"), &h), ip("203.0.113.5"));
        // A very long chain of trusted hops: the peer.
        let long = vec!["10.0.0.1"; 200].join(",");
        let h = headers("x-forwarded-for", &[&long]);
        assert_eq!(t.client_ip(ip("127.0.0.1"), &h), ip("127.0.0.1"));
        // The header not configured is ignored.
        let h = headers("forwarded", &["for=203.0.113.5"]);
        assert_eq!(t.client_ip(ip("127.0.0.1"), &h), ip("127.0.0.1"));
    }

    #[test]
    fn rfc7239_forwarded() {
        let t = TrustedProxies::parse(&["127.0.0.1", "10.0.0.0/8"], "Forwarded").unwrap();
        let f = |v: &str| t.client_ip(ip("127.0.0.1"), &headers("forwarded", &[v]));
        assert_eq!(f("for=203.0.113.5"), ip("203.0.113.5"));
        assert_eq!(
            f("For=\"[2001:db8::1]:4711\";proto=https"),
            ip("2001:db8::1")
        );
        assert_eq!(
            f("for=1.1.1.1, for=203.0.113.5;by=10.0.0.2, for=10.1.1.1"),
            ip("203.0.113.5")
        );
        assert_eq!(f("proto=https;for=203.0.113.5:80"), ip("203.0.113.5"));
        assert_eq!(f("for=\"a,b\", for=203.0.113.5"), ip("203.0.113.5"));
        for g in [
            "for=unknown",
            "for=_hidden",
            "by=1.2.3.4",
            "for=1.2.3.4;for=5.6.7.8",
            "for=\"1.2.3.4",
            "x",
        ] {
            assert_eq!(f(g), ip("127.0.0.1"), "{g:?}");
        }
        // X-Forwarded-For ignored when Forwarded is the configured header.
        let h = headers("x-forwarded-for", &["203.0.113.5"]);
        assert_eq!(t.client_ip(ip("127.0.0.1"), &h), ip("127.0.0.1"));
    }
}
