//! Outbound policy for dependency and source URLs: which hosts and addresses the worker may
//! contact, and how much and for how long one request may download. Larder's own api and
//! broker, which the deployment configures, are not subject to it.
//!
//! HTTP (`fetch.rs`): IP-literal hosts are checked before the request (they never reach a
//! resolver), host names by a resolver that drops refused addresses, and every redirect hop
//! again by the redirect policy. Git (`source.rs`): the host is resolved and checked before
//! libgit2 connects, and libgit2 follows no redirect.

use common::{Config, ErrorKind, Failure, HostList};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Redirect hops one HTTP download may follow.
pub const MAX_REDIRECTS: usize = 5;

/// Index pages and configuration documents are held in memory: at most this many bytes (and
/// never more than `LARDER_MAX_ARTIFACT_SIZE`).
pub const MAX_DOCUMENT: u64 = 64 << 20;

/// Instance metadata services (credentials live there): refused even when private upstreams
/// are allowed.
const METADATA_ADDRESSES: [IpAddr; 7] = [
    // AWS, GCP, Azure, OpenStack, Oracle, DigitalOcean, Hetzner, …
    IpAddr::V4(Ipv4Addr::new(169, 254, 169, 254)),
    // AWS ECS task credentials, EKS pod identity
    IpAddr::V4(Ipv4Addr::new(169, 254, 170, 2)),
    IpAddr::V4(Ipv4Addr::new(169, 254, 170, 23)),
    // Alibaba Cloud
    IpAddr::V4(Ipv4Addr::new(100, 100, 100, 200)),
    // Oracle Cloud (legacy)
    IpAddr::V4(Ipv4Addr::new(192, 0, 0, 192)),
    // AWS over IPv6, EKS pod identity over IPv6
    IpAddr::V6(Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)),
    IpAddr::V6(Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x23)),
];

const METADATA_HOSTS: [&str; 5] = [
    "metadata.google.internal",
    "metadata.goog",
    "metadata",
    "instance-data",
    "instance-data.ec2.internal",
];

/// What kind of address is refused, and whether `LARDER_ALLOW_PRIVATE_UPSTREAMS` lifts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Restricted {
    pub what: &'static str,
    pub always: bool,
}

const fn always(what: &'static str) -> Option<Restricted> {
    Some(Restricted { what, always: true })
}

const fn private(what: &'static str) -> Option<Restricted> {
    Some(Restricted {
        what,
        always: false,
    })
}

/// Why `ip` may not be contacted, if it may not.
pub fn restriction(ip: IpAddr) -> Option<Restricted> {
    if METADATA_ADDRESSES.contains(&ip) {
        return always("a cloud metadata address");
    }
    match ip {
        IpAddr::V4(v4) => restriction_v4(v4),
        IpAddr::V6(v6) => restriction_v6(v6),
    }
}

fn restriction_v4(ip: Ipv4Addr) -> Option<Restricted> {
    let [a, b, c, _] = ip.octets();
    if ip.is_unspecified() || a == 0 {
        always("an unspecified (\"this network\") address")
    } else if ip.is_broadcast() {
        always("the broadcast address")
    } else if ip.is_multicast() {
        always("a multicast address")
    } else if ip.is_link_local() {
        // no registry lives there, but metadata and credential services of many clouds do
        always("a link-local address")
    } else if a >= 240 {
        always("a reserved address")
    } else if ip.is_loopback() {
        private("a loopback address")
    } else if ip.is_private() {
        private("a private (RFC 1918) address")
    } else if a == 100 && (b & 0xc0) == 64 {
        private("a shared (CGNAT) address")
    } else if a == 192 && b == 0 && c == 0 {
        private("an IETF protocol assignment address")
    } else if a == 198 && (b & 0xfe) == 18 {
        private("a benchmarking-network address")
    } else {
        None
    }
}

