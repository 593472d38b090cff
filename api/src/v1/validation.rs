//! Validation of a new request, with Cachito's messages (reference section 3.3).

use crate::error::ApiError;
use common::commit::CommitId;
use common::repo_path::RepoPath;
use common::{Catalogue, DependencyReplacement, PackageSpec, PmName, FLAGS};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};

pub struct NewRequest {
    pub repo: String,
    pub git_ref: CommitId,
    pub pkg_managers: Vec<PmName>,
    pub packages: BTreeMap<PmName, Vec<PackageSpec>>,
    pub flags: Vec<String>,
    pub dependency_replacements: Vec<DependencyReplacement>,
    pub user: Option<String>,
}

const ALLOWED_KEYS: &[&str] = &[
    "dependency_replacements",
    "flags",
    "packages",
    "pkg_managers",
    "ref",
    "repo",
    "user",
];

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::bad_request(msg)
}

/// Whether `text` has a control character (NUL included): no URL, commit, path, name or flag
/// has one, and PostgreSQL cannot store a NUL.
pub fn has_control(text: &str) -> bool {
    text.chars().any(char::is_control)
}

/// Whether any key or string inside `value` satisfies `bad`.
pub fn any_string(value: &Value, bad: &impl Fn(&str) -> bool) -> bool {
    match value {
        Value::String(s) => bad(s),
        Value::Array(items) => items.iter().any(|v| any_string(v, bad)),
        Value::Object(obj) => obj.iter().any(|(k, v)| bad(k) || any_string(v, bad)),
        _ => false,
    }
}

/// A query parameter or path segment that must not hold control characters.
pub fn check_text(name: &str, value: &str) -> Result<(), ApiError> {
    if has_control(value) {
        return Err(bad(format!(
            "The \"{name}\" parameter must not contain control characters"
        )));
    }
    Ok(())
}

/// Cachito's default when a request names no package manager.
const DEFAULT_PACKAGE_MANAGERS: &[&str] = &["gomod"];

pub fn validate_new_request(
    body: &Value,
    allow_local_repos: bool,
    catalogue: &Catalogue,
) -> Result<NewRequest, ApiError> {
    let obj = body
        .as_object()
        .ok_or_else(|| bad("The input data must be a JSON object"))?;
    for (key, value) in obj {
        if has_control(key) {
            return Err(bad("Parameter names must not contain control characters"));
        }
        if any_string(value, &has_control) {
            return Err(bad(format!(
                "The \"{key}\" parameter must not contain control characters"
            )));
        }
    }
    let missing: Vec<&str> = ["ref", "repo"]
        .into_iter()
        .filter(|k| !obj.contains_key(*k))
        .collect();
    if !missing.is_empty() {
        return Err(bad(format!(
            "Missing required parameter(s): {}",
            missing.join(", ")
        )));
    }
    let mut invalid: Vec<&str> = obj
        .keys()
        .map(String::as_str)
        .filter(|k| !ALLOWED_KEYS.contains(k))
        .collect();
    if !invalid.is_empty() {
        invalid.sort();
        return Err(bad(format!(
            "The following parameters are invalid: {}",
            invalid.join(", ")
        )));
    }

    let git_ref = obj["ref"]
        .as_str()
        .and_then(|r| CommitId::parse(r).ok())
        .ok_or_else(|| bad("The \"ref\" parameter must be a 40 character hex string"))?;
    let repo = obj["repo"]
        .as_str()
        .ok_or_else(|| bad("The \"repo\" parameter must be a string"))?
        .to_string();
    if repo.len() >= 200 {
        return Err(bad(
            "The \"repo\" parameter must be shorter than 200 characters",
        ));
    }
    validate_repo_url(&repo, allow_local_repos)?;

    let pkg_managers = match obj.get("pkg_managers") {
        None => DEFAULT_PACKAGE_MANAGERS
            .iter()
            .map(|n| PmName::new(*n))
            .collect(),
        Some(v) => parse_pkg_managers(v, catalogue)?,
    };
    let packages = match obj.get("packages") {
        None => BTreeMap::new(),
        Some(v) => parse_packages(v, &pkg_managers, catalogue)?,
    };
    check_exclusive_paths(&pkg_managers, &packages, catalogue)?;
    let flags = parse_flags(obj.get("flags"))?;
    let dependency_replacements = parse_replacements(obj.get("dependency_replacements"))?;
    for replacement in &dependency_replacements {
        let Some(pm) = pkg_managers
            .iter()
            .find(|pm| *pm == replacement.kind.as_str())
        else {
            continue;
        };
        match catalogue.get(pm.as_str()) {
            Some(d) if d.replacements => {
                let paths = packages.get(pm).map_or(1, Vec::len);
                if paths > 1 {
                    return Err(bad(format!(
                        "Dependency replacements are only supported for a single {} path.",
                        d.path_noun
                    )));
                }
            }
            _ => {
                return Err(bad(format!(
                    "Dependency replacements are not yet supported for the {pm} package manager"
                )))
            }
        }
    }
    let user = match obj.get("user") {
        None | Some(Value::Null) => None,
        Some(Value::String(u)) if !u.is_empty() => Some(u.clone()),
        Some(_) => return Err(bad("The \"user\" parameter must be a non-empty string")),
    };
    let not_enabled: Vec<&str> = pkg_managers
        .iter()
        .filter(|pm| catalogue.get(pm.as_str()).is_none())
        .map(|pm| pm.as_str())
        .collect();
    if !not_enabled.is_empty() {
        return Err(bad(format!(
            "The following package managers are not enabled: {}",
            not_enabled.join(", ")
        )));
    }
    Ok(NewRequest {
        repo,
        git_ref,
        pkg_managers,
        packages,
        flags,
        dependency_replacements,
        user,
    })
}

