//! Configuration: defaults, then `config.yaml`, then environment variables; validated before
//! anything starts. Every error names the key (or variable) at fault.
//!
//! Environment overrides: `SUB2API__SECTION__KEY` for any key, plus the short forms
//! `DATABASE_URL`, `REDIS_URL`, `PORT` and `HOST` (the long form wins when both are set).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_yaml_ng::Value;

/// Where `config.yaml` is looked for when `--config` is not given, in order.
pub const SEARCH_PATHS: &[&str] = &["config.yaml", "config/config.yaml", "/etc/sub2api/config.yaml"];

const ENV_PREFIX: &str = "SUB2API__";
const SHORT_FORMS: &[(&str, &str)] =
    &[("DATABASE_URL", "database.url"), ("REDIS_URL", "redis.url"), ("PORT", "server.port"), ("HOST", "server.host")];

#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub redis: RedisConfig,
    pub log: LogConfig,
    pub auth: AuthConfig,
    pub security: SecurityConfig,
    pub gateway: GatewayConfig,
    pub rate_limit: RateLimitConfig,
    pub oauth: OAuthConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on.
    pub host: String,
    /// Port to listen on; 0 picks a free one (tests).
    pub port: u16,
    /// Mark the session cookie `Secure` even when the request did not arrive over TLS (set
    /// this behind a TLS-terminating proxy that does not send `X-Forwarded-Proto`).
    pub secure_cookies: bool,
    /// Admin sessions end after this many minutes without a request.
    pub session_idle_minutes: u64,
    /// After SIGTERM/SIGINT, in-flight requests get this long to finish.
    pub shutdown_grace_seconds: u64,
    /// Take the client address from `X-Forwarded-For` / `X-Real-IP` (only behind a proxy
    /// you control; otherwise clients could choose their own address for throttling).
    pub trust_forwarded_for: bool,
    /// Folder with the built UI (`pkg/`, static files). Empty: `LEPTOS_SITE_ROOT`, else
    /// `site/` beside the executable, else `target/site`.
    pub site_root: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            host: "0.0.0.0".into(),
            port: 8080,
            secure_cookies: false,
            session_idle_minutes: 720,
            shutdown_grace_seconds: 30,
            trust_forwarded_for: false,
            site_root: String::new(),
        }
    }
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `sqlite://path/to/file.db` or `postgres://user:pass@host:5432/db`.
    pub url: String,
    pub max_connections: u32,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self { url: "sqlite://./data/sub2api.db".into(), max_connections: 16 }
    }
}

