//! Percent-encoding as Cachito's Python wrote it (`urllib.parse.quote`), on the
//! `percent-encoding` crate: one set per shape, decoding that refuses what is not UTF-8.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC};

/// Everything but RFC 3986 unreserved characters: `quote(s, safe="")`.
pub const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The same keeping `/`: `quote(s)` (scoped npm names, paths).
pub const PATH: &AsciiSet = &COMPONENT.remove(b'/');

/// `quote(s, safe="")`: for one purl component, query value or URL path segment.
pub fn encode_component(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, COMPONENT).to_string()
}

/// `quote(s)`: keeps `/`.
pub fn encode_path(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, PATH).to_string()
}

/// Decode `%XX` escapes; `None` when the result is not UTF-8.
pub fn decode(s: &str) -> Option<String> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .ok()
        .map(|c| c.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_python_quote() {
        assert_eq!(encode_component("@scope/a b~c"), "%40scope%2Fa%20b~c");
        assert_eq!(encode_path("@scope/a b"), "%40scope/a%20b");
        assert_eq!(encode_component("é"), "%C3%A9");
        assert_eq!(decode("%40scope%2Fa"), Some("@scope/a".into()));
        assert_eq!(decode("%FF"), None);
    }
}
