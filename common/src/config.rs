//! Larder's configuration: one typed struct, read from `LARDER_*` environment variables and
//! mirrored by command-line flags.

use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Clone, Debug, clap::Args)]
pub struct Config {
    /// PostgreSQL URL; the database is created if missing and migrated at start.
    #[arg(
        long,
        env = "LARDER_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/larder"
    )]
    pub database_url: String,

    /// RabbitMQ URL.
    #[arg(
        long,
        env = "LARDER_AMQP_URL",
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f"
    )]
    pub amqp_url: String,

    /// Queue name.
    #[arg(long, env = "LARDER_QUEUE", default_value = "larder")]
    pub queue: String,

    /// Root of the permanent store (sources, dependencies, bundles, logs).
    #[arg(long, env = "LARDER_DATA_DIR", default_value = "./larder-data")]
    pub data_dir: PathBuf,

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

    /// API tokens: `token=user[:worker|:representative]`, comma separated. Unset = auth off.
    #[arg(long, env = "LARDER_API_TOKENS")]
    pub api_tokens: Option<String>,

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

    pub fn api_url(&self) -> &str {
        self.api_url
            .as_deref()
            .unwrap_or(&self.public_url)
            .trim_end_matches('/')
    }

    /// `None` when authentication is off.
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
}
