//! Shaping a Gemini request for a Google (Code Assist) subscription account: the same
//! actions at `{base}/v1internal:{action}`, the client's request inside the envelope
//! `{model, project, request}`, the token as bearer; and back out of it, since Code Assist
//! wraps every answer (and every stream chunk) in `{"response": …}`.

use axum::body::Bytes;
use http::{HeaderMap, HeaderValue};
use serde_json::{Value, json};

use super::gemini::GeminiAction;
use crate::snapshot::AccountEntry;

/// Client headers forwarded to Code Assist.
const FORWARDED: &[&str] = &["accept", "accept-language", "content-type"];
/// Who the gateway presents itself as.
const USER_AGENT: &str = "GeminiCLI/0.1.5 (Windows; AMD64)";

/// `{base}/v1internal:{action}`, with the client's `alt` (SSE or not) kept.
pub(super) fn url(base: &str, action: GeminiAction, query: Option<&str>) -> String {
    let base = base.trim_end_matches('/');
    let alt: Vec<&str> = query.unwrap_or_default().split('&').filter(|p| p.starts_with("alt=")).collect();
    let url = format!("{base}/v1internal:{}", action.as_str());
    if alt.is_empty() { url } else { format!("{url}?{}", alt.join("&")) }
}

pub(super) fn headers(client: &HeaderMap, account: &AccountEntry) -> HeaderMap {
    let mut out = super::forwarded_headers(client, FORWARDED);
    out.insert(http::header::USER_AGENT, HeaderValue::from_static(USER_AGENT));
    if let Some(bearer) = super::secret_header(&format!("Bearer {}", account.api_key)) {
        out.insert(http::header::AUTHORIZATION, bearer);
    }
    out
}

/// The envelope: token counting takes `{request: {model: "models/…", contents…}}`, the
/// generation actions `{model, project, request}`. `None` when the body is not an object.
pub(super) fn body(original: &[u8], action: GeminiAction, model: &str, project: &str) -> Option<Bytes> {
    let model = model.strip_prefix("models/").unwrap_or(model);
    let mut request: Value = serde_json::from_slice(original).ok().filter(Value::is_object)?;
    let envelope = match action {
        GeminiAction::CountTokens => {
            request["model"] = json!(format!("models/{model}"));
            json!({ "request": request })
        }
        _ => json!({ "model": model, "project": project, "request": request }),
    };
    serde_json::to_vec(&envelope).ok().map(Bytes::from)
}

/// A whole answer out of its envelope: `{"response": X}` → X, and each element of a
/// streamed JSON array likewise. Anything else (token counts, errors) is left as it is.
pub(super) fn unwrap_whole(body: &[u8]) -> Option<Vec<u8>> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let unwrapped = match value {
        Value::Object(mut map) if map.contains_key("response") && !map.contains_key("error") => {
            map.remove("response")?
        }
        Value::Array(items) => Value::Array(
            items
                .into_iter()
                .map(|item| match item {
                    Value::Object(mut map) if map.contains_key("response") => {
                        map.remove("response").unwrap_or(Value::Null)
                    }
                    other => other,
                })
                .collect(),
        ),
        _ => return None,
    };
    serde_json::to_vec(&unwrapped).ok()
}

/// Unwraps the `data:` lines of a Code Assist SSE stream as they arrive, holding back only an
/// incomplete last line.
#[derive(Default)]
pub(super) struct StreamUnwrap {
    pending: Vec<u8>,
}

impl StreamUnwrap {
    pub(super) fn process(&mut self, chunk: &[u8]) -> Bytes {
        self.pending.extend_from_slice(chunk);
        let Some(last_newline) = self.pending.iter().rposition(|b| *b == b'\n') else { return Bytes::new() };
        let rest = self.pending.split_off(last_newline + 1);
        let complete = std::mem::replace(&mut self.pending, rest);
        Bytes::from(rewrite_lines(&complete))
    }