fn restriction_v6(ip: Ipv6Addr) -> Option<Restricted> {
    let seg = ip.segments();
    // addresses that carry an IPv4 address the packet ends up at: IPv4-mapped, NAT64, 6to4
    let embedded = if let Some(v4) = ip.to_ipv4_mapped() {
        Some(v4)
    } else if seg[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        Some(Ipv4Addr::from(((seg[6] as u32) << 16) | seg[7] as u32))
    } else if seg[0] == 0x2002 {
        Some(Ipv4Addr::from(((seg[1] as u32) << 16) | seg[2] as u32))
    } else {
        None
    };
    if let Some(v4) = embedded {
        return restriction(IpAddr::V4(v4));
    }
    if ip.is_unspecified() {
        always("an unspecified address")
    } else if ip.is_loopback() {
        private("a loopback address")
    } else if ip.is_multicast() {
        always("a multicast address")
    } else if ip.is_unicast_link_local() {
        always("a link-local address")
    } else if seg[..6] == [0; 6] {
        always("an IPv4-compatible (deprecated) address")
    } else if ip.is_unique_local() {
        private("a unique local (ULA) address")
    } else if (seg[0] & 0xffc0) == 0xfec0 {
        private("a site-local address")
    } else {
        None
    }
}

/// Why a URL, a host or an address is not contacted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("{}", describe_address(.host.as_deref(), *.ip, *.restricted))]
    Address {
        /// The name that resolved to `ip`; `None` for an IP literal.
        host: Option<String>,
        ip: IpAddr,
        restricted: Restricted,
    },
    #[error("{0} is a cloud metadata host, which is never contacted")]
    MetadataHost(String),
    #[error("{0} is not one of this deployment's allowed hosts (LARDER_ALLOWED_HOSTS)")]
    HostNotAllowed(String),
    #[error("the scheme {0:?} is not allowed")]
    Scheme(String),
    #[error("the URL names no host")]
    NoHost,
    #[error("local repositories are not allowed by this deployment")]
    LocalRepository,
    #[error("its host {host} cannot be resolved: {reason}")]
    Unresolvable { host: String, reason: String },
    #[error("it redirects to {to}, and {reason}")]
    Redirect { to: String, reason: Box<Refusal> },
    #[error("it redirects more than {MAX_REDIRECTS} times")]
    TooManyRedirects,
    #[error(
        "it is not in the store and this instance never contacts an upstream (LARDER_OFFLINE): \
         export it from an instance that reaches it (`larder export`) and import it here \
         (`larder import`)"
    )]
    Offline,
}

fn describe_address(host: Option<&str>, ip: IpAddr, r: Restricted) -> String {
    let tail = if r.always {
        "which is never contacted"
    } else {
        "and this deployment does not allow private upstreams (LARDER_ALLOW_PRIVATE_UPSTREAMS)"
    };
    match host {
        Some(host) => format!("{host} resolves to {ip}, {}, {tail}", r.what),
        None => format!("{ip} is {}, {tail}", r.what),
    }
}

impl Refusal {
    /// The request's failure: a client error naming what was refused (`what`, e.g. "the git
    /// repository <url>") and why.
    pub fn failure(&self, what: &str) -> Failure {
        let kind = match self {
            Refusal::Unresolvable { .. } => ErrorKind::RepositoryAccessError,
            // the deployment's doing: what it lacks is for its operator to bring
            Refusal::Offline => ErrorKind::NetworkError,
            _ => ErrorKind::InvalidRequestData,
        };
        Failure::new(kind, format!("Refusing to fetch {what}: {self}"))
    }

    /// The refusal somewhere in an error's source chain (the resolver's and the redirect
    /// policy's errors reach the caller wrapped in reqwest's).
    pub fn find<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a Refusal> {
        let mut current = Some(error);
        while let Some(e) = current {
            if let Some(refusal) = e.downcast_ref::<Refusal>() {
                return Some(refusal);
            }
            current = e.source();
        }
        None
    }
}

/// Which hosts and addresses dependency and source URLs may reach (by default, the strictest:
/// no private address, no local repository, any public host).
#[derive(Clone, Debug, Default)]
pub struct OutboundPolicy {
    allow_private: bool,
    allow_local_repos: bool,
    allowed_hosts: Option<HostList>,
    /// `LARDER_OFFLINE`: no host at all.
    offline: bool,
}