/// `https`, `http`, `git` and `ssh` URLs (and scp-like `user@host:path`); `file://` and local
/// paths only when local repositories are allowed.
pub fn validate_repo_url(repo: &str, allow_local: bool) -> Result<(), ApiError> {
    let local_msg = "The \"repo\" parameter names a local repository, and local repositories are not allowed (LARDER_ALLOW_LOCAL_REPOS)";
    if repo.starts_with('/') {
        return if allow_local {
            Ok(())
        } else {
            Err(bad(local_msg))
        };
    }
    let scheme_msg = "The \"repo\" parameter must be a https, http, git or ssh URL";
    match url::Url::parse(repo) {
        Ok(url) => match url.scheme() {
            "https" | "http" | "git" | "ssh" if url.host_str().is_some_and(|h| !h.is_empty()) => {
                Ok(())
            }
            "file" if allow_local => Ok(()),
            "file" => Err(bad(local_msg)),
            _ => Err(bad(scheme_msg)),
        },
        Err(_) => {
            // scp-like syntax: [user@]host:path
            let scp = repo.split_once(':').is_some_and(|(userhost, path)| {
                let host = userhost.rsplit('@').next().unwrap_or("");
                !host.is_empty()
                    && !path.is_empty()
                    && !userhost.contains('/')
                    && !host.contains(' ')
            });
            if scp {
                Ok(())
            } else {
                Err(bad(scheme_msg))
            }
        }
    }
}

fn parse_pkg_managers(v: &Value, catalogue: &Catalogue) -> Result<Vec<PmName>, ApiError> {
    let not_strings = || bad("The \"pkg_managers\" value must be an array of strings");
    let names: Vec<&str> = v
        .as_array()
        .ok_or_else(not_strings)?
        .iter()
        .map(|n| n.as_str().ok_or_else(not_strings))
        .collect::<Result<_, _>>()?;
    let invalid: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| !catalogue.known(n))
        .collect();
    if !invalid.is_empty() {
        return Err(bad(format!(
            "The following package managers are invalid: {}",
            invalid.join(", ")
        )));
    }
    let mut pms: Vec<PmName> = Vec::new();
    for name in names {
        if !pms.iter().any(|pm| pm == name) {
            pms.push(PmName::new(name));
        }
    }
    Ok(pms)
}

/// The keys a `packages.<name>` entry may carry (`None`: no entries at all), for a package
/// manager processed here or one Cachito knows.
fn package_keys(name: &str, catalogue: &Catalogue) -> Option<Vec<&'static str>> {
    let extra: &[&str] = match catalogue.get(name) {
        Some(d) if d.takes_packages => d.package_keys,
        Some(_) => return None,
        None if catalogue.known(name) && name != "git-submodule" => &[],
        None => return None,
    };
    let mut keys = vec!["path"];
    keys.extend_from_slice(extra);
    keys.sort();
    Some(keys)
}