impl fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseConfig")
            .field("url", &store::db::redact_url(&self.url))
            .field("max_connections", &self.max_connections)
            .finish()
    }
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisConfig {
    /// Empty: in-process coordination. `redis://[:password@]host:6379[/db]` otherwise.
    pub url: String,
    /// Prepended to every key and channel, so deployments can share one Redis.
    pub key_prefix: String,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self { url: String::new(), key_prefix: "sub2api:".into() }
    }
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &store::db::redact_url(&self.url))
            .field("key_prefix", &self.key_prefix)
            .finish()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A tracing filter: `info`, `debug`, `sub2api=debug,tower_http=info`, …
    pub level: String,
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { level: "info".into(), format: LogFormat::Text }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Failed admin sign-ins allowed per client IP and per email within the window.
    pub login_max_failures: u32,
    /// Length of the sign-in throttle window; a locked IP or email waits for its end.
    pub login_window_seconds: u64,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self { login_max_failures: 5, login_window_seconds: 900 }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayConfig {
    /// Largest request body accepted, in bytes (after request decompression); larger ones
    /// get 413 `request_too_large`.
    pub max_body_size: u64,
    /// How many other accounts a request may move on to after a failure, before the first
    /// byte of the answer.
    pub max_account_switches: u32,
    /// How long a conversation stays pinned to the account that served it.
    pub sticky_ttl_seconds: u64,
    /// Longest wait for a free concurrency slot before 429.
    pub wait_timeout_seconds: u64,
    /// Requests allowed to wait per account (or user) beyond its concurrency; more get 429.
    pub max_extra_waiters: u32,
    /// Streaming requests waiting for a slot get an `event: ping` this often.
    pub ping_interval_seconds: u64,
    /// Longest wait for an upstream's response headers.
    pub response_header_timeout_seconds: u64,
    /// Longest silence between two chunks of an upstream answer.
    pub stream_idle_timeout_seconds: u64,
    /// Lease time of a concurrency slot; long streams renew it, and a crashed instance's
    /// slots come back after it.
    pub slot_ttl_seconds: u64,
    /// Keys, users, groups and accounts are reloaded this often even without admin changes.
    pub snapshot_refresh_seconds: u64,
    /// Rows the usage writer queues before requests hand rows to waiting tasks.
    pub usage_queue_size: u32,
    /// Used by Anthropic accounts without their own base URL.
    pub anthropic_base_url: String,
    /// Used by OpenAI accounts without their own base URL.
    pub openai_base_url: String,
    /// Used by Gemini accounts without their own base URL.
    pub gemini_base_url: String,
    /// ChatGPT (Codex) subscription accounts call `{this}/backend-api/codex/responses`.
    pub chatgpt_base_url: String,
    /// Google (Code Assist) subscription accounts call `{this}/v1internal:{action}`.
    pub code_assist_base_url: String,
    /// Instructions the Codex backend gets for clients that send none (it requires some).
    pub codex_instructions: String,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        let d = proxy::gateway::GatewayConfig::default();
        Self {
            max_body_size: d.max_body_size as u64,
            max_account_switches: d.max_account_switches,
            sticky_ttl_seconds: d.sticky_ttl.as_secs(),
            wait_timeout_seconds: d.wait_timeout.as_secs(),
            max_extra_waiters: d.max_extra_waiters,
            ping_interval_seconds: d.ping_interval.as_secs(),
            response_header_timeout_seconds: d.response_header_timeout.as_secs(),
            stream_idle_timeout_seconds: d.stream_idle_timeout.as_secs(),
            slot_ttl_seconds: d.slot_ttl.as_secs(),
            snapshot_refresh_seconds: 30,
            usage_queue_size: 4096,
            anthropic_base_url: d.anthropic_base_url,
            openai_base_url: d.openai_base_url,
            gemini_base_url: d.gemini_base_url,
            chatgpt_base_url: d.chatgpt_base_url,
            code_assist_base_url: d.code_assist_base_url,
            codex_instructions: d.codex_instructions,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    /// Cooldown after an upstream 429 that does not say when its limit resets.
    pub fallback_cooldown_seconds: u64,
    /// Cooldown after an upstream 529 (overloaded).
    pub overload_cooldown_minutes: u64,
    /// Stop scheduling a subscription account whose usage window (Anthropic 5-hour / 7-day,
    /// Codex primary / secondary) is this full, in percent, until the window resets;
    /// 0: only when it is used up.
    pub window_threshold_percent: u8,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        let d = proxy::cooldown::CooldownConfig::default();
        Self {
            fallback_cooldown_seconds: d.fallback_cooldown_seconds,
            overload_cooldown_minutes: d.overload_cooldown_minutes,
            window_threshold_percent: 0,
        }
    }
}

/// One OAuth provider: where its sign-in page and token endpoint are, and the client the
/// gateway signs in as. Empty values mean the provider's own; set them only for a private
/// deployment or a test double.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OAuthProviderConfig {
    pub authorize_url: String,
    pub token_url: String,
    pub client_id: String,
    pub redirect_uri: String,
    /// Space-separated scopes asked for by a normal sign-in.
    pub scope: String,
}

impl OAuthProviderConfig {
    fn to_proxy(&self, default: &proxy::oauth::ProviderConfig) -> proxy::oauth::ProviderConfig {
        let pick = |set: &String, default: &String| if set.is_empty() { default.clone() } else { set.clone() };
        proxy::oauth::ProviderConfig {
            authorize_url: pick(&self.authorize_url, &default.authorize_url),
            token_url: pick(&self.token_url, &default.token_url),
            client_id: pick(&self.client_id, &default.client_id),
            redirect_uri: pick(&self.redirect_uri, &default.redirect_uri),
            scope: pick(&self.scope, &default.scope),
        }
    }
}

/// Token refresh of OAuth and setup-token accounts.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TokenRefreshConfig {
    /// Refresh tokens in the background ahead of their expiry (a 401 still triggers one).
    pub enabled: bool,
    /// How often to look for tokens about to expire.
    pub check_interval_seconds: u64,
    /// Refresh tokens that expire within this many seconds.
    pub refresh_before_expiry_seconds: u64,
    /// Retries of a refresh that failed for a transient reason (network, 5xx, 429).
    pub max_retries: u32,
    /// Wait before the first retry; doubled for each further one.
    pub retry_backoff_seconds: u64,
}

