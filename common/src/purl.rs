//! Package URLs as Cachito writes them.

pub use crate::percent::encode_component as quote;

/// The purl of a git repository at a commit: `pkg:github/...` / `pkg:bitbucket/...` for those
/// forges, otherwise `pkg:generic/<name>?vcs_url=<url>@<ref>`.
pub fn vcs_purl(name: &str, repo_url: &str, git_ref: &str) -> String {
    if let Some((host, path)) = host_and_path(repo_url) {
        let forge = match host.as_str() {
            "github.com" => Some("github"),
            "bitbucket.org" => Some("bitbucket"),
            _ => None,
        };
        if let Some(forge) = forge {
            let path = path
                .trim_end_matches('/')
                .trim_end_matches(".git")
                .to_lowercase();
            if let Some((ns, repo)) = path.rsplit_once('/') {
                if !ns.is_empty() && !repo.is_empty() {
                    return format!("pkg:{forge}/{ns}/{repo}@{git_ref}");
                }
            }
        }
    }
    format!(
        "pkg:generic/{}?vcs_url={}",
        quote(name),
        quote(&format!("{repo_url}@{git_ref}"))
    )
}

/// Host and path of a git URL in URL or scp-like (`git@host:path`) form.
pub fn host_and_path(repo_url: &str) -> Option<(String, String)> {
    if let Ok(url) = url::Url::parse(repo_url) {
        if let Some(host) = url.host_str() {
            return Some((
                host.to_lowercase(),
                url.path().trim_start_matches('/').to_string(),
            ));
        }
        return None;
    }
    let (userhost, path) = repo_url.split_once(':')?;
    let host = userhost.rsplit('@').next()?;
    (!host.is_empty() && !host.contains('/')).then(|| {
        (
            host.to_lowercase(),
            path.trim_start_matches('/').to_string(),
        )
    })
}

/// The form of a purl the dependency search stores and looks up, so that the ways of writing
/// one purl meet: the scheme and type lowercased, the namespace and name percent-decoded and
/// written with `/` kept and everything else quoted (`pkg:npm/@s/n` and Larder's
/// `pkg:npm/%40s/n` are one; Larder's Go module `pkg:golang/example.com%2Fm` is
/// `pkg:golang/example.com/m`), the version, qualifier values and subpath decoded and quoted
/// again, qualifiers sorted by (lowercased) key with empty values dropped. `None` when `purl` is
/// not one (no `pkg:` scheme, no type or name, an escape that is not UTF-8).
pub fn search_key(purl: &str) -> Option<String> {
    use crate::percent::{decode, encode_component, encode_path};
    let (scheme, rest) = purl.split_once(':')?;
    if !scheme.eq_ignore_ascii_case("pkg") {
        return None;
    }
    let rest = rest.trim_start_matches('/');
    let (rest, subpath) = match rest.rsplit_once('#') {
        Some((r, s)) => (r, Some(s)),
        None => (rest, None),
    };
    let (rest, qualifiers) = match rest.rsplit_once('?') {
        Some((r, q)) => (r, Some(q)),
        None => (rest, None),
    };
    let (kind, rest) = rest.split_once('/')?;
    let kind = kind.to_ascii_lowercase();
    if kind.is_empty()
        || !kind
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".+-".contains(c))
    {
        return None;
    }
    // the version follows the last `@` that is not a scoped name's (`@scope/name`)
    let (path, version) = match rest.rfind('@') {
        Some(at) if at > 0 && !rest[..at].ends_with('/') && !rest[at + 1..].contains('/') => {
            (&rest[..at], Some(&rest[at + 1..]))
        }
        _ => (rest, None),
    };
    let segments: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(decode)
        .collect::<Option<_>>()?;
    let path = segments.join("/");
    if path.trim_matches('/').is_empty() {
        return None;
    }
    let mut key = format!("pkg:{kind}/{}", encode_path(path.trim_matches('/')));
    if let Some(version) = version.filter(|v| !v.is_empty()) {
        key.push('@');
        key.push_str(&encode_component(&decode(version)?));
    }
    let mut pairs = Vec::new();
    for pair in qualifiers
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (k, v) = pair.split_once('=')?;
        let v = decode(v)?;
        if !v.is_empty() {
            pairs.push((k.to_ascii_lowercase(), v));
        }
    }
    pairs.sort();
    for (i, (k, v)) in pairs.iter().enumerate() {
        key.push(if i == 0 { '?' } else { '&' });
        key.push_str(k);
        key.push('=');
        key.push_str(&encode_component(v));
    }
    if let Some(subpath) = subpath {
        let parts: Vec<String> = subpath
            .split('/')
            .filter(|s| !s.is_empty() && *s != ".")
            .map(decode)
            .collect::<Option<_>>()?;
        if !parts.is_empty() {
            key.push('#');
            key.push_str(&encode_path(&parts.join("/")));
        }
    }
    Some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vcs_purls() {
        assert_eq!(
            vcs_purl("x", "https://github.com/Org/Repo.git", "abc"),
            "pkg:github/org/repo@abc"
        );
        assert_eq!(
            vcs_purl("x", "git@bitbucket.org:o/r.git", "abc"),
            "pkg:bitbucket/o/r@abc"
        );
        assert_eq!(
            vcs_purl("my lib", "https://example.com/r", "abc"),
            "pkg:generic/my%20lib?vcs_url=https%3A%2F%2Fexample.com%2Fr%40abc"
        );
    }

    #[test]
    fn search_keys_meet() {
        for (a, b) in [
            ("pkg:npm/%40s/n@1.0.0", "pkg:npm/@s/n@1.0.0"),
            ("PKG:NPM/%40s/n@1.0.0", "pkg:npm/%40s%2Fn@1.0.0"),
            (
                "pkg:golang/example.com%2FAzure%2Fm@v1.0.0+incompatible",
                "pkg:golang/example.com/Azure/m@v1.0.0%2Bincompatible",
            ),
            (
                "pkg:generic/a?vcs_url=git%2Bhttps%3A%2F%2Fh%2Fu%2Fr.git%23abc",
                "pkg:generic/a?vcs_url=git%2Bhttps://h/u/r.git%23abc&x=",
            ),
            ("pkg:cargo/g@1.0.0?b=2&a=1", "pkg:cargo/g@1.0.0?a=1&b=2"),
            (
                "pkg:golang/example.com%2Fapp@v1.0.0#lib",
                "pkg:golang/example.com/app@v1.0.0#./lib/",
            ),
        ] {
            assert_eq!(search_key(a), search_key(b), "{a} {b}");
            assert!(search_key(a).is_some());
        }
        assert_eq!(
            search_key("pkg:npm/%40s/n@1.0.0").unwrap(),
            "pkg:npm/%40s/n@1.0.0"
        );
        assert_eq!(search_key("pkg:npm/@s/n").unwrap(), "pkg:npm/%40s/n");
        assert_eq!(
            search_key("pkg:cargo/serde@1.0.1").unwrap(),
            "pkg:cargo/serde@1.0.1"
        );
        for bad in [
            "npm/lodash",
            "pkg:",
            "pkg:npm",
            "pkg:npm/",
            "pkg:/x",
            "pkg:npm/%FF@1",
            "pkg:n m/x",
        ] {
            assert_eq!(search_key(bad), None, "{bad}");
        }
    }
}