fn parse_packages(
    v: &Value,
    pkg_managers: &[PmName],
    catalogue: &Catalogue,
) -> Result<BTreeMap<PmName, Vec<PackageSpec>>, ApiError> {
    let obj = v
        .as_object()
        .ok_or_else(|| bad("The \"packages\" parameter must be an object"))?;
    let mut unsupported: Vec<&str> = obj
        .keys()
        .map(String::as_str)
        .filter(|k| package_keys(k, catalogue).is_none())
        .collect();
    if !unsupported.is_empty() {
        unsupported.sort();
        return Err(bad(format!(
            "The following package managers in the \"packages\" object are unsupported: {}",
            unsupported.join(", ")
        )));
    }
    let mut not_applying: Vec<&str> = obj
        .keys()
        .map(String::as_str)
        .filter(|k| !pkg_managers.iter().any(|pm| pm == *k))
        .collect();
    if !not_applying.is_empty() {
        not_applying.sort();
        return Err(bad(format!(
            "The following package managers in the \"packages\" object do not apply: {}",
            not_applying.join(", ")
        )));
    }
    let mut out = BTreeMap::new();
    for (name, items) in obj {
        let pm = PmName::new(name.as_str());
        let allowed = package_keys(name, catalogue).unwrap_or_default();
        let shape = || {
            bad(format!("The value of \"packages.{pm}\" must be an array of objects with the following keys: {}", allowed.join(", ")))
        };
        let mut specs = Vec::new();
        for item in items.as_array().ok_or_else(shape)? {
            let item: &Map<String, Value> = item
                .as_object()
                .filter(|o| !o.is_empty())
                .ok_or_else(shape)?;
            if item.keys().any(|k| !allowed.contains(&k.as_str())) {
                return Err(shape());
            }
            let path_error = |key: &str| {
                bad(format!("The \"{key}\" values in the \"packages.{pm}\" value must be to a relative path in the source repository"))
            };
            let path = match item.get("path") {
                None => RepoPath::root(),
                Some(p) => request_path(p.as_str().ok_or_else(|| path_error("path"))?)
                    .ok_or_else(|| path_error("path"))?,
            };
            let files = |key: &str| -> Result<Option<Vec<String>>, ApiError> {
                match item.get(key) {
                    None => Ok(None),
                    Some(list) => {
                        let list = list.as_array().ok_or_else(shape)?;
                        list.iter()
                            .map(|f| {
                                f.as_str()
                                    .and_then(request_path)
                                    .filter(|p| !p.is_root())
                                    .map(|p| p.as_str().to_string())
                                    .ok_or_else(|| path_error(key))
                            })
                            .collect::<Result<Vec<_>, _>>()
                            .map(Some)
                    }
                }
            };
            let requirements_files = files("requirements_files")?;
            let requirements_build_files = files("requirements_build_files")?;
            specs.push(PackageSpec {
                path,
                requirements_files,
                requirements_build_files,
            });
        }
        out.insert(pm, specs);
    }
    Ok(out)
}

/// A path a request names inside the repository: non-empty, relative, and (Cachito's rule) no
/// `..` anywhere, not even inside a name.
pub fn request_path(path: &str) -> Option<RepoPath> {
    if path.is_empty() || path.contains("..") {
        return None;
    }
    RepoPath::parse(path).ok()
}

/// No path may be processed by two package managers that exclude each other (npm and yarn).
fn check_exclusive_paths(
    pkg_managers: &[PmName],
    packages: &BTreeMap<PmName, Vec<PackageSpec>>,
    catalogue: &Catalogue,
) -> Result<(), ApiError> {
    let paths = |pm: &PmName| -> BTreeSet<String> {
        packages.get(pm).map_or_else(
            || BTreeSet::from([".".to_string()]),
            |specs| specs.iter().map(|s| s.path.as_str().to_string()).collect(),
        )
    };
    for a in pkg_managers {
        let Some(descriptor) = catalogue.get(a.as_str()) else {
            continue;
        };
        for b in pkg_managers
            .iter()
            .filter(|b| descriptor.exclusive_with.contains(&b.as_str()))
        {
            let common: Vec<String> = paths(a).intersection(&paths(b)).cloned().collect();
            if !common.is_empty() {
                return Err(bad(format!(
                    "The following paths cannot be processed by both '{a}' and '{b}': {}",
                    common.join(", ")
                )));
            }
        }
    }
    Ok(())
}

