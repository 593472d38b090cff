//! What the per-request cargo repository needs to know of one of its files.

/// The file's metadata as the worker recorded it (to be typed).
pub type CargoMeta = serde_json::Map<String, serde_json::Value>;
