//! What the per-request npm repository needs to know of one of its files.

/// The file's metadata as the worker recorded it (to be typed).
pub type NpmMeta = serde_json::Map<String, serde_json::Value>;
