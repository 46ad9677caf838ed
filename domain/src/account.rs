//! Upstream account vocabulary: which provider, which credential kind, which health state.

use serde::{Deserialize, Serialize};

use crate::text_enum;

/// The upstream provider an account (and a group) belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    Anthropic,
    Openai,
    Gemini,
}
text_enum!(Platform, "platform", { Anthropic => "anthropic", Openai => "openai", Gemini => "gemini" });

/// How an account authenticates upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AccountKind {
    #[serde(rename = "apikey")]
    ApiKey,
    #[serde(rename = "oauth")]
    OAuth,
    #[serde(rename = "setup-token")]
    SetupToken,
}
text_enum!(AccountKind, "account type", { ApiKey => "apikey", OAuth => "oauth", SetupToken => "setup-token" });

/// Durable health of an account. Cooldowns (rate limit, overload) are separate timestamps:
/// an `Active` account may still be cooling down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccountStatus {
    Active,
    Disabled,
    Error,
}
text_enum!(AccountStatus, "account status", { Active => "active", Disabled => "disabled", Error => "error" });

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trips_and_matches_serde() {
        for kind in AccountKind::ALL {
            let text = kind.as_str();
            assert_eq!(text.parse::<AccountKind>(), Ok(*kind));
            assert_eq!(serde_json::to_string(kind).ok(), Some(format!("\"{text}\"")));
        }
        for p in Platform::ALL {
            assert_eq!(p.as_str().parse::<Platform>(), Ok(*p));
        }
        let err = "azure".parse::<Platform>().err().map(|e| e.to_string());
        assert_eq!(err.as_deref(), Some("unknown platform `azure`"));
    }
}
