//! Admin sign-in: password check with throttling, and the session binding.
//!
//! A session stores the user id and a tag derived from the password hash, so changing a
//! password (including `sub2api admin reset-password`) signs out every existing session.

use std::time::Instant;

use domain::UserView;
use store::Store;
use store::coord::LoginThrottle;
use store::secret::{decoy_hash, sha256_hex, verify_password};
use time::OffsetDateTime;
use tower_sessions::Session;

use crate::AppError;
use crate::state::ClientIp;

static PASSWORD_CHECKS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(4);

const SESSION_USER: &str = "uid";
const SESSION_TAG: &str = "pwtag";

fn password_tag(password_hash: &str) -> String {
    sha256_hex(password_hash)[..16].to_owned()
}

/// Checks the credentials of an admin. Failed attempts count against both the client IP and
/// the email and are counted before the password is checked, so concurrent attempts cannot
/// exceed the limit; a locked key answers `TooManyAttempts` without looking at the password.
pub async fn authenticate(
    store: &Store,
    throttle: &LoginThrottle,
    ip: ClientIp,
    email: &str,
    password: &str,
) -> Result<UserView, AppError> {
    let email = domain::validate_email(email).map_err(|_| AppError::BadCredentials)?;
    let keys = [format!("ip:{}", ip.0), format!("email:{email}")];
    let keys = [keys[0].as_str(), keys[1].as_str()];
    throttle.try_begin(&keys, Instant::now()).map_err(|wait| AppError::TooManyAttempts(wait.as_secs().max(1)))?;
    let user = store.find_user_by_email(&email).await?;
    let hash = user.as_ref().map_or_else(|| decoy_hash().to_owned(), |u| u.password_hash.clone());
    let password = password.to_owned();
    // Each argon2 check takes ~19 MiB and tens of milliseconds: cap how many run at once so a
    // burst of sign-ins cannot exhaust memory.
    let _permit = PASSWORD_CHECKS.acquire().await.map_err(|_| AppError::Internal)?;
    let matches =
        tokio::task::spawn_blocking(move || verify_password(&password, &hash)).await.map_err(|_| AppError::Internal)?;
    match user {
        Some(user) if matches && user.is_active_admin() => {
            throttle.record_success(&keys);
            store.record_login(user.id, OffsetDateTime::now_utc()).await?;
            Ok(user.view()?)
        }
        _ => {
            tracing::info!(client_ip = %ip.0, "admin sign-in failed");
            Err(AppError::BadCredentials)
        }
    }
}

/// Binds the session to the user under a fresh session id (no fixation).
pub async fn start_session(store: &Store, session: &Session, user_id: i64) -> Result<(), AppError> {
    let user = store.find_user(user_id).await?.ok_or(AppError::Unauthorized)?;
    session.cycle_id().await.map_err(session_error)?;
    session.insert(SESSION_USER, user.id).await.map_err(session_error)?;
    session.insert(SESSION_TAG, password_tag(&user.password_hash)).await.map_err(session_error)?;
    Ok(())
}

/// Changes the signed-in user's own password after checking the current one. Every other
/// session of the user ends (its password tag no longer matches); this one is re-tagged and
/// stays signed in.
pub async fn change_own_password(
    store: &Store,
    session: &Session,
    user_id: i64,
    change: domain::settings::PasswordChange,
) -> Result<(), AppError> {
    domain::validate_password(&change.new_password).map_err(|e| AppError::Invalid(format!("new_password: {e}")))?;
    let user = store.find_user(user_id).await?.ok_or(AppError::Unauthorized)?;
    let _permit = PASSWORD_CHECKS.acquire().await.map_err(|_| AppError::Internal)?;
    let (current, hash) = (change.current_password, user.password_hash.clone());
    let matches =
        tokio::task::spawn_blocking(move || verify_password(&current, &hash)).await.map_err(|_| AppError::Internal)?;
    if !matches {
        return Err(AppError::Invalid("current_password: does not match".into()));
    }
    let new_hash = tokio::task::spawn_blocking(move || store::secret::hash_password(&change.new_password))
        .await
        .map_err(|_| AppError::Internal)?
        .map_err(|_| AppError::Internal)?;
    store.set_password_hash(user_id, &new_hash).await?;
    session.insert(SESSION_TAG, password_tag(&new_hash)).await.map_err(session_error)?;
    tracing::info!(user_id, "password changed by its owner");
    Ok(())
}

pub async fn end_session(session: &Session) -> Result<(), AppError> {
    session.flush().await.map_err(session_error)
}

/// The signed-in admin, if the session belongs to an active admin whose password has not
/// changed since sign-in.
pub async fn session_admin(store: &Store, session: &Session) -> Result<Option<UserView>, AppError> {
    let Some(user_id) = session.get::<i64>(SESSION_USER).await.map_err(session_error)? else {
        return Ok(None);
    };
    let tag = session.get::<String>(SESSION_TAG).await.map_err(session_error)?;
    let Some(user) = store.find_user(user_id).await? else {
        return Ok(None);
    };
    if !user.is_active_admin() || tag.as_deref() != Some(password_tag(&user.password_hash).as_str()) {
        return Ok(None);
    }
    Ok(Some(user.view()?))
}

fn session_error(err: tower_sessions::session::Error) -> AppError {
    tracing::error!(error = %err, "session store error");
    AppError::Internal
}

/// A post-sign-in destination that stays on this site: a path, never `//host` or a URL.
/// Browsers drop tabs and newlines inside URLs and treat `\` like `/`, so any of those could
/// turn `/x` into `//host`: such values are refused outright.
pub fn safe_next(next: Option<&str>) -> String {
    let acceptable = |p: &str| {
        p.starts_with('/')
            && !p.starts_with("//")
            && !p.starts_with("/login")
            && p.len() <= 2048
            && !p.chars().any(|c| c.is_control() || c.is_whitespace() || c == '\\')
    };
    match next {
        Some(p) if acceptable(p) => p.to_owned(),
        _ => "/".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn next_never_leaves_the_site() {
        assert_eq!(safe_next(Some("/settings")), "/settings");
        assert_eq!(safe_next(Some("//evil.example")), "/");
        assert_eq!(safe_next(Some("https://evil.example")), "/");
        assert_eq!(safe_next(Some("/\\evil.example")), "/");
        assert_eq!(safe_next(Some("/login")), "/");
        assert_eq!(safe_next(Some("/\t/evil.example")), "/");
        assert_eq!(safe_next(Some("/\n")), "/");
        assert_eq!(safe_next(Some("/a\\b")), "/");
        assert_eq!(safe_next(Some("/usage?page=2")), "/usage?page=2");
        assert_eq!(safe_next(None), "/");
    }
}
