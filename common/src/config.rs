//! Larder's configuration: one typed struct, read from `LARDER_*` environment variables and
//! mirrored by command-line flags.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::store::object::StoreUrl;

/// The broker frame size asked for when `LARDER_AMQP_URL` names none.
const BROKER_FRAME_BYTES: u32 = 16 * 1024;

#[derive(Clone, Debug, clap::Args)]
pub struct Config {
    /// PostgreSQL URL (`postgres://…`); the database is created if missing and migrated at
    /// start. Unset: the embedded SQLite database `larder.db` in `LARDER_DATA_DIR` (one
    /// machine; `sqlite:///absolute/path` names another file).
    #[arg(long, env = "LARDER_DATABASE_URL")]
    pub database_url: Option<String>,

    /// RabbitMQ URL. Unset (or empty): `larder serve` queues jobs in its own process; `larder
    /// api` and `larder worker` need it.
    #[arg(long, env = "LARDER_AMQP_URL")]
    pub amqp_url: Option<String>,

    /// Queue name.
    #[arg(long, env = "LARDER_QUEUE", default_value = "larder")]
    pub queue: String,

    /// Root of the permanent store (sources, dependencies, bundles).
    #[arg(long, env = "LARDER_DATA_DIR", default_value = "./larder-data")]
    pub data_dir: PathBuf,

    /// Where the store every api and worker shares lives: `file:///absolute/path` (a
    /// directory, on one machine or a shared mount) or `s3://bucket/prefix` (S3 endpoint,
    /// region and credentials from the `AWS_*` variables; no directory is shared). Unset:
    /// `LARDER_DATA_DIR`.
    #[arg(long, env = "LARDER_STORE_URL", value_parser = StoreUrl::parse)]
    pub store_url: Option<StoreUrl>,

    /// A worker's scratch directory when the store is an object store: work directories and
    /// a cache of the objects its requests used. Unset: `larder-work` in the system's
    /// temporary directory.
    #[arg(long, env = "LARDER_WORK_DIR")]
    pub work_dir: Option<PathBuf>,

    /// How large a worker's cache of the object store (in `LARDER_WORK_DIR`) may grow (bytes)
    /// before the files used longest ago go, while the worker runs no request.
    #[arg(long, env = "LARDER_WORK_CACHE_SIZE", default_value_t = 10 << 30)]
    pub work_cache_size: u64,

    /// Address the api listens on.
    #[arg(long, env = "LARDER_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,

    /// Base URL written into environment variables and configuration files.
    #[arg(
        long,
        env = "LARDER_PUBLIC_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub public_url: String,

    /// URL workers use to reach the api (defaults to the public URL).
    #[arg(long, env = "LARDER_API_URL")]
    pub api_url: Option<String>,

    /// Allow `file://` and local path repositories (development and tests only).
    #[arg(long, env = "LARDER_ALLOW_LOCAL_REPOS", default_value_t = false, action = clap::ArgAction::Set)]
    pub allow_local_repos: bool,

