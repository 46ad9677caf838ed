//! The failover and cooldown policy: what one failed upstream attempt means for the request
//! (try another account, or hand the upstream error to the client) and for the account's
//! health (rate-limited until a time, overloaded until a time, broken).
//!
//! [`classify`] is the whole policy. It is a pure function of the platform, the failure
//! (status, headers, a body snippet, or a transport error), the clock and the configuration,
//! driven by one status table ([`RULES`]); only the way a 429's reset time is read differs by
//! platform. It must not do I/O, touch account state, or decide *how many* switches a request
//! may make: the caller applies the [`HealthAction`], enforces the switch budget, and only
//! fails over while no byte has reached the client.

use std::ops::RangeInclusive;

use domain::Platform;
use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use time::format_description::well_known::{Rfc2822, Rfc3339};
use time::{Duration, OffsetDateTime};

/// Anthropic: when the subscription's unified rate limit resets (unix seconds or RFC 3339).
pub const ANTHROPIC_UNIFIED_RESET: &str = "anthropic-ratelimit-unified-reset";
/// Anthropic: state of the five-hour subscription window (`allowed`, `allowed_warning`,
/// `rejected`).
pub const ANTHROPIC_UNIFIED_5H_STATUS: &str = "anthropic-ratelimit-unified-5h-status";
/// Milliseconds to wait, sent by Anthropic and OpenAI next to `retry-after`.
pub const RETRY_AFTER_MS: &str = "retry-after-ms";
/// OpenAI: time until the request budget resets, as a Go duration (`1s`, `6m0s`, `250ms`).
pub const OPENAI_RESET_REQUESTS: &str = "x-ratelimit-reset-requests";
/// OpenAI: time until the token budget resets, as a Go duration.
pub const OPENAI_RESET_TOKENS: &str = "x-ratelimit-reset-tokens";

/// Longest error reason kept for an account, in characters.
const MAX_REASON_CHARS: usize = 200;

/// Tunables of the policy (the `rate_limit` configuration section).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CooldownConfig {
    /// Cooldown after a 429 whose response says nothing usable about when it resets.
    pub fallback_cooldown_seconds: u64,
    /// Cooldown after a 529 (upstream overloaded).
    pub overload_cooldown_minutes: u64,
}

impl Default for CooldownConfig {
    fn default() -> Self {
        Self { fallback_cooldown_seconds: 60, overload_cooldown_minutes: 10 }
    }
}

/// A transport-level failure: no HTTP status was received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportFailure {
    /// DNS, TCP, TLS or proxy connection failed.
    Connect,
    /// The connection was made but the response headers did not arrive in time.
    HeaderTimeout,
}

/// One failed upstream attempt, as seen before any byte was forwarded to the client.
#[derive(Debug, Clone, Copy)]
pub enum UpstreamFailure<'a> {
    /// The upstream answered with a non-success status.
    Http {
        status: StatusCode,
        headers: &'a HeaderMap,
        /// The start of the response body (the caller caps how much it reads); used only to
        /// extract the upstream error message.
        body: &'a [u8],
    },
    Transport(TransportFailure),
}

/// What the request does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Exclude this account and pick another. Only legal before the first byte reached the
    /// client; afterwards the caller ends the stream with one terminal error instead.
    Failover,
    /// Return the upstream response to the client unchanged; another account would answer
    /// the same (the request itself is at fault).
    PassThrough,
}

/// What happens to the account that produced the failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthAction {
    None,
    /// Not schedulable until `until`.
    RateLimited {
        until: OffsetDateTime,
    },
    /// Not schedulable until `until`.
    Overloaded {
        until: OffsetDateTime,
    },
    /// Put the account in the error state (recovered by an administrator or a successful
    /// account test). `reason` is short, single-line, and never holds headers or secrets.
    Error {
        reason: String,
    },
}

/// The outcome of [`classify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub disposition: Disposition,
    pub health: HealthAction,
}

