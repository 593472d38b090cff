//! The request's bundle: `app/` + `deps/`, byte-reproducible, streamed to the store.

use common::archive::TarGzWriter;
use common::{Failure, Store};
use std::path::Path;

/// Write `bundles/<id>.tar.gz` and its `.sha256`; returns the hex digest.
pub fn write_bundle(
    store: &Store,
    request_id: i64,
    work_dir: &Path,
    include_git: bool,
) -> Result<String, Failure> {
    let io = |e: std::io::Error| {
        Failure::server("FileAccessError", format!("Cannot write the bundle: {e}"))
    };
    let temp = store.temp_file().map_err(io)?;
    let mut writer = TarGzWriter::new(temp.reopen().map_err(io)?);
    let skip_git = |p: &Path| !include_git && p.file_name().is_some_and(|n| n == ".git");
    writer
        .append_tree("app", &work_dir.join("app"), &skip_git)
        .map_err(io)?;
    let deps = work_dir.join("deps");
    if deps.is_dir() {
        writer.append_tree("deps", &deps, &|_| false).map_err(io)?;
    } else {
        writer.append_empty_dir("deps").map_err(io)?;
    }
    let (_, digest, size) = writer.finish().map_err(io)?;
    let digest = hex::encode(digest);
    store
        .persist(temp, &common::store::bundle_key(request_id))
        .map_err(|e| Failure::server("FileAccessError", e.to_string()))?;
    store
        .put_bytes(
            &common::store::bundle_checksum_key(request_id),
            digest.as_bytes(),
        )
        .map_err(|e| Failure::server("FileAccessError", e.to_string()))?;
    tracing::info!(size, sha256 = %digest, "bundle written");
    Ok(digest)
}
