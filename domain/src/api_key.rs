//! Gateway API keys (`sk-…`) as the admin sees them. The key itself is shown once, at
//! creation; afterwards only its prefix.

use serde::{Deserialize, Serialize};

use crate::{Platform, text_enum};

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
    // Skipped when absent: serialised as `null` it would come back as "leave ungrouped".
    #[serde(default, with = "crate::double_option", skip_serializing_if = "Option::is_none")]
    pub group_id: Option<Option<i64>>,
    pub status: Option<ApiKeyStatus>,
    /// ≤ 0: unlimited (the default).
    pub concurrency: Option<i32>,
    pub expires_at: Option<String>,
}

/// Requests, tokens and cost over a period (today, in the key and user lists).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct UsageSummary {
    pub requests: i64,
    pub tokens: i64,
    pub cost: f64,
}

impl UsageSummary {
    pub fn add(&mut self, other: UsageSummary) {
        self.requests += other.requests;
        self.tokens += other.tokens;
        self.cost += other.cost;
    }
}

/// A key as the API Keys page lists it: with its owner, its group and today's usage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiKeyListing {
    pub key: ApiKeyView,
    pub user_email: String,
    pub group_name: Option<String>,
    pub group_platform: Option<Platform>,
    /// Since midnight UTC.
    pub today: UsageSummary,
}

/// A ready-to-paste way of using a key with one client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientSnippet {
    /// Stable identifier (`claude-code`, `codex`, …) for tests and element ids.
    pub id: &'static str,
    pub title: &'static str,
    pub text: String,
}

/// How to point each supported client at the gateway at `base_url` with `key`. The example
/// model follows the group's platform (either works: the gateway translates between the
/// protocols), and an ungrouped key gets the Anthropic one.
pub fn client_snippets(base_url: &str, key: &str, platform: Option<Platform>) -> Vec<ClientSnippet> {
    let base = base_url.trim_end_matches('/');
    let model = match platform {
        Some(Platform::Openai) => "gpt-5",
        Some(Platform::Gemini) => "gemini-2.5-pro",
        Some(Platform::Anthropic) | None => "claude-sonnet-4-5",
    };
    vec![
        ClientSnippet {
            id: "claude-code",
            title: "Claude Code",
            text: format!("export ANTHROPIC_BASE_URL=\"{base}\"\nexport ANTHROPIC_AUTH_TOKEN=\"{key}\"\nclaude"),
        },
        ClientSnippet {
            id: "codex",
            title: "Codex CLI (~/.codex/config.toml, with SUB2API_KEY in the environment)",
            text: format!(
                "# export SUB2API_KEY=\"{key}\"\nmodel_provider = \"sub2api\"\n\n[model_providers.sub2api]\n\
                 name = \"sub2api\"\nbase_url = \"{base}/v1\"\nwire_api = \"responses\"\nenv_key = \"SUB2API_KEY\""
            ),
        },
        ClientSnippet {
            id: "anthropic-python",
            title: "Anthropic Python SDK",
            text: format!(
                "import anthropic\n\nclient = anthropic.Anthropic(base_url=\"{base}\", api_key=\"{key}\")\n\
                 message = client.messages.create(\n    model=\"{model}\",\n    max_tokens=256,\n    \
                 messages=[{{\"role\": \"user\", \"content\": \"Hello\"}}],\n)\nprint(message.content[0].text)"
            ),
        },
        ClientSnippet {
            id: "openai-python",
            title: "OpenAI Python SDK",
            text: format!(
                "from openai import OpenAI\n\nclient = OpenAI(base_url=\"{base}/v1\", api_key=\"{key}\")\n\
                 completion = client.chat.completions.create(\n    model=\"{model}\",\n    \
                 messages=[{{\"role\": \"user\", \"content\": \"Hello\"}}],\n)\n\
                 print(completion.choices[0].message.content)"
            ),
        },
        ClientSnippet {
            id: "curl",
            title: "curl",
            text: format!(
                "curl {base}/v1/messages \\\n  -H 'x-api-key: {key}' \\\n  -H 'anthropic-version: 2023-06-01' \\\n  \
                 -H 'content-type: application/json' \\\n  \
                 -d '{{\"model\":\"{model}\",\"max_tokens\":256,\"messages\":[{{\"role\":\"user\",\"content\":\"Hello\"}}]}}'"
            ),
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_absent_group_stays_absent_through_json() {
        let input = ApiKeyInput { status: Some(ApiKeyStatus::Disabled), ..Default::default() };
        let json = serde_json::to_string(&input).unwrap_or_default();
        assert!(!json.contains("group_id"), "{json}");
        let back: Result<ApiKeyInput, _> = serde_json::from_str(&json);
        assert_eq!(back.ok(), Some(input));
        let ungroup = ApiKeyInput { group_id: Some(None), ..Default::default() };
        let back: Result<ApiKeyInput, _> = serde_json::from_str(&serde_json::to_string(&ungroup).unwrap_or_default());
        assert_eq!(back.ok().and_then(|i| i.group_id), Some(None));
    }

    #[test]
    fn snippets_point_every_client_at_the_gateway() {
        let snippets = client_snippets("https://gw.example.com/", "sk-abc", Some(Platform::Openai));
        let text = |id: &str| snippets.iter().find(|s| s.id == id).map(|s| s.text.clone()).unwrap_or_default();
        assert!(text("claude-code").contains("ANTHROPIC_BASE_URL=\"https://gw.example.com\""));
        assert!(text("claude-code").contains("ANTHROPIC_AUTH_TOKEN=\"sk-abc\""));
        let codex = text("codex");
        assert!(codex.contains("base_url = \"https://gw.example.com/v1\""), "{codex}");
        assert!(codex.contains("wire_api = \"responses\"") && codex.contains("env_key = \"SUB2API_KEY\""));
        assert!(text("openai-python").contains("base_url=\"https://gw.example.com/v1\""));
        assert!(text("openai-python").contains("model=\"gpt-5\""));
        assert!(text("anthropic-python").contains("base_url=\"https://gw.example.com\""));
        assert!(text("curl").starts_with("curl https://gw.example.com/v1/messages"));
        assert!(snippets.iter().all(|s| s.text.contains("sk-abc")));
    }
}
