//! The admin's side of adding an OAuth or setup-token account: start a sign-in (get the
//! provider's authorize URL), then hand back the code the provider showed.

use serde::{Deserialize, Serialize};

use crate::account::{AccountKind, Platform};
use crate::group::FieldError;

/// How long a started sign-in can be completed.
pub const FLOW_TTL_SECONDS: i64 = 30 * 60;

/// Body of `POST /api/v1/admin/accounts/generate-auth-url`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthStartInput {
    pub platform: Platform,
    /// `oauth` (default) or `setup-token` (Anthropic only: inference scope, long expiry).
    #[serde(default, rename = "type")]
    pub kind: Option<AccountKind>,
    /// The proxy the code exchange (and later the account) goes through.
    #[serde(default)]
    pub proxy_id: Option<i64>,
}

impl OAuthStartInput {
    /// The account type this sign-in produces.
    pub fn resolve(&self) -> Result<AccountKind, FieldError> {
        match (self.platform, self.kind.unwrap_or(AccountKind::OAuth)) {
            (_, AccountKind::ApiKey) => Err(FieldError::new("type", "API-key accounts need no sign-in")),
            (Platform::Anthropic, kind) => Ok(kind),
            (Platform::Openai, AccountKind::OAuth) => Ok(AccountKind::OAuth),
            (Platform::Openai, _) => Err(FieldError::new("type", "OpenAI accounts sign in with `oauth`")),
            (Platform::Gemini, AccountKind::OAuth) => Ok(AccountKind::OAuth),
            (Platform::Gemini, _) => Err(FieldError::new("type", "Google accounts sign in with `oauth`")),
        }
    }
}

/// The answer to a started sign-in: open `auth_url`, sign in, paste the code shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OAuthStart {
    pub auth_url: String,
    /// Opaque; goes back with the code.
    pub session_id: String,
    /// RFC 3339; after this the code can no longer be exchanged here.
    pub expires_at: String,
}

/// Body of `POST /api/v1/admin/accounts/exchange-code`: the code, and the new account's
/// settings.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthExchangeInput {
    pub session_id: String,
    /// The code as the provider's page shows it (`code#state`), the bare code, or the whole
    /// callback URL.
    pub code: String,
    pub name: String,
    #[serde(default)]
    pub notes: Option<String>,
    #[serde(default)]
    pub group_ids: Vec<i64>,
    #[serde(default)]
    pub concurrency: Option<i32>,
    #[serde(default)]
    pub priority: Option<i32>,
    /// Google accounts: the Code Assist project to bill; absent: the one Google reports.
    #[serde(default)]
    pub project_id: Option<String>,
}

impl std::fmt::Debug for OAuthExchangeInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthExchangeInput").field("name", &self.name).finish_non_exhaustive()
    }
}

/// The code and (when pasted along) the state out of what the admin pasted.
pub fn split_code(pasted: &str) -> Result<(String, Option<String>), FieldError> {
    let pasted = pasted.trim();
    let bad = || FieldError::new("code", "paste the code the sign-in page showed, or its whole address");
    if pasted.is_empty() || pasted.len() > 4096 {
        return Err(bad());
    }
    if pasted.starts_with("http://") || pasted.starts_with("https://") {
        let query = pasted.split_once('?').map(|(_, q)| q.split('#').next().unwrap_or(q)).ok_or_else(bad)?;
        let mut code = None;
        let mut state = None;
        for pair in query.split('&') {
            match pair.split_once('=') {
                Some(("code", v)) => code = Some(percent_decode(v)),
                Some(("state", v)) => state = Some(percent_decode(v)),
                _ => {}
            }
        }
        return Ok((code.filter(|c| !c.is_empty()).ok_or_else(bad)?, state));
    }
    if pasted.contains(char::is_whitespace) {
        return Err(bad());
    }
    match pasted.split_once('#') {
        Some((code, state)) if !code.is_empty() => Ok((code.to_owned(), Some(state.to_owned()))),
        Some(_) => Err(bad()),
        None => Ok((pasted.to_owned(), None)),
    }
}

fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| value.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match (escaped, bytes[i]) {
            (Some(b), _) => {
                out.push(b);
                i += 3;
                continue;
            }
            (None, b'+') => out.push(b' '),
            (None, b) => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pasted_codes_in_every_form() {
        assert_eq!(split_code(" abc#xyz ").unwrap(), ("abc".into(), Some("xyz".into())));
        assert_eq!(split_code("abc").unwrap(), ("abc".into(), None));
        let url = "https://console.anthropic.com/oauth/code/callback?code=a%2Fb&state=s1#frag";
        assert_eq!(split_code(url).unwrap(), ("a/b".into(), Some("s1".into())));
        let local = "http://localhost:1455/auth/callback?state=s2&code=c2&scope=x";
        assert_eq!(split_code(local).unwrap(), ("c2".into(), Some("s2".into())));
        for bad in ["", "  ", "#state", "two words", "https://x/cb?state=only"] {
            assert_eq!(split_code(bad).err().map(|e| e.field), Some("code"), "{bad:?}");
        }
    }

    #[test]
    fn sign_in_kinds_per_platform() {
        let start = |platform, kind| OAuthStartInput { platform, kind, proxy_id: None }.resolve();
        assert_eq!(start(Platform::Anthropic, None), Ok(AccountKind::OAuth));
        assert_eq!(start(Platform::Anthropic, Some(AccountKind::SetupToken)), Ok(AccountKind::SetupToken));
        assert_eq!(start(Platform::Openai, None), Ok(AccountKind::OAuth));
        assert!(start(Platform::Openai, Some(AccountKind::SetupToken)).is_err());
        assert!(start(Platform::Anthropic, Some(AccountKind::ApiKey)).is_err());
        assert_eq!(start(Platform::Gemini, None), Ok(AccountKind::OAuth));
        assert!(start(Platform::Gemini, Some(AccountKind::SetupToken)).is_err());
    }
}
