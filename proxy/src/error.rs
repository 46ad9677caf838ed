//! The gateway's own errors (as opposed to upstream errors passed through), rendered in the
//! caller's protocol: Anthropic `{"type":"error","error":{…}}`, OpenAI
//! `{"error":{"message","type","param","code"}}`, Google `{"error":{"code","message","status"}}`.
//! 5xx messages are generic; details go to the log once, where the error is created.

use serde_json::{Value, json};

/// Which wire format the caller speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Anthropic,
    OpenAi,
    Google,
}

/// A gateway error: cheap to clone, knows its status and whether another account could help.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProxyError {
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    InvalidRequest(String),
    /// A request field the gateway cannot honour (OpenAI's `param` names it).
    #[error("{param}: {message}")]
    InvalidParam { param: String, message: String },
    #[error("request body is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("{0}")]
    NotFound(String),
    /// The request asked for a protocol upgrade the gateway does not offer (426).
    #[error("{0}")]
    UpgradeRequired(String),
    /// All accounts are busy or cooling down; try again after `retry_after` seconds.
    #[error("{message}")]
    RateLimited { message: String, retry_after: u64 },
    /// No account could answer (after failover); generic on purpose.
    #[error("upstream unavailable; try again later")]
    Unavailable { retry_after: Option<u64> },
    /// Every account tried was overloaded (upstream 529).
    #[error("Upstream service overloaded, please retry later")]
    Overloaded { retry_after: Option<u64> },
    /// The upstream failed in a way another try will not fix from here (502).
    #[error("{0}")]
    Upstream(&'static str),
    #[error("internal error")]
    Internal,
}

impl ProxyError {
    pub fn status(&self) -> u16 {
        match self {
            ProxyError::Unauthorized(_) => 401,
            ProxyError::Forbidden(_) => 403,
            ProxyError::InvalidRequest(_) | ProxyError::InvalidParam { .. } => 400,
            ProxyError::TooLarge { .. } => 413,
            ProxyError::NotFound(_) => 404,
            ProxyError::UpgradeRequired(_) => 426,
            ProxyError::RateLimited { .. } => 429,
            ProxyError::Unavailable { .. } | ProxyError::Overloaded { .. } => 503,
            ProxyError::Upstream(_) => 502,
            ProxyError::Internal => 500,
        }
    }

    /// Seconds for a `retry-after` header, when the error has one.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            ProxyError::RateLimited { retry_after, .. } => Some(*retry_after),
            ProxyError::Unavailable { retry_after } | ProxyError::Overloaded { retry_after } => *retry_after,
            _ => None,
        }
    }

    /// `false` when retrying the same request cannot succeed (sent as `x-should-retry`).
    pub fn should_retry(&self) -> bool {
        matches!(
            self,
            ProxyError::RateLimited { .. }
                | ProxyError::Unavailable { .. }
                | ProxyError::Overloaded { .. }
                | ProxyError::Upstream(_)
                | ProxyError::Internal
        )
    }

    fn anthropic_type(&self) -> &'static str {
        match self {
            ProxyError::Unauthorized(_) => "authentication_error",
            ProxyError::Forbidden(_) => "permission_error",
            ProxyError::InvalidRequest(_) | ProxyError::InvalidParam { .. } => "invalid_request_error",
            ProxyError::TooLarge { .. } => "request_too_large",
            ProxyError::NotFound(_) => "not_found_error",
            ProxyError::UpgradeRequired(_) => "invalid_request_error",
            ProxyError::RateLimited { .. } => "rate_limit_error",
            ProxyError::Unavailable { .. } | ProxyError::Overloaded { .. } => "overloaded_error",
            ProxyError::Upstream(_) => "upstream_error",
            ProxyError::Internal => "api_error",
        }
    }

    fn openai_type(&self) -> &'static str {
        match self {
            ProxyError::Unauthorized(_) => "authentication_error",
            ProxyError::Forbidden(_) => "permission_error",
            ProxyError::InvalidRequest(_)
            | ProxyError::InvalidParam { .. }
            | ProxyError::TooLarge { .. }
            | ProxyError::UpgradeRequired(_) => "invalid_request_error",
            ProxyError::NotFound(_) => "not_found_error",
            ProxyError::RateLimited { .. } => "rate_limit_error",
            ProxyError::Unavailable { .. }
            | ProxyError::Overloaded { .. }
            | ProxyError::Upstream(_)
            | ProxyError::Internal => "server_error",
        }
    }

    fn google_status(&self) -> &'static str {
        match self {
            ProxyError::Unauthorized(_) => "UNAUTHENTICATED",
            ProxyError::Forbidden(_) => "PERMISSION_DENIED",
            ProxyError::InvalidRequest(_)
            | ProxyError::InvalidParam { .. }
            | ProxyError::TooLarge { .. }
            | ProxyError::UpgradeRequired(_) => "INVALID_ARGUMENT",
            ProxyError::NotFound(_) => "NOT_FOUND",
            ProxyError::RateLimited { .. } => "RESOURCE_EXHAUSTED",
            ProxyError::Unavailable { .. } | ProxyError::Overloaded { .. } => "UNAVAILABLE",
            ProxyError::Upstream(_) => "BAD_GATEWAY",
            ProxyError::Internal => "INTERNAL",
        }
    }

    /// The JSON body in `protocol`'s error shape.
    pub fn body(&self, protocol: Protocol) -> Value {
        let message = self.to_string();
        match protocol {
            Protocol::Anthropic => {
                json!({"type": "error", "error": {"type": self.anthropic_type(), "message": message}})
            }
            Protocol::OpenAi => {
                let param = match self {
                    ProxyError::InvalidParam { param, .. } => Value::String(param.clone()),
                    _ => Value::Null,
                };
                json!({"error": {"message": message, "type": self.openai_type(), "param": param, "code": Value::Null}})
            }
            Protocol::Google => {
                json!({"error": {"code": self.status(), "message": message, "status": self.google_status()}})
            }
        }
    }

    /// The terminal in-stream error event for an Anthropic stream that already started.
    pub fn anthropic_sse_event(&self) -> String {
        format!("event: error\ndata: {}\n\n", self.body(Protocol::Anthropic))
    }

    /// The terminal in-stream error for a stream in `protocol` that already started: an
    /// Anthropic `event: error`, or an OpenAI `data: {"error":…}` chunk.
    pub fn sse_event(&self, protocol: Protocol) -> String {
        match protocol {
            Protocol::Anthropic => self.anthropic_sse_event(),
            other => format!("data: {}\n\n", self.body(other)),
        }
    }
}

