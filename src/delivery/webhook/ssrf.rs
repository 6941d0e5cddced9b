//! SSRF guard for user-supplied callback URLs.
//!
//! The Standard Webhooks spec ("Server side request forgery (SSRF)") warns
//! that webhook senders call arbitrary user URLs from inside the network.
//! Three layers stop that here:
//! 1. [`check_url`] validates scheme, credentials and IP-literal hosts before
//!    every send (IP literals never reach a DNS resolver, so this is their
//!    only check);
//! 2. [`check_url_resolved`] also resolves names once, so registration can
//!    reject `http://localhost/`-style URLs immediately;
//! 3. [`GuardedResolver`] is reqwest's resolver: it vets the addresses it
//!    hands to the connector, so a connection only goes to an address that
//!    was checked — no DNS-rebinding window between check and connect.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;
use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Which callback destinations are acceptable.
#[derive(Clone, Debug, Default)]
pub struct CallbackPolicy {
    /// Permit plain `http://` URLs (for development; https is the default).
    pub allow_http: bool,
    /// Ranges exempt from [`is_forbidden`], e.g. `127.0.0.0/8` in tests or
    /// an internal subnet the operator trusts.
    pub allowed_cidrs: Vec<IpNet>,
    /// Hosts the operator trusts as they are (`webhook.allowed_hosts`, as
    /// [`host_key`] writes them): no address check, and http allowed.
    pub allowed_hosts: Vec<String>,
}

/// A host as `allowed_hosts` compares it: lower case, no IPv6 brackets, no
/// trailing dot, and an IP address in its canonical spelling.
pub fn host_key(host: &str) -> String {
    let host = host.trim().trim_end_matches('.');
    match ip_literal(host) {
        Some(ip) => ip.to_canonical().to_string(),
        None => host.to_ascii_lowercase(),
    }
}

/// Why a callback URL or address was refused. Not retriable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SsrfError {
    /// The string is not an absolute URL.
    #[error("invalid URL: {0}")]
    InvalidUrl(String),
    /// `http://` while the policy requires TLS.
    #[error("http is not allowed; use https or set webhook.allow_http")]
    HttpNotAllowed,
    /// Neither http nor https.
    #[error("scheme {0:?} is not supported; use https")]
    UnsupportedScheme(String),
    /// `user:password@` in the URL: it would be sent as credentials and is a
    /// common way to disguise the real host (`https://trusted.example@evil/`).
    #[error("URL must not contain credentials (user:password@)")]
    UserInfo,
    /// The URL has no host component.
    #[error("URL has no host")]
    MissingHost,
    /// An IP-literal host in a forbidden range.
    #[error("address {addr} is {reason}")]
    Forbidden {
        /// The refused address.
        addr: IpAddr,
        /// Which range it is in, e.g. `private (RFC 1918)`.
        reason: String,
    },
    /// A host name that resolves to at least one forbidden address.
    #[error("host {host} resolves to address {addr}, which is {reason}")]
    ResolvedForbidden {
        /// The name in the URL.
        host: String,
        /// The first forbidden address found.
        addr: IpAddr,
        /// Which range it is in.
        reason: String,
    },
    /// Name resolution failed.
    #[error("could not resolve host {host}: {message}")]
    Resolve {
        /// The name in the URL.
        host: String,
        /// The resolver's error.
        message: String,
    },
    /// Name resolution returned nothing.
    #[error("host {host} resolves to no addresses")]
    NoAddresses {
        /// The name in the URL.
        host: String,
    },
}

impl SsrfError {
    /// `true` for policy refusals; `false` for DNS failures ([`Self::Resolve`],
    /// [`Self::NoAddresses`]), which are transient and worth retrying.
    pub fn is_refusal(&self) -> bool {
        !matches!(self, Self::Resolve { .. } | Self::NoAddresses { .. })
    }
}

impl CallbackPolicy {
    /// Whether `host` (a URL's host or a name being resolved) is one of
    /// `allowed_hosts`.
    pub fn trusts(&self, host: &str) -> bool {
        !self.allowed_hosts.is_empty() && self.allowed_hosts.contains(&host_key(host))
    }

