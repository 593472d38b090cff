//! JSON responses written as they are serialized: a request of 50,000 dependencies is tens of
//! MB of JSON, which `HttpResponse::json` would hold whole (and a `serde_json::Value` of it
//! several times over).

use actix_web::web::{Bytes, BytesMut};
use actix_web::{HttpResponse, HttpResponseBuilder};
use serde::Serialize;
use std::io::{self, Write};
use tokio::sync::mpsc;

/// What is sent at once.
const CHUNK_BYTES: usize = 64 * 1024;
/// Chunks serialized ahead of what the client has read.
const CHUNKS_AHEAD: usize = 4;

/// `value` as the response body, serialized on the blocking pool in chunks of
/// [`CHUNK_BYTES`] as the client reads them.
pub fn streamed<T: Serialize + Send + 'static>(
    response: HttpResponseBuilder,
    value: T,
) -> HttpResponse {
    written(response, move |out| {
        serde_json::to_writer(out, &value).map_err(io::Error::from)
    })
}

/// The JSON `write` writes as the response body, made on the blocking pool like [`streamed`].
pub fn written(
    mut response: HttpResponseBuilder,
    write: impl FnOnce(&mut dyn Write) -> io::Result<()> + Send + 'static,
) -> HttpResponse {
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(CHUNKS_AHEAD);
    tokio::task::spawn_blocking(move || {
        let mut out = ChunkWriter {
            tx,
            buf: BytesMut::with_capacity(CHUNK_BYTES),
        };
        let written = write(&mut out).and_then(|()| out.send());
        if let Err(e) = written {
            // the client went away, or a chunk could not be made: the body ends short
            let _ = out.tx.blocking_send(Err(e));
        }
    });
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    });
    response.content_type("application/json").streaming(body)
}

struct ChunkWriter {
    tx: mpsc::Sender<io::Result<Bytes>>,
    buf: BytesMut,
}

impl ChunkWriter {
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = self.buf.split().freeze();
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK_BYTES {
            self.send()?;
            self.buf.reserve(CHUNK_BYTES);
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_web::test]
    async fn a_large_value_arrives_whole_in_bounded_chunks() {
        let value: Vec<String> = (0..20_000).map(|i| format!("item {i}")).collect();
        let expected = serde_json::to_vec(&value).unwrap();
        let response = streamed(HttpResponse::Ok(), value);
        assert_eq!(
            response.headers().get("content-type").unwrap(),
            "application/json"
        );
        let body = actix_web::body::to_bytes(response.into_body())
            .await
            .unwrap();
        assert_eq!(body.as_ref(), expected.as_slice());
    }
}