impl OutboundPolicy {
    pub fn from_config(config: &Config) -> Self {
        Self {
            allow_private: config.allow_private_upstreams,
            allow_local_repos: config.allow_local_repos,
            allowed_hosts: config.allowed_hosts.clone(),
            offline: config.offline,
        }
    }

    /// Any host, private addresses included (fixture servers on loopback).
    #[cfg(test)]
    pub(crate) fn allowing_private() -> Self {
        Self {
            allow_private: true,
            ..Self::default()
        }
    }

    /// `host` resolved to (or is) `ip`.
    pub fn check_ip(&self, host: Option<&str>, ip: IpAddr) -> Result<(), Refusal> {
        match restriction(ip) {
            Some(restricted) if restricted.always || !self.allow_private => Err(Refusal::Address {
                host: host.map(str::to_string),
                ip,
                restricted,
            }),
            _ => Ok(()),
        }
    }

    /// A host as a URL names it (`url::Url::host_str`: IPv6 in brackets): metadata names,
    /// the allowed hosts, and IP literals. Names are checked again once resolved.
    pub fn check_host(&self, host: &str) -> Result<(), Refusal> {
        if self.offline {
            return Err(Refusal::Offline);
        }
        check_name(host)?;
        if let Some(ip) = ip_literal(host) {
            self.check_ip(None, ip)?;
        }
        match &self.allowed_hosts {
            Some(list) if !list.allows(host) => Err(Refusal::HostNotAllowed(host.to_string())),
            _ => Ok(()),
        }
    }

    /// An http(s) URL, before it is requested and at every redirect hop.
    pub fn check_http_url(&self, url: &url::Url) -> Result<(), Refusal> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Refusal::Scheme(url.scheme().to_string()));
        }
        self.check_host(url.host_str().ok_or(Refusal::NoHost)?)
    }

    /// A git URL (http(s), git, ssh, scp-like `user@host:path`, or a local repository),
    /// without the network: scheme, local repositories, metadata names, allowed hosts.
    pub fn check_git_url(&self, url: &str) -> Result<(), Refusal> {
        self.git_host(url).map(drop)
    }

    /// `check_git_url`, then the host resolved and every address checked (libgit2 may
    /// connect to any of them). Blocking.
    ///
    /// libgit2 resolves the name again when it connects, so a name whose answer changes
    /// between the two lookups (DNS rebinding, a TTL of 0) can still reach a refused address;
    /// what such a fetch brings back must still be the pinned commit.
    pub fn resolve_git_url(&self, url: &str) -> Result<(), Refusal> {
        let Some(host) = self.git_host(url)? else {
            return Ok(());
        };
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let unresolvable = |reason: String| Refusal::Unresolvable {
            host: host.clone(),
            reason,
        };
        let addrs: Vec<SocketAddr> = (bare, 0)
            .to_socket_addrs()
            .map_err(|e| unresolvable(e.to_string()))?
            .collect();
        if addrs.is_empty() {
            return Err(unresolvable("no address".into()));
        }
        let name = ip_literal(&host).is_none().then_some(host.as_str());
        addrs.iter().try_for_each(|a| self.check_ip(name, a.ip()))
    }

    /// The host a git URL connects to (`None` for a local repository, when allowed).
    fn git_host(&self, url: &str) -> Result<Option<String>, Refusal> {
        if crate::source::is_local(url) {
            return if self.allow_local_repos {
                Ok(None)
            } else {
                Err(Refusal::LocalRepository)
            };
        }
        let host = match url::Url::parse(url) {
            Ok(u) => {
                if !matches!(u.scheme(), "https" | "http" | "git" | "ssh") {
                    return Err(Refusal::Scheme(u.scheme().to_string()));
                }
                u.host_str().ok_or(Refusal::NoHost)?.to_lowercase()
            }
            // scp-like `user@host:path`
            Err(_) => common::purl::host_and_path(url)
                .map(|(host, _)| host)
                .ok_or(Refusal::NoHost)?,
        };
        self.check_host(&host)?;
        Ok(Some(host))
    }
}