impl Default for TokenRefreshConfig {
    fn default() -> Self {
        let d = proxy::oauth::OAuthConfig::default().refresh;
        Self {
            enabled: d.enabled,
            check_interval_seconds: d.check_interval.as_secs(),
            refresh_before_expiry_seconds: d.before_expiry.as_secs(),
            max_retries: d.max_retries,
            retry_backoff_seconds: d.retry_backoff.as_secs(),
        }
    }
}

/// The `oauth` section: sign-in endpoints per provider, and token refresh.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OAuthConfig {
    pub claude: OAuthProviderConfig,
    pub openai: OAuthProviderConfig,
    pub gemini: GeminiOAuthConfig,
    pub refresh: TokenRefreshConfig,
}

/// Google sign-in of Code Assist (Gemini) accounts: an [`OAuthProviderConfig`] plus the
/// client secret Google's installed-app clients carry.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GeminiOAuthConfig {
    pub authorize_url: String,
    pub token_url: String,
    pub client_id: String,
    pub redirect_uri: String,
    pub scope: String,
    /// Required for Google sign-in (the Gemini CLI's, or your own client's).
    pub client_secret: String,
}

impl fmt::Debug for GeminiOAuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeminiOAuthConfig")
            .field("authorize_url", &self.authorize_url)
            .field("token_url", &self.token_url)
            .field("client_secret", &if self.client_secret.is_empty() { "" } else { "***" })
            .finish_non_exhaustive()
    }
}

impl GeminiOAuthConfig {
    fn provider(&self) -> OAuthProviderConfig {
        OAuthProviderConfig {
            authorize_url: self.authorize_url.clone(),
            token_url: self.token_url.clone(),
            client_id: self.client_id.clone(),
            redirect_uri: self.redirect_uri.clone(),
            scope: self.scope.clone(),
        }
    }
}

impl OAuthConfig {
    fn to_proxy(&self) -> proxy::oauth::OAuthConfig {
        use std::time::Duration;
        let d = proxy::oauth::OAuthConfig::default();
        let r = &self.refresh;
        proxy::oauth::OAuthConfig {
            claude: self.claude.to_proxy(&d.claude),
            openai: self.openai.to_proxy(&d.openai),
            gemini: self.gemini.provider().to_proxy(&d.gemini),
            gemini_client_secret: self.gemini.client_secret.clone(),
            refresh: proxy::oauth::RefreshConfig {
                enabled: r.enabled,
                check_interval: Duration::from_secs(r.check_interval_seconds.max(1)),
                before_expiry: Duration::from_secs(r.refresh_before_expiry_seconds),
                max_retries: r.max_retries,
                retry_backoff: Duration::from_secs(r.retry_backoff_seconds),
                ..d.refresh
            },
            ..d
        }
    }
}

impl Config {
    /// The relay's view of the `gateway`, `rate_limit` and `oauth` sections.
    pub fn gateway(&self) -> proxy::gateway::GatewayConfig {
        use std::time::Duration;
        let g = &self.gateway;
        proxy::gateway::GatewayConfig {
            max_body_size: usize::try_from(g.max_body_size).unwrap_or(usize::MAX),
            max_account_switches: g.max_account_switches,
            sticky_ttl: Duration::from_secs(g.sticky_ttl_seconds),
            wait_timeout: Duration::from_secs(g.wait_timeout_seconds),
            max_extra_waiters: g.max_extra_waiters,
            ping_interval: Duration::from_secs(g.ping_interval_seconds.max(1)),
            response_header_timeout: Duration::from_secs(g.response_header_timeout_seconds),
            stream_idle_timeout: Duration::from_secs(g.stream_idle_timeout_seconds),
            slot_ttl: Duration::from_secs(g.slot_ttl_seconds.max(1)),
            anthropic_base_url: g.anthropic_base_url.clone(),
            openai_base_url: g.openai_base_url.clone(),
            gemini_base_url: g.gemini_base_url.clone(),
            chatgpt_base_url: g.chatgpt_base_url.clone(),
            code_assist_base_url: g.code_assist_base_url.clone(),
            codex_instructions: g.codex_instructions.clone(),
            cooldown: proxy::cooldown::CooldownConfig {
                fallback_cooldown_seconds: self.rate_limit.fallback_cooldown_seconds,
                overload_cooldown_minutes: self.rate_limit.overload_cooldown_minutes,
            },
            oauth: self.oauth.to_proxy(),
            window_threshold_percent: self.rate_limit.window_threshold_percent.min(100),
        }
    }
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecurityConfig {
    /// Key that encrypts upstream credentials at rest: 64 hex characters or base64 of 32
    /// bytes. Every instance sharing a database needs the same key. Empty: use the key file.
    pub encryption_key: String,
    /// Where the key lives when `encryption_key` is empty; created (mode 0600) on first start.
    pub encryption_key_file: String,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        Self { encryption_key: String::new(), encryption_key_file: "./data/encryption.key".into() }
    }
}