/// A row of the policy table: what a class of statuses means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    /// Rate-limited until the reset the response names (or the fallback); fail over.
    RateLimit,
    /// Overloaded for the configured minutes; fail over.
    Overload,
    /// The account's credentials or billing are broken; mark it and fail over.
    AccountError,
    /// The request is at fault; the client gets the upstream answer.
    PassThrough,
    /// A transient upstream fault; another account may succeed, this one is not marked.
    FailoverUnmarked,
}

/// The status table, first match wins. Statuses not listed (below 400) are not failures and
/// pass through. 402 sits with 401/403: "payment required" is about the account, never about
/// the client's request, so another account may serve it.
const RULES: &[(RangeInclusive<u16>, Rule)] = &[
    (429..=429, Rule::RateLimit),
    (529..=529, Rule::Overload),
    (401..=403, Rule::AccountError),
    (400..=499, Rule::PassThrough),
    (500..=999, Rule::FailoverUnmarked),
];

fn rule_for(status: StatusCode) -> Rule {
    let code = status.as_u16();
    RULES.iter().find(|(range, _)| range.contains(&code)).map_or(Rule::PassThrough, |(_, rule)| *rule)
}

/// Decides what a failed upstream attempt means. See the module header for the contract.
///
/// OAuth accounts may want a token refresh before an error state on 401; that needs the
/// account kind and is the caller's decision — this function reports the 401 as an error.
pub fn classify(
    platform: Platform,
    failure: &UpstreamFailure<'_>,
    now: OffsetDateTime,
    cfg: &CooldownConfig,
) -> Verdict {
    let (status, headers, body) = match failure {
        UpstreamFailure::Transport(_) => return verdict(Disposition::Failover, HealthAction::None),
        UpstreamFailure::Http { status, headers, body } => (*status, *headers, *body),
    };
    match rule_for(status) {
        Rule::RateLimit => {
            let until = rate_limit_reset(platform, headers, body, now)
                .unwrap_or_else(|| now.saturating_add(seconds(cfg.fallback_cooldown_seconds)));
            verdict(Disposition::Failover, HealthAction::RateLimited { until })
        }
        Rule::Overload => {
            let minutes = cfg.overload_cooldown_minutes.saturating_mul(60);
            let until = now.saturating_add(seconds(minutes));
            verdict(Disposition::Failover, HealthAction::Overloaded { until })
        }
        Rule::AccountError => {
            verdict(Disposition::Failover, HealthAction::Error { reason: error_reason(status, body) })
        }
        Rule::PassThrough => verdict(Disposition::PassThrough, HealthAction::None),
        Rule::FailoverUnmarked => verdict(Disposition::Failover, HealthAction::None),
    }
}

fn verdict(disposition: Disposition, health: HealthAction) -> Verdict {
    Verdict { disposition, health }
}

/// True when a response says the Anthropic five-hour window is open again
/// (`anthropic-ratelimit-unified-5h-status: allowed`), so a stored rate limit can be lifted.
pub fn clears_rate_limit(headers: &HeaderMap) -> bool {
    header_str(headers, ANTHROPIC_UNIFIED_5H_STATUS).is_some_and(|value| value.eq_ignore_ascii_case("allowed"))
}

/// The `retry-after` value (whole seconds, rounded up, at least 1) for a 429/503 the gateway
/// makes itself while every account is cooling down until `until`.
pub fn retry_after_secs(until: OffsetDateTime, now: OffsetDateTime) -> u64 {
    let remaining = until - now;
    if remaining <= Duration::ZERO {
        return 1;
    }
    let whole = u64::try_from(remaining.whole_seconds()).unwrap_or(u64::MAX);
    let ceil = if remaining.subsec_nanoseconds() > 0 { whole.saturating_add(1) } else { whole };
    ceil.max(1)
}

