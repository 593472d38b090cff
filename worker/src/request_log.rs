//! Per-request logs: every event inside a span carrying `request_id` becomes a line of that
//! request's log. The lines are kept in memory and sent to the api in chunks of whole lines
//! (`POST /api/v1/requests/{id}/logs`, every [`FLUSH_INTERVAL`], as soon as a request has
//! [`FLUSH_BYTES`] waiting, and before its final state), which keeps them in the database and
//! serves them at `/api/v1/requests/{id}/logs` from any instance. Logging never waits for the
//! api: past [`PENDING_LIMIT`] waiting bytes (an api unreachable for long), lines are dropped
//! and the log says how many where they went missing.

use crate::api_client::ApiClient;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// How often waiting lines are sent.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(500);
/// A request with this much waiting is sent at once, without waiting for the interval.
pub const FLUSH_BYTES: usize = 64 << 10;
/// The most bytes one chunk carries (always whole lines; a line is at most 64 KiB).
const CHUNK_BYTES: usize = 256 << 10;
/// The most bytes waiting for the api, all requests together.
pub const PENDING_LIMIT: usize = 8 << 20;
/// How long a request's last lines may hold up its final report.
const FINAL_FLUSH_TIMEOUT: Duration = Duration::from_secs(5);
/// One try per send (the next round retries).
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// The tracing layer: turns events into lines of their request's log.
pub struct RequestLogLayer {
    shared: Arc<Shared>,
}

/// The sending side of the request logs: started with [`RequestLogs::ship`] once the worker
/// has its api client.
#[derive(Clone)]
pub struct RequestLogs {
    shared: Arc<Shared>,
}

struct Shared {
    pending: Mutex<Pending>,
    /// A request's waiting lines reached [`FLUSH_BYTES`].
    full: tokio::sync::Notify,
    /// Held while sending, so a request's chunks go out one at a time, in order.
    sender: tokio::sync::Mutex<Option<Sender>>,
}

struct Sender {
    api: ApiClient,
    /// Names this process's chunks (`writer`), unique across restarts.
    writer: String,
    next_seq: i64,
}

pub fn layer() -> (RequestLogLayer, RequestLogs) {
    let shared = Arc::new(Shared {
        pending: Mutex::new(Pending::default()),
        full: tokio::sync::Notify::new(),
        sender: tokio::sync::Mutex::new(None),
    });
    (
        RequestLogLayer {
            shared: shared.clone(),
        },
        RequestLogs { shared },
    )
}

/// What waits for the api, per request.
#[derive(Default)]
struct Pending {
    requests: HashMap<i64, RequestLines>,
    /// Bytes waiting, all requests together (lines and unsent chunks).
    bytes: usize,
    /// Lines dropped since the process started.
    dropped_total: u64,
}

#[derive(Default)]
struct RequestLines {
    /// A chunk whose sending failed: sent again as it was, with its number, so the api stores
    /// it once even if the first send reached it.
    unsent: Option<(i64, Vec<u8>)>,
    /// Lines not yet in a chunk.
    text: Vec<u8>,
    /// Lines dropped since the last one kept.
    dropped: u64,
}

fn dropped_notice(lines: u64) -> String {
    format!(
        "{} larder: {lines} line(s) of this log were dropped here: the api could not take them in time\n",
        chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3f"),
    )
}

impl RequestLines {
    fn is_empty(&self) -> bool {
        self.unsent.is_none() && self.text.is_empty() && self.dropped == 0
    }
}

impl Pending {
    /// Keep `line` for `request_id`; `true` when the request now has enough to send.
    fn push(&mut self, request_id: i64, line: &str) -> bool {
        let total = self.bytes;
        let lines = self.requests.entry(request_id).or_default();
        if total + line.len() > PENDING_LIMIT {
            lines.dropped += 1;
            self.dropped_total += 1;
            return false;
        }
        if lines.dropped > 0 {
            let notice = dropped_notice(std::mem::take(&mut lines.dropped));
            lines.text.extend_from_slice(notice.as_bytes());
            self.bytes += notice.len();
        }
        lines.text.extend_from_slice(line.as_bytes());
        self.bytes += line.len();
        lines.text.len() >= FLUSH_BYTES
    }

