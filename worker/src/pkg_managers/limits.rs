//! Bounds on a lockfile, the same for every package manager: past them the request fails with a
//! message naming the file and the limit, before the worker holds more of it. A 50,000-package
//! lockfile is 3 (go.sum) to 20 (package-lock.json) MiB.

use common::ErrorKind;

/// package-lock.json / npm-shrinkwrap.json, Cargo.lock, go.sum, Gemfile.lock.
pub const MAX_LOCKFILE_BYTES: u64 = 64 << 20;
/// Packages of one lockfile: npm `packages` (or v1 `dependencies`) entries, Cargo.lock
/// `[[package]]`s, go.sum lines, Gemfile.lock's indented lines.
pub const MAX_LOCKFILE_ENTRIES: usize = 100_000;

#[derive(Debug, thiserror::Error)]
pub enum LimitError {
    #[error("The file {file} is larger than the {limit} bytes allowed")]
    TooLarge { file: String, limit: u64 },
    #[error("The file {file} has {count} entries, more than the {limit} allowed")]
    TooManyEntries {
        file: String,
        count: usize,
        limit: usize,
    },
}

impl common::Classify for LimitError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::InvalidFileFormat
    }
}

/// A lockfile of `len` bytes may be read.
pub fn check_size(file: &str, len: u64) -> Result<(), LimitError> {
    if len > MAX_LOCKFILE_BYTES {
        return Err(LimitError::TooLarge {
            file: file.to_string(),
            limit: MAX_LOCKFILE_BYTES,
        });
    }
    Ok(())
}

/// A lockfile of `count` entries may be processed.
pub fn check_entries(file: &str, count: usize) -> Result<(), LimitError> {
    if count > MAX_LOCKFILE_ENTRIES {
        return Err(LimitError::TooManyEntries {
            file: file.to_string(),
            count,
            limit: MAX_LOCKFILE_ENTRIES,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::Failure;

    #[test]
    fn failures_name_the_file_and_the_limit() {
        assert!(check_size("go.sum", MAX_LOCKFILE_BYTES).is_ok());
        let f = check_size("web/package-lock.json", MAX_LOCKFILE_BYTES + 1)
            .map_err(Failure::from)
            .unwrap_err();
        assert_eq!(f.error_type(), "InvalidFileFormat");
        assert_eq!(
            f.message,
            format!("The file web/package-lock.json is larger than the {MAX_LOCKFILE_BYTES} bytes allowed")
        );
        assert!(check_entries("Cargo.lock", MAX_LOCKFILE_ENTRIES).is_ok());
        let f = check_entries("Cargo.lock", MAX_LOCKFILE_ENTRIES + 1)
            .map_err(Failure::from)
            .unwrap_err();
        assert_eq!(
            f.message,
            format!(
                "The file Cargo.lock has {} entries, more than the {MAX_LOCKFILE_ENTRIES} allowed",
                MAX_LOCKFILE_ENTRIES + 1
            )
        );
    }
}