    /// Upstream Go module proxy.
    #[arg(
        long,
        env = "LARDER_GOPROXY",
        default_value = "https://proxy.golang.org"
    )]
    pub goproxy: String,

    /// Fail gomod requests whose repository has a `vendor/` directory unless they set the
    /// `gomod-vendor` or `gomod-vendor-check` flag (Cachito's `cachito_gomod_strict_vendor`).
    #[arg(long, env = "LARDER_GOMOD_STRICT_VENDOR", default_value_t = false, action = clap::ArgAction::Set)]
    pub gomod_strict_vendor: bool,

    /// Upstream npm registry.
    #[arg(
        long,
        env = "LARDER_NPM_REGISTRY",
        default_value = "https://registry.npmjs.org"
    )]
    pub npm_registry: String,

    /// Upstream PyPI simple index.
    #[arg(
        long,
        env = "LARDER_PYPI_INDEX",
        default_value = "https://pypi.org/simple"
    )]
    pub pypi_index: String,

    /// Upstream Cargo registry index.
    #[arg(
        long,
        env = "LARDER_CRATES_INDEX",
        default_value = "sparse+https://index.crates.io/"
    )]
    pub crates_index: String,

    /// Upstream gem server (a RubyGems.org-compatible Compact Index and `/gems/`): Gemfile.lock
    /// `GEM` remotes of rubygems.org are fetched from it.
    #[arg(
        long,
        env = "LARDER_RUBYGEMS_URL",
        default_value = "https://rubygems.org"
    )]
    pub rubygems_url: String,

    /// API tokens: `token=user[:worker|:representative]`, comma separated. Unset = auth off.
    #[arg(long, env = "LARDER_API_TOKENS")]
    pub api_tokens: Option<String>,

    /// The api's certificate chain (PEM): with `LARDER_TLS_KEY`, the api serves HTTPS only.
    #[arg(long, env = "LARDER_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// The private key of `LARDER_TLS_CERT` (PEM).
    #[arg(long, env = "LARDER_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// CA certificates (PEM) that sign client certificates: a client presenting one it
    /// verifies is the certificate's subject DN (RFC 4514, `CN=osbs,O=Example`). Turns
    /// authentication on.
    #[arg(long, env = "LARDER_TLS_CLIENT_CA", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,

    /// Reverse proxies (CIDRs, comma separated) whose `LARDER_REMOTE_USER_HEADER` names the
    /// user; the header from any other address is ignored. Turns authentication on.
    #[arg(long, env = "LARDER_TRUSTED_PROXIES", value_parser = parse_networks)]
    pub trusted_proxies: Option<Networks>,

    /// The header a trusted proxy names the user in.
    #[arg(
        long,
        env = "LARDER_REMOTE_USER_HEADER",
        default_value = "X-Remote-User"
    )]
    pub remote_user_header: String,

    /// Users (token users, certificate DNs, proxy users; `;` separated) who may submit
    /// requests on behalf of another user (Cachito's `CACHITO_USER_REPRESENTATIVES`).
    #[arg(long, env = "LARDER_REPRESENTATIVES")]
    pub representatives: Option<String>,

    /// Users (`;` separated) who may use the worker endpoints (`CACHITO_WORKER_USERNAMES`).
    #[arg(long, env = "LARDER_WORKER_USERS")]
    pub worker_users: Option<String>,

    /// Token a worker presents to the api (must be a worker token of `LARDER_API_TOKENS`).
    #[arg(long, env = "LARDER_WORKER_TOKEN")]
    pub worker_token: Option<String>,

    /// Requests one worker runs at once.
    #[arg(long, env = "LARDER_WORKER_CONCURRENCY", default_value_t = 2)]
    pub worker_concurrency: u16,

    /// Parallel downloads within a request.
    #[arg(long, env = "LARDER_DOWNLOAD_CONCURRENCY", default_value_t = 16)]
    pub download_concurrency: usize,

    /// Database connections the api keeps at most; a handler waits up to 2 s for one, then the
    /// api answers 503 with `Retry-After`.
    #[arg(long, env = "LARDER_DB_POOL_SIZE", default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..))]
    pub db_pool_size: u16,

    /// Days after which a complete request becomes stale (failed ones: 7).
    #[arg(long, env = "LARDER_REQUEST_LIFETIME_DAYS", default_value_t = 1)]
    pub request_lifetime_days: u32,

    /// How long a request may run, from the moment a worker first takes it (`90s`, `30m`, `1h`);
    /// then it fails with `error_origin: server`.
    #[arg(long, env = "LARDER_REQUEST_TIMEOUT", default_value = "1h", value_parser = humantime::parse_duration)]
    pub request_timeout: Duration,

    /// How many times a request may be taken by a worker (redeliveries after a crash, takeovers
    /// of a silent worker) before it fails with `error_origin: server`.
    #[arg(long, env = "LARDER_MAX_DELIVERIES", default_value_t = 5)]
    pub max_deliveries: u32,

    /// A worker that has not sent a heartbeat for this long has lost its request to another.
    #[arg(long, env = "LARDER_HEARTBEAT_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration)]
    pub heartbeat_timeout: Duration,

    /// Let dependency and source URLs reach loopback, private (RFC 1918, ULA) and CGNAT
    /// addresses (for internal registries); cloud metadata addresses stay refused.
    #[arg(long, env = "LARDER_ALLOW_PRIVATE_UPSTREAMS", default_value_t = false, action = clap::ArgAction::Set)]
    pub allow_private_upstreams: bool,

    /// Never contact an upstream (an instance on the far side of an air gap, filled by
    /// `larder import`): what a request needs must be in the store; what is not fails the
    /// request with a reason that names it.
    #[arg(long, env = "LARDER_OFFLINE", default_value_t = false, action = clap::ArgAction::Set)]
    pub offline: bool,

    /// The only hosts dependency and source URLs may name (comma separated; `*.example.com`
    /// matches every subdomain of example.com, not example.com itself). Unset: any host.
    #[arg(long, env = "LARDER_ALLOWED_HOSTS", value_parser = HostList::parse)]
    pub allowed_hosts: Option<HostList>,

    /// Largest single download (bytes).
    #[arg(long, env = "LARDER_MAX_ARTIFACT_SIZE", default_value_t = 2 << 30)]
    pub max_artifact_size: u64,

    /// Most one request may download in all (bytes).
    #[arg(long, env = "LARDER_MAX_REQUEST_DOWNLOAD", default_value_t = 20 << 30)]
    pub max_request_download: u64,

    /// How long one download (or git fetch) may take from start to end, retries included.
    #[arg(long, env = "LARDER_DOWNLOAD_TIMEOUT", default_value = "15m", value_parser = humantime::parse_duration)]
    pub download_timeout: Duration,

    /// PEM bundle of the CA(s) the per-request repositories' HTTPS certificate chains to, when
    /// clients do not trust it already. A request that hands back a repository hands it back
    /// too, once, as `app/registry-ca.pem`, named by each client's configuration (npm
    /// `cafile`, `PIP_CERT`, cargo `http.cainfo`, `SSL_CERT_FILE` for go). The worker refuses
    /// to start with a file it cannot read or that holds anything but certificates, and reads
    /// it again for each request (failing it, `error_origin: server`, if it went bad).
    #[arg(long, env = "LARDER_REPOS_CA_FILE")]
    pub repos_ca_file: Option<PathBuf>,
}