fn check_name(host: &str) -> Result<(), Refusal> {
    let name = host.trim_end_matches('.').to_ascii_lowercase();
    if name.is_empty() {
        return Err(Refusal::NoHost);
    }
    if METADATA_HOSTS.contains(&name.as_str()) {
        return Err(Refusal::MetadataHost(host.to_string()));
    }
    Ok(())
}

fn ip_literal(host: &str) -> Option<IpAddr> {
    let bare = host.strip_prefix('[').and_then(|h| h.strip_suffix(']'));
    bare.unwrap_or(host).parse().ok()
}

/// The HTTP client's resolver: the system's, keeping only the addresses the policy allows.
struct PolicyResolver(Arc<OutboundPolicy>);

impl Resolve for PolicyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.0.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            // the allowed hosts were checked on the URL: this may be a proxy's name
            check_name(&host)?;
            let resolved: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut refused = None;
            let allowed: Vec<SocketAddr> = resolved
                .into_iter()
                .filter(|a| match policy.check_ip(Some(&host), a.ip()) {
                    Ok(()) => true,
                    Err(r) => {
                        tracing::debug!(%host, address = %a.ip(), "dropping a refused address");
                        refused.get_or_insert(r);
                        false
                    }
                })
                .collect();
            if allowed.is_empty() {
                return Err(match refused {
                    Some(r) => Box::new(r) as Box<dyn std::error::Error + Send + Sync>,
                    None => format!("{host} resolves to no address").into(),
                });
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

/// Limits of one request's downloads.
#[derive(Clone, Copy, Debug)]
pub struct DownloadLimits {
    /// One file, one index page, one git fetch.
    pub max_artifact: u64,
    /// Everything one request downloads, git included.
    pub max_request: u64,
    /// From the first byte asked for to the last received, retries included.
    pub timeout: Duration,
}

impl DownloadLimits {
    pub fn from_config(config: &Config) -> Self {
        Self {
            max_artifact: config.max_artifact_size,
            max_request: config.max_request_download,
            timeout: config.download_timeout,
        }
    }
}

/// What a response body is, for its size limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyKind {
    /// A file kept in the store (`LARDER_MAX_ARTIFACT_SIZE`).
    Artifact,
    /// An index page or configuration document, held in memory (also `MAX_DOCUMENT`).
    Document,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LimitExceeded {
    #[error("is larger than the limit of {0} bytes for one download (LARDER_MAX_ARTIFACT_SIZE)")]
    Artifact(u64),
    #[error("is larger than the limit of {0} bytes for an index document (64 MiB, or LARDER_MAX_ARTIFACT_SIZE when smaller)")]
    Document(u64),
    #[error(
        "takes the request past its limit of {0} bytes of downloads (LARDER_MAX_REQUEST_DOWNLOAD)"
    )]
    Request(u64),
}

impl LimitExceeded {
    /// `what` (e.g. "x (https://…/x.tgz)") did not fit: a client error, the request asked
    /// for it.
    pub fn failure(&self, what: &str) -> Failure {
        Failure::new(ErrorKind::PackageRejected, format!("{what} {self}"))
    }
}

/// One request's outbound rules and what it has downloaded so far (shared by its clones).
#[derive(Clone, Debug)]
pub struct Outbound {
    policy: Arc<OutboundPolicy>,
    limits: DownloadLimits,
    downloaded: Arc<AtomicU64>,
}

impl Outbound {
    pub fn new(policy: OutboundPolicy, limits: DownloadLimits) -> Self {
        Self {
            policy: Arc::new(policy),
            limits,
            downloaded: Arc::new(AtomicU64::new(0)),
        }
    }

    pub fn for_request(config: &Config) -> Self {
        Self::new(
            OutboundPolicy::from_config(config),
            DownloadLimits::from_config(config),
        )
    }

    pub fn policy(&self) -> &OutboundPolicy {
        &self.policy
    }

    pub fn limits(&self) -> DownloadLimits {
        self.limits
    }

