//! Per-request log files: every event inside a span carrying `request_id` is appended to
//! `logs/<id>.log` in the store, which the api serves at `/api/v1/requests/{id}/logs`.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

pub struct RequestLogLayer {
    dir: PathBuf,
}

pub fn layer(data_dir: impl Into<PathBuf>) -> RequestLogLayer {
    RequestLogLayer {
        dir: data_dir.into().join("logs"),
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
        let _ = std::fs::create_dir_all(&self.dir);
        let path = self.dir.join(format!("{request_id}.log"));
        if let Ok(mut file) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = file.write_all(line.as_bytes());
        }
    }
}
