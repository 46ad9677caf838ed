//! Gateway API-key authentication against the snapshot: where the key may come from, and
//! every reason it can be refused. Rendering the refusal in the caller's protocol is the
//! route's job; this module only decides.

use http::HeaderMap;
use store::secret::sha256_hex;
use time::OffsetDateTime;

use crate::snapshot::{GroupEntry, KeyEntry, Snapshot, UserEntry};

/// Why a request was refused before any upstream was chosen. All are 401 except
/// `NoGroup` (403): the key is fine but cannot be served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("API key is required (Authorization: Bearer, x-api-key or x-goog-api-key)")]
    Missing,
    #[error("invalid API key")]
    Invalid,
    #[error("API key is disabled")]
    Disabled,
    #[error("API key has expired")]
    Expired,
    #[error("the key's user is disabled")]
    UserDisabled,
    #[error("the API key is not assigned to a group")]
    NoGroup,
}

impl AuthError {
    pub fn status(self) -> u16 {
        match self {
            AuthError::NoGroup => 403,
            _ => 401,
        }
    }
}

/// The caller, as the snapshot knows them.
#[derive(Debug, Clone)]
pub struct Caller {
    pub key: KeyEntry,
    pub user: UserEntry,
    pub group: GroupEntry,
}

/// The presented key: `Authorization: Bearer` (exact scheme), `x-api-key`, `x-goog-api-key`,
/// and `?key=` only when `allow_query_key` (Gemini routes).
pub fn presented_key<'a>(headers: &'a HeaderMap, query: Option<&'a str>, allow_query_key: bool) -> Option<&'a str> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty());
    let bearer =
        header("authorization").and_then(|v| v.strip_prefix("Bearer ")).map(str::trim).filter(|v| !v.is_empty());
    bearer.or_else(|| header("x-api-key")).or_else(|| header("x-goog-api-key")).or_else(|| {
        allow_query_key
            .then_some(())
            .and(query)?
            .split('&')
            .find_map(|pair| pair.strip_prefix("key="))
            .filter(|k| !k.is_empty())
    })
}

/// Checks `presented` against the snapshot at `now`.
pub fn authenticate(snapshot: &Snapshot, presented: Option<&str>, now: OffsetDateTime) -> Result<Caller, AuthError> {
    let presented = presented.ok_or(AuthError::Missing)?;
    let key = snapshot.keys.get(&sha256_hex(presented)).ok_or(AuthError::Invalid)?;
    if key.status != domain::ApiKeyStatus::Active {
        return Err(AuthError::Disabled);
    }
    if key.expires_at.is_some_and(|t| t <= now) {
        return Err(AuthError::Expired);
    }
    let user = snapshot.users.get(&key.user_id).ok_or(AuthError::Invalid)?;
    if user.status != domain::UserStatus::Active {
        return Err(AuthError::UserDisabled);
    }
    let group = key.group_id.and_then(|id| snapshot.groups.get(&id)).ok_or(AuthError::NoGroup)?;
    Ok(Caller { key: key.clone(), user: user.clone(), group: group.clone() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::{ApiKeyStatus, Platform, UserStatus};
    use http::HeaderValue;
    use time::Duration;

    fn snapshot() -> Snapshot {
        let mut s = Snapshot::default();
        s.users.insert(1, UserEntry { id: 1, status: UserStatus::Active, concurrency: 5 });
        s.users.insert(2, UserEntry { id: 2, status: UserStatus::Disabled, concurrency: 5 });
        s.groups.insert(
            9,
            GroupEntry {
                id: 9,
                name: "g".into(),
                platform: Platform::Anthropic,
                rate_multiplier: 1.0,
                account_ids: vec![],
            },
        );
        let key = |id, user_id, group_id, status, expires_at| KeyEntry {
            id,
            user_id,
            group_id,
            status,
            concurrency: 0,
            expires_at,
        };
        let past = Some(OffsetDateTime::now_utc() - Duration::minutes(1));
        s.keys.insert(sha256_hex("sk-ok"), key(1, 1, Some(9), ApiKeyStatus::Active, None));
        s.keys.insert(sha256_hex("sk-off"), key(2, 1, Some(9), ApiKeyStatus::Disabled, None));
        s.keys.insert(sha256_hex("sk-old"), key(3, 1, Some(9), ApiKeyStatus::Active, past));
        s.keys.insert(sha256_hex("sk-user-off"), key(4, 2, Some(9), ApiKeyStatus::Active, None));
        s.keys.insert(sha256_hex("sk-nogroup"), key(5, 1, None, ApiKeyStatus::Active, None));
        s
    }

    #[test]
    fn every_refusal_has_its_reason() {
        let s = snapshot();
        let now = OffsetDateTime::now_utc();
        let check = |k: Option<&str>| authenticate(&s, k, now).map(|c| c.key.id);
        assert_eq!(check(Some("sk-ok")), Ok(1));
        assert_eq!(check(None), Err(AuthError::Missing));
        assert_eq!(check(Some("sk-nope")), Err(AuthError::Invalid));
        assert_eq!(check(Some("sk-off")), Err(AuthError::Disabled));
        assert_eq!(check(Some("sk-old")), Err(AuthError::Expired));
        assert_eq!(check(Some("sk-user-off")), Err(AuthError::UserDisabled));
        assert_eq!(check(Some("sk-nogroup")), Err(AuthError::NoGroup));
        assert_eq!(AuthError::NoGroup.status(), 403);
        assert_eq!(AuthError::Invalid.status(), 401);
    }

    #[test]
    fn keys_come_from_the_documented_places_only() {
        let mut h = HeaderMap::new();
        assert_eq!(presented_key(&h, Some("key=sk-q"), false), None, "no query keys outside Gemini routes");
        assert_eq!(presented_key(&h, Some("alt=sse&key=sk-q"), true), Some("sk-q"));
        h.insert("x-goog-api-key", HeaderValue::from_static("sk-g"));
        assert_eq!(presented_key(&h, None, false), Some("sk-g"));
        h.insert("x-api-key", HeaderValue::from_static("sk-x"));
        assert_eq!(presented_key(&h, None, false), Some("sk-x"));
        h.insert("authorization", HeaderValue::from_static("bearer sk-lower"));
        assert_eq!(presented_key(&h, None, false), Some("sk-x"), "the scheme must be exactly `Bearer`");
        h.insert("authorization", HeaderValue::from_static("Bearer sk-b"));
        assert_eq!(presented_key(&h, None, false), Some("sk-b"), "Bearer wins");
    }
}
