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

/// What the gateway makes of an account right now, the most severe condition first: a
/// disabled or broken account is never picked, a cooling-down one waits for its time to pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountState {
    Active,
    RateLimited,
    Overloaded,
    Error,
    Disabled,
}
text_enum!(AccountState, "account state", {
    Active => "active",
    RateLimited => "rate_limited",
    Overloaded => "overloaded",
    Error => "error",
    Disabled => "disabled",
});

impl AccountState {
    /// `rate_limited` and `overloaded` say whether that cooldown has not yet passed.
    pub fn derive(status: AccountStatus, rate_limited: bool, overloaded: bool) -> Self {
        match status {
            AccountStatus::Disabled => AccountState::Disabled,
            AccountStatus::Error => AccountState::Error,
            AccountStatus::Active if rate_limited => AccountState::RateLimited,
            AccountStatus::Active if overloaded => AccountState::Overloaded,
            AccountStatus::Active => AccountState::Active,
        }
    }

    /// The state in words, for badges.
    pub fn label(self) -> &'static str {
        match self {
            AccountState::RateLimited => "rate limited",
            other => other.as_str(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_puts_the_stored_status_before_cooldowns() {
        use AccountStatus::{Active, Disabled, Error};
        assert_eq!(AccountState::derive(Active, false, false), AccountState::Active);
        assert_eq!(AccountState::derive(Active, true, true), AccountState::RateLimited);
        assert_eq!(AccountState::derive(Active, false, true), AccountState::Overloaded);
        assert_eq!(AccountState::derive(Error, true, false), AccountState::Error);
        assert_eq!(AccountState::derive(Disabled, false, false), AccountState::Disabled);
        for state in AccountState::ALL {
            assert_eq!(serde_json::to_string(state).ok(), Some(format!("\"{}\"", state.as_str())));
        }
        assert_eq!(AccountState::RateLimited.label(), "rate limited");
    }

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
    /// What `status` and the cooldowns amount to when the view was made.
    pub state: AccountState,
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
    /// OAuth and setup-token accounts: the grant (never the tokens themselves).
    #[serde(default)]
    pub oauth: Option<OAuthInfo>,
    /// Subscription usage windows as the upstream last reported them.
    #[serde(default)]
    pub windows: Vec<UsageWindow>,
}

/// One subscription usage window (Anthropic `5h` / `7d`, Codex `primary` / `secondary`) as
/// the upstream's response headers last described it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UsageWindow {
    pub name: String,
    /// Anthropic: `allowed`, `allowed_warning` or `rejected`; absent for Codex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Share of the window used, 0–100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub used_percent: Option<f64>,
    /// RFC 3339; when the window resets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resets_at: Option<String>,
    /// Length of the window, when the upstream says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_minutes: Option<i64>,
    /// RFC 3339; when this was read.
    pub updated_at: String,
}

impl UsageWindow {
    /// Used up: rejected, or at (or past) 100 %.
    pub fn exhausted(&self) -> bool {
        self.status.as_deref() == Some("rejected") || self.used_percent.is_some_and(|p| p >= 100.0)
    }
}

/// What is known about an OAuth / setup-token account's grant, without its secrets.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OAuthInfo {
    /// RFC 3339; when the access token expires (absent: the provider did not say).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    #[serde(default)]
    pub scope: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// The provider's account id (Claude `account.uuid`, ChatGPT account id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization_id: Option<String>,
    /// Google accounts: the Code Assist project requests bill to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<String>,
    /// Whether the grant can be refreshed (setup tokens usually cannot).
    #[serde(default)]
    pub refreshable: bool,
    /// RFC 3339; the last successful token refresh (or the sign-in).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refreshed_at: Option<String>,
    /// The last refresh failure, cleared by the next success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_error: Option<String>,
}

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

