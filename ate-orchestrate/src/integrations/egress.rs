//! Where an [`IntegrationClient`](super::IntegrationClient) may connect: tenants register
//! the URLs, so a host serving many tenants must not let one of them reach the host's own
//! network (cloud metadata at `169.254.169.254`, databases on loopback, services on the
//! private network) through a call or a probe (server-side request forgery).
//!
//! [`Egress::PublicOnly`] (the default) checks every address a connection would use, after
//! DNS resolution and at connection time, so a name that resolves to a private address (or
//! is changed to resolve to one later, DNS rebinding) is refused as well as an IP literal.
//! Redirects are never followed. [`Egress::Any`] lifts the check, for a host whose
//! integrations are meant to reach its private network (and for tests on loopback).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Which addresses calls, probes and OAuth 2.0 token requests may connect to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Egress {
    /// Only globally routable unicast addresses: no loopback, private (RFC 1918, unique
    /// local), link-local, shared (CGNAT), multicast, documentation, benchmarking or
    /// reserved ranges, IPv4-mapped and NAT64 forms included.
    #[default]
    PublicOnly,
    /// Any address.
    Any,
}

impl Egress {
    /// Whether a connection to `ip` is allowed.
    pub fn allows(self, ip: IpAddr) -> bool {
        match self {
            Egress::Any => true,
            Egress::PublicOnly => is_public(ip),
        }
    }
}

/// Whether `ip` is a globally routable unicast address.
pub(crate) fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(a == 0                                   // "this network"
        || a == 10                             // private
        || a == 127                            // loopback
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 169 && b == 254)              // link-local, cloud metadata
        || (a == 172 && (16..32).contains(&b)) // private
        || (a == 192 && b == 0 && c == 0)      // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2)      // documentation
        || (a == 192 && b == 168)              // private
        || (a == 198 && (b == 18 || b == 19))  // benchmarking
        || (a == 198 && b == 51 && c == 100)   // documentation
        || (a == 203 && b == 0 && c == 113)    // documentation
        || a >= 224) // multicast, reserved, broadcast
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let s = ip.segments();
    // NAT64 (64:ff9b::/96) carries an IPv4 address in its last 32 bits.
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
        let [.., hi, lo] = s;
        let v4 = Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
        return is_public_v4(v4);
    }
    !(ip.is_unspecified()
        || ip.is_loopback()
        || s[0] & 0xffc0 == 0xfe80 // link-local
        || s[0] & 0xfe00 == 0xfc00 // unique local
        || s[0] & 0xff00 == 0xff00 // multicast
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        || (s[0] == 0 && s[1..6] == [0, 0, 0, 0, 0])) // deprecated IPv4-compatible, ::/96
}

/// Checks the literal host of `url`, which reqwest connects to without resolving.
pub(crate) fn check_literal(egress: Egress, url: &str) -> Result<(), String> {
    let Ok(parsed) = url::Url::parse(url) else {
        return Ok(()); // reqwest reports the bad URL itself
    };
    let ip = match parsed.host() {
        Some(url::Host::Ipv4(v4)) => IpAddr::V4(v4),
        Some(url::Host::Ipv6(v6)) => IpAddr::V6(v6),
        _ => return Ok(()),
    };
    if egress.allows(ip) {
        Ok(())
    } else {
        Err(refused(ip))
    }
}

fn refused(ip: IpAddr) -> String {
    format!(
        "{ip} is not a public address and this host allows integrations to reach public addresses only"
    )
}

/// The resolver's refusal, found again in the connection error's source chain.
#[derive(Debug)]
pub(crate) struct Refused(pub(crate) String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// The refusal in `e`'s source chain, if the policy caused it.
pub(crate) fn refusal(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(r) = err.downcast_ref::<Refused>() {
            return Some(r.0.clone());
        }
        cur = err.source();
    }
    None
}

/// A resolver that drops the addresses the policy refuses, failing when none is left.
pub(crate) struct FilteringResolver {
    pub(crate) egress: Egress,
}

impl reqwest::dns::Resolve for FilteringResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let egress = self.egress;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = found
                .iter()
                .copied()
                .filter(|a| egress.allows(a.ip()))
                .collect();
            match (allowed.is_empty(), found.first()) {
                (false, _) => Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs),
                (true, Some(first)) => {
                    Err(Box::new(Refused(format!("{host}: {}", refused(first.ip())))) as _)
                }
                (true, None) => Err(format!("{host} has no address").into()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_only_refuses_every_internal_range() {
        let refused = [
            "0.0.0.0",
            "10.1.2.3",
            "127.0.0.1",
            "100.64.0.1",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "fe80::1",
            "fd00::1",
            "ff02::1",
            "2001:db8::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "::127.0.0.1",
        ];
        for ip in refused {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(!Egress::PublicOnly.allows(ip), "{ip} should be refused");
            assert!(Egress::Any.allows(ip));
        }
        let allowed = [
            "1.1.1.1",
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ];
        for ip in allowed {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(Egress::PublicOnly.allows(ip), "{ip} should be allowed");
        }
    }

    #[test]
    fn literal_hosts_are_checked_and_names_left_to_the_resolver() {
        assert!(check_literal(Egress::PublicOnly, "http://127.0.0.1:8080/x").is_err());
        assert!(check_literal(Egress::PublicOnly, "http://[::1]/x").is_err());
        assert!(check_literal(Egress::PublicOnly, "http://169.254.169.254/latest").is_err());
        assert!(check_literal(Egress::PublicOnly, "https://8.8.8.8/").is_ok());
        assert!(check_literal(Egress::PublicOnly, "https://example.com/").is_ok());
        assert!(check_literal(Egress::Any, "http://127.0.0.1/").is_ok());
    }

    #[tokio::test]
    async fn the_resolver_refuses_names_that_resolve_inside() {
        use reqwest::dns::Resolve as _;
        let resolver = FilteringResolver {
            egress: Egress::PublicOnly,
        };
        let err = match resolver.resolve("localhost".parse().unwrap()).await {
            Ok(_) => panic!("localhost resolved to an allowed address"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains("not a public address"), "{err}");
        let open = FilteringResolver {
            egress: Egress::Any,
        };
        assert!(open.resolve("localhost".parse().unwrap()).await.is_ok());
    }
}
