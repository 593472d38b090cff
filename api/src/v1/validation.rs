//! Validation of a new request, with Cachito's messages (reference section 3.3).

use crate::error::ApiError;
use common::{DependencyReplacement, PackageManager, PackageSpec, FLAGS};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path};

pub struct NewRequest {
    pub repo: String,
    pub git_ref: String,
    pub pkg_managers: Vec<PackageManager>,
    pub packages: BTreeMap<PackageManager, Vec<PackageSpec>>,
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

pub fn is_commit_id(s: &str) -> bool {
    s.len() == 40
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

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

pub fn validate_new_request(body: &Value, allow_local_repos: bool) -> Result<NewRequest, ApiError> {
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

    let git_ref = obj["ref"].as_str().filter(|r| is_commit_id(r));
    let git_ref = git_ref
        .ok_or_else(|| bad("The \"ref\" parameter must be a 40 character hex string"))?
        .to_string();
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
        None => vec![PackageManager::Gomod],
        Some(v) => parse_pkg_managers(v)?,
    };
    let packages = match obj.get("packages") {
        None => BTreeMap::new(),
        Some(v) => parse_packages(v, &pkg_managers)?,
    };
    check_exclusive_paths(&pkg_managers, &packages)?;
    let flags = parse_flags(obj.get("flags"))?;
    let dependency_replacements = parse_replacements(obj.get("dependency_replacements"))?;
    for replacement in &dependency_replacements {
        if let Ok(pm) = replacement.kind.parse::<PackageManager>() {
            if pm != PackageManager::Gomod && pkg_managers.contains(&pm) {
                return Err(bad(format!(
                    "Dependency replacements are not yet supported for the {pm} package manager"
                )));
            }
        }
    }
    let gomod_paths = packages.get(&PackageManager::Gomod).map_or(1, Vec::len);
    if dependency_replacements.iter().any(|r| r.kind == "gomod")
        && pkg_managers.contains(&PackageManager::Gomod)
        && gomod_paths > 1
    {
        return Err(bad(
            "Dependency replacements are only supported for a single go module path.",
        ));
    }
    let user = match obj.get("user") {
        None | Some(Value::Null) => None,
        Some(Value::String(u)) if !u.is_empty() => Some(u.clone()),
        Some(_) => return Err(bad("The \"user\" parameter must be a non-empty string")),
    };
    let not_enabled: Vec<&str> = pkg_managers
        .iter()
        .filter(|pm| !pm.implemented())
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

fn parse_pkg_managers(v: &Value) -> Result<Vec<PackageManager>, ApiError> {
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
        .filter(|n| n.parse::<PackageManager>().is_err())
        .collect();
    if !invalid.is_empty() {
        return Err(bad(format!(
            "The following package managers are invalid: {}",
            invalid.join(", ")
        )));
    }
    let mut pms: Vec<PackageManager> = Vec::new();
    for name in names {
        let pm = name.parse().expect("checked above");
        if !pms.contains(&pm) {
            pms.push(pm);
        }
    }
    Ok(pms)
}

fn parse_packages(
    v: &Value,
    pkg_managers: &[PackageManager],
) -> Result<BTreeMap<PackageManager, Vec<PackageSpec>>, ApiError> {
    let obj = v
        .as_object()
        .ok_or_else(|| bad("The \"packages\" parameter must be an object"))?;
    let mut unsupported: Vec<&str> = obj
        .keys()
        .map(String::as_str)
        .filter(|k| {
            !k.parse::<PackageManager>()
                .is_ok_and(|pm| pm.takes_packages())
        })
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
        .filter(|k| !pkg_managers.iter().any(|pm| pm.as_str() == *k))
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
        let pm: PackageManager = name.parse().expect("checked above");
        let allowed: &[&str] = if pm == PackageManager::Pip {
            &["path", "requirements_build_files", "requirements_files"]
        } else {
            &["path"]
        };
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
                None => ".".to_string(),
                Some(p) => normalize_relative(p.as_str().ok_or_else(|| path_error("path"))?)
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
                                    .and_then(normalize_relative)
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

/// A non-empty relative path whose normal form stays inside the repository (Cachito also
/// refuses any `..` substring).
pub fn normalize_relative(path: &str) -> Option<String> {
    if path.is_empty() || path.starts_with('/') || path.contains('\0') {
        return None;
    }
    let mut parts: Vec<&str> = Vec::new();
    for c in Path::new(path).components() {
        match c {
            Component::Normal(p) => parts.push(p.to_str()?),
            Component::CurDir => {}
            _ => return None,
        }
    }
    let normal = if parts.is_empty() {
        ".".to_string()
    } else {
        parts.join("/")
    };
    (!normal.contains("..")).then_some(normal)
}

fn check_exclusive_paths(
    pkg_managers: &[PackageManager],
    packages: &BTreeMap<PackageManager, Vec<PackageSpec>>,
) -> Result<(), ApiError> {
    let paths = |pm| -> BTreeSet<String> {
        packages.get(&pm).map_or_else(
            || BTreeSet::from([".".to_string()]),
            |specs| specs.iter().map(|s| s.path.clone()).collect(),
        )
    };
    let (a, b) = (PackageManager::Npm, PackageManager::Yarn);
    if pkg_managers.contains(&a) && pkg_managers.contains(&b) {
        let common: Vec<String> = paths(a).intersection(&paths(b)).cloned().collect();
        if !common.is_empty() {
            return Err(bad(format!(
                "The following paths cannot be processed by both '{a}' and '{b}': {}",
                common.join(", ")
            )));
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

    fn err(body: Value) -> String {
        match validate_new_request(&body, false) {
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
        assert_eq!(
            err(json!({"repo": "https://x/y", "ref": SHA, "pkg_managers": ["pip"], "packages": {"pip": [{"path": ".", "requirements_files": ["/etc/passwd"]}]}})),
            "The \"requirements_files\" values in the \"packages.pip\" value must be to a relative path in the source repository"
        );
        assert_eq!(
            err(json!({"repo": "https://x/y", "ref": SHA, "pkg_managers": ["rubygems", "npm"]})),
            "The following package managers are not enabled: rubygems"
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
        )
        .unwrap();
        assert_eq!(ok.packages[&PackageManager::Npm][0].path, "a/b");
        assert!(validate_new_request(&json!({"repo": "/tmp/r", "ref": SHA}), true).is_ok());
    }
}
