//! SSRF guard: the crawler never connects to private, loopback, link-local
//! or otherwise non-public addresses, unless a seed URL names that exact host
//! (tests and `byline demo` crawl 127.0.0.1).
//!
//! Two checks: [`Guard::check`] before every request and redirect hop (IP
//! literals, and names resolved once to classify the error clearly), and
//! [`GuardedResolver`], the resolver the HTTP client connects through, which
//! drops non-public addresses again so a name that re-resolves differently
//! (DNS rebinding) still cannot reach them.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use url::{Host, Url};

/// The non-public addresses a crawl may reach: those its seeds name.
///
/// An IP-literal seed (`http://127.0.0.1:8080/`) lets that exact address
/// through. A seed *name* is resolved once, when the guard is built, and the
/// non-public addresses it resolved to then are pinned to that name: at
/// connect time the name may reach those and public addresses, nothing
/// else, so a name that later re-resolves elsewhere (DNS rebinding) cannot
/// reach a new internal address. Every other host must be public, checked
/// before each request and redirect hop and again at connect time.
#[derive(Debug, Clone, Default)]
pub struct Guard {
    /// IP-literal seed hosts.
    addrs: HashSet<IpAddr>,
    /// Seed names and the non-public addresses they resolved to at start.
    pinned: HashMap<String, HashSet<IpAddr>>,
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

/// A URL host as an address, when it is an IP literal.
fn literal(url: &Url) -> Option<IpAddr> {
    match url.host()? {
        Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
        Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
        Host::Domain(_) => None,
    }
}

impl Guard {
    /// A guard for a crawl of `seeds`: IP-literal seeds exactly, seed names
    /// pinned to the non-public addresses they resolve to now.
    pub async fn for_seeds<'a>(seeds: impl IntoIterator<Item = &'a Url>) -> Guard {
        let mut g = Guard::default();
        for u in seeds {
            if let Some(ip) = literal(u) {
                g.addrs.insert(ip);
            } else if let Some(name) = u.host_str() {
                let name = name.to_ascii_lowercase();
                let port = u.port_or_known_default().unwrap_or(80);
                let found: HashSet<IpAddr> =
                    match tokio::net::lookup_host((name.as_str(), port)).await {
                        Ok(a) => a.map(|a| a.ip()).filter(|ip| !is_public(*ip)).collect(),
                        Err(_) => HashSet::new(),
                    };
                g.pinned.entry(name).or_default().extend(found);
            }
        }
        g
    }

    /// A guard that lets only the IP-literal hosts of `urls` through (names
    /// must resolve to public addresses): `audit recheck`, whose origins come
    /// from the corpus, not from the user, so a stored name is never trusted
    /// to point where it pointed when it was crawled.
    pub fn for_ip_literals<'a>(urls: impl IntoIterator<Item = &'a Url>) -> Guard {
        Guard {
            addrs: urls.into_iter().filter_map(literal).collect(),
            pinned: HashMap::new(),
        }
    }

    /// Whether `ip` may be reached through `name` (a host as written in a
    /// URL, or the name the client resolves).
    fn may_reach(&self, name: &str, ip: IpAddr) -> bool {
        is_public(ip)
            || (self.addrs.contains(&ip) && literal_str(name) == Some(ip))
            || self
                .pinned
                .get(&name.to_ascii_lowercase())
                .is_some_and(|p| p.contains(&ip))
    }

    /// Refuses URLs whose host is, or resolves only to, an address this
    /// guard does not let through.
    pub async fn check(&self, url: &Url) -> Result<(), Blocked> {
        let Some(host) = url.host() else {
            return Err(Blocked(format!("url {url} has no host")));
        };
        let name = url.host_str().unwrap_or_default();
        match host {
            Host::Ipv4(ip) => self.literal_or_blocked(name, IpAddr::V4(ip)),
            Host::Ipv6(ip) => self.literal_or_blocked(name, IpAddr::V6(ip)),
            Host::Domain(d) => {
                let port = url.port_or_known_default().unwrap_or(80);
                // A name that does not resolve is not an SSRF question: the
                // request goes ahead and fails as a DNS error in the client,
                // whose resolver ([`GuardedResolver`]) checks again.
                let Ok(addrs) = tokio::net::lookup_host((d, port)).await else {
                    return Ok(());
                };
                let addrs: Vec<SocketAddr> = addrs.collect();
                if addrs.is_empty() || addrs.iter().any(|a| self.may_reach(d, a.ip())) {
                    Ok(())
                } else {
                    Err(Blocked(format!(
                        "host {d} resolves only to non-public addresses ({}) that no seed names",
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

    fn literal_or_blocked(&self, name: &str, ip: IpAddr) -> Result<(), Blocked> {
        if is_public(ip) || self.addrs.contains(&ip) {
            Ok(())
        } else {
            Err(Blocked(format!(
                "address {name} is not public (private, loopback or link-local) and is not a seed host"
            )))
        }
    }
}

/// `name` as an address when it is an IP literal (`[::1]` included).
fn literal_str(name: &str) -> Option<IpAddr> {
    name.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
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

/// The DNS resolver the HTTP client uses: system resolution, then every
/// address the guard does not let through for that name dropped.
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    pub guard: Arc<Guard>,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_string();
        let guard = self.guard.clone();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| guard.may_reach(&host, a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(Box::new(Blocked(format!(
                    "host {host} resolves to no public address and to none its seed resolved to at the start"
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
    async fn a_seed_name_reaches_only_what_it_resolved_to_at_the_start() {
        let seed = Url::parse("http://localhost:8080/").unwrap();
        let g = Guard::for_seeds([&seed]).await;
        assert!(g.check(&seed).await.is_ok());
        // The name may reach its own start-time addresses, and only through
        // that name: the same address as a literal is not a seed.
        assert!(g.may_reach("localhost", "127.0.0.1".parse().unwrap()));
        assert!(!g.may_reach("localhost", "10.0.0.1".parse().unwrap()));
        assert!(!g.may_reach("evil.test", "127.0.0.1".parse().unwrap()));
        assert!(
            g.check(&Url::parse("http://127.0.0.1:8080/").unwrap())
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn a_recheck_guard_trusts_ip_literals_but_no_stored_name() {
        let a = Url::parse("http://127.0.0.1:8080/").unwrap();
        let b = Url::parse("http://localhost:8080/").unwrap();
        let g = Guard::for_ip_literals([&a, &b]);
        assert!(g.check(&a).await.is_ok());
        assert!(g.check(&b).await.is_err(), "a stored name is not a seed");
        assert!(!g.may_reach("localhost", "127.0.0.1".parse().unwrap()));
    }

    #[tokio::test]
    async fn a_seed_host_is_allowed_but_other_loopback_names_are_not() {
        let seed = Url::parse("http://127.0.0.1:8080/").unwrap();
        let g = Guard::for_seeds([&seed]).await;
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
