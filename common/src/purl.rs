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
}
