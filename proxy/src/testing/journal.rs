//! The fake upstream's memory of what it received: one [`RecordedRequest`] per request, and
//! the in-flight gauges (current and peak concurrent requests, overall and per credential).
//!
//! Plain data guarded by the server's lock; it never blocks or does I/O. A request is in
//! flight from its arrival until its response body finished or the client dropped it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use http::{HeaderMap, Method, StatusCode};
use serde_json::Value;

/// One request as the fake upstream received it.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// Arrival order since start or the last reset, from 0.
    pub seq: u64,
    pub method: Method,
    /// Path and query as sent, e.g. `/v1/messages?beta=true`.
    pub uri: String,
    pub path: String,
    pub query: Option<String>,
    /// Every request header, as received.
    pub headers: HeaderMap,
    /// The credential the request carried: `x-api-key`, else the `Authorization: Bearer`
    /// token, else `x-goog-api-key`.
    pub credential: Option<String>,
    pub body: Bytes,
    /// The body parsed as JSON, when it was JSON.
    pub json: Option<Value>,
    /// The status the fake answered (set when the answer was chosen).
    pub status: Option<StatusCode>,
    /// When the fake had read the request (headers and body).
    pub started: Instant,
    /// When the response body finished or the client dropped it; `None` while in flight.
    pub ended: Option<Instant>,
}

impl RecordedRequest {
    /// The first value of a header, when it is valid UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    /// The requested `model`.
    pub fn model(&self) -> Option<&str> {
        self.json.as_ref()?.get("model")?.as_str()
    }

    /// The body had `"stream": true`.
    pub fn is_stream(&self) -> bool {
        self.json.as_ref().and_then(|json| json.get("stream")).and_then(Value::as_bool).unwrap_or(false)
    }

    /// How long the request was in flight, once it ended.
    pub fn duration(&self) -> Option<Duration> {
        Some(self.ended?.duration_since(self.started))
    }
}

/// Where a request's entry sits in the journal; stale after a reset.
#[derive(Debug, Clone, Copy)]
pub(super) struct Slot {
    generation: u64,
    index: usize,
}

/// Current, peak and total requests for one scope (everything, or one credential).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Gauge {
    pub(super) current: usize,
    pub(super) peak: usize,
    pub(super) total: usize,
}

impl Gauge {
    fn enter(&mut self) {
        self.current += 1;
        self.total += 1;
        self.peak = self.peak.max(self.current);
    }

    fn leave(&mut self) {
        self.current = self.current.saturating_sub(1);
    }

    /// Forgets the peak and total but keeps requests still in flight.
    fn reset(&mut self) {
        self.peak = self.current;
        self.total = 0;
    }
}

/// The journal and gauges.
#[derive(Debug)]
pub(super) struct Journal {
    /// Whether request entries are stored; gauges are kept either way.
    pub(super) recording: bool,
    entries: Vec<RecordedRequest>,
    /// Bumped by every reset, so a request that began before it cannot touch a newer entry.
    generation: u64,
    next_seq: u64,
    pub(super) overall: Gauge,
    pub(super) by_credential: HashMap<String, Gauge>,
}

impl Default for Journal {
    fn default() -> Self {
        Self {
            recording: true,
            entries: Vec::new(),
            generation: 0,
            next_seq: 0,
            overall: Gauge::default(),
            by_credential: HashMap::new(),
        }
    }
}

impl Journal {
    /// Counts a request in and stores it (when recording); returns its sequence number and
    /// journal slot.
    pub(super) fn begin(&mut self, mut request: RecordedRequest) -> (u64, Option<Slot>) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.overall.enter();
        if let Some(credential) = &request.credential {
            self.by_credential.entry(credential.clone()).or_default().enter();
        }
        if !self.recording {
            return (seq, None);
        }
        request.seq = seq;
        self.entries.push(request);
        (seq, Some(Slot { generation: self.generation, index: self.entries.len() - 1 }))
    }

    pub(super) fn set_status(&mut self, slot: Option<Slot>, status: StatusCode) {
        if let Some(entry) = self.entry(slot) {
            entry.status = Some(status);
        }
    }

    /// Counts a request out and stamps its end.
    pub(super) fn end(&mut self, slot: Option<Slot>, credential: Option<&str>, at: Instant) {
        self.overall.leave();
        if let Some(gauge) = credential.and_then(|credential| self.by_credential.get_mut(credential)) {
            gauge.leave();
        }
        if let Some(entry) = self.entry(slot) {
            entry.ended = Some(at);
        }
    }

    pub(super) fn entries(&self) -> &[RecordedRequest] {
        &self.entries
    }

    pub(super) fn gauge(&self, credential: &str) -> Gauge {
        self.by_credential.get(credential).copied().unwrap_or_default()
    }

    /// Forgets every entry, total and peak; requests still in flight stay counted.
    pub(super) fn clear(&mut self) {
        self.entries.clear();
        self.generation += 1;
        self.next_seq = 0;
        self.overall.reset();
        self.by_credential.retain(|_, gauge| {
            gauge.reset();
            gauge.current > 0
        });
    }

    fn entry(&mut self, slot: Option<Slot>) -> Option<&mut RecordedRequest> {
        let slot = slot?;
        if slot.generation != self.generation {
            return None;
        }
        self.entries.get_mut(slot.index)
    }
}
