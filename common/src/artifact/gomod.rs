//! What the per-request gomod repository needs to know of one of its files.

/// The file's metadata as the worker recorded it (to be typed).
pub type GoMeta = serde_json::Map<String, serde_json::Value>;