/// When a 429'd account may be used again, per what the platform's response says; `None`
/// when it says nothing usable (absent, unparsable, or not in the future).
fn rate_limit_reset(
    platform: Platform,
    headers: &HeaderMap,
    body: &[u8],
    now: OffsetDateTime,
) -> Option<OffsetDateTime> {
    let future = |t: OffsetDateTime| (t > now).then_some(t);
    match platform {
        // Preference order: the reset of the window that is used up, the subscription's
        // overall reset, then the generic hints.
        Platform::Anthropic => crate::windows::bench_until(&crate::windows::parse(platform, headers, now), 0, now)
            .or_else(|| header_str(headers, ANTHROPIC_UNIFIED_RESET).and_then(parse_unix_or_rfc3339))
            .and_then(future)
            .or_else(|| retry_after_ms(headers, now).and_then(future))
            .or_else(|| retry_after(headers, now).and_then(future)),
        // Every hint is about a different budget; the account is usable once all reset.
        Platform::Openai => [
            retry_after_ms(headers, now),
            retry_after(headers, now),
            go_duration_header(headers, OPENAI_RESET_REQUESTS, now),
            go_duration_header(headers, OPENAI_RESET_TOKENS, now),
            codex_exhausted_window_reset(headers, now),
        ]
        .into_iter()
        .flatten()
        .max()
        .and_then(future),
        Platform::Gemini => retry_after_ms(headers, now)
            .and_then(future)
            .or_else(|| retry_after(headers, now).and_then(future))
            .or_else(|| gemini_retry_delay(body, now).and_then(future)),
    }
}

fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|value| value.to_str().ok()).map(str::trim).filter(|value| !value.is_empty())
}

/// Unix seconds (`1735300000`) or RFC 3339 (`2025-12-27T12:00:00Z`).
fn parse_unix_or_rfc3339(value: &str) -> Option<OffsetDateTime> {
    if let Ok(secs) = value.parse::<i64>() {
        return OffsetDateTime::from_unix_timestamp(secs).ok();
    }
    OffsetDateTime::parse(value, &Rfc3339).ok()
}

/// `retry-after-ms: 1500` (fractions tolerated).
fn retry_after_ms(headers: &HeaderMap, now: OffsetDateTime) -> Option<OffsetDateTime> {
    let millis = parse_non_negative(header_str(headers, RETRY_AFTER_MS)?)?;
    now.checked_add(Duration::checked_seconds_f64(millis / 1000.0)?)
}

/// `retry-after: 30` (seconds, fractions tolerated) or an HTTP date
/// (`Wed, 21 Oct 2015 07:28:00 GMT`).
fn retry_after(headers: &HeaderMap, now: OffsetDateTime) -> Option<OffsetDateTime> {
    let value = header_str(headers, http::header::RETRY_AFTER.as_str())?;
    match parse_non_negative(value) {
        Some(secs) => now.checked_add(Duration::checked_seconds_f64(secs)?),
        None => OffsetDateTime::parse(value, &Rfc2822).ok(),
    }
}

fn parse_non_negative(value: &str) -> Option<f64> {
    value.parse::<f64>().ok().filter(|n| n.is_finite() && *n >= 0.0)
}

fn go_duration_header(headers: &HeaderMap, name: &str, now: OffsetDateTime) -> Option<OffsetDateTime> {
    now.checked_add(parse_go_duration(header_str(headers, name)?)?)
}

/// Parses a Go `time.Duration` string as OpenAI sends it: `250ms`, `1s`, `6m0s`, `1h2m3.5s`,
/// `1.5µs`. A bare number is taken as seconds. Negative durations are rejected.
pub(crate) fn parse_go_duration(value: &str) -> Option<Duration> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    if let Some(secs) = parse_non_negative(value) {
        return Duration::checked_seconds_f64(secs);
    }
    let mut rest = value;
    let mut total_secs = 0.0_f64;
    while !rest.is_empty() {
        let number_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        if number_len == 0 {
            return None;
        }
        let number: f64 = rest[..number_len].parse().ok()?;
        rest = &rest[number_len..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" | "μs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total_secs += number * scale;
    }
    Duration::checked_seconds_f64(total_secs)
}

/// Codex (ChatGPT subscription) usage windows: only a window that is used up (≥ 100 %)
/// says when the account comes back; of those, the latest reset wins. A window that still
/// has room is ignored, so a 5-hour limit does not bench an account for a week.
fn codex_exhausted_window_reset(headers: &HeaderMap, now: OffsetDateTime) -> Option<OffsetDateTime> {
    crate::windows::bench_until(&crate::windows::parse(Platform::Openai, headers, now), 0, now)
}

