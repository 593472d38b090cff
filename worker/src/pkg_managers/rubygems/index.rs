//! The upstream Compact Index (`info/<name>`), read only for what the plan needs: the line of
//! each locked version, whose `checksum:` verifies a gem the lockfile has no `CHECKSUMS` entry
//! for, and which the per-request server serves as it is.

use std::collections::BTreeMap;

/// An `info/<name>` body's lines by `version[-platform]` (the text before the first space),
/// after the optional `---` header.
pub fn info_lines(body: &str) -> BTreeMap<&str, &str> {
    let lines: Vec<&str> = body.lines().collect();
    let start = lines.iter().position(|l| *l == "---").map_or(0, |i| i + 1);
    lines[start..]
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| (l.split(' ').next().unwrap_or(l), *l))
        .collect()
}

/// Where a lockfile's `GEM` remote is read from: rubygems.org is the configured upstream
/// (`LARDER_RUBYGEMS_URL`), any other remote itself. Without a trailing `/`.
pub fn upstream_for(remote: &str, rubygems_url: &str) -> String {
    let is_rubygems_org = url::Url::parse(remote).ok().is_some_and(|u| {
        matches!(u.scheme(), "http" | "https")
            && u.host_str().is_some_and(|h| {
                h.eq_ignore_ascii_case("rubygems.org") || h.eq_ignore_ascii_case("www.rubygems.org")
            })
            && u.path().trim_matches('/').is_empty()
    });
    if is_rubygems_org {
        rubygems_url.trim_end_matches('/').to_string()
    } else {
        remote.trim_end_matches('/').to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_upstreams() {
        let body = "---\n1.0.0 |checksum:aa\n1.0.0-java |checksum:bb\n2.0.0 a:>= 1|checksum:cc,ruby:>= 3\n";
        let l = info_lines(body);
        assert_eq!(l["1.0.0"], "1.0.0 |checksum:aa");
        assert_eq!(l["1.0.0-java"], "1.0.0-java |checksum:bb");
        assert_eq!(l.len(), 3);
        assert_eq!(info_lines("1.0 |checksum:x\n").len(), 1);
        assert_eq!(
            upstream_for("https://rubygems.org/", "http://127.0.0.1:9/"),
            "http://127.0.0.1:9"
        );
        assert_eq!(
            upstream_for("https://gems.example.com/private/", "http://x"),
            "https://gems.example.com/private"
        );
    }
}
