//! The blocking pool, for file and archive work: below the pipeline and the package managers,
//! which both use it.

use common::{ErrorKind, Failure};

/// Run `f` on the blocking pool, inside the current tracing span (so its log lines keep the
/// request id).
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Failure> + Send + 'static,
) -> Result<T, Failure> {
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(f))
        .await
        .unwrap_or_else(|e| {
            Err(Failure::new(
                ErrorKind::UnknownError,
                format!("An unknown error occurred: {e}"),
            ))
        })
}