/// Credentials sent when creating or updating an API-key account. Write-only: no response
/// ever contains them.
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
        if current.is_some_and(|c| c.kind != kind) {
            return Err(FieldError::new("type", "cannot change; create a new account"));
        }
        let signed_in = current.is_some_and(|c| c.kind != AccountKind::ApiKey);
        if signed_in {
            if self.credentials.as_ref().is_some_and(|c| c.api_key.is_some() || c.base_url.is_some()) {
                return Err(FieldError::new(
                    "credentials",
                    "an OAuth account's credentials come from its sign-in; refresh or re-authorise it instead",
                ));
            }
        } else if kind != AccountKind::ApiKey {
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
            (None, None) if !signed_in => return Err(FieldError::new("credentials.api_key", "is required")),
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

/// Query of `GET /api/v1/admin/accounts/search` and of the Accounts page. Every filter is
/// optional; `page` counts from 1.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountQuery {
    pub page: Option<u32>,
    pub page_size: Option<u32>,
    pub platform: Option<Platform>,
    #[serde(rename = "type")]
    pub kind: Option<AccountKind>,
    /// Matches [`AccountView::state`], so `rate_limited` finds accounts cooling down now.
    pub status: Option<AccountState>,
    pub group_id: Option<i64>,
    /// Text in the name or notes (any case), or the account id.
    pub q: Option<String>,
}

/// Rows per page of the account list.
pub const ACCOUNT_PAGE_SIZE: u32 = 50;
/// Largest account page the API serves.
pub const MAX_ACCOUNT_PAGE_SIZE: u32 = 500;
/// Most keys (lines) one bulk import takes, and most accounts one bulk status change touches.
pub const MAX_BULK_ACCOUNTS: usize = 1000;

/// Body of `POST /api/v1/admin/accounts/bulk-import`: one API-key account per non-blank entry
/// of `api_keys` (the lines of the page's text box), all with the same settings.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BulkImportInput {
    pub platform: Platform,
    #[serde(default, rename = "type")]
    pub kind: Option<AccountKind>,
    /// Accounts are named `<name_prefix>-<n>`.
    pub name_prefix: String,
    pub api_keys: Vec<String>,
    #[serde(default)]
    pub base_url: Option<String>,
    #[serde(default)]
    pub group_ids: Vec<i64>,
    #[serde(default)]
    pub concurrency: Option<i32>,
    #[serde(default)]
    pub priority: Option<i32>,
}

impl std::fmt::Debug for BulkImportInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BulkImportInput")
            .field("platform", &self.platform)
            .field("name_prefix", &self.name_prefix)
            .field("api_keys", &format_args!("{} lines", self.api_keys.len()))
            .field("base_url", &self.base_url)
            .field("group_ids", &self.group_ids)
            .finish_non_exhaustive()
    }
}

impl BulkImportInput {
    /// Checks what every line shares: the prefix, the number of lines, and the account
    /// settings (resolved once with a stand-in key, so a shared mistake is one error rather
    /// than one per line).
    pub fn check(&self) -> Result<(), crate::FieldError> {
        use crate::FieldError;
        let prefix = self.name_prefix.trim();
        if prefix.is_empty() || prefix.len() > 180 {
            return Err(FieldError::new("name_prefix", "must be 1 to 180 characters"));
        }
        if self.api_keys.len() > MAX_BULK_ACCOUNTS {
            return Err(FieldError::new("api_keys", format!("at most {MAX_BULK_ACCOUNTS} lines per import")));
        }
        if self.keys().next().is_none() {
            return Err(FieldError::new("api_keys", "paste at least one key, one per line"));
        }
        self.account_input(1, "stand-in-key").resolve(None).map(|_| ())
    }

    /// The non-blank entries with their line numbers (from 1).
    pub fn keys(&self) -> impl Iterator<Item = (usize, &str)> {
        self.api_keys.iter().enumerate().map(|(i, k)| (i + 1, k.trim())).filter(|(_, k)| !k.is_empty())
    }