    pub(super) fn finish(&mut self) -> Bytes {
        let rest = std::mem::take(&mut self.pending);
        Bytes::from(rewrite_lines(&rest))
    }
}

fn rewrite_lines(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    for line in text.split_inclusive(|b| *b == b'\n') {
        let (content, ending) = match line.strip_suffix(b"\r\n") {
            Some(c) => (c, &b"\r\n"[..]),
            None => line.strip_suffix(b"\n").map_or((line, &b""[..]), |c| (c, &b"\n"[..])),
        };
        let unwrapped = content
            .strip_prefix(b"data:")
            .map(|d| d.strip_prefix(b" ").unwrap_or(d))
            .and_then(|data| serde_json::from_slice::<Value>(data).ok())
            .and_then(|mut v| v.as_object_mut()?.remove("response"))
            .and_then(|inner| serde_json::to_vec(&inner).ok());
        match unwrapped {
            Some(json) => {
                out.extend_from_slice(b"data: ");
                out.extend_from_slice(&json);
            }
            None => out.extend_from_slice(content),
        }
        out.extend_from_slice(ending);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_go_in_the_envelope() {
        let b = br#"{"contents":[{"role":"user","parts":[{"text":"hi"}]}]}"#;
        let v: Value = serde_json::from_slice(
            &body(b, GeminiAction::Generate, "models/gemini-2.5-pro", "p-1").unwrap_or_default(),
        )
        .unwrap_or_default();
        assert_eq!((v["model"].as_str(), v["project"].as_str()), (Some("gemini-2.5-pro"), Some("p-1")));
        assert_eq!(v["request"]["contents"][0]["parts"][0]["text"], "hi");
        let v: Value =
            serde_json::from_slice(&body(b, GeminiAction::CountTokens, "gemini-2.5-pro", "p-1").unwrap_or_default())
                .unwrap_or_default();
        assert_eq!(v["request"]["model"], "models/gemini-2.5-pro");
        assert!(v.get("project").is_none());
        assert!(body(b"[1]", GeminiAction::Generate, "m", "p").is_none());
        assert_eq!(
            url("https://cloudcode-pa.googleapis.com/", GeminiAction::StreamGenerate, Some("alt=sse&key=x")),
            "https://cloudcode-pa.googleapis.com/v1internal:streamGenerateContent?alt=sse"
        );
    }

    #[test]
    fn answers_come_out_of_it_whole_and_streamed() {
        let whole =
            unwrap_whole(br#"{"response":{"candidates":[],"usageMetadata":{"totalTokenCount":3}},"traceId":"t"}"#);
        assert_eq!(whole.as_deref(), Some(&br#"{"candidates":[],"usageMetadata":{"totalTokenCount":3}}"#[..]));
        let array = unwrap_whole(br#"[{"response":{"a":1}},{"response":{"a":2}}]"#);
        assert_eq!(array.as_deref(), Some(&br#"[{"a":1},{"a":2}]"#[..]));
        assert!(unwrap_whole(br#"{"totalTokens":5}"#).is_none(), "token counts are not wrapped");
        assert!(unwrap_whole(br#"{"error":{"code":429},"response":{}}"#).is_none());

        let mut s = StreamUnwrap::default();
        let first = s.process(b"data: {\"response\":{\"candidates\":[1]}}\r\n\r\ndata: {\"resp");
        assert_eq!(&first[..], b"data: {\"candidates\":[1]}\r\n\r\n");
        let second = s.process(b"onse\":{\"x\":2}}\r\n\r\n");
        assert_eq!(&second[..], b"data: {\"x\":2}\r\n\r\n");
        assert_eq!(&s.process(b": keep\n")[..], b": keep\n");
        assert_eq!(&s.process(b"data: {\"error\":{}}")[..], b"");
        assert_eq!(&s.finish()[..], b"data: {\"error\":{}}", "an unwrapped error stays");
    }
}