    /// The next chunk of `request_id` to send: the unsent one, else up to [`CHUNK_BYTES`] of
    /// whole lines, numbered by `next_seq`. Lines dropped since the last one kept were dropped
    /// after all that waits: their notice goes last. The chunk stays counted in `bytes` until
    /// [`Pending::sent`] or [`Pending::failed`].
    fn take_chunk(&mut self, request_id: i64, next_seq: &mut i64) -> Option<(i64, Vec<u8>)> {
        let lines = self.requests.get_mut(&request_id)?;
        if let Some(unsent) = lines.unsent.take() {
            return Some(unsent);
        }
        if lines.dropped > 0 {
            let notice = dropped_notice(std::mem::take(&mut lines.dropped));
            lines.text.extend_from_slice(notice.as_bytes());
            self.bytes += notice.len();
        }
        if lines.text.is_empty() {
            if lines.is_empty() {
                self.requests.remove(&request_id);
            }
            return None;
        }
        let cut = if lines.text.len() <= CHUNK_BYTES {
            lines.text.len()
        } else {
            lines.text[..CHUNK_BYTES]
                .iter()
                .rposition(|b| *b == b'\n')
                .map_or(lines.text.len(), |i| i + 1)
        };
        let rest = lines.text.split_off(cut);
        let chunk = std::mem::replace(&mut lines.text, rest);
        let seq = *next_seq;
        *next_seq += 1;
        Some((seq, chunk))
    }

    /// The api took the chunk (or will never take it: `dropped_lines` says how many lines
    /// went with it).
    fn sent(&mut self, request_id: i64, chunk: &[u8], dropped_lines: u64) {
        self.bytes -= chunk.len();
        self.dropped_total += dropped_lines;
        if let Some(lines) = self.requests.get(&request_id) {
            if lines.is_empty() {
                self.requests.remove(&request_id);
            }
        }
    }

    /// Sending failed for now: the chunk goes first next time, as it is.
    fn failed(&mut self, request_id: i64, chunk: (i64, Vec<u8>)) {
        self.requests.entry(request_id).or_default().unsent = Some(chunk);
    }

    /// The api refuses this request's log for good (stale, unknown, or this worker's token):
    /// what waits for it goes.
    fn discard(&mut self, request_id: i64) -> u64 {
        let Some(lines) = self.requests.remove(&request_id) else {
            return 0;
        };
        let unsent = lines.unsent.map(|(_, chunk)| chunk).unwrap_or_default();
        self.bytes -= unsent.len() + lines.text.len();
        let dropped = lines_in(&unsent) + lines_in(&lines.text);
        self.dropped_total += dropped;
        dropped
    }
}

fn lines_in(text: &[u8]) -> u64 {
    text.iter().filter(|b| **b == b'\n').count() as u64
}

/// What sending one chunk came to.
enum Sent {
    /// The api took a chunk.
    Done,
    /// Nothing more to send for this request now (or the api refuses its log for good).
    Empty,
    /// The api could not be reached or failed: try again later.
    Later,
}

impl RequestLogs {
    /// Send the waiting lines through `api` from now on, in the background, forever.
    pub fn ship(&self, api: ApiClient, writer: String) {
        // before the first request's flush can look for it
        *self
            .shared
            .sender
            .try_lock()
            .expect("nothing sends before shipping starts") = Some(Sender {
            api,
            writer,
            next_seq: 0,
        });
        let shared = self.shared.clone();
        tokio::spawn(async move {
            let mut reported_drops = 0;
            loop {
                tokio::select! {
                    () = tokio::time::sleep(FLUSH_INTERVAL) => {}
                    () = shared.full.notified() => {}
                }
                shared.send_waiting().await;
                let dropped = shared.pending.lock().expect("not poisoned").dropped_total;
                if dropped > reported_drops {
                    tracing::warn!(
                        lines = dropped - reported_drops,
                        "request log lines were dropped: the api could not take them"
                    );
                    reported_drops = dropped;
                }
            }
        });
    }

