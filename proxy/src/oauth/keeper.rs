//! Keeps OAuth access tokens fresh: ahead of expiry (the background job calls
//! [`refresh_due`]), after an upstream 401 (the relay), and when an admin asks.
//!
//! One refresh per account at a time across every instance: the refresh takes the
//! coordinator lock `oauth:refresh_lock:{id}` and re-reads the account under it, so a
//! refresh that another instance (or request) just finished is reused rather than repeated
//! with a refresh token that has already been rotated away.

use std::sync::Arc;
use std::time::{Duration, Instant};

use domain::{AccountKind, AccountStatus};
use store::credentials::{AccountExtra, StoredCredentials};
use time::OffsetDateTime;

use super::{OAuthError, refresh};
use crate::gateway::Gateway;
use crate::snapshot::OAuthEntry;

/// How long the refresh lock lives if its holder dies.
const LOCK_TTL: Duration = Duration::from_secs(60);
/// Longest wait for another holder's refresh to finish.
const LOCK_WAIT: Duration = Duration::from_secs(45);
const LOCK_POLL: Duration = Duration::from_millis(100);

/// Why a refresh is asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// The token expires soon (background job): skipped when no longer due.
    Due,
    /// The upstream refused this access token: skipped when the stored token already differs.
    Rejected(String),
    /// An administrator asked: always refreshes.
    Admin,
}

#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    #[error("the account does not exist")]
    NotFound,
    #[error("the account does not sign in with OAuth")]
    NotOAuth,
    #[error("the grant has no refresh token; sign in again")]
    NotRefreshable,
    #[error("another refresh of this account is still running")]
    Busy,
    #[error(transparent)]
    OAuth(#[from] OAuthError),
    #[error("the stored account cannot be read or written: {0}")]
    Store(String),
}

impl From<store::StoreError> for RefreshError {
    fn from(e: store::StoreError) -> Self {
        RefreshError::Store(e.to_string())
    }
}

/// Whether a token expiring at `expires_at` (unix seconds, 0 unknown) is due for refresh.
pub fn is_due(expires_at: i64, now: OffsetDateTime, before: Duration) -> bool {
    let lead = i64::try_from(before.as_secs()).unwrap_or(i64::MAX);
    expires_at > 0 && expires_at.saturating_sub(lead) <= now.unix_timestamp()
}

/// Refreshes every active account whose token is due. Returns how many were refreshed.
pub async fn refresh_due(gw: &Gateway) -> usize {
    let now = OffsetDateTime::now_utc();
    let before = gw.config.oauth.refresh.before_expiry;
    let due: Vec<i64> = gw
        .snapshot
        .current()
        .accounts
        .values()
        .filter(|a| a.status == AccountStatus::Active)
        .filter(|a| a.oauth.as_ref().is_some_and(|o| o.refreshable && is_due(o.expires_at, now, before)))
        .map(|a| a.id)
        .collect();
    let mut refreshed = 0;
    for id in due {
        match refresh_account(gw, id, Trigger::Due).await {
            Ok(()) => refreshed += 1,
            Err(e) => tracing::warn!(account_id = id, error = %e, "refreshing an OAuth token failed"),
        }
    }
    refreshed
}

/// Refreshes one account's token (see [`Trigger`]). On `invalid_grant` the account goes to
/// the error state with the reason; other failures are recorded on the account and leave
/// it serving until its token runs out.
pub async fn refresh_account(gw: &Gateway, id: i64, trigger: Trigger) -> Result<(), RefreshError> {
    let key = format!("oauth:refresh_lock:{id}");
    let deadline = Instant::now() + LOCK_WAIT;
    let lock = loop {
        match gw.coord.try_lock(&key, LOCK_TTL).await {
            Ok(Some(token)) => break Some(token),
            Ok(None) if Instant::now() < deadline => tokio::time::sleep(LOCK_POLL).await,
            Ok(None) => return Err(RefreshError::Busy),
            Err(e) => {
                // Fail open: refreshing twice is better than never.
                tracing::warn!(error = %e, account_id = id, "taking the refresh lock failed; refreshing without it");
                break None;
            }
        }
    };
    let result = refresh_locked(gw, id, &trigger).await;
    if let Some(token) = lock
        && let Err(e) = gw.coord.unlock(&token).await
    {
        tracing::warn!(error = %e, account_id = id, "releasing the refresh lock failed");
    }
    result
}

