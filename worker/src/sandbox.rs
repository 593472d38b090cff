//! The symlink check on an unpacked repository: no link may lead outside it.

use common::{ErrorKind, Failure};
use std::fs;
use std::path::{Path, PathBuf};

/// Fail (or, with `remove`, delete the link) for every symlink under `root` whose destination is
/// outside `root`. Links into `.git` internals are not followed; link loops are skipped.
pub fn check_symlinks(root: &Path, remove: bool) -> Result<Vec<PathBuf>, Failure> {
    let canonical_root = fs::canonicalize(root)
        .map_err(|e| Failure::new(ErrorKind::FileAccessError, e.to_string()))?;
    let mut removed = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = fs::read_dir(&dir)
            .map_err(|e| Failure::new(ErrorKind::FileAccessError, e.to_string()))?;
        for entry in entries {
            let entry =
                entry.map_err(|e| Failure::new(ErrorKind::FileAccessError, e.to_string()))?;
            let path = entry.path();
            let kind = entry
                .file_type()
                .map_err(|e| Failure::new(ErrorKind::FileAccessError, e.to_string()))?;
            if kind.is_dir() {
                if path.file_name().is_some_and(|n| n != ".git") {
                    stack.push(path);
                }
                continue;
            }
            if !kind.is_symlink() {
                continue;
            }
            let rel = path.strip_prefix(root).unwrap_or(&path).to_path_buf();
            if escapes(&canonical_root, root, &rel) {
                if remove {
                    fs::remove_file(&path)
                        .map_err(|e| Failure::new(ErrorKind::FileAccessError, e.to_string()))?;
                    tracing::info!(link = %rel.display(), "removed a symlink that points outside the repository");
                    removed.push(rel);
                } else {
                    return Err(Failure::new(
                        ErrorKind::ValidationError,
                        format!(
                            "The destination of '{}' is outside of cloned repository",
                            rel.display()
                        ),
                    ));
                }
            }
        }
    }
    Ok(removed)
}

/// Whether the link at `rel` below `root` leads outside it (`canonical_root`: `root`
/// canonical).
pub(crate) fn escapes(canonical_root: &Path, root: &Path, rel: &Path) -> bool {
    match fs::canonicalize(root.join(rel)) {
        Ok(target) => !target.starts_with(canonical_root),
        Err(e) if e.raw_os_error() == Some(40) => false, // ELOOP: a loop leads nowhere
        // Dangling: where the kernel would take it once its target exists
        Err(_) => resolve_dangling(&root.join(rel), 40)
            .is_none_or(|target| !target.starts_with(canonical_root)),
    }
}

/// Where the dangling link `link` leads, resolved as the kernel resolves a path: what exists of
/// it physically (a link on the way followed, and a `..` after it taken from where it led, not
/// from the link's text), the part that does not exist yet by its names. `None`: more than
/// `hops` links, or unreadable.
fn resolve_dangling(link: &Path, hops: usize) -> Option<PathBuf> {
    use std::path::Component;
    let text = fs::read_link(link).ok()?;
    let mut at = fs::canonicalize(link.parent()?).ok()?;
    for component in text.components() {
        match component {
            Component::RootDir | Component::Prefix(_) => at = PathBuf::from("/"),
            Component::CurDir => {}
            Component::ParentDir => {
                at.pop();
            }
            Component::Normal(name) => {
                let next = at.join(name);
                at = match fs::symlink_metadata(&next) {
                    Ok(m) if m.file_type().is_symlink() => match fs::canonicalize(&next) {
                        Ok(target) => target,
                        Err(_) => resolve_dangling(&next, hops.checked_sub(1)?)?,
                    },
                    _ => next,
                };
            }
        }
    }
    Some(at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// A dangling link whose text goes through a link inside reads as inside (`d/..` cancels),
    /// but the kernel goes up from where `d` leads.
    #[test]
    fn a_dangling_link_through_a_link_is_judged_where_the_kernel_takes_it() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("app");
        fs::create_dir_all(root.join("a/b")).unwrap();
        symlink("../..", root.join("a/b/d")).unwrap();
        symlink("d/inside-later", root.join("a/b/fine")).unwrap();
        check_symlinks(&root, false).unwrap();
        symlink("d/../../payload", root.join("a/b/x")).unwrap();
        let err = check_symlinks(&root, false).unwrap_err();
        assert_eq!(
            err.message,
            "The destination of 'a/b/x' is outside of cloned repository"
        );
    }

    #[test]
    fn finds_escaping_links() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("app");
        fs::create_dir_all(root.join("sub")).unwrap();
        fs::write(root.join("file"), "x").unwrap();
        symlink("../file", root.join("sub/ok")).unwrap();
        symlink("loop", root.join("loop")).unwrap();
        check_symlinks(&root, false).unwrap();
        symlink("../../etc/passwd", root.join("sub/bad")).unwrap();
        let err = check_symlinks(&root, false).unwrap_err();
        assert_eq!(
            err.message,
            "The destination of 'sub/bad' is outside of cloned repository"
        );
        symlink("/nonexistent/x", root.join("dangling")).unwrap();
        let removed = check_symlinks(&root, true).unwrap();
        assert_eq!(removed.len(), 2);
        assert!(root.join("sub/ok").exists());
    }
}
