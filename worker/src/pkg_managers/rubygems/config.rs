//! `app/<path>/.bundle/config`, as Cachito wrote it: every rubygems remote mirrored to the
//! request's gem server (credentials in the URL: Bundler sends them as HTTP Basic), frozen and
//! deployment mode, git gems from the bundle through local overrides.

use super::lockfile::GemLock;
use crate::pkg_managers::ReposCa;
use common::{ConfigFile, EnvVar, EnvVars, ErrorKind, Failure};
use std::fmt::Write as _;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("The gem server URL holds a line break")]
    BadServerUrl,
}

impl common::Classify for ConfigError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Misconfigured
    }
}

/// `<public>/repos/<id>/rubygems/` with `larder:<token>@` in it.
pub fn server_url(base: &str, token: &str) -> String {
    match url::Url::parse(base) {
        Ok(mut u) if !token.is_empty() => {
            let _ = u.set_username("larder");
            let _ = u.set_password(Some(token));
            u.to_string()
        }
        _ => base.to_string(),
    }
}

/// Bundler's settings key of `local.<name>`: `BUNDLE_LOCAL__<NAME>` (`.` → `__`, `-` → `___`).
pub fn local_key(name: &str) -> String {
    format!(
        "BUNDLE_LOCAL__{}",
        name.replace('.', "__")
            .replace('-', "___")
            .to_ascii_uppercase()
    )
}

/// A YAML double-quoted scalar.
fn q(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Bundler's variables for `larder fetch-deps`'s output directory: its cache is
/// `deps/rubygems` (`path`: below the output directory), installs are frozen, from the cache
/// only (`bundle install --local`), into the project's `vendor/bundle`; with `ruby`-platform
/// gems only, no platform gem is looked for.
pub fn output_dir_env(platform_gems: bool) -> EnvVars {
    let mut env = EnvVars::new();
    env.insert("BUNDLE_CACHE_PATH".into(), EnvVar::path("deps/rubygems"));
    for (name, value) in [
        ("BUNDLE_DEPLOYMENT", "true"),
        ("BUNDLE_FROZEN", "true"),
        ("BUNDLE_ALLOW_OFFLINE_INSTALL", "true"),
        ("BUNDLE_NO_PRUNE", "true"),
    ] {
        env.insert(name.into(), EnvVar::literal(value));
    }
    if !platform_gems {
        env.insert("BUNDLE_FORCE_RUBY_PLATFORM".into(), EnvVar::literal("true"));
    }
    env
}

/// The `.bundle/config` of one Gemfile: `locals` are (gem name, its checkout's directory
/// relative to the Gemfile's directory).
pub fn bundle_config(
    lock: &GemLock,
    server_url: &str,
    platform_gems: bool,
    locals: &[(String, String)],
    repos_ca: Option<&ReposCa>,
) -> Result<ConfigFile, Failure> {
    if server_url.contains(['\n', '\r']) {
        return Err(ConfigError::BadServerUrl.into());
    }
    let mut text = String::from("---\n");
    let mut set = |k: &str, v: &str| {
        let _ = writeln!(text, "{k}: {}", q(v));
    };
    set("BUNDLE_MIRROR__ALL", server_url);
    set("BUNDLE_MIRROR__ALL__FALLBACK_TIMEOUT", "false");
    set("BUNDLE_FROZEN", "true");
    set("BUNDLE_DEPLOYMENT", "true");
    if !platform_gems {
        // only the `ruby` platform's gems were fetched
        set("BUNDLE_FORCE_RUBY_PLATFORM", "true");
    }
    set("BUNDLE_DISABLE_LOCAL_BRANCH_CHECK", "true");
    for (name, dir) in locals {
        set(&local_key(name), dir);
    }
    if let Some(ca) = repos_ca {
        set("BUNDLE_SSL_CA_CERT", &ca.relative_to(&lock.package_path));
    }
    let path = if lock.package_path.is_root() {
        "app/.bundle/config".to_string()
    } else {
        format!("app/{}/.bundle/config", lock.package_path)
    };
    Ok(ConfigFile::inline(path, text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_keys_and_file() {
        assert_eq!(
            server_url("http://127.0.0.1:8080/repos/4/rubygems/", "tok"),
            "http://larder:tok@127.0.0.1:8080/repos/4/rubygems/"
        );
        assert_eq!(local_key("my-gem.rb"), "BUNDLE_LOCAL__MY___GEM__RB");
        let lock = GemLock {
            package_path: common::repo_path::RepoPath::parse("web").unwrap(),
            ..GemLock::default()
        };
        let f = bundle_config(
            &lock,
            "http://larder:t@h/repos/1/rubygems/",
            false,
            &[(
                "porta".into(),
                "../../deps/rubygems/porta-0123456789ab".into(),
            )],
            None,
        )
        .unwrap();
        assert_eq!(f.path, "app/web/.bundle/config");
        let text = String::from_utf8(f.inline_content().unwrap().to_vec()).unwrap();
        assert!(
            text.starts_with("---\nBUNDLE_MIRROR__ALL: \"http://larder:t@h/repos/1/rubygems/\"\n")
        );
        assert!(text.contains("BUNDLE_FORCE_RUBY_PLATFORM: \"true\"\n"));
        assert!(text.contains("BUNDLE_LOCAL__PORTA: \"../../deps/rubygems/porta-0123456789ab\"\n"));
    }
}