/// Gemini puts the wait in the error body:
/// `{"error":{"details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"37s"}]}}`.
fn gemini_retry_delay(body: &[u8], now: OffsetDateTime) -> Option<OffsetDateTime> {
    #[derive(Deserialize)]
    struct Envelope {
        error: Details,
    }
    #[derive(Deserialize)]
    struct Details {
        #[serde(default)]
        details: Vec<Detail>,
    }
    #[derive(Deserialize)]
    struct Detail {
        #[serde(rename = "retryDelay")]
        retry_delay: Option<String>,
    }
    let envelope: Envelope = serde_json::from_slice(body).ok()?;
    let delay = envelope.error.details.into_iter().find_map(|detail| detail.retry_delay)?;
    now.checked_add(parse_go_duration(&delay)?)
}

/// The reason stored on an account put in the error state: status plus the upstream's own
/// error type and message when the body is a known error JSON shape. The raw body is never
/// copied (it may be an HTML page from a proxy), and anything that looks like a credential
/// is masked (OpenAI echoes part of a rejected key).
fn error_reason(status: StatusCode, body: &[u8]) -> String {
    let mut reason = status.as_u16().to_string();
    if let Some(text) = status.canonical_reason() {
        reason.push(' ');
        reason.push_str(text);
    }
    let detail = upstream_error_detail(body);
    if let Some(kind) = detail.kind.as_deref().filter(|k| !k.is_empty()) {
        reason.push_str(" (");
        reason.push_str(kind);
        reason.push(')');
    }
    if let Some(message) = detail.message.as_deref().filter(|m| !m.trim().is_empty()) {
        reason.push_str(": ");
        reason.push_str(&sanitize_message(message));
    }
    truncate_chars(reason, MAX_REASON_CHARS)
}

#[derive(Debug, Default, PartialEq, Eq)]
struct ErrorDetail {
    kind: Option<String>,
    message: Option<String>,
}

/// Reads Anthropic `{"type":"error","error":{"type":…,"message":…}}`, OpenAI and Gemini
/// `{"error":{"message":…,"type"|"status":…}}`, OpenAI `{"error":"text"}` and Codex
/// `{"detail":"…"}` error bodies.
fn upstream_error_detail(body: &[u8]) -> ErrorDetail {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum ErrorField {
        Object {
            #[serde(rename = "type")]
            kind: Option<String>,
            status: Option<String>,
            message: Option<String>,
        },
        Text(String),
    }
    #[derive(Deserialize)]
    struct Envelope {
        error: Option<ErrorField>,
        detail: Option<String>,
    }
    let Ok(envelope) = serde_json::from_slice::<Envelope>(body) else {
        return ErrorDetail::default();
    };
    match envelope.error {
        Some(ErrorField::Object { kind, status, message }) => ErrorDetail { kind: kind.or(status), message },
        Some(ErrorField::Text(message)) => ErrorDetail { kind: None, message: Some(message) },
        None => ErrorDetail { kind: None, message: envelope.detail },
    }
}

/// One line, credentials masked: a word that starts like a secret (`sk-…`, `sess-…`, a JWT)
/// and the word after `Bearer`/`Basic` become `[redacted]`.
fn sanitize_message(message: &str) -> String {
    let mut words = Vec::new();
    let mut redact_next = false;
    for word in message.split_whitespace() {
        let bare = word.trim_start_matches(|c: char| !c.is_ascii_alphanumeric());
        let scheme = bare.eq_ignore_ascii_case("bearer") || bare.eq_ignore_ascii_case("basic");
        let secret = redact_next || ["sk-", "sess-", "eyJ"].iter().any(|prefix| bare.starts_with(prefix));
        redact_next = scheme;
        words.push(if secret { "[redacted]" } else { word });
    }
    words.join(" ")
}

fn truncate_chars(mut text: String, max_chars: usize) -> String {
    if let Some((cut, _)) = text.char_indices().nth(max_chars) {
        text.truncate(cut);
        text.push('…');
    }
    text
}