impl ProxyError {
    /// The answer when failover ran out of accounts, from the status of the last upstream
    /// failure (`None`: a transport failure). `retry_after`: seconds until the earliest
    /// cooldown set on the way ends, if any.
    pub fn exhausted(last_status: Option<u16>, retry_after: Option<u64>) -> ProxyError {
        match last_status {
            Some(401) => ProxyError::Upstream("Upstream authentication failed, please contact administrator"),
            Some(403) => ProxyError::Upstream("Upstream access forbidden, please contact administrator"),
            Some(429) => ProxyError::RateLimited {
                message: "Upstream rate limit exceeded, please retry later".into(),
                retry_after: retry_after.unwrap_or(1),
            },
            Some(529) => ProxyError::Overloaded { retry_after: retry_after.or(Some(1)) },
            Some(500 | 502 | 503 | 504) | None => ProxyError::Upstream("Upstream service temporarily unavailable"),
            Some(_) => ProxyError::Upstream("Upstream request failed"),
        }
    }
}

impl From<crate::auth::AuthError> for ProxyError {
    fn from(err: crate::auth::AuthError) -> Self {
        match err {
            crate::auth::AuthError::NoGroup => ProxyError::Forbidden(err.to_string()),
            other => ProxyError::Unauthorized(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_protocol_gets_its_own_shape() {
        let e = ProxyError::TooLarge { limit: 10 };
        assert_eq!(e.status(), 413);
        assert_eq!(
            e.body(Protocol::Anthropic),
            json!({"type": "error", "error": {"type": "request_too_large", "message": "request body is larger than 10 bytes"}})
        );
        assert_eq!(e.body(Protocol::OpenAi)["error"]["type"], "invalid_request_error");
        assert!(e.body(Protocol::OpenAi)["error"]["param"].is_null());
        assert_eq!(e.body(Protocol::Google)["error"]["status"], "INVALID_ARGUMENT");
        assert_eq!(e.body(Protocol::Google)["error"]["code"], 413);
    }

    #[test]
    fn retry_hints() {
        let limited = ProxyError::RateLimited { message: "all accounts are rate-limited".into(), retry_after: 42 };
        assert_eq!((limited.status(), limited.retry_after(), limited.should_retry()), (429, Some(42), true));
        assert!(!ProxyError::InvalidRequest("bad".into()).should_retry());
        let unmappable = ProxyError::InvalidParam { param: "n".into(), message: "only 1 is supported".into() };
        assert_eq!((unmappable.status(), unmappable.should_retry()), (400, false));
        assert_eq!(unmappable.body(Protocol::OpenAi)["error"]["param"], "n");
        assert_eq!(unmappable.body(Protocol::Anthropic)["error"]["message"], "n: only 1 is supported");
        assert_eq!(
            ProxyError::Unavailable { retry_after: None }.body(Protocol::Anthropic)["error"]["type"],
            "overloaded_error"
        );
        let event = ProxyError::Unavailable { retry_after: None }.anthropic_sse_event();
        assert!(event.starts_with("event: error\ndata: {") && event.ends_with("\n\n"));
    }

    #[test]
    fn exhausted_failover_follows_the_status_table() {
        let table = [
            (Some(401), 502, "upstream_error"),
            (Some(403), 502, "upstream_error"),
            (Some(429), 429, "rate_limit_error"),
            (Some(529), 503, "overloaded_error"),
            (Some(500), 502, "upstream_error"),
            (None, 502, "upstream_error"),
            (Some(418), 502, "upstream_error"),
        ];
        for (last, status, kind) in table {
            let e = ProxyError::exhausted(last, Some(7));
            assert_eq!(e.status(), status, "{last:?}");
            assert_eq!(e.body(Protocol::Anthropic)["error"]["type"], kind, "{last:?}");
        }
        assert_eq!(ProxyError::exhausted(Some(429), Some(7)).retry_after(), Some(7));
    }

    #[test]
    fn auth_refusals_map_to_401_or_403() {
        assert_eq!(ProxyError::from(crate::auth::AuthError::Invalid).status(), 401);
        assert_eq!(ProxyError::from(crate::auth::AuthError::NoGroup).status(), 403);
        assert_eq!(
            ProxyError::from(crate::auth::AuthError::Missing).body(Protocol::Anthropic)["error"]["type"],
            "authentication_error"
        );
    }
}
