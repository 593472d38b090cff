//! Python package names, shared by the worker's resolver and the api's index.

/// PEP 503 normalization: lowercase, runs of `-`, `_`, `.` collapse to one `-`.
pub fn normalize_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut in_sep = false;
    for c in name.trim().chars() {
        if c == '-' || c == '_' || c == '.' {
            if !in_sep {
                out.push('-');
            }
            in_sep = true;
        } else {
            out.extend(c.to_lowercase());
            in_sep = false;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn normalizes() {
        assert_eq!(super::normalize_name("My.Pkg__name"), "my-pkg-name");
        assert_eq!(super::normalize_name("a-_.b"), "a-b");
    }
}