fn seconds(secs: u64) -> Duration {
    Duration::seconds(i64::try_from(secs).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2025-12-27 12:00:00 UTC);

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn classify_http(platform: Platform, status: u16, headers: &HeaderMap, body: &str) -> Verdict {
        let failure =
            UpstreamFailure::Http { status: StatusCode::from_u16(status).unwrap(), headers, body: body.as_bytes() };
        classify(platform, &failure, NOW, &CooldownConfig::default())
    }

    fn rate_limited_until(platform: Platform, pairs: &[(&'static str, &str)]) -> OffsetDateTime {
        let verdict = classify_http(platform, 429, &headers(pairs), "");
        assert_eq!(verdict.disposition, Disposition::Failover);
        match verdict.health {
            HealthAction::RateLimited { until } => until,
            other => panic!("expected RateLimited, got {other:?}"),
        }
    }

    /// A verdict in a form a table row can spell.
    #[derive(Debug, PartialEq, Eq)]
    enum Expect {
        Failover,
        FailoverRateLimited(OffsetDateTime),
        FailoverOverloaded(OffsetDateTime),
        FailoverError(String),
        PassThrough,
        /// Never expected: a pass-through that also marks the account.
        PassThroughMarked(HealthAction),
    }

    impl From<Verdict> for Expect {
        fn from(verdict: Verdict) -> Self {
            match (verdict.disposition, verdict.health) {
                (Disposition::Failover, HealthAction::None) => Expect::Failover,
                (Disposition::Failover, HealthAction::RateLimited { until }) => Expect::FailoverRateLimited(until),
                (Disposition::Failover, HealthAction::Overloaded { until }) => Expect::FailoverOverloaded(until),
                (Disposition::Failover, HealthAction::Error { reason }) => Expect::FailoverError(reason),
                (Disposition::PassThrough, HealthAction::None) => Expect::PassThrough,
                (Disposition::PassThrough, health) => Expect::PassThroughMarked(health),
            }
        }
    }

    /// Every row of the policy table, on every platform (no rate-limit headers here, so the
    /// 429 row shows the fallback cooldown).
    #[test]
    fn policy_table() {
        let anthropic_401 = r#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}"#;
        let anthropic_403 =
            r#"{"type":"error","error":{"type":"permission_error","message":"OAuth token has been revoked"}}"#;
        let openai_402 =
            r#"{"error":{"message":"Workspace is deactivated","type":"billing_error","code":"deactivated_workspace"}}"#;
        let anthropic_400 =
            r#"{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: field required"}}"#;
        let error = |reason: &str| Expect::FailoverError(reason.to_owned());
        let rows = [
            (429, "", Expect::FailoverRateLimited(NOW + Duration::seconds(60))),
            (529, "", Expect::FailoverOverloaded(NOW + Duration::minutes(10))),
            (401, anthropic_401, error("401 Unauthorized (authentication_error): invalid x-api-key")),
            (401, "", error("401 Unauthorized")),
            (403, anthropic_403, error("403 Forbidden (permission_error): OAuth token has been revoked")),
            (402, openai_402, error("402 Payment Required (billing_error): Workspace is deactivated")),
            (400, anthropic_400, Expect::PassThrough),
            (404, "", Expect::PassThrough),
            (405, "", Expect::PassThrough),
            (408, "", Expect::PassThrough),
            (413, "", Expect::PassThrough),
            (422, "", Expect::PassThrough),
            (499, "", Expect::PassThrough),
            (500, "", Expect::Failover),
            (502, "<html>bad gateway</html>", Expect::Failover),
            (503, "", Expect::Failover),
            (504, "", Expect::Failover),
            (520, "", Expect::Failover),
            (200, "", Expect::PassThrough),
            (302, "", Expect::PassThrough),
        ];
        let empty = HeaderMap::new();
        for platform in Platform::ALL.iter().copied() {
            for (status, body, expect) in &rows {
                let got = Expect::from(classify_http(platform, *status, &empty, body));
                assert_eq!(got, *expect, "{platform:?} {status}");
            }
        }
    }

    #[test]
    fn transport_failures_fail_over_without_marking() {
        for failure in [TransportFailure::Connect, TransportFailure::HeaderTimeout] {
            for platform in Platform::ALL.iter().copied() {
                let verdict = classify(platform, &UpstreamFailure::Transport(failure), NOW, &CooldownConfig::default());
                assert_eq!(verdict, Verdict { disposition: Disposition::Failover, health: HealthAction::None });
            }
        }
    }

    #[test]
    fn configured_cooldowns_are_used() {
        let cfg = CooldownConfig { fallback_cooldown_seconds: 5, overload_cooldown_minutes: 3 };
        let empty = HeaderMap::new();
        let at = |status| {
            classify(
                Platform::Anthropic,
                &UpstreamFailure::Http { status: StatusCode::from_u16(status).unwrap(), headers: &empty, body: b"" },
                NOW,
                &cfg,
            )
            .health
        };
        assert_eq!(at(429), HealthAction::RateLimited { until: NOW + Duration::seconds(5) });
        assert_eq!(at(529), HealthAction::Overloaded { until: NOW + Duration::minutes(3) });
    }

    #[test]
    fn absurd_configured_cooldowns_saturate_instead_of_panicking() {
        let cfg = CooldownConfig { fallback_cooldown_seconds: u64::MAX, overload_cooldown_minutes: u64::MAX };
        let empty = HeaderMap::new();
        for status in [429, 529] {
            let verdict = classify(
                Platform::Anthropic,
                &UpstreamFailure::Http { status: StatusCode::from_u16(status).unwrap(), headers: &empty, body: b"" },
                NOW,
                &cfg,
            );
            assert_eq!(verdict.disposition, Disposition::Failover);
            assert_ne!(verdict.health, HealthAction::None);
        }
    }

    #[test]
    fn anthropic_unified_reset_as_unix_seconds() {
        let reset = NOW + Duration::hours(3);
        let value = reset.unix_timestamp().to_string();
        assert_eq!(rate_limited_until(Platform::Anthropic, &[(ANTHROPIC_UNIFIED_RESET, &value)]), reset);
    }

    #[test]
    fn anthropic_unified_reset_as_rfc3339() {
        assert_eq!(
            rate_limited_until(Platform::Anthropic, &[(ANTHROPIC_UNIFIED_RESET, "2025-12-27T17:00:00Z")]),
            datetime!(2025-12-27 17:00:00 UTC)
        );
        assert_eq!(
            rate_limited_until(Platform::Anthropic, &[(ANTHROPIC_UNIFIED_RESET, "2025-12-27T20:00:00+08:00")]),
            NOW + Duration::seconds(60),
            "a reset that is not in the future is ignored and the fallback applies"
        );
    }

    #[test]
    fn anthropic_prefers_unified_reset_then_retry_after_ms_then_retry_after() {
        let reset = (NOW + Duration::hours(2)).unix_timestamp().to_string();
        let all = [(ANTHROPIC_UNIFIED_RESET, reset.as_str()), (RETRY_AFTER_MS, "1500"), ("retry-after", "30")];
        assert_eq!(rate_limited_until(Platform::Anthropic, &all), NOW + Duration::hours(2));
        assert_eq!(rate_limited_until(Platform::Anthropic, &all[1..]), NOW + Duration::milliseconds(1500));
        assert_eq!(rate_limited_until(Platform::Anthropic, &all[2..]), NOW + Duration::seconds(30));
    }

    #[test]
    fn anthropic_skips_unparsable_or_past_headers() {
        assert_eq!(
            rate_limited_until(
                Platform::Anthropic,
                &[(ANTHROPIC_UNIFIED_RESET, "soon"), (RETRY_AFTER_MS, "-5"), ("retry-after", "12"),]
            ),
            NOW + Duration::seconds(12)
        );
        // A unix timestamp in milliseconds is far outside the representable range.
        assert_eq!(
            rate_limited_until(Platform::Anthropic, &[(ANTHROPIC_UNIFIED_RESET, "1766836800000")]),
            NOW + Duration::seconds(60)
        );
        assert_eq!(
            rate_limited_until(Platform::Anthropic, &[("retry-after", "0")]),
            NOW + Duration::seconds(60),
            "retry-after: 0 says nothing about a cooldown"
        );
    }

    #[test]
    fn retry_after_as_http_date() {
        assert_eq!(
            rate_limited_until(Platform::Anthropic, &[("retry-after", "Sat, 27 Dec 2025 12:05:00 GMT")]),
            datetime!(2025-12-27 12:05:00 UTC)
        );
        assert_eq!(
            rate_limited_until(Platform::Gemini, &[("retry-after", "Sat, 27 Dec 2025 13:00:00 GMT")]),
            datetime!(2025-12-27 13:00:00 UTC)
        );
    }

    #[test]
    fn retry_after_with_fractional_seconds_and_ms() {
        assert_eq!(
            rate_limited_until(Platform::Anthropic, &[("retry-after", "2.5")]),
            NOW + Duration::milliseconds(2500)
        );
        assert_eq!(
            rate_limited_until(Platform::Anthropic, &[(RETRY_AFTER_MS, "250.5")]),
            NOW + Duration::microseconds(250_500)
        );
    }

    #[test]
    fn openai_takes_the_latest_of_all_hints() {
        assert_eq!(
            rate_limited_until(
                Platform::Openai,
                &[
                    (RETRY_AFTER_MS, "250"),
                    ("retry-after", "1"),
                    (OPENAI_RESET_REQUESTS, "1s"),
                    (OPENAI_RESET_TOKENS, "6m0s"),
                ]
            ),
            NOW + Duration::minutes(6)
        );
        assert_eq!(
            rate_limited_until(Platform::Openai, &[(OPENAI_RESET_REQUESTS, "250ms"), (RETRY_AFTER_MS, "900")]),
            NOW + Duration::milliseconds(900)
        );
        assert_eq!(rate_limited_until(Platform::Openai, &[("retry-after", "20")]), NOW + Duration::seconds(20));
        assert_eq!(
            rate_limited_until(Platform::Openai, &[(OPENAI_RESET_TOKENS, "garbage")]),
            NOW + Duration::seconds(60)
        );
    }

    #[test]
    fn openai_codex_windows_count_only_when_exhausted() {
        let weekly_reset = (NOW + Duration::days(3)).unix_timestamp().to_string();
        // The 5-hour window is spent, the weekly one is not: back after the 5-hour reset.
        assert_eq!(
            rate_limited_until(
                Platform::Openai,
                &[
                    ("x-codex-primary-used-percent", "37.5"),
                    ("x-codex-primary-reset-at", &weekly_reset),
                    ("x-codex-secondary-used-percent", "100"),
                    ("x-codex-secondary-reset-after-seconds", "5400"),
                ]
            ),
            NOW + Duration::seconds(5400)
        );
        // Both spent: the later reset wins.
        assert_eq!(
            rate_limited_until(
                Platform::Openai,
                &[
                    ("x-codex-primary-used-percent", "100.0"),
                    ("x-codex-primary-reset-at", &weekly_reset),
                    ("x-codex-secondary-used-percent", "104"),
                    ("x-codex-secondary-reset-after-seconds", "5400"),
                ]
            ),
            NOW + Duration::days(3)
        );
        // Nothing spent: codex headers say nothing, the fallback applies.
        assert_eq!(
            rate_limited_until(
                Platform::Openai,
                &[("x-codex-primary-used-percent", "12"), ("x-codex-primary-reset-at", &weekly_reset),]
            ),
            NOW + Duration::seconds(60)
        );
    }

    #[test]
    fn anthropic_ignores_openai_only_headers() {
        assert_eq!(
            rate_limited_until(Platform::Anthropic, &[(OPENAI_RESET_TOKENS, "6m0s")]),
            NOW + Duration::seconds(60)
        );
    }

    #[test]
    fn gemini_reads_retry_delay_from_the_body() {
        let body = r#"{"error":{"code":429,"message":"Resource has been exhausted (e.g. check quota).","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.QuotaFailure"},{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"37s"}]}}"#;
        let verdict = classify_http(Platform::Gemini, 429, &HeaderMap::new(), body);
        assert_eq!(verdict.health, HealthAction::RateLimited { until: NOW + Duration::seconds(37) });
    }

    #[test]
    fn go_durations() {
        let cases: &[(&str, Option<Duration>)] = &[
            ("1s", Some(Duration::seconds(1))),
            ("6m0s", Some(Duration::minutes(6))),
            ("250ms", Some(Duration::milliseconds(250))),
            ("1h2m3.5s", Some(Duration::milliseconds(3_723_500))),
            ("20ms", Some(Duration::milliseconds(20))),
            ("0.5s", Some(Duration::milliseconds(500))),
            ("1500us", Some(Duration::microseconds(1500))),
            ("7", Some(Duration::seconds(7))),
            ("", None),
            ("s", None),
            ("5x", None),
            ("-1s", None),
            ("1s junk", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse_go_duration(text), *want, "{text:?}");
        }
    }

    #[test]
    fn clears_rate_limit_only_on_allowed() {
        assert!(clears_rate_limit(&headers(&[(ANTHROPIC_UNIFIED_5H_STATUS, "allowed")])));
        assert!(!clears_rate_limit(&headers(&[(ANTHROPIC_UNIFIED_5H_STATUS, "allowed_warning")])));
        assert!(!clears_rate_limit(&headers(&[(ANTHROPIC_UNIFIED_5H_STATUS, "rejected")])));
        assert!(!clears_rate_limit(&HeaderMap::new()));
    }

    #[test]
    fn retry_after_secs_rounds_up_and_is_at_least_one() {
        assert_eq!(retry_after_secs(NOW + Duration::seconds(30), NOW), 30);
        assert_eq!(retry_after_secs(NOW + Duration::milliseconds(30_001), NOW), 31);
        assert_eq!(retry_after_secs(NOW + Duration::milliseconds(1), NOW), 1);
        assert_eq!(retry_after_secs(NOW, NOW), 1);
        assert_eq!(retry_after_secs(NOW - Duration::hours(1), NOW), 1);
    }

    #[test]
    fn error_reasons_read_each_upstream_shape() {
        let cases: &[(u16, &str, &str)] = &[
            (
                401,
                r#"{"error":{"message":"Incorrect API key provided: sk-proj-abc***xyz. You can find your API key at https://platform.openai.com/account/api-keys.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#,
                "401 Unauthorized (invalid_request_error): Incorrect API key provided: [redacted] You can find your API key at https://platform.openai.com/account/api-keys.",
            ),
            (
                403,
                r#"{"error":{"code":403,"message":"Permission denied on resource project.","status":"PERMISSION_DENIED"}}"#,
                "403 Forbidden (PERMISSION_DENIED): Permission denied on resource project.",
            ),
            (401, r#"{"detail":"Unauthorized"}"#, "401 Unauthorized: Unauthorized"),
            (401, r#"{"error":"token expired"}"#, "401 Unauthorized: token expired"),
            (403, "<html><body>Access denied by proxy, Authorization: Bearer abc</body></html>", "403 Forbidden"),
            (
                401,
                r#"{"error":{"message":"Invalid header Authorization: Bearer abc.def.ghi (risk-free task-based retry)","type":"auth"}}"#,
                "401 Unauthorized (auth): Invalid header Authorization: Bearer [redacted] (risk-free task-based retry)",
            ),
            (
                403,
                r#"{"error":{"message":"session token sess-AbC123 and eyJhbGciOi.x.y rejected","type":"auth"}}"#,
                "403 Forbidden (auth): session token [redacted] and [redacted] rejected",
            ),
            (
                401,
                "{\"type\":\"error\",\"error\":{\"type\":\"authentication_error\",\"message\":\"bad\\ntoken\"}}",
                "401 Unauthorized (authentication_error): bad token",
            ),
        ];
        for (status, body, want) in cases {
            assert_eq!(error_reason(StatusCode::from_u16(*status).unwrap(), body.as_bytes()), *want);
        }
    }

    #[test]
    fn error_reason_is_capped() {
        let long = "é".repeat(1000);
        let body = format!(r#"{{"type":"error","error":{{"type":"permission_error","message":"{long}"}}}}"#);
        let reason = error_reason(StatusCode::FORBIDDEN, body.as_bytes());
        assert_eq!(reason.chars().count(), MAX_REASON_CHARS + 1);
        assert!(reason.starts_with("403 Forbidden (permission_error): é"));
        assert!(reason.ends_with('…'));
    }
}