    /// Why `ip` may not be contacted under this policy, if it may not.
    fn refusal(&self, ip: IpAddr) -> Option<String> {
        // `::ffff:a.b.c.d` is the same socket destination as `a.b.c.d`, so an
        // allowed IPv4 range also admits its mapped form.
        let canonical = ip.to_canonical();
        let allowed = self
            .allowed_cidrs
            .iter()
            .any(|net| net.contains(&ip) || net.contains(&canonical));
        if allowed { None } else { forbidden_reason(ip) }
    }

    /// `Ok` when `ip` is inside an allowed CIDR or not in a forbidden range.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), SsrfError> {
        match self.refusal(ip) {
            Some(reason) => Err(SsrfError::Forbidden { addr: ip, reason }),
            None => Ok(()),
        }
    }
}

/// Whether `ip` is in a range a webhook must never reach (ignoring any
/// policy exemptions): loopback, private, link-local, CGNAT, multicast,
/// documentation, reserved, and IPv6 forms that embed such an IPv4 address.
pub fn is_forbidden(ip: IpAddr) -> bool {
    forbidden_reason(ip).is_some()
}

/// Like [`is_forbidden`], naming the range (used in error messages).
pub fn forbidden_reason(ip: IpAddr) -> Option<String> {
    match ip {
        IpAddr::V4(v4) => v4_reason(v4).map(str::to_owned),
        IpAddr::V6(v6) => match embedded_v4(v6) {
            // Translation/tunnel prefixes deliver to the embedded IPv4
            // address, so that address decides.
            Some(v4) => v4_reason(v4).map(|r| format!("{r}, via embedded IPv4 {v4}")),
            None => v6_reason(v6).map(str::to_owned),
        },
    }
}

// Special-purpose IPv4 ranges, after the IANA registry (RFC 6890).
fn v4_reason(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    let reason = match (a, b, c) {
        _ if ip.is_unspecified() => "unspecified",
        (0, _, _) => "in 0.0.0.0/8 (\"this network\", RFC 791)",
        (10, _, _) | (172, 16..=31, _) | (192, 168, _) => "private (RFC 1918)",
        (100, 64..=127, _) => "shared address space / CGNAT (RFC 6598)",
        (127, _, _) => "loopback",
        // Includes 169.254.169.254, the cloud instance-metadata endpoint.
        (169, 254, _) => "link-local (RFC 3927)",
        (192, 0, 0) => "reserved for IETF protocol assignments (RFC 6890)",
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => "documentation (RFC 5737)",
        (192, 88, 99) => "deprecated 6to4 relay anycast (RFC 7526)",
        (198, 18..=19, _) => "benchmarking (RFC 2544)",
        (224..=239, _, _) => "multicast",
        _ if ip.is_broadcast() => "broadcast",
        (240..=255, _, _) => "reserved (RFC 1112)",
        _ => return None,
    };
    Some(reason)
}

/// The IPv4 destination carried by IPv4-mapped (RFC 4291 §2.5.5.2),
/// NAT64 well-known-prefix (RFC 6052) and 6to4 (RFC 3056) addresses.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let low32 = Ipv4Addr::from_bits(ip.to_bits() as u32);
    if let Some(v4) = ip.to_ipv4_mapped() {
        Some(v4)
    } else if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        Some(low32)
    } else if s[0] == 0x2002 {
        Some(Ipv4Addr::from_bits(
            (u32::from(s[1]) << 16) | u32::from(s[2]),
        ))
    } else {
        None
    }
}

// Special-purpose IPv6 ranges (IANA registry, RFC 6890). Anything outside
// 2000::/3 is unallocated or special, so it is refused as a catch-all.
fn v6_reason(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    let reason = match s[0] {
        _ if ip.is_unspecified() => "unspecified",
        _ if ip.is_loopback() => "loopback",
        0 if s[1..6] == [0; 5] => "IPv4-compatible (deprecated, RFC 4291)",
        0x64 if s[1] == 0xff9b && s[2] == 1 => "local-use NAT64 (RFC 8215)",
        0x100 if s[1..4] == [0; 3] => "discard-only (RFC 6666)",
        // 2001::/23 holds Teredo (2001::/32), benchmarking and ORCHID.
        0x2001 if s[1] < 0x200 => "reserved for IETF protocol assignments (RFC 2928)",
        0x2001 if s[1] == 0xdb8 => "documentation (RFC 3849)",
        0x3fff if s[1] < 0x1000 => "documentation (RFC 9637)",
        x if x & 0xfe00 == 0xfc00 => "unique local (RFC 4193)",
        x if x & 0xffc0 == 0xfe80 => "link-local",
        x if x & 0xffc0 == 0xfec0 => "site-local (deprecated, RFC 3879)",
        x if x & 0xff00 == 0xff00 => "multicast",
        x if x & 0xe000 != 0x2000 => "outside global unicast 2000::/3",
        _ => return None,
    };
    Some(reason)
}