    /// Whether `size` more bytes fit in one body of `kind` (`so_far` of it already received)
    /// and in the request's total; `charge` counts them.
    pub fn check_size(&self, kind: BodyKind, so_far: u64, size: u64) -> Result<(), LimitExceeded> {
        let (max, exceeded) = match kind {
            BodyKind::Artifact => (
                self.limits.max_artifact,
                LimitExceeded::Artifact(self.limits.max_artifact),
            ),
            BodyKind::Document => {
                let max = MAX_DOCUMENT.min(self.limits.max_artifact);
                (max, LimitExceeded::Document(max))
            }
        };
        if so_far.saturating_add(size) > max {
            return Err(exceeded);
        }
        if self.downloaded().saturating_add(size) > self.limits.max_request {
            return Err(LimitExceeded::Request(self.limits.max_request));
        }
        Ok(())
    }

    /// Count `bytes` received into the request's total.
    pub fn charge(&self, bytes: u64) -> Result<(), LimitExceeded> {
        let total = self.downloaded.fetch_add(bytes, Ordering::Relaxed) + bytes;
        if total > self.limits.max_request {
            return Err(LimitExceeded::Request(self.limits.max_request));
        }
        Ok(())
    }

    pub fn downloaded(&self) -> u64 {
        self.downloaded.load(Ordering::Relaxed)
    }