fn parse_flags(v: Option<&Value>) -> Result<Vec<String>, ApiError> {
    let Some(v) = v else { return Ok(Vec::new()) };
    let not_strings = || bad("The \"flags\" value must be an array of strings");
    let mut flags: Vec<String> = v
        .as_array()
        .ok_or_else(not_strings)?
        .iter()
        .map(|f| f.as_str().map(str::to_string).ok_or_else(not_strings))
        .collect::<Result<_, _>>()?;
    let invalid: Vec<&str> = flags
        .iter()
        .map(String::as_str)
        .filter(|f| !FLAGS.contains(f))
        .collect();
    if !invalid.is_empty() {
        return Err(bad(format!(
            "Invalid/Inactive flag(s): {}",
            invalid.join(", ")
        )));
    }
    flags.sort();
    flags.dedup();
    Ok(flags)
}

fn parse_replacements(v: Option<&Value>) -> Result<Vec<DependencyReplacement>, ApiError> {
    let Some(v) = v else { return Ok(Vec::new()) };
    let items = v
        .as_array()
        .ok_or_else(|| bad("\"dependency_replacements\" must be an array"))?;
    let shape = || {
        bad("A dependency replacement must be a JSON object with the following keys: name, type, version. It may also contain the following optional keys: new_name.")
    };
    let mut out = Vec::new();
    for item in items {
        let obj = item.as_object().ok_or_else(shape)?;
        let keys: BTreeSet<&str> = obj.keys().map(String::as_str).collect();
        let required = BTreeSet::from(["name", "type", "version"]);
        if !required.is_subset(&keys)
            || keys
                .iter()
                .any(|k| !["name", "type", "version", "new_name"].contains(k))
        {
            return Err(shape());
        }
        for (k, v) in obj {
            if !v.is_string() {
                return Err(bad(format!(
                    "The \"{k}\" key of the dependency replacement must be a string"
                )));
            }
        }
        out.push(serde_json::from_value(item.clone()).map_err(|_| shape())?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

    fn catalogue() -> Catalogue {
        worker::pkg_managers::catalogue()
    }

    fn err(body: Value) -> String {
        match validate_new_request(&body, false, &catalogue()) {
            Err(e) => e.message,
            Ok(_) => panic!("accepted {body}"),
        }
    }

    #[test]
    fn messages() {
        assert_eq!(err(json!([])), "The input data must be a JSON object");
        assert_eq!(
            err(json!({"repo": "https://x/y"})),
            "Missing required parameter(s): ref"
        );
        assert_eq!(
            err(json!({"repo": "https://x/y", "ref": SHA, "foo": 1})),
            "The following parameters are invalid: foo"
        );
        assert_eq!(
            err(json!({"repo": "https://x/y", "ref": "main"})),
            "The \"ref\" parameter must be a 40 character hex string"
        );
        assert!(err(json!({"repo": "/tmp/x", "ref": SHA}))
            .contains("local repositories are not allowed"));
        assert!(err(json!({"repo": "file:///tmp/x", "ref": SHA}))
            .contains("local repositories are not allowed"));
        assert!(err(json!({"repo": "ftp://h/x", "ref": SHA}))
            .contains("must be a https, http, git or ssh URL"));
        assert_eq!(
            err(json!({"repo": "https://x/y", "ref": SHA, "pkg_managers": ["bogus"]})),
            "The following package managers are invalid: bogus"
        );
        assert_eq!(
            err(json!({"repo": "https://x/y", "ref": SHA, "pkg_managers": ["npm"], "packages": {"npm": [{"path": "../x"}]}})),
            "The \"path\" values in the \"packages.npm\" value must be to a relative path in the source repository"
        );
        assert_eq!(
            err(
                json!({"repo": "https://x/y", "ref": SHA, "pkg_managers": ["npm"], "packages": {"pip": [{"path": "x"}]}})
            ),
            "The following package managers in the \"packages\" object do not apply: pip"
        );
        assert_eq!(
            err(json!({"repo": "https://x/y", "ref": SHA, "pkg_managers": ["git-submodule"], "packages": {"git-submodule": []}})),
            "The following package managers in the \"packages\" object are unsupported: git-submodule"
        );
        assert_eq!(
            err(json!({"repo": "https://x/y", "ref": SHA, "flags": ["nope"]})),
            "Invalid/Inactive flag(s): nope"
        );
        assert_eq!(
            err(json!({"repo": "https://x/y", "ref": SHA, "pkg_managers": ["npm", "yarn"]})),
            "The following paths cannot be processed by both 'npm' and 'yarn': ."
        );
        // pnpm's `.npmrc` hand-back would overwrite npm's or yarn's at one path
        assert_eq!(
            err(json!({"repo": "https://x/y", "ref": SHA, "pkg_managers": ["npm", "pnpm"]})),
            "The following paths cannot be processed by both 'pnpm' and 'npm': ."
        );
        assert!(validate_new_request(
            &json!({"repo": "https://x/y", "ref": SHA, "pkg_managers": ["npm", "pnpm"],
                    "packages": {"npm": [{"path": "a"}], "pnpm": [{"path": "b"}]}}),
            false,
            &catalogue()
        )
        .is_ok());
        assert_eq!(
            err(json!({"repo": "https://x/y", "ref": SHA, "pkg_managers": ["pip"], "packages": {"pip": [{"path": ".", "requirements_files": ["/etc/passwd"]}]}})),
            "The \"requirements_files\" values in the \"packages.pip\" value must be to a relative path in the source repository"
        );
        // a package manager Cachito knows that this deployment does not process
        let without_rubygems = Catalogue(
            catalogue()
                .0
                .into_iter()
                .filter(|d| d.name != "rubygems")
                .collect(),
        );
        assert_eq!(
            validate_new_request(
                &json!({"repo": "https://x/y", "ref": SHA, "pkg_managers": ["rubygems", "npm"]}),
                false,
                &without_rubygems
            )
            .err()
            .map(|e| e.message)
            .as_deref(),
            Some("The following package managers are not enabled: rubygems")
        );
        assert_eq!(
            err(
                json!({"repo": "https://x/y", "ref": SHA, "pkg_managers": ["npm"], "dependency_replacements": [{"type": "npm", "name": "a", "version": "1"}]})
            ),
            "Dependency replacements are not yet supported for the npm package manager"
        );
    }

    #[test]
    fn control_characters_anywhere_are_refused() {
        let cases = [
            (json!({"repo": "/tmp/x\u{0}", "ref": SHA}), "\"repo\""),
            (
                json!({"repo": "https://x/y", "ref": SHA, "user": "a\u{0}b"}),
                "\"user\"",
            ),
            (
                json!({"repo": "https://x/y", "ref": SHA, "dependency_replacements": [{"name": "a\u{0}", "type": "gomod", "version": "v1"}]}),
                "\"dependency_replacements\"",
            ),
            (
                json!({"repo": "https://x/y", "ref": SHA, "pkg_managers": ["npm"], "packages": {"npm": [{"path": "a\nb"}]}}),
                "\"packages\"",
            ),
            (
                json!({"repo": "https://x/y", "ref": SHA, "flags": ["\u{1b}[31m"]}),
                "\"flags\"",
            ),
        ];
        for (body, name) in cases {
            let message = err(body.clone());
            assert!(
                message.contains(name) && message.contains("must not contain control characters"),
                "{body}: {message}"
            );
        }
        assert_eq!(
            err(json!({"repo": "https://x/y", "ref": SHA, "x\u{0}": 1})),
            "Parameter names must not contain control characters"
        );
    }

    #[test]
    fn accepts_valid() {
        let ok = validate_new_request(
            &json!({"repo": "git@github.com:o/r.git", "ref": SHA, "pkg_managers": ["npm", "git-submodule"], "packages": {"npm": [{"path": "a/./b"}]}, "flags": ["include-git-dir"]}),
            false,
            &catalogue(),
        )
        .unwrap();
        assert_eq!(ok.packages[&PmName::new("npm")][0].path.as_str(), "a/b");
        assert!(
            validate_new_request(&json!({"repo": "/tmp/r", "ref": SHA}), true, &catalogue())
                .is_ok()
        );
    }
}