/// `LARDER_ALLOWED_HOSTS`, parsed: host names (IDNA-normalized, lowercase) and IP literals.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostList(pub Vec<HostPattern>);

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostPattern {
    /// This host only.
    Exact(String),
    /// Any host below this domain (`*.example.com`), not the domain itself.
    Subdomains(String),
}

impl HostList {
    pub fn parse(list: &str) -> Result<HostList, String> {
        let mut patterns = Vec::new();
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let bad = |why: &str| format!("invalid LARDER_ALLOWED_HOSTS entry {entry:?}: {why}");
            let (wildcard, host) = match entry.strip_prefix("*.") {
                Some(rest) => (true, rest),
                None => (false, entry),
            };
            let parsed = url::Host::parse(host.trim_end_matches('.'))
                .map_err(|e| bad(&format!("{e} (give a host name, without scheme or port)")))?;
            patterns.push(match parsed {
                url::Host::Domain(domain) if wildcard => HostPattern::Subdomains(domain),
                _ if wildcard => return Err(bad("`*.` needs a domain name after it")),
                host => HostPattern::Exact(host.to_string()),
            });
        }
        if patterns.is_empty() {
            return Err("LARDER_ALLOWED_HOSTS lists no host".into());
        }
        Ok(HostList(patterns))
    }

    /// Whether `host` (as `url::Url::host_str` gives it) is on the list.
    pub fn allows(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.0.iter().any(|p| match p {
            HostPattern::Exact(h) => *h == host,
            HostPattern::Subdomains(domain) => host
                .strip_suffix(domain.as_str())
                .is_some_and(|prefix| prefix.len() > 1 && prefix.ends_with('.')),
        })
    }
}

/// `LARDER_TRUSTED_PROXIES`, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Networks(pub Vec<ipnet::IpNet>);

impl Networks {
    pub fn contains(&self, addr: std::net::IpAddr) -> bool {
        // an IPv4 peer on a dual-stack socket arrives as ::ffff:a.b.c.d
        let addr = match addr {
            std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, std::net::IpAddr::V4),
            v4 => v4,
        };
        self.0.iter().any(|net| net.contains(&addr))
    }
}

