//! The stored shape of an account's credentials and plain settings, shared by the admin
//! services (which write them) and the gateway (which reads them). Credentials are sealed
//! with the `SecretBox` before they reach the database.

use serde::{Deserialize, Serialize};

use crate::cipher::{CipherError, SecretBox};

/// What the sealed `accounts.credentials_encrypted` column holds: an API key, or the
/// tokens of an OAuth / setup-token account.
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct StoredCredentials {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth: Option<OAuthTokens>,
}

/// The secret half of an OAuth grant. When it expires and who it belongs to are not secret
/// and live in [`AccountExtra::oauth`] too, for the admin pages.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OAuthTokens {
    pub access_token: String,
    /// Empty when the grant has none (a setup token).
    #[serde(default)]
    pub refresh_token: String,
    /// Unix seconds; 0 when the provider did not say.
    #[serde(default)]
    pub expires_at: i64,
}

impl std::fmt::Debug for OAuthTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthTokens").field("expires_at", &self.expires_at).finish_non_exhaustive()
    }
}

impl StoredCredentials {
    pub fn api_key(key: impl Into<String>) -> Self {
        Self { api_key: key.into(), oauth: None }
    }

    pub fn oauth(tokens: OAuthTokens) -> Self {
        Self { api_key: String::new(), oauth: Some(tokens) }
    }
}

impl std::fmt::Debug for StoredCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoredCredentials(..)")
    }
}

impl StoredCredentials {
    pub fn seal(&self, secrets: &SecretBox) -> String {
        // Serialising a struct of strings cannot fail.
        secrets.seal_str(&serde_json::to_string(self).unwrap_or_default())
    }

    pub fn open(secrets: &SecretBox, sealed: &str) -> Result<StoredCredentials, CipherError> {
        serde_json::from_str(&secrets.open_string(sealed)?).map_err(|_| CipherError::Malformed)
    }
}

/// Plain (non-secret) per-account settings kept in the `accounts.extra` JSON column.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AccountExtra {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth: Option<domain::account::OAuthInfo>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_round_trip_sealed() {
        let sb = SecretBox::from_key_text(&"ab".repeat(32)).unwrap();
        let sealed = StoredCredentials::api_key("sk-ant-x").seal(&sb);
        assert!(!sealed.contains("sk-ant-x"));
        assert_eq!(StoredCredentials::open(&sb, &sealed).unwrap().api_key, "sk-ant-x");
        assert!(!format!("{:?}", StoredCredentials::api_key("sk-ant-x")).contains("sk-ant"));
    }
}