async fn refresh_locked(gw: &Gateway, id: i64, trigger: &Trigger) -> Result<(), RefreshError> {
    let secrets = gw.snapshot.secrets();
    let row = gw.store.find_account(id).await?.ok_or(RefreshError::NotFound)?;
    if row.kind.parse::<AccountKind>().map_err(|e| RefreshError::Store(e.to_string()))? == AccountKind::ApiKey {
        return Err(RefreshError::NotOAuth);
    }
    let mut credentials =
        StoredCredentials::open(secrets, &row.credentials_encrypted).map_err(|e| RefreshError::Store(e.to_string()))?;
    let tokens = credentials.oauth.clone().ok_or(RefreshError::NotOAuth)?;
    let mut extra: AccountExtra = serde_json::from_str(&row.extra).map_err(|e| RefreshError::Store(e.to_string()))?;
    let now = OffsetDateTime::now_utc();
    let already_done = match trigger {
        Trigger::Due => !is_due(tokens.expires_at, now, gw.config.oauth.refresh.before_expiry),
        Trigger::Rejected(rejected) => tokens.access_token != *rejected,
        Trigger::Admin => false,
    };
    if already_done {
        // Another instance or request refreshed it: make sure this snapshot has it.
        mirror(gw, id, &tokens.access_token, entry_of(&tokens, extra.oauth.as_ref()));
        return Ok(());
    }
    if tokens.refresh_token.is_empty() {
        return Err(RefreshError::NotRefreshable);
    }
    let platform = row.platform.parse().map_err(|e: domain::UnknownVariant| RefreshError::Store(e.to_string()))?;
    let http = gw.oauth_client(id);
    let cfg = &gw.config.oauth;
    let previous = extra.oauth.clone().unwrap_or_default();
    let mut attempt = 0u32;
    let outcome = loop {
        match refresh(cfg, &http, platform, &tokens.refresh_token, &previous, OffsetDateTime::now_utc()).await {
            Err(OAuthError::Temporary(why)) if attempt < cfg.refresh.max_retries => {
                let wait = cfg.refresh.retry_backoff.saturating_mul(2u32.saturating_pow(attempt));
                tracing::info!(account_id = id, %why, attempt, "token refresh failed; retrying");
                attempt += 1;
                tokio::time::sleep(wait).await;
            }
            other => break other,
        }
    };
    match outcome {
        Ok(grant) => {
            let entry = entry_of(&grant.tokens, Some(&grant.info));
            let access = grant.tokens.access_token.clone();
            credentials.oauth = Some(grant.tokens);
            extra.oauth = Some(grant.info);
            save(gw, id, &credentials, &extra).await?;
            mirror(gw, id, &access, entry);
            gw.announce_change().await;
            tracing::info!(account_id = id, "OAuth token refreshed");
            Ok(())
        }
        Err(e) => {
            let reason = format!("OAuth refresh failed: {e}");
            let mut info = previous;
            info.refresh_error = Some(reason.clone());
            extra.oauth = Some(info);
            save(gw, id, &credentials, &extra).await?;
            if matches!(e, OAuthError::InvalidGrant(_)) {
                gw.store.set_account_status(id, AccountStatus::Error.as_str(), &reason).await?;
                gw.snapshot.update(|snap| {
                    if let Some(entry) = snap.accounts.get_mut(&id) {
                        entry.status = AccountStatus::Error;
                    }
                });
                tracing::warn!(account_id = id, %reason, "account put in the error state");
            }
            gw.announce_change().await;
            Err(e.into())
        }
    }
}

async fn save(
    gw: &Gateway,
    id: i64,
    credentials: &StoredCredentials,
    extra: &AccountExtra,
) -> Result<(), RefreshError> {
    let sealed = credentials.seal(gw.snapshot.secrets());
    let extra = serde_json::to_string(extra).map_err(|e| RefreshError::Store(e.to_string()))?;
    gw.store.set_account_secrets(id, &sealed, &extra).await?;
    Ok(())
}

/// The snapshot's view of a grant.
pub(crate) fn entry_of(
    tokens: &store::credentials::OAuthTokens,
    info: Option<&domain::account::OAuthInfo>,
) -> OAuthEntry {
    OAuthEntry {
        expires_at: tokens.expires_at,
        refreshable: !tokens.refresh_token.is_empty(),
        account_uuid: info.and_then(|i| i.account_id.clone()),
        project_id: info.and_then(|i| i.project_id.clone()),
    }
}

/// Puts the new token into this instance's snapshot at once (others reload on the
/// announcement).
fn mirror(gw: &Gateway, id: i64, access_token: &str, entry: OAuthEntry) {
    gw.snapshot.update(|snap| {
        if let Some(account) = snap.accounts.get_mut(&id) {
            access_token.clone_into(&mut account.api_key);
            account.oauth = Some(Arc::new(entry));
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_means_within_the_lead_and_known() {
        let now = OffsetDateTime::from_unix_timestamp(1_000_000).unwrap_or_else(|e| panic!("{e}"));
        let lead = Duration::from_secs(1800);
        assert!(is_due(1_000_000 + 1799, now, lead));
        assert!(is_due(999_000, now, lead), "already expired");
        assert!(!is_due(1_000_000 + 1801, now, lead));
        assert!(!is_due(0, now, lead), "unknown expiry is never due");
    }
}