    /// An HTTP client builder whose resolver and redirects follow the policy. Callers still
    /// check each URL's host first (`check_http_url`): IP literals never reach the resolver.
    pub fn http_client(&self) -> reqwest::ClientBuilder {
        let policy = self.policy.clone();
        let redirects = reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() > MAX_REDIRECTS {
                return attempt.error(Refusal::TooManyRedirects);
            }
            match policy.check_http_url(attempt.url()) {
                Ok(()) => attempt.follow(),
                Err(reason) => {
                    let to = attempt.url().to_string();
                    attempt.error(Refusal::Redirect {
                        to,
                        reason: Box::new(reason),
                    })
                }
            }
        });
        reqwest::Client::builder()
            .dns_resolver(PolicyResolver(self.policy.clone()))
            .redirect(redirects)
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn an_offline_instance_contacts_no_host_but_reads_local_repositories() {
        let policy = OutboundPolicy {
            offline: true,
            allow_local_repos: true,
            ..OutboundPolicy::default()
        };
        let url = url::Url::parse("https://registry.npmjs.org/a/-/a-1.0.0.tgz").unwrap();
        assert_eq!(policy.check_http_url(&url), Err(Refusal::Offline));
        assert_eq!(
            policy.check_git_url("https://example.com/r.git"),
            Err(Refusal::Offline)
        );
        assert_eq!(
            policy.check_git_url("git@example.com:o/r.git"),
            Err(Refusal::Offline)
        );
        assert_eq!(policy.check_git_url("/srv/repos/r"), Ok(()));
        let failure = Refusal::Offline.failure("the npm package a@1.0.0");
        assert_eq!(failure.kind, ErrorKind::NetworkError);
        assert!(failure.message.contains("a@1.0.0"), "{}", failure.message);
        assert!(
            failure.message.contains("LARDER_OFFLINE"),
            "{}",
            failure.message
        );
    }
    use super::*;

    fn policy(allow_private: bool, allowed_hosts: Option<&str>) -> OutboundPolicy {
        OutboundPolicy {
            allow_private,
            allow_local_repos: false,
            allowed_hosts: allowed_hosts.map(|h| HostList::parse(h).unwrap()),
            offline: false,
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn address_classes() {
        let always_refused = [
            "169.254.169.254",
            "169.254.170.2",
            "100.100.100.200",
            "fd00:ec2::254",
            "169.254.1.1",
            "0.0.0.0",
            "0.1.2.3",
            "255.255.255.255",
            "224.0.0.1",
            "240.0.0.1",
            "::",
            "fe80::1",
            "ff02::1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "2002:a9fe:a9fe::1",
            "::127.0.0.1",
        ];
        let private = [
            "127.0.0.1",
            "127.8.9.10",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "100.64.0.1",
            "100.127.255.254",
            "192.0.0.8",
            "198.18.0.1",
            "::1",
            "fd12:3456::1",
            "fc00::1",
            "fec0::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::7f00:1",
            "2002:7f00:1::1",
        ];
        let public = [
            "1.1.1.1",
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "169.255.0.1",
            "2606:4700::1111",
            "::ffff:1.1.1.1",
            "64:ff9b::101:101",
        ];
        for a in always_refused {
            let r = restriction(ip(a)).unwrap_or_else(|| panic!("{a} allowed"));
            assert!(r.always, "{a}: {r:?}");
        }
        for a in private {
            let r = restriction(ip(a)).unwrap_or_else(|| panic!("{a} allowed"));
            assert!(!r.always, "{a}: {r:?}");
        }
        for a in public {
            assert_eq!(restriction(ip(a)), None, "{a}");
        }
        assert_eq!(
            restriction(ip("169.254.169.254")).unwrap().what,
            "a cloud metadata address"
        );
    }

    #[test]
    fn private_upstreams_switch_lifts_private_but_never_metadata() {
        let strict = policy(false, None);
        let open = policy(true, None);
        for a in ["127.0.0.1", "10.0.0.1", "fd12::1", "100.64.1.1"] {
            assert!(strict.check_ip(None, ip(a)).is_err(), "{a}");
            assert!(open.check_ip(None, ip(a)).is_ok(), "{a}");
        }
        for a in ["169.254.169.254", "fd00:ec2::254", "0.0.0.0", "fe80::1"] {
            assert!(open.check_ip(None, ip(a)).is_err(), "{a}");
        }
        let e = strict
            .check_ip(Some("db.internal"), ip("10.0.0.7"))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "db.internal resolves to 10.0.0.7, a private (RFC 1918) address, and this deployment does not allow private upstreams (LARDER_ALLOW_PRIVATE_UPSTREAMS)"
        );
        let e = open.check_ip(None, ip("169.254.169.254")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "169.254.169.254 is a cloud metadata address, which is never contacted"
        );
    }

    #[test]
    fn http_urls_are_checked_by_literal_name_and_list() {
        let strict = policy(false, None);
        let url = |s: &str| url::Url::parse(s).unwrap();
        for bad in [
            "http://127.0.0.1:8080/x.tgz",
            "http://2130706433/x",
            "http://0x7f.1/x",
            "http://[::1]/x",
            "http://[::ffff:7f00:1]/x",
            "http://169.254.169.254/latest/meta-data/",
            "http://metadata.google.internal/computeMetadata/v1/",
            "http://METADATA.google.internal./x",
            "ftp://example.com/x",
            "file:///etc/passwd",
        ] {
            assert!(strict.check_http_url(&url(bad)).is_err(), "{bad}");
        }
        assert!(strict
            .check_http_url(&url("https://registry.npmjs.org/x"))
            .is_ok());
        let listed = policy(false, Some("registry.npmjs.org,*.pythonhosted.org"));
        assert!(listed
            .check_http_url(&url("https://registry.npmjs.org/x"))
            .is_ok());
        assert!(listed
            .check_http_url(&url("https://files.pythonhosted.org/x"))
            .is_ok());
        assert_eq!(
            listed.check_http_url(&url("https://evil.example/x")),
            Err(Refusal::HostNotAllowed("evil.example".into()))
        );
        // the list restricts further: a listed private address is still refused
        let listed_private = policy(false, Some("10.0.0.5"));
        assert!(listed_private
            .check_http_url(&url("http://10.0.0.5/x"))
            .is_err());
        assert!(policy(true, Some("10.0.0.5"))
            .check_http_url(&url("http://10.0.0.5/x"))
            .is_ok());
    }

    #[test]
    fn git_urls_resolve_before_any_fetch() {
        let strict = policy(false, None);
        for bad in [
            "http://127.0.0.1:9/r.git",
            "git://127.0.0.1/r.git",
            "git://2130706433/r.git",
            "https://localhost/r.git",
            "ssh://git@[::1]/r.git",
            "git@127.0.0.1:r.git",
            "/srv/repo",
            "file:///srv/repo",
            "ftp://example.com/r.git",
            "localhost:r.git",
        ] {
            assert!(strict.resolve_git_url(bad).is_err(), "{bad}");
        }
        let e = strict
            .resolve_git_url("https://localhost/r.git")
            .unwrap_err();
        assert!(
            matches!(&e, Refusal::Address { host: Some(h), .. } if h == "localhost"),
            "{e:?}"
        );
        let open = OutboundPolicy {
            allow_private: true,
            allow_local_repos: true,
            allowed_hosts: None,
            offline: false,
        };
        assert!(open.resolve_git_url("http://localhost:9/r.git").is_ok());
        assert!(open.resolve_git_url("/srv/repo").is_ok());
        assert!(open.resolve_git_url("git://169.254.169.254/r").is_err());
    }

    #[test]
    fn request_budget_counts_across_clones() {
        let limits = DownloadLimits {
            max_artifact: 100,
            max_request: 150,
            timeout: Duration::from_secs(1),
        };
        let outbound = Outbound::new(policy(false, None), limits);
        let other = outbound.clone();
        assert_eq!(
            outbound.check_size(BodyKind::Artifact, 0, 101),
            Err(LimitExceeded::Artifact(100))
        );
        assert_eq!(
            outbound.check_size(BodyKind::Document, 90, 11),
            Err(LimitExceeded::Document(100))
        );
        assert!(outbound.check_size(BodyKind::Artifact, 0, 100).is_ok());
        outbound.charge(100).unwrap();
        assert_eq!(
            other.check_size(BodyKind::Artifact, 0, 60),
            Err(LimitExceeded::Request(150))
        );
        assert_eq!(other.charge(60), Err(LimitExceeded::Request(150)));
        assert_eq!(outbound.downloaded(), 160);
    }

    #[tokio::test]
    async fn resolver_drops_refused_addresses_and_redirects_are_rechecked() {
        use std::str::FromStr;
        let strict = Arc::new(policy(false, None));
        let e = PolicyResolver(strict.clone())
            .resolve(Name::from_str("localhost").unwrap())
            .await
            .err()
            .expect("localhost is refused");
        assert!(
            matches!(Refusal::find(&*e), Some(Refusal::Address { .. })),
            "{e}"
        );
        let open = Arc::new(policy(true, None));
        let addrs: Vec<SocketAddr> = PolicyResolver(open)
            .resolve(Name::from_str("localhost").unwrap())
            .await
            .unwrap()
            .collect();
        assert!(addrs.iter().all(|a| a.ip().is_loopback()), "{addrs:?}");

        // a loopback server redirecting to the metadata address: the redirect is refused
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            while let Ok((mut s, _)) = listener.accept().await {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(b"HTTP/1.1 302 Found\r\nLocation: http://169.254.169.254/latest/meta-data/\r\nContent-Length: 0\r\n\r\n")
                    .await;
            }
        });
        let outbound = Outbound::new(
            policy(true, None),
            DownloadLimits {
                max_artifact: 1,
                max_request: 1,
                timeout: Duration::from_secs(5),
            },
        );
        let client = outbound.http_client().build().unwrap();
        let err = client
            .get(format!("http://127.0.0.1:{port}/x"))
            .send()
            .await
            .unwrap_err();
        let refusal = Refusal::find(&err).expect("the refusal is in the chain");
        assert_eq!(
            refusal.to_string(),
            "it redirects to http://169.254.169.254/latest/meta-data/, and 169.254.169.254 is a cloud metadata address, which is never contacted"
        );
        // and a name resolving to loopback, with private upstreams refused
        let strict_client = Outbound::new(policy(false, None), outbound.limits())
            .http_client()
            .build()
            .unwrap();
        let err = strict_client
            .get(format!("http://localhost:{port}/x"))
            .send()
            .await
            .unwrap_err();
        assert!(
            matches!(Refusal::find(&err), Some(Refusal::Address { host: Some(h), .. }) if h == "localhost"),
            "{err:?}"
        );
    }
}