    /// The account for `api_key`, named `<prefix>-<n>`.
    pub fn account_input(&self, n: u64, api_key: &str) -> AccountInput {
        AccountInput {
            name: Some(format!("{}-{n}", self.name_prefix.trim())),
            platform: Some(self.platform),
            kind: self.kind,
            credentials: Some(CredentialsInput { api_key: Some(api_key.to_owned()), base_url: self.base_url.clone() }),
            concurrency: self.concurrency,
            priority: self.priority,
            group_ids: Some(self.group_ids.clone()),
            ..Default::default()
        }
    }
}

/// A line of a bulk import that did not become an account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImportLineError {
    /// From 1, counting blank lines, so it matches the text box.
    pub line: usize,
    pub message: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BulkImportResult {
    pub created: usize,
    pub account_ids: Vec<i64>,
    pub errors: Vec<ImportLineError>,
}

/// Body of `POST /api/v1/admin/accounts/bulk-status`: enable (`active`) or disable accounts.
/// Enabling also clears a recorded error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BulkStatusInput {
    pub ids: Vec<i64>,
    pub status: AccountStatus,
}

impl BulkStatusInput {
    pub fn check(&self) -> Result<(), crate::FieldError> {
        use crate::FieldError;
        if self.status == AccountStatus::Error {
            return Err(FieldError::new("status", "must be `active` or `disabled`"));
        }
        if self.ids.is_empty() || self.ids.len() > MAX_BULK_ACCOUNTS {
            return Err(FieldError::new("ids", format!("must name 1 to {MAX_BULK_ACCOUNTS} accounts")));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BulkStatusResult {
    /// Accounts that exist among `ids` (each counted once).
    pub updated: u64,
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

    fn import(keys: &[&str]) -> BulkImportInput {
        BulkImportInput {
            platform: Platform::Openai,
            kind: None,
            name_prefix: " team ".into(),
            api_keys: keys.iter().map(|k| (*k).to_owned()).collect(),
            base_url: None,
            group_ids: vec![],
            concurrency: Some(2),
            priority: None,
        }
    }

    #[test]
    fn bulk_import_numbers_lines_and_checks_shared_settings_once() {
        let input = import(&["sk-1", "  ", " sk-2 "]);
        assert_eq!(input.check(), Ok(()));
        assert_eq!(input.keys().collect::<Vec<_>>(), vec![(1, "sk-1"), (3, "sk-2")]);
        let account = input.account_input(7, "sk-2").resolve(None).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((account.name.as_str(), account.concurrency), ("team-7", 2));
        assert_eq!(import(&["", " "]).check().err().map(|e| e.field), Some("api_keys"));
        let bad_url = BulkImportInput { base_url: Some("ftp://x".into()), ..import(&["k"]) };
        assert_eq!(bad_url.check().err().map(|e| e.field), Some("credentials.base_url"));
        let no_prefix = BulkImportInput { name_prefix: " ".into(), ..import(&["k"]) };
        assert_eq!(no_prefix.check().err().map(|e| e.field), Some("name_prefix"));
        assert!(!format!("{:?}", import(&["sk-secret"])).contains("sk-secret"));
    }

    #[test]
    fn bulk_status_only_enables_or_disables() {
        let input = |ids: Vec<i64>, status| BulkStatusInput { ids, status };
        assert_eq!(input(vec![1], AccountStatus::Disabled).check(), Ok(()));
        assert_eq!(input(vec![1], AccountStatus::Error).check().err().map(|e| e.field), Some("status"));
        assert_eq!(input(vec![], AccountStatus::Active).check().err().map(|e| e.field), Some("ids"));
    }

    #[test]
    fn debug_hides_the_key() {
        let fields = create().resolve(None).unwrap_or_else(|e| panic!("{e}"));
        assert!(!format!("{fields:?}").contains("sk-ant-1"));
        assert!(!format!("{:?}", create()).contains("sk-ant-1"));
    }
}
