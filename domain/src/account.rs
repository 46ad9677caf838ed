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

/// An upstream account as the admin UI and REST API show it. Never carries the credential.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountView {
    pub id: i64,
    pub name: String,
    pub notes: String,
    pub platform: Platform,
    #[serde(rename = "type")]
    pub kind: AccountKind,
    /// Requested model → upstream model; `*` in a key matches any run of characters.
    pub model_mapping: std::collections::BTreeMap<String, String>,
    pub base_url: Option<String>,
    pub concurrency: i32,
    pub priority: i32,
    pub status: AccountStatus,
    pub error_message: String,
    pub schedulable: bool,
    /// RFC 3339; set while the account is rate-limited.
    pub rate_limit_reset_at: Option<String>,
    /// RFC 3339; set while the account is overloaded.
    pub overload_until: Option<String>,
    pub last_used_at: Option<String>,
    pub proxy_id: Option<i64>,
    pub group_ids: Vec<i64>,
    /// Requests this account is serving right now (across instances with Redis).
    pub in_flight: u32,
    pub created_at: String,
}