/// Parses and vets a callback URL without DNS: scheme (https, or http when
/// allowed), no userinfo, a host, and an acceptable address for IP literals.
///
/// The URL parser (WHATWG URL standard) already normalises decimal, hex and
/// octal IPv4 spellings (`http://2130706433/`, `http://0x7f.1/`) to dotted
/// form, so they are caught as literals here.
pub fn check_url(policy: &CallbackPolicy, url: &str) -> Result<Url, SsrfError> {
    let parsed = Url::parse(url).map_err(|e| SsrfError::InvalidUrl(e.to_string()))?;
    let trusted = parsed.host_str().is_some_and(|host| policy.trusts(host));
    match parsed.scheme() {
        "https" => {}
        "http" if policy.allow_http || trusted => {}
        "http" => return Err(SsrfError::HttpNotAllowed),
        other => return Err(SsrfError::UnsupportedScheme(other.to_owned())),
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(SsrfError::UserInfo);
    }
    let host = parsed
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or(SsrfError::MissingHost)?;
    if let Some(ip) = ip_literal(host)
        && !trusted
    {
        policy.check_ip(ip)?;
    }
    Ok(parsed)
}

/// [`check_url`], then resolves a host name once and fails if ANY address is
/// refused (one bad record is enough to reach an internal service).
///
/// Meant for registration time, so a bad URL is rejected at once; the
/// delivery path relies on [`GuardedResolver`] instead.
pub async fn check_url_resolved(policy: &CallbackPolicy, url: &str) -> Result<Url, SsrfError> {
    let parsed = check_url(policy, url)?;
    let host = parsed.host_str().unwrap_or_default();
    if ip_literal(host).is_none() && !policy.trusts(host) {
        let port = parsed.port_or_known_default().unwrap_or(443);
        resolve_vetted(policy, host, port).await?;
    }
    Ok(parsed)
}

/// `host_str()` writes IPv6 literals in brackets (RFC 3986 §3.2.2).
fn ip_literal(host: &str) -> Option<IpAddr> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    bare.parse().ok()
}

async fn resolve_vetted(
    policy: &CallbackPolicy,
    host: &str,
    port: u16,
) -> Result<Vec<SocketAddr>, SsrfError> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| SsrfError::Resolve {
            host: host.to_owned(),
            message: e.to_string(),
        })?
        .collect();
    if addrs.is_empty() {
        return Err(SsrfError::NoAddresses {
            host: host.to_owned(),
        });
    }
    if policy.trusts(host) {
        return Ok(addrs);
    }
    for addr in &addrs {
        if let Some(reason) = policy.refusal(addr.ip()) {
            return Err(SsrfError::ResolvedForbidden {
                host: host.to_owned(),
                addr: addr.ip(),
                reason,
            });
        }
    }
    Ok(addrs)
}

/// A [`reqwest::dns::Resolve`] that resolves each name once and returns the
/// addresses only if every one of them passes the policy.
///
/// Because reqwest connects to exactly the addresses returned here, the
/// check and the connection use the same DNS answer (no rebinding window).
/// IP-literal URLs bypass resolvers entirely, so callers must still run
/// [`check_url`] before each request.
#[derive(Clone, Debug)]
pub struct GuardedResolver {
    policy: Arc<CallbackPolicy>,
}

impl GuardedResolver {
    /// A resolver enforcing `policy`.
    pub fn new(policy: CallbackPolicy) -> Self {
        Self {
            policy: Arc::new(policy),
        }
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = Arc::clone(&self.policy);
        let host = name.as_str().to_owned();
        Box::pin(async move {
            // Port 0: reqwest substitutes the URL's port (see `Resolve` docs).
            let addrs = resolve_vetted(&policy, &host, 0).await?;
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
#[path = "ssrf_tests.rs"]
mod tests;