impl fmt::Debug for SecurityConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key = if self.encryption_key.is_empty() { "" } else { "***" };
        f.debug_struct("SecurityConfig")
            .field("encryption_key", &key)
            .field("encryption_key_file", &self.encryption_key_file)
            .finish()
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("server", &self.server)
            .field("database", &self.database)
            .field("redis", &self.redis)
            .field("log", &self.log)
            .field("auth", &self.auth)
            .field("security", &self.security)
            .field("gateway", &self.gateway)
            .field("rate_limit", &self.rate_limit)
            .field("oauth", &self.oauth)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("environment variable {var}: {message}")]
    Env { var: String, message: String },
    #[error("{key}: {message}")]
    Invalid { key: &'static str, message: String },
}

/// Where the configuration came from, for the startup log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Defaults,
    File(PathBuf),
}

impl Config {
    /// Loads from `explicit` (which must exist) or the first file on `SEARCH_PATHS`, then
    /// applies `env`, then validates.
    pub fn load(explicit: Option<&Path>, env: &BTreeMap<String, String>) -> Result<(Config, Source), ConfigError> {
        let path = match explicit {
            Some(p) => Some(p.to_path_buf()),
            None => SEARCH_PATHS.iter().map(PathBuf::from).find(|p| p.is_file()),
        };
        let (config, source) = match path {
            Some(path) => {
                let text = std::fs::read_to_string(&path)
                    .map_err(|source| ConfigError::Read { path: path.clone(), source })?;
                (
                    Self::from_yaml(&text).map_err(|message| ConfigError::File { path: path.clone(), message })?,
                    Source::File(path),
                )
            }
            None => (Config::default(), Source::Defaults),
        };
        let config = config.with_env(env)?;
        config.validate()?;
        Ok((config, source))
    }

    /// Parses YAML text; unknown keys and wrong types are errors naming the key path.
    pub fn from_yaml(text: &str) -> Result<Config, String> {
        let value: Value = serde_yaml_ng::from_str(text).map_err(|e| e.to_string())?;
        let value = if value.is_null() { Value::Mapping(Default::default()) } else { value };
        deserialize_at_path(value)
    }

    /// Applies `SUB2API__SECTION__KEY` and the short forms. A variable is typed after the key
    /// it overrides: `PORT=abc` is an error, `SUB2API__DATABASE__URL=123` a string.
    pub fn with_env(self, env: &BTreeMap<String, String>) -> Result<Config, ConfigError> {
        let mut tree = serde_yaml_ng::to_value(&self)
            .map_err(|e| ConfigError::Env { var: String::new(), message: e.to_string() })?;
        let mut overrides: Vec<(String, Vec<String>, &str)> = Vec::new();
        for (var, key) in SHORT_FORMS {
            if let Some(v) = env.get(*var) {
                overrides.push(((*var).to_owned(), key.split('.').map(str::to_owned).collect(), v));
            }
        }
        for (var, v) in env.iter().filter(|(k, _)| k.starts_with(ENV_PREFIX)) {
            let path = var[ENV_PREFIX.len()..].split("__").map(str::to_lowercase).collect();
            overrides.push((var.clone(), path, v));
        }
        // Which variable set each key, to name it when the final value does not deserialize.
        let mut set_by: BTreeMap<String, String> = BTreeMap::new();
        for (var, path, raw) in overrides {
            let key = path.join(".");
            let leaf = lookup_mut(&mut tree, &path)
                .ok_or_else(|| ConfigError::Env { var: var.clone(), message: format!("unknown key `{key}`") })?;
            *leaf = coerce(leaf, raw)
                .map_err(|message| ConfigError::Env { var: var.clone(), message: format!("{key}: {message}") })?;
            set_by.insert(key, var);
        }
        deserialize_at_path(tree).map_err(|message| {
            let var = set_by
                .iter()
                .find(|(key, _)| message.starts_with(&format!("{key}:")))
                .map_or_else(|| "SUB2API__*".to_owned(), |(_, var)| var.clone());
            ConfigError::Env { var, message }
        })
    }