fn parse_networks(list: &str) -> Result<Networks, String> {
    let mut networks = Vec::new();
    for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let net = match entry.parse::<ipnet::IpNet>() {
            Ok(net) => net,
            // a bare address is a network of one
            Err(_) => entry
                .parse::<std::net::IpAddr>()
                .map(ipnet::IpNet::from)
                .map_err(|_| format!("invalid LARDER_TRUSTED_PROXIES entry {entry:?}: expected a CIDR such as 10.0.0.0/8 or an address"))?,
        };
        networks.push(net);
    }
    if networks.is_empty() {
        return Err("LARDER_TRUSTED_PROXIES lists no network".into());
    }
    Ok(Networks(networks))
}

/// A `;`-separated list of user names (`LARDER_REPRESENTATIVES`, `LARDER_WORKER_USERS`); a
/// certificate DN holds commas, hence not `,`.
pub fn user_list(list: Option<&str>) -> std::collections::BTreeSet<String> {
    list.unwrap_or_default()
        .split(';')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(str::to_string)
        .collect()
}

/// What a caller of the api may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    User,
    Worker,
    Representative,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub user: String,
    pub role: Role,
}

#[derive(Debug, thiserror::Error)]
#[error("invalid LARDER_API_TOKENS entry {0:?}: expected token=user[:worker|:representative]")]
pub struct TokenListError(String);

impl Config {
    /// The configuration from the environment alone (defaults where unset).
    pub fn from_env() -> Self {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Env {
            #[command(flatten)]
            config: Config,
        }
        Env::parse_from(["larder"]).config
    }

    /// `LARDER_AMQP_URL` with small frames unless it names a size: jobs are a few hundred bytes,
    /// and the client keeps 32 frames of buffer each way per connection (8 MiB per connection
    /// at RabbitMQ's default of 128 KiB).
    /// `None` when it is unset (or empty).
    pub fn broker_uri(&self) -> Result<Option<amq_protocol_uri::AMQPUri>, String> {
        let Some(url) = self.amqp_url.as_deref().filter(|u| !u.trim().is_empty()) else {
            return Ok(None);
        };
        let mut uri: amq_protocol_uri::AMQPUri = url.parse()?;
        uri.query.frame_max.get_or_insert(BROKER_FRAME_BYTES);
        Ok(Some(uri))
    }

    /// The scratch directory of a worker on an object store (`LARDER_WORK_DIR`).
    pub fn work_dir(&self) -> PathBuf {
        self.work_dir
            .clone()
            .unwrap_or_else(|| std::env::temp_dir().join("larder-work"))
    }

    pub fn api_url(&self) -> &str {
        self.api_url
            .as_deref()
            .unwrap_or(&self.public_url)
            .trim_end_matches('/')
    }

    /// Whether the api knows its callers (tokens, client certificates or a trusted proxy).
    pub fn authentication_on(&self) -> bool {
        self.api_tokens
            .as_deref()
            .is_some_and(|t| !t.trim().is_empty())
            || self.tls_client_ca.is_some()
            || self.trusted_proxies.is_some()
    }

    /// `None` when no token is configured.
    pub fn identities(&self) -> Result<Option<BTreeMap<String, Identity>>, TokenListError> {
        let Some(list) = self.api_tokens.as_deref().filter(|s| !s.trim().is_empty()) else {
            return Ok(None);
        };
        let mut tokens = BTreeMap::new();
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (token, rest) = entry
                .split_once('=')
                .ok_or_else(|| TokenListError(entry.into()))?;
            let (user, role) = match rest.split_once(':') {
                None => (rest, Role::User),
                Some((user, "worker")) => (user, Role::Worker),
                Some((user, "representative")) => (user, Role::Representative),
                Some(_) => return Err(TokenListError(entry.into())),
            };
            if token.is_empty() || user.is_empty() {
                return Err(TokenListError(entry.into()));
            }
            tokens.insert(
                token.to_string(),
                Identity {
                    user: user.to_string(),
                    role,
                },
            );
        }
        Ok(Some(tokens))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_uri_asks_for_small_frames_unless_told() {
        let mut config = Config::from_env();
        config.amqp_url = None;
        assert!(config.broker_uri().unwrap().is_none());
        config.amqp_url = Some(String::new());
        assert!(config.broker_uri().unwrap().is_none());
        config.amqp_url = Some("amqp://guest:guest@127.0.0.1:5672/%2f".into());
        assert_eq!(
            config.broker_uri().unwrap().unwrap().query.frame_max,
            Some(16 * 1024)
        );
        config.amqp_url = Some("amqp://127.0.0.1:5672/%2f?frame_max=131072".into());
        assert_eq!(
            config.broker_uri().unwrap().unwrap().query.frame_max,
            Some(131072)
        );
        config.amqp_url = Some("http://nope".into());
        assert!(config.broker_uri().is_err());
    }

