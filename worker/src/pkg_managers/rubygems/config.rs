//! `app/<path>/.bundle/config`, as Cachito wrote it: every rubygems remote mirrored to the
//! request's gem server (credentials in the URL: Bundler sends them as HTTP Basic), frozen and
//! deployment mode, git gems from the bundle through local overrides.

use super::lockfile::GemLock;
use crate::pkg_managers::ReposCa;
use common::{ConfigFile, ErrorKind, Failure};
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

/// A value as Bundler writes one: between double quotes, as is (Bundler's reader takes what is
/// between them and unescapes nothing).
fn q(s: &str) -> String {
    format!("\"{s}\"")
}

/// Where `larder fetch-deps` puts Bundler's cache, as Hermeto does: `deps/bundler/`.
pub const OUTPUT_DIR_CACHE: &str = "deps/bundler";

/// Hermeto's Bundler configuration directory, below the output directory: `BUNDLE_APP_CONFIG`
/// names it, so Bundler reads its `config` instead of any `.bundle/config` of the project.
pub const OUTPUT_DIR_APP_CONFIG: &str = "bundler/config_override";

/// The repository's own `.bundle/config` settings kept in the output directory's
/// configuration: those that choose what is installed and how, never where gems come from
/// (mirrors, credentials, local overrides), where they go or are cached (binstubs' directory
/// and interpreter too), or the offline settings Larder sets itself.
fn kept_repository_setting(key: &str) -> bool {
    const KEPT: &[&str] = &[
        "BUNDLE_WITHOUT",
        "BUNDLE_WITH",
        "BUNDLE_ONLY",
        "BUNDLE_JOBS",
        "BUNDLE_CLEAN",
        "BUNDLE_SILENCE_ROOT_WARNING",
        "BUNDLE_SILENCE_DEPRECATIONS",
        "BUNDLE_IGNORE_MESSAGES",
        "BUNDLE_IGNORE_FUNDING_REQUESTS",
        "BUNDLE_DISABLE_SHARED_GEMS",
        "BUNDLE_DISABLE_EXEC_LOAD",
        "BUNDLE_AUTO_CLEAN_WITHOUT_PATH",
    ];
    KEPT.contains(&key) || key.starts_with("BUNDLE_BUILD__")
}

/// The `KEY: value` settings of a `.bundle/config` (Bundler's flat YAML: `---`, then one
/// setting a line, the value plain, single- or double-quoted).
pub fn parse_settings(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for line in text.lines() {
        // a mirror's key holds a URL: the key ends at the first ": "
        let Some((key, value)) = line.split_once(": ") else {
            continue;
        };
        if !key.starts_with("BUNDLE_") || key.contains(char::is_whitespace) {
            continue;
        }
        let value = value.trim();
        let value = if let Some(inner) = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
            inner.to_string()
        } else if let Some(inner) = value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')) {
            inner.replace("''", "'")
        } else {
            value.to_string()
        };
        out.push((key.to_string(), value));
    }
    out
}

/// The output directory's Bundler configuration (`bundler/config_override/config`, with
/// [`output_dir_mark`](crate::pkg_managers::output_dir_mark) for the output directory): the
/// settings of the repository's `.bundle/config` files that [`kept_repository_setting`]
/// keeps (the first value of a key wins; each left out is logged), then Hermeto's offline
/// settings, the cache being `deps/bundler`; with `ruby`-platform gems only, no platform gem
/// is looked for.
pub fn output_dir_config(repository_configs: &[(String, String)], platform_gems: bool) -> String {
    let mut text = String::from("---\n");
    let mut seen = std::collections::BTreeSet::new();
    for (file, config) in repository_configs {
        for (key, value) in parse_settings(config) {
            // (Bundler's reader splits a line at its last ": ")
            if !kept_repository_setting(&key)
                || value.contains(['\n', '\r', '"'])
                || value.contains(": ")
            {
                tracing::info!(file = %file, setting = %key, "a repository Bundler setting left out of the offline configuration");
                continue;
            }
            if seen.insert(key.clone()) {
                let _ = writeln!(text, "{key}: {}", q(&value));
            }
        }
    }
    let cache = format!(
        "{}/{OUTPUT_DIR_CACHE}",
        crate::pkg_managers::output_dir_mark()
    );
    let mut settings = vec![
        ("BUNDLE_CACHE_PATH", cache.as_str()),
        ("BUNDLE_DEPLOYMENT", "true"),
        ("BUNDLE_FROZEN", "true"),
        ("BUNDLE_NO_PRUNE", "true"),
        ("BUNDLE_ALLOW_OFFLINE_INSTALL", "true"),
        ("BUNDLE_DISABLE_VERSION_CHECK", "true"),
        ("BUNDLE_VERSION", "system"),
    ];
    if !platform_gems {
        settings.push(("BUNDLE_FORCE_RUBY_PLATFORM", "true"));
    }
    for (key, value) in settings {
        let _ = writeln!(text, "{key}: {}", q(value));
    }
    text
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

    #[test]
    fn the_output_dir_configuration_keeps_only_harmless_repository_settings() {
        let repo = "---\nBUNDLE_PATH: \"/nonexistent/gems\"\nBUNDLE_MIRROR__HTTPS://RUBYGEMS__ORG/: \"http://mirror.invalid/\"\n\
                    BUNDLE_WITHOUT: 'development:test'\nBUNDLE_DEPLOYMENT: \"false\"\nBUNDLE_BUILD__NOKOGIRI: --use-system-libraries\n\
                    BUNDLE_GEMS__EXAMPLE__COM: \"user:secret\"\nBUNDLE_BIN: \"/usr/local/bin\"\n\
                    BUNDLE_SHEBANG: \"/tmp/evil\"\nBUNDLE_JOBS: \"4: BUNDLE_PATH\"\n";
        let text = output_dir_config(&[(".bundle/config".into(), repo.into())], false);
        assert!(
            text.starts_with("---\nBUNDLE_WITHOUT: \"development:test\"\n"),
            "{text}"
        );
        assert!(text.contains("BUNDLE_BUILD__NOKOGIRI: \"--use-system-libraries\"\n"));
        for gone in [
            "BUNDLE_PATH",
            "MIRROR",
            "secret",
            "\"false\"",
            "BUNDLE_BIN",
            "BUNDLE_SHEBANG",
            "BUNDLE_JOBS",
        ] {
            assert!(!text.contains(gone), "{gone} in {text}");
        }
        assert!(text.contains(&format!(
            "BUNDLE_CACHE_PATH: \"{}/deps/bundler\"\n",
            crate::pkg_managers::output_dir_mark()
        )));
        for set in [
            "BUNDLE_DEPLOYMENT: \"true\"",
            "BUNDLE_ALLOW_OFFLINE_INSTALL: \"true\"",
            "BUNDLE_NO_PRUNE: \"true\"",
            "BUNDLE_DISABLE_VERSION_CHECK: \"true\"",
            "BUNDLE_VERSION: \"system\"",
            "BUNDLE_FORCE_RUBY_PLATFORM: \"true\"",
        ] {
            assert!(text.contains(set), "{set} in {text}");
        }
    }
}