    /// Checks values that parse but make no sense.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let url = &self.database.url;
        let scheme = url.split_once("://").map(|(s, _)| s);
        if !matches!(scheme, Some("sqlite" | "postgres" | "postgresql")) {
            return Err(ConfigError::Invalid {
                key: "database.url",
                message: format!(
                    "unsupported value `{}` (expected sqlite://… or postgres://…)",
                    store::db::redact_url(url)
                ),
            });
        }
        if self.database.max_connections == 0 {
            return Err(ConfigError::Invalid { key: "database.max_connections", message: "must be at least 1".into() });
        }
        if !self.redis.url.is_empty()
            && !matches!(self.redis.url.split_once("://").map(|(s, _)| s), Some("redis" | "rediss"))
        {
            return Err(ConfigError::Invalid {
                key: "redis.url",
                message: format!(
                    "unsupported value `{}` (expected redis://… or rediss://)",
                    store::db::redact_url(&self.redis.url)
                ),
            });
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            return Err(ConfigError::Invalid {
                key: "log.level",
                message: format!("`{}` is not a valid log filter", self.log.level),
            });
        }
        if !self.security.encryption_key.is_empty()
            && store::cipher::SecretBox::from_key_text(&self.security.encryption_key).is_err()
        {
            return Err(ConfigError::Invalid {
                key: "security.encryption_key",
                message: "must be 32 bytes written as 64 hex characters or base64".into(),
            });
        }
        for (key, url) in [
            ("oauth.claude.authorize_url", &self.oauth.claude.authorize_url),
            ("oauth.claude.token_url", &self.oauth.claude.token_url),
            ("oauth.openai.authorize_url", &self.oauth.openai.authorize_url),
            ("oauth.openai.token_url", &self.oauth.openai.token_url),
            ("oauth.gemini.authorize_url", &self.oauth.gemini.authorize_url),
            ("oauth.gemini.token_url", &self.oauth.gemini.token_url),
        ] {
            if !(url.is_empty() || url.starts_with("https://") || url.starts_with("http://")) {
                return Err(ConfigError::Invalid { key, message: format!("`{url}` is not an http(s) URL") });
            }
        }
        if !(1..=525_600).contains(&self.server.session_idle_minutes) {
            return Err(ConfigError::Invalid {
                key: "server.session_idle_minutes",
                message: "must be between 1 and 525600 (a year)".into(),
            });
        }
        if self.server.host.parse::<std::net::IpAddr>().is_err() {
            return Err(ConfigError::Invalid {
                key: "server.host",
                message: format!("`{}` is not an IP address (use 0.0.0.0 or 127.0.0.1)", self.server.host),
            });
        }
        Ok(())
    }
}

fn deserialize_at_path(value: Value) -> Result<Config, String> {
    serde_path_to_error::deserialize(value).map_err(|err| {
        let path = err.path().to_string();
        if path == "." || path.is_empty() { err.inner().to_string() } else { format!("{path}: {}", err.inner()) }
    })
}

fn lookup_mut<'a>(tree: &'a mut Value, path: &[String]) -> Option<&'a mut Value> {
    path.iter().try_fold(tree, |node, key| node.as_mapping_mut()?.get_mut(key.as_str()))
}

