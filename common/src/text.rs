//! Text that came from a repository, an upstream or a client, made safe to store and to log:
//! control characters shown as escapes (PostgreSQL refuses NUL in text, and a terminal
//! interprets the rest), and a bounded length.

use std::fmt::Write;

/// The longest `state_reason` (and failure message) kept; longer ones are cut with a marker.
pub const MAX_REASON_BYTES: usize = 8 * 1024;

/// `text` with every control character but tab and newline written as `\x..`/`\u{..}`, cut
/// to at most `max_bytes` (plus a marker saying how much was left out).
pub fn clean(text: &str, max_bytes: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max_bytes) + 32);
    for (i, c) in text.char_indices() {
        let start = out.len();
        if c.is_control() && c != '\n' && c != '\t' {
            if (c as u32) < 0x80 {
                let _ = write!(out, "\\x{:02x}", c as u32);
            } else {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
        } else {
            out.push(c);
        }
        if out.len() > max_bytes {
            out.truncate(start);
            let _ = write!(out, "… [{} more bytes cut]", text.len() - i);
            break;
        }
    }
    out
}

/// Whether `text` can be stored as it is (no control character but tab and newline).
pub fn is_clean(text: &str) -> bool {
    !text
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_controls_and_bounds_length() {
        assert_eq!(
            clean("a\0b\x1b[31mc\u{85}d\n\te", 100),
            "a\\x00b\\x1b[31mc\\u{85}d\n\te"
        );
        assert!(is_clean("ok\n\tfine"));
        assert!(!is_clean("nul\0"));
        let long = "é".repeat(10_000);
        let cut = clean(&long, 101);
        assert!(cut.len() <= 101 + 40, "{}", cut.len());
        assert!(cut.starts_with("éé"));
        assert!(cut.ends_with("more bytes cut]"), "{cut}");
        assert_eq!(clean("short", 100), "short");
    }
}