    /// Send all of `request_id`'s waiting lines now (before its final state is reported, so a
    /// client that sees the state sees the log that led there), for a few seconds at most:
    /// what is left then goes with the next rounds.
    pub async fn flush(&self, request_id: i64) {
        let deadline = tokio::time::Instant::now() + FINAL_FLUSH_TIMEOUT;
        // waiting for the lock may be cut short; a send may not (its chunk is out of `pending`
        // until it ends), so each is bounded by what is left
        let Ok(mut sender) = tokio::time::timeout_at(deadline, self.shared.sender.lock()).await
        else {
            return;
        };
        let Some(sender) = sender.as_mut() else {
            return;
        };
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return;
            }
            match self.shared.send_one(sender, request_id, left).await {
                Sent::Done => {}
                Sent::Empty | Sent::Later => return,
            }
        }
    }
}

impl Shared {
    fn push(&self, request_id: i64, line: &str) {
        if self
            .pending
            .lock()
            .expect("not poisoned")
            .push(request_id, line)
        {
            self.full.notify_one();
        }
    }

    /// One round: a chunk after another for each request with lines waiting, until the api
    /// fails to take one.
    async fn send_waiting(&self) {
        let mut sender = self.sender.lock().await;
        let Some(sender) = sender.as_mut() else {
            return;
        };
        let ids: Vec<i64> = self
            .pending
            .lock()
            .expect("not poisoned")
            .requests
            .keys()
            .copied()
            .collect();
        for id in ids {
            loop {
                match self.send_one(sender, id, SEND_TIMEOUT).await {
                    Sent::Done => {}
                    Sent::Empty => break,
                    Sent::Later => return,
                }
            }
        }
    }

    /// Send `request_id`'s next chunk, waiting at most `timeout` for the api.
    async fn send_one(&self, sender: &mut Sender, request_id: i64, timeout: Duration) -> Sent {
        let Some((seq, chunk)) = self
            .pending
            .lock()
            .expect("not poisoned")
            .take_chunk(request_id, &mut sender.next_seq)
        else {
            return Sent::Empty;
        };
        let body = bytes::Bytes::from(chunk);
        let result = sender
            .api
            .append_log(request_id, &sender.writer, seq, body.clone(), timeout)
            .await;
        let mut pending = self.pending.lock().expect("not poisoned");
        match result {
            Ok(()) => {
                pending.sent(request_id, &body, 0);
                Sent::Done
            }
            Err(e) if e.is_permanent() => {
                let chunk_lines = lines_in(&body);
                pending.sent(request_id, &body, chunk_lines);
                let dropped = chunk_lines + pending.discard(request_id);
                drop(pending);
                tracing::debug!(request_id, lines = dropped, error = %e, "the api refuses this request's log; its waiting lines are dropped");
                Sent::Empty
            }
            Err(_) => {
                pending.failed(request_id, (seq, Vec::from(body)));
                Sent::Later
            }
        }
    }
}

struct RequestId(i64);

struct IdVisitor(Option<i64>);

impl Visit for IdVisitor {
    fn record_i64(&mut self, field: &Field, value: i64) {
        if field.name() == "request_id" {
            self.0 = Some(value);
        }
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.record_i64(field, value as i64);
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "request_id" {
            self.0 = format!("{value:?}").parse().ok();
        }
    }
}

struct LineVisitor(String);

