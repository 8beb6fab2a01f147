//! SSRF guard: the crawler never connects to private, loopback, link-local
//! or otherwise non-public addresses, unless a seed URL names that exact host
//! (tests and `byline demo` crawl 127.0.0.1).
//!
//! Two checks: [`Guard::check`] before every request and redirect hop (IP
//! literals, and names resolved once to classify the error clearly), and
//! [`GuardedResolver`], the resolver the HTTP client connects through, which
//! drops non-public addresses again so a name that re-resolves differently
//! (DNS rebinding) still cannot reach them.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use url::{Host, Url};

/// Hosts the crawl may reach even though they are not public.
#[derive(Debug, Clone, Default)]
pub struct Guard {
    allowed_hosts: HashSet<String>,
}

/// Why a URL was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocked(pub String);

impl std::fmt::Display for Blocked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for Blocked {}

impl Guard {
    /// A guard that lets the exact hosts of `seeds` through.
    pub fn for_seeds<'a>(seeds: impl IntoIterator<Item = &'a Url>) -> Guard {
        let allowed_hosts = seeds
            .into_iter()
            .filter_map(|u| u.host_str().map(|h| h.to_ascii_lowercase()))
            .collect();
        Guard { allowed_hosts }
    }

    /// Whether `host` (as written in a URL) is a seed host.
    pub fn is_seed_host(&self, host: &str) -> bool {
        self.allowed_hosts.contains(&host.to_ascii_lowercase())
    }

    /// Refuses URLs whose host is, or resolves only to, a non-public address
    /// and is not a seed host.
    pub async fn check(&self, url: &Url) -> Result<(), Blocked> {
        let Some(host) = url.host() else {
            return Err(Blocked(format!("url {url} has no host")));
        };
        let name = url.host_str().unwrap_or_default();
        if self.is_seed_host(name) {
            return Ok(());
        }
        match host {
            Host::Ipv4(ip) => public_or_blocked(name, IpAddr::V4(ip)),
            Host::Ipv6(ip) => public_or_blocked(name, IpAddr::V6(ip)),
            Host::Domain(d) => {
                let port = url.port_or_known_default().unwrap_or(80);
                // A name that does not resolve is not an SSRF question: the
                // request goes ahead and fails as a DNS error in the client,
                // whose resolver ([`GuardedResolver`]) checks again.
                let Ok(addrs) = tokio::net::lookup_host((d, port)).await else {
                    return Ok(());
                };
                let addrs: Vec<SocketAddr> = addrs.collect();
                if addrs.iter().any(|a| is_public(a.ip())) {
                    Ok(())
                } else {
                    Err(Blocked(format!(
                        "host {d} resolves only to non-public addresses ({}), and is not a seed host",
                        addrs
                            .iter()
                            .map(|a| a.ip().to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )))
                }
            }
        }
    }
}

fn public_or_blocked(name: &str, ip: IpAddr) -> Result<(), Blocked> {
    if is_public(ip) {
        Ok(())
    } else {
        Err(Blocked(format!(
            "address {name} is not public (private, loopback or link-local) and is not a seed host"
        )))
    }
}

/// Whether an address is globally routable: not loopback, private (RFC
/// 1918, fc00::/7), link-local, CGNAT (100.64/10), unspecified, broadcast,
/// multicast, documentation, benchmarking (198.18/15), IETF protocol
/// (192.0.0/24) or reserved (240/4) space. IPv6 forms that embed an IPv4
/// address (mapped `::ffff:a.b.c.d`, compatible `::a.b.c.d`, NAT64
/// `64:ff9b::/96`) are judged by that address.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || o[0] == 0
                || o[0] >= 240
                || (o[0] == 100 && (o[1] & 0xc0) == 64)
                || (o[0] == 198 && (o[1] & 0xfe) == 18)
                || (o[0] == 192 && o[1] == 0 && o[2] == 0))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let s = v6.segments();
            let embedded = |a: u16, b: u16| {
                std::net::Ipv4Addr::new((a >> 8) as u8, a as u8, (b >> 8) as u8, b as u8)
            };
            if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                return is_public(IpAddr::V4(embedded(s[6], s[7])));
            }
            if s[..6] == [0; 6] && !v6.is_loopback() && !v6.is_unspecified() {
                return is_public(IpAddr::V4(embedded(s[6], s[7])));
            }
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || (s[0] & 0xffc0) == 0xfec0
                || (s[0] == 0x2001 && s[1] == 0x0db8))
        }
    }
}

/// The DNS resolver the HTTP client uses: system resolution, then non-public
/// addresses dropped unless the name is a seed host.
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    pub guard: Arc<Guard>,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_string();
        let guard = self.guard.clone();
        Box::pin(async move {
            let seed = guard.is_seed_host(&host);
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| seed || is_public(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(Box::new(Blocked(format!(
                    "host {host} has no public address and is not a seed host"
                )))
                    as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_private_and_link_local_addresses_are_not_public() {
        for a in [
            "127.0.0.1",
            "127.0.0.2",
            "10.1.2.3",
            "192.168.0.1",
            "172.16.5.5",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::10.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "198.18.0.1",
            "192.0.0.8",
            "240.0.0.1",
            "255.255.255.255",
            "2001:db8::1",
            "fec0::1",
        ] {
            assert!(!is_public(a.parse().unwrap()), "{a} should not be public");
        }
        for a in [
            "93.184.216.34",
            "1.1.1.1",
            "2606:4700::1111",
            "64:ff9b::808:808",
            "::ffff:8.8.8.8",
        ] {
            assert!(is_public(a.parse().unwrap()), "{a} should be public");
        }
    }

    #[tokio::test]
    async fn a_seed_host_is_allowed_but_other_loopback_names_are_not() {
        let seed = Url::parse("http://127.0.0.1:8080/").unwrap();
        let g = Guard::for_seeds([&seed]);
        assert!(
            g.check(&Url::parse("http://127.0.0.1:9999/x").unwrap())
                .await
                .is_ok()
        );
        assert!(
            g.check(&Url::parse("http://127.0.0.2:8080/").unwrap())
                .await
                .is_err()
        );
        assert!(
            g.check(&Url::parse("http://localhost:8080/").unwrap())
                .await
                .is_err()
        );
        assert!(
            g.check(&Url::parse("http://[::1]:8080/").unwrap())
                .await
                .is_err()
        );
    }
}
