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

/// Credentials sent when creating or updating an API-key account. Write-only: no response
/// ever contains them.
/// The outcome of an admin "test this account" request: a small prompt sent through that
/// account alone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountTestResult {
    pub success: bool,
    /// The upstream status, absent when no answer arrived.
    pub status: Option<u16>,
    /// The model asked for (before the account's mapping).
    pub model: String,
    pub latency_ms: u64,
    /// The streamed answer text (on success).
    pub text: String,
    /// What went wrong (failure).
    pub error: Option<String>,
}

#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialsInput {
    pub api_key: Option<String>,
    pub base_url: Option<String>,
}

impl std::fmt::Debug for CredentialsInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialsInput")
            .field("api_key", &self.api_key.as_ref().map(|_| "***"))
            .field("base_url", &self.base_url)
            .finish()
    }
}

/// Body of `POST /api/v1/admin/accounts` and `PUT /api/v1/admin/accounts/:id` (on update,
/// missing fields keep their value).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountInput {
    pub name: Option<String>,
    pub notes: Option<String>,
    pub platform: Option<Platform>,
    #[serde(rename = "type")]
    pub kind: Option<AccountKind>,
    pub credentials: Option<CredentialsInput>,
    pub model_mapping: Option<std::collections::BTreeMap<String, String>>,
    pub concurrency: Option<i32>,
    pub priority: Option<i32>,
    pub group_ids: Option<Vec<i64>>,
    /// Absent: keep; `null`: no proxy; a number: that proxy.
    #[serde(default, with = "crate::double_option")]
    pub proxy_id: Option<Option<i64>>,
    pub schedulable: Option<bool>,
}

/// Default account concurrency (in-flight requests); ≤ 0 means unlimited.
pub const DEFAULT_CONCURRENCY: i32 = 3;
/// Default priority; lower values are preferred.
pub const DEFAULT_PRIORITY: i32 = 50;

/// A validated account, ready to store. `api_key` is `None` on an update that keeps the
/// stored credential.
#[derive(Clone, PartialEq)]
pub struct AccountFields {
    pub name: String,
    pub notes: String,
    pub platform: Platform,
    pub kind: AccountKind,
    pub api_key: Option<String>,
    pub base_url: Option<String>,
    pub model_mapping: std::collections::BTreeMap<String, String>,
    pub concurrency: i32,
    pub priority: i32,
    pub proxy_id: Option<i64>,
    pub schedulable: bool,
}

