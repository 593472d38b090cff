//! What the per-request pip repository needs to know of one of its files.

/// The file's metadata as the worker recorded it (to be typed).
pub type PipMeta = serde_json::Map<String, serde_json::Value>;
