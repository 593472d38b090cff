//! What the per-request GOPROXY knows of one of its files beyond module, version and file name.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GoMeta {
    /// go.sum's `h1:` of a `.mod` or `.zip` (none for `.info`, which go.sum does not cover).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub h1: Option<String>,
}