impl Visit for LineVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            let _ = write!(self.0, " {value}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, " {value:?}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for RequestLogLayer {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut visitor = IdVisitor(None);
        attrs.record(&mut visitor);
        if let (Some(request_id), Some(span)) = (visitor.0, ctx.span(id)) {
            span.extensions_mut().insert(RequestId(request_id));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let Some(scope) = ctx.event_scope(event) else {
            return;
        };
        let Some(request_id) = scope
            .from_root()
            .find_map(|span| span.extensions().get::<RequestId>().map(|r| r.0))
        else {
            return;
        };
        let meta = event.metadata();
        let mut line = LineVisitor(format!(
            "{} {:>5} {}:",
            chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3f"),
            meta.level(),
            meta.target()
        ));
        event.record(&mut line);
        // lines quote repositories and upstreams: no control character reaches the file, and
        // one event stays one line
        let mut line = common::text::clean(&line.0.replace('\n', "\\n"), 64 * 1024);
        line.push('\n');
        self.shared.push(request_id, &line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(n: usize, len: usize) -> String {
        let mut line = format!("line {n} ");
        line.push_str(&"x".repeat(len - line.len() - 1));
        line.push('\n');
        line
    }

    #[test]
    fn chunks_are_whole_lines_in_order_and_numbered() {
        let mut pending = Pending::default();
        let mut seq = 7;
        let lines: Vec<String> = (0..100).map(|n| line(n, 10_000)).collect();
        for l in &lines {
            pending.push(1, l);
        }
        assert_eq!(pending.bytes, 1_000_000);
        let mut sent = Vec::new();
        while let Some((n, chunk)) = pending.take_chunk(1, &mut seq) {
            assert!(chunk.len() <= CHUNK_BYTES);
            assert!(chunk.ends_with(b"\n"));
            assert_eq!(n, 7 + sent.len() as i64);
            pending.sent(1, &chunk, 0);
            sent.push(chunk);
        }
        assert_eq!(sent.concat(), lines.concat().into_bytes());
        assert_eq!(pending.bytes, 0);
        assert!(pending.requests.is_empty());
    }

    #[test]
    fn a_chunk_that_failed_is_sent_again_as_it_was_before_later_lines() {
        let mut pending = Pending::default();
        let mut seq = 0;
        pending.push(1, "first\n");
        let chunk = pending.take_chunk(1, &mut seq).unwrap();
        pending.push(1, "second\n");
        pending.failed(1, chunk);
        let again = pending.take_chunk(1, &mut seq).unwrap();
        assert_eq!(again, (0, b"first\n".to_vec()));
        pending.sent(1, &again.1, 0);
        let next = pending.take_chunk(1, &mut seq).unwrap();
        assert_eq!(next, (1, b"second\n".to_vec()));
        pending.sent(1, &next.1, 0);
        assert_eq!(pending.bytes, 0);
    }

    #[test]
    fn past_the_limit_lines_are_dropped_and_the_log_says_how_many() {
        let mut pending = Pending::default();
        let mut seq = 0;
        // exactly the limit: any line more is dropped
        let big = line(0, 64 << 10);
        let mut kept = 0;
        while pending.bytes + big.len() <= PENDING_LIMIT {
            pending.push(1, &big);
            kept += 1;
        }
        for _ in 0..5 {
            pending.push(2, "lost\n");
        }
        pending.push(1, &big);
        assert_eq!(pending.dropped_total, 6);
        assert_eq!(pending.bytes, PENDING_LIMIT);
        // the api takes what waited; the line dropped after it is told of last
        let mut drained = Vec::new();
        while let Some((_, chunk)) = pending.take_chunk(1, &mut seq) {
            pending.sent(1, &chunk, 0);
            drained.extend(chunk);
        }
        let drained = String::from_utf8(drained).unwrap();
        assert_eq!(drained.matches(big.as_str()).count(), kept);
        assert!(drained
            .strip_prefix(&big.repeat(kept))
            .unwrap()
            .contains("larder: 1 line(s) of this log were dropped here"));
        assert!(!pending.requests.contains_key(&1));
        // a request whose next line is kept: the notice comes before it
        pending.push(2, "back\n");
        let (_, chunk) = pending.take_chunk(2, &mut seq).unwrap();
        let text = String::from_utf8(chunk).unwrap();
        assert!(
            text.contains("larder: 5 line(s) of this log were dropped here"),
            "{text}"
        );
        assert!(text.ends_with("back\n"), "{text}");
        pending.sent(2, text.as_bytes(), 0);
        assert_eq!(pending.bytes, 0);
    }

    #[test]
    fn a_refused_log_is_discarded_and_counted() {
        let mut pending = Pending::default();
        pending.push(3, "a\n");
        pending.push(3, "b\n");
        assert_eq!(pending.discard(3), 2);
        assert_eq!(pending.bytes, 0);
        assert_eq!(pending.dropped_total, 2);
    }
}