    #[test]
    fn store_url_takes_file_or_s3_and_names_the_scheme_it_refuses() {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Flags {
            #[command(flatten)]
            config: Config,
        }
        let parsed = Flags::try_parse_from(["larder", "--store-url", "s3://larder/prod"]).unwrap();
        assert_eq!(
            parsed.config.store_url,
            Some(StoreUrl::S3 {
                bucket: "larder".into(),
                prefix: "prod".into()
            })
        );
        let parsed =
            Flags::try_parse_from(["larder", "--store-url", "file:///srv/larder"]).unwrap();
        assert_eq!(
            parsed.config.store_url,
            Some(StoreUrl::File("/srv/larder".into()))
        );
        let error = Flags::try_parse_from(["larder", "--store-url", "gs://larder/prod"])
            .err()
            .expect("refused")
            .to_string();
        assert!(error.contains("scheme \"gs\" is not one of"), "{error}");
    }

    #[test]
    fn trusted_proxies_are_networks_or_addresses() {
        let nets = parse_networks("10.0.0.0/8, 127.0.0.1,::1").unwrap();
        assert!(nets.contains("10.1.2.3".parse().unwrap()));
        assert!(nets.contains("127.0.0.1".parse().unwrap()));
        assert!(nets.contains("::ffff:127.0.0.1".parse().unwrap()));
        assert!(nets.contains("::1".parse().unwrap()));
        assert!(!nets.contains("127.0.0.2".parse().unwrap()));
        assert!(!nets.contains("11.0.0.1".parse().unwrap()));
        assert!(parse_networks("10.0.0.0/33").is_err());
        assert!(parse_networks("proxy.example.com").is_err());
        assert!(parse_networks(" , ").is_err());
    }

    #[test]
    fn user_lists_are_semicolon_separated_for_dns() {
        let users = user_list(Some("CN=osbs,O=Example; alice ;"));
        assert_eq!(
            users.into_iter().collect::<Vec<_>>(),
            ["CN=osbs,O=Example", "alice"]
        );
        assert!(user_list(None).is_empty());
    }

    #[test]
    fn parses_token_list() {
        let mut config = Config::from_env();
        config.api_tokens = Some("a=alice, w=bot:worker,r=osbs:representative".into());
        let ids = config.identities().unwrap().unwrap();
        assert_eq!(
            ids["a"],
            Identity {
                user: "alice".into(),
                role: Role::User
            }
        );
        assert_eq!(ids["w"].role, Role::Worker);
        assert_eq!(ids["r"].role, Role::Representative);
        config.api_tokens = Some("x=bob:admin".into());
        assert!(config.identities().is_err());
        config.api_tokens = None;
        assert!(config.identities().unwrap().is_none());
    }

    #[test]
    fn allowed_hosts_match_exactly_or_below_a_wildcard() {
        let list =
            HostList::parse(" Registry.Example.com, *.corp.example ,10.0.0.5,[FD00::1],").unwrap();
        assert!(list.allows("registry.example.com"));
        assert!(list.allows("REGISTRY.example.com."));
        assert!(!list.allows("evil-registry.example.com"));
        assert!(!list.allows("sub.registry.example.com"));
        assert!(list.allows("npm.corp.example"));
        assert!(list.allows("a.b.corp.example"));
        assert!(
            !list.allows("corp.example"),
            "the wildcard is for subdomains only"
        );
        assert!(!list.allows("evilcorp.example"));
        assert!(list.allows("10.0.0.5"));
        assert!(list.allows("[fd00::1]"));
        for bad in [
            "https://x.example",
            "x.example:443",
            "*.10.0.0.1",
            "a b",
            "x/y",
        ] {
            assert!(HostList::parse(bad).is_err(), "{bad}");
        }
        assert!(
            HostList::parse(" , ").is_err(),
            "an empty list would refuse everything"
        );
    }
}
