//! Gateway API keys (`sk-…`) as the admin sees them. The key itself is shown once, at
//! creation; afterwards only its prefix.

use serde::{Deserialize, Serialize};

use crate::text_enum;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApiKeyStatus {
    Active,
    Disabled,
}
text_enum!(ApiKeyStatus, "API key status", { Active => "active", Disabled => "disabled" });

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiKeyView {
    pub id: i64,
    pub user_id: i64,
    pub name: String,
    /// The first characters of the key, for recognising it (`sk-Ab12…`).
    pub key_prefix: String,
    pub group_id: Option<i64>,
    pub status: ApiKeyStatus,
    /// In-flight gateway requests allowed with this key; 0 is unlimited.
    pub concurrency: i32,
    pub expires_at: Option<String>,
    pub last_used_at: Option<String>,
    pub created_at: String,
}

/// The answer to a key creation: the only time the full key is returned.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct CreatedApiKey {
    #[serde(flatten)]
    pub view: ApiKeyView,
    pub key: String,
}

impl std::fmt::Debug for CreatedApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedApiKey").field("view", &self.view).field("key", &"***").finish()
    }
}

/// Body of `POST /api/v1/admin/users/:id/api-keys` and `PUT /api/v1/admin/api-keys/:id`.
/// `expires_at` is RFC 3339; on update an empty string clears it, and `group_id: null`
/// leaves the key ungrouped.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyInput {
    pub name: Option<String>,
    #[serde(default, with = "crate::double_option")]
    pub group_id: Option<Option<i64>>,
    pub status: Option<ApiKeyStatus>,
    /// ≤ 0: unlimited (the default).
    pub concurrency: Option<i32>,
    pub expires_at: Option<String>,
}
