//! The pip graph: a dependency's edges are the `Requires-Dist` of its fetched core metadata
//! that name another of the package's own resolved dependencies.
//!
//! The rule: an edge from D to T when one of D's `Requires-Dist` names T (PEP 503 names) and
//! its marker either says nothing of `extra`, or has an `extra == "<x>"` for an extra the
//! requirements ask of D (`d[x]==1`). Other markers (`python_version`, `sys_platform`) are not
//! evaluated: the requirements files already pin what is installed, and an edge between two
//! pinned distributions holds in every environment where both are installed. A dependency
//! none of whose files gave metadata (a git dependency, an unreadable file) has no edges: it
//! is not guessed to depend on everything.

use crate::pkg_managers::pip::names::normalize_name;
use common::Dependency;
use std::collections::{BTreeMap, BTreeSet};

/// What a dependency's files and requirements say, for its edges.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DependencyFacts {
    /// The union of its files' `Requires-Dist`; `None` when no file gave metadata.
    pub requires_dist: Option<BTreeSet<String>>,
    /// The extras the requirements ask of it, normalized (PEP 685).
    pub extras: BTreeSet<String>,
}

/// The normalized name a `Requires-Dist` value names, when it applies with `extras` asked.
pub fn required_name(requires_dist: &str, extras: &BTreeSet<String>) -> Option<String> {
    let (requirement, marker) = match requires_dist.split_once(';') {
        Some((r, m)) => (r, Some(m)),
        None => (requires_dist, None),
    };
    let requirement = requirement.trim_start();
    let end = requirement
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        .unwrap_or(requirement.len());
    let name = &requirement[..end];
    if name.is_empty() {
        return None;
    }
    if let Some(marker) = marker {
        let tokens = marker_tokens(marker);
        if tokens.contains(&MarkerToken::Word("extra")) {
            let asked = tokens.windows(3).any(|w| match w {
                [MarkerToken::Word("extra"), MarkerToken::Op("=="), MarkerToken::Text(x)]
                | [MarkerToken::Text(x), MarkerToken::Op("=="), MarkerToken::Word("extra")] => {
                    extras.contains(&normalize_name(x))
                }
                _ => false,
            });
            if !asked {
                return None;
            }
        }
    }
    Some(normalize_name(name))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MarkerToken<'a> {
    Word(&'a str),
    Text(&'a str),
    Op(&'a str),
    Paren,
}

/// A PEP 508 marker's tokens: names, quoted strings, comparison operators, parentheses.
fn marker_tokens(marker: &str) -> Vec<MarkerToken<'_>> {
    let mut out = Vec::new();
    let mut rest = marker;
    while let Some(c) = rest.chars().next() {
        let len = if c.is_whitespace() {
            c.len_utf8()
        } else if c == '(' || c == ')' {
            out.push(MarkerToken::Paren);
            1
        } else if c == '"' || c == '\'' {
            // an unterminated string runs to the end
            let close = rest[1..].find(c).map_or(rest.len(), |i| i + 1);
            out.push(MarkerToken::Text(&rest[1..close]));
            (close + 1).min(rest.len())
        } else if matches!(c, '=' | '!' | '<' | '>' | '~') {
            let n = rest
                .find(|c: char| !matches!(c, '=' | '!' | '<' | '>' | '~'))
                .unwrap_or(rest.len());
            out.push(MarkerToken::Op(&rest[..n]));
            n
        } else {
            let n = rest
                .find(|c: char| {
                    c.is_whitespace()
                        || matches!(c, '(' | ')' | '"' | '\'' | '=' | '!' | '<' | '>' | '~')
                })
                .unwrap_or(rest.len());
            out.push(MarkerToken::Word(&rest[..n]));
            n.max(c.len_utf8())
        };
        rest = &rest[len..];
    }
    out
}

/// Fill each dependency's `depends_on` from `facts` (by name and version): the purls of the
/// other dependencies of the same package its `Requires-Dist` name. Where a name is pinned at
/// two versions (runtime and build requirements apart), the one of the same kind is taken.
pub fn fill_edges(deps: &mut [Dependency], facts: &BTreeMap<(String, String), DependencyFacts>) {
    let mut by_name: BTreeMap<String, Vec<(String, bool)>> = BTreeMap::new();
    for d in deps.iter() {
        by_name
            .entry(normalize_name(&d.name))
            .or_default()
            .push((d.purl.clone(), d.dev == Some(true)));
    }
    for d in deps.iter_mut() {
        let key = (d.name.clone(), d.version.clone().unwrap_or_default());
        let Some(DependencyFacts {
            requires_dist: Some(requires),
            extras,
        }) = facts.get(&key)
        else {
            continue;
        };
        let dev = d.dev == Some(true);
        let mut edges = BTreeSet::new();
        for name in requires.iter().filter_map(|r| required_name(r, extras)) {
            let Some(targets) = by_name.get(&name) else {
                continue;
            };
            let same_kind: Vec<&String> = targets
                .iter()
                .filter(|(_, t_dev)| *t_dev == dev)
                .map(|(purl, _)| purl)
                .collect();
            if same_kind.is_empty() {
                edges.extend(targets.iter().map(|(purl, _)| purl.clone()));
            } else {
                edges.extend(same_kind.into_iter().cloned());
            }
        }
        edges.remove(&d.purl);
        d.depends_on = edges.into_iter().collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn extras(list: &[&str]) -> BTreeSet<String> {
        list.iter().map(|e| e.to_string()).collect()
    }

    #[test]
    fn requires_dist_names_and_extras() {
        let none = extras(&[]);
        for (spec, name) in [
            ("Beta==2.0", Some("beta")),
            ("zope.fixture (>=3.0)", Some("zope-fixture")),
            ("foo_bar[x,y]>=1; python_version >= \"3\"", Some("foo-bar")),
            ("baz @ https://files.example/baz-1.0.tar.gz", Some("baz")),
            ("gamma ; extra == \"tests\"", None),
            ("gamma ; python_version < '4' and extra == 'tests'", None),
            ("gamma ; 'tests' == extra", None),
            ("; extra == 'x'", None),
            ("", None),
        ] {
            assert_eq!(required_name(spec, &none).as_deref(), name, "{spec}");
        }
        let asked = extras(&["tests", "socks-proxy"]);
        assert_eq!(
            required_name("gamma ; extra == \"tests\"", &asked).as_deref(),
            Some("gamma")
        );
        assert_eq!(
            required_name("g ; (extra=='Socks_Proxy') and os_name == 'posix'", &asked).as_deref(),
            Some("g")
        );
        assert_eq!(required_name("g ; extra == 'docs'", &asked), None);
        // an unterminated string is read, not a panic
        assert_eq!(
            required_name("g ; extra == 'tests", &asked).as_deref(),
            Some("g")
        );
    }

    fn dep(name: &str, version: &str, dev: bool) -> Dependency {
        Dependency {
            kind: "pip".into(),
            name: name.into(),
            version: Some(version.into()),
            dev: Some(dev),
            optional: None,
            replaces: None,
            purl: format!("pkg:pypi/{name}@{version}"),
            depends_on: Vec::new(),
        }
    }

    #[test]
    fn edges_are_requires_dist_among_the_packages_dependencies() {
        let mut deps = vec![
            dep("alpha", "1.0", false),
            dep("beta", "2.0", false),
            dep("gamma", "3.0", false),
            dep("gamma", "4.0", true),
            dep("tool", "1.0", true),
            dep("vcsdep", "git+https://git.example/v@abc", false),
        ];
        let facts = |requires: &[&str], asked: &[&str]| DependencyFacts {
            requires_dist: Some(requires.iter().map(|r| r.to_string()).collect()),
            extras: extras(asked),
        };
        let mut all = BTreeMap::new();
        all.insert(
            ("alpha".into(), "1.0".into()),
            facts(&["Beta>=1", "delta", "gamma ; extra == 'x'", "alpha"], &[]),
        );
        all.insert(
            ("beta".into(), "2.0".into()),
            facts(&["gamma ; extra == 'x'"], &["x"]),
        );
        all.insert(("tool".into(), "1.0".into()), facts(&["gamma"], &[]));
        // metadata without requirements: no edges; no metadata at all: none either
        all.insert(("gamma".into(), "3.0".into()), facts(&[], &[]));
        fill_edges(&mut deps, &all);
        let edges = |i: usize| deps[i].depends_on.clone();
        assert_eq!(edges(0), vec!["pkg:pypi/beta@2.0"]);
        assert_eq!(edges(1), vec!["pkg:pypi/gamma@3.0"]);
        assert_eq!(edges(2), Vec::<String>::new());
        assert_eq!(edges(4), vec!["pkg:pypi/gamma@4.0"]);
        assert_eq!(edges(5), Vec::<String>::new());
    }
}
