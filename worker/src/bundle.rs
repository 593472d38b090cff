//! The request's bundle: `app/` + `deps/`, byte-reproducible, streamed to the store.

use common::archive::TarGzWriter;
use common::{ErrorKind, Failure, Store};
use std::path::Path;

/// Where the bundle keeps files an offline build needs over `app/` (rewritten lockfiles, client
/// configuration), laid out as `app/` is: `cp -r deps/app-overlay/. app/`. `app/` itself stays
/// byte for byte the commit.
pub const APP_OVERLAY: &str = "deps/app-overlay";

/// The overlay path of a bundle path under `app/` (`app/web/package-lock.json` →
/// `deps/app-overlay/web/package-lock.json`).
pub fn overlay_path(app_path: &str) -> String {
    let rel = app_path.strip_prefix("app/").unwrap_or(app_path);
    format!("{APP_OVERLAY}/{rel}")
}

/// Write `content` at the overlay path of `app_path` under the bundle's root.
pub fn write_overlay_file(
    bundle_root: &Path,
    app_path: &str,
    content: &[u8],
) -> Result<(), Failure> {
    let rel = overlay_path(app_path);
    let safe = common::archive::safe_relative(Path::new(&rel)).ok_or_else(|| {
        Failure::new(
            ErrorKind::FileAccessError,
            format!("Unsafe overlay path {rel:?}"),
        )
    })?;
    let dest = bundle_root.join(safe);
    let io = |e: std::io::Error| {
        Failure::new(
            ErrorKind::FileAccessError,
            format!("Cannot write {rel}: {e}"),
        )
    };
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    std::fs::write(&dest, content).map_err(io)
}

/// Write `bundles/<id>.tar.gz` and its `.sha256`; returns the hex digest.
pub fn write_bundle(
    store: &Store,
    request_id: i64,
    work_dir: &Path,
    include_git: bool,
) -> Result<String, Failure> {
    let io = |e: std::io::Error| {
        Failure::new(
            ErrorKind::FileAccessError,
            format!("Cannot write the bundle: {e}"),
        )
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
        .map_err(|e| Failure::new(ErrorKind::FileAccessError, e.to_string()))?;
    store
        .put_bytes(
            &common::store::bundle_checksum_key(request_id),
            digest.as_bytes(),
        )
        .map_err(|e| Failure::new(ErrorKind::FileAccessError, e.to_string()))?;
    tracing::info!(size, sha256 = %digest, "bundle written");
    Ok(digest)
}