impl std::fmt::Debug for AccountFields {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountFields")
            .field("name", &self.name)
            .field("platform", &self.platform)
            .field("kind", &self.kind)
            .field("api_key", &self.api_key.as_ref().map(|_| "***"))
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl AccountInput {
    /// Applies this input on top of `current` (or nothing, for a create) and validates it.
    pub fn resolve(self, current: Option<&AccountFields>) -> Result<AccountFields, crate::FieldError> {
        use crate::FieldError;
        let name = match (self.name, current) {
            (Some(n), _) => n.trim().to_owned(),
            (None, Some(c)) => c.name.clone(),
            (None, None) => return Err(FieldError::new("name", "is required")),
        };
        if name.is_empty() || name.len() > 200 {
            return Err(FieldError::new("name", "must be 1 to 200 characters"));
        }
        let platform =
            self.platform.or(current.map(|c| c.platform)).ok_or_else(|| FieldError::new("platform", "is required"))?;
        if current.is_some_and(|c| c.platform != platform) {
            return Err(FieldError::new("platform", "cannot change; create a new account"));
        }
        let kind = self.kind.or(current.map(|c| c.kind)).unwrap_or(AccountKind::ApiKey);
        if kind != AccountKind::ApiKey {
            return Err(FieldError::new(
                "type",
                "only `apikey` accounts can be created here; OAuth accounts use the sign-in flow",
            ));
        }
        let creds = self.credentials.unwrap_or_default();
        let api_key = creds.api_key.map(|k| k.trim().to_owned());
        match (&api_key, current) {
            (Some(k), _) if k.is_empty() || k.len() > 4096 || k.contains(char::is_whitespace) => {
                return Err(FieldError::new("credentials.api_key", "must be a non-empty key without spaces"));
            }
            (None, None) => return Err(FieldError::new("credentials.api_key", "is required")),
            _ => {}
        }
        let base_url = match creds.base_url.map(|u| u.trim().trim_end_matches('/').to_owned()) {
            Some(u) if u.is_empty() => None,
            Some(u) if !(u.starts_with("http://") || u.starts_with("https://")) || u.contains(char::is_whitespace) => {
                return Err(FieldError::new("credentials.base_url", "must be an http:// or https:// URL"));
            }
            Some(u) => Some(u),
            None => current.and_then(|c| c.base_url.clone()),
        };
        let model_mapping = self.model_mapping.or(current.map(|c| c.model_mapping.clone())).unwrap_or_default();
        if model_mapping.iter().any(|(from, to)| from.trim().is_empty() || to.trim().is_empty()) {
            return Err(FieldError::new("model_mapping", "names must not be empty"));
        }
        let concurrency = self.concurrency.or(current.map(|c| c.concurrency)).unwrap_or(DEFAULT_CONCURRENCY);
        let priority = self.priority.or(current.map(|c| c.priority)).unwrap_or(DEFAULT_PRIORITY);
        if !(0..=10_000).contains(&priority) {
            return Err(FieldError::new("priority", "must be between 0 and 10000"));
        }
        Ok(AccountFields {
            name,
            notes: self.notes.or(current.map(|c| c.notes.clone())).unwrap_or_default(),
            platform,
            kind,
            api_key,
            base_url,
            model_mapping,
            concurrency,
            priority,
            proxy_id: self.proxy_id.unwrap_or(current.and_then(|c| c.proxy_id)),
            schedulable: self.schedulable.or(current.map(|c| c.schedulable)).unwrap_or(true),
        })
    }
}

#[cfg(test)]
mod input_tests {
    use super::*;

    fn create() -> AccountInput {
        AccountInput {
            name: Some("main".into()),
            platform: Some(Platform::Anthropic),
            credentials: Some(CredentialsInput { api_key: Some("sk-ant-1".into()), base_url: None }),
            ..Default::default()
        }
    }

    #[test]
    fn create_defaults_and_requirements() {
        let ok = create().resolve(None).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((ok.kind, ok.concurrency, ok.priority, ok.schedulable), (AccountKind::ApiKey, 3, 50, true));
        let no_key = AccountInput { credentials: None, ..create() }.resolve(None).err().map(|e| e.field);
        assert_eq!(no_key, Some("credentials.api_key"));
        let oauth = AccountInput { kind: Some(AccountKind::OAuth), ..create() }.resolve(None).err().map(|e| e.field);
        assert_eq!(oauth, Some("type"));
        let bad_url = AccountInput {
            credentials: Some(CredentialsInput { api_key: Some("k".into()), base_url: Some("ftp://x".into()) }),
            ..create()
        };
        assert_eq!(bad_url.resolve(None).err().map(|e| e.field), Some("credentials.base_url"));
    }

    #[test]
    fn update_keeps_the_stored_key_and_other_fields() {
        let mut current = create().resolve(None).unwrap_or_else(|e| panic!("{e}"));
        current.api_key = None;
        let updated = AccountInput { priority: Some(10), ..Default::default() }.resolve(Some(&current));
        let updated = updated.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((updated.priority, updated.api_key, updated.name.as_str()), (10, None, "main"));
        let moved = AccountInput { platform: Some(Platform::Openai), ..Default::default() }.resolve(Some(&current));
        assert_eq!(moved.err().map(|e| e.field), Some("platform"));
    }

    #[test]
    fn debug_hides_the_key() {
        let fields = create().resolve(None).unwrap_or_else(|e| panic!("{e}"));
        assert!(!format!("{fields:?}").contains("sk-ant-1"));
        assert!(!format!("{:?}", create()).contains("sk-ant-1"));
    }
}