/// Converts an environment string into the YAML type of the value it replaces.
fn coerce(current: &Value, raw: &str) -> Result<Value, String> {
    match current {
        Value::Bool(_) => match raw.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(Value::Bool(true)),
            "false" | "0" | "no" | "off" => Ok(Value::Bool(false)),
            _ => Err(format!("expected true or false, got `{raw}`")),
        },
        Value::Number(n) if n.is_f64() => {
            raw.trim().parse::<f64>().map(Value::from).map_err(|_| format!("expected a number, got `{raw}`"))
        }
        Value::Number(_) => {
            raw.trim().parse::<u64>().map(Value::from).map_err(|_| format!("expected a whole number, got `{raw}`"))
        }
        Value::Mapping(_) | Value::Sequence(_) => Err("is a section, not a value; set one of its keys".into()),
        _ => Ok(Value::String(raw.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn defaults_need_no_file() {
        let c = Config::default().with_env(&env(&[])).unwrap();
        assert_eq!(c.server.port, 8080);
        assert_eq!(c.database.url, "sqlite://./data/sub2api.db");
        c.validate().unwrap();
    }

    #[test]
    fn unknown_file_key_is_named() {
        let err = Config::from_yaml("server:\n  prot: 1\n").err().unwrap();
        assert!(err.contains("server") && err.contains("prot"), "{err}");
        let err = Config::from_yaml("serverr: {}\n").err().unwrap();
        assert!(err.contains("serverr"), "{err}");
    }

    #[test]
    fn wrong_type_in_file_names_the_key() {
        let err = Config::from_yaml("server:\n  port: lots\n").err().unwrap();
        assert!(err.starts_with("server.port:"), "{err}");
    }

    #[test]
    fn env_overrides_are_typed_by_the_key() {
        let c = Config::default()
            .with_env(&env(&[
                ("SUB2API__SERVER__PORT", "9000"),
                ("SUB2API__SERVER__SECURE_COOKIES", "true"),
                ("SUB2API__LOG__FORMAT", "json"),
                ("DATABASE_URL", "postgres://u:p@h/db"),
            ]))
            .unwrap();
        assert_eq!(c.server.port, 9000);
        assert!(c.server.secure_cookies);
        assert_eq!(c.log.format, LogFormat::Json);
        assert_eq!(c.database.url, "postgres://u:p@h/db");
    }

    #[test]
    fn long_env_form_beats_short_form() {
        let c = Config::default().with_env(&env(&[("PORT", "1"), ("SUB2API__SERVER__PORT", "2")])).unwrap();
        assert_eq!(c.server.port, 2);
    }

    #[test]
    fn bad_env_values_name_the_variable() {
        let err = Config::default().with_env(&env(&[("PORT", "abc")])).err().unwrap().to_string();
        assert!(err.contains("PORT") && err.contains("server.port"), "{err}");
        let err = Config::default().with_env(&env(&[("SUB2API__SERVER__NOPE", "1")])).err().unwrap().to_string();
        assert!(err.contains("SUB2API__SERVER__NOPE") && err.contains("server.nope"), "{err}");
        let err = Config::default().with_env(&env(&[("SUB2API__LOG__FORMAT", "xml")])).err().unwrap().to_string();
        assert!(err.contains("log.format") && err.contains("xml"), "{err}");
    }

    #[test]
    fn validation_names_the_value() {
        let mut c = Config::default();
        c.database.url = "nonsense://x".into();
        let err = c.validate().err().unwrap().to_string();
        assert!(err.contains("database.url") && err.contains("nonsense://x"), "{err}");
        let mut c = Config::default();
        c.database.url = "mysql://root:hunter2@db/x".into();
        let err = c.validate().err().unwrap().to_string();
        assert!(!err.contains("hunter2"), "secrets never appear in errors: {err}");
    }

    #[test]
    fn debug_output_hides_passwords() {
        let mut c = Config::default();
        c.database.url = "postgres://app:hunter2@db/x".into();
        c.redis.url = "redis://:hunter3@cache:6379".into();
        let text = format!("{c:?}");
        assert!(!text.contains("hunter2") && !text.contains("hunter3"), "{text}");
    }

    #[test]
    fn example_config_documents_every_key() {
        let example = include_str!("../../deploy/config.example.yaml");
        let parsed = Config::from_yaml(example).unwrap();
        let defaults = serde_yaml_ng::to_value(Config::default()).unwrap();
        assert_eq!(serde_yaml_ng::to_value(parsed).unwrap(), defaults, "the example shows every default");
        for (section, keys) in defaults.as_mapping().unwrap() {
            for key in keys.as_mapping().unwrap().keys() {
                let (s, k) = (section.as_str().unwrap(), key.as_str().unwrap());
                assert!(example.contains(&format!("  {k}:")), "deploy/config.example.yaml lacks {s}.{k}");
            }
        }
    }
}
