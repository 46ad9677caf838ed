//! Server functions: the only way the pages read or change server state. Each body runs on
//! the server, checks the session, and calls into `service`.

use domain::UserView;
use leptos::prelude::*;

use crate::AppError;

pub mod accounts;
pub mod dashboard;
pub mod groups;
pub mod models;
pub mod proxies;
pub mod settings;
pub mod usage;
pub mod users;

#[cfg(feature = "ssr")]
pub(crate) mod ssr {
    use domain::UserView;
    use leptos::prelude::*;
    use tower_sessions::Session;

    use crate::AppError;
    use crate::service::auth;
    use crate::state::AppState;

    pub fn state() -> Result<AppState, AppError> {
        use_context::<AppState>().ok_or_else(|| {
            tracing::error!("AppState missing from the server-function context");
            AppError::Internal
        })
    }

    pub async fn session() -> Result<Session, AppError> {
        leptos_axum::extract::<Session>().await.map_err(|e| {
            tracing::error!(error = %e, "no session layer in front of server functions");
            AppError::Internal
        })
    }

    /// The signed-in admin, or `Unauthorized`.
    pub async fn require_admin() -> Result<(AppState, UserView), AppError> {
        let state = state()?;
        let user = auth::session_admin(&state.store, &session().await?).await?.ok_or(AppError::Unauthorized)?;
        Ok((state, user))
    }
}

/// Signs an admin in and redirects to `next` (a local path) or the dashboard.
#[server]
pub async fn login(email: String, password: String, next: Option<String>) -> Result<(), AppError> {
    use crate::service::auth;
    use crate::state::ClientIp;

    let state = ssr::state()?;
    let axum::Extension(ip) = leptos_axum::extract::<axum::Extension<ClientIp>>().await.map_err(|e| {
        tracing::error!(error = %e, "client address missing");
        AppError::Internal
    })?;
    let user = auth::authenticate(&state.store, &state.throttle, ip, &email, &password).await;
    let user = match user {
        Ok(user) => user,
        Err(err) => {
            if let Some(opts) = use_context::<leptos_axum::ResponseOptions>() {
                opts.set_status(http::StatusCode::from_u16(err.status()).unwrap_or(http::StatusCode::UNAUTHORIZED));
            }
            return Err(err);
        }
    };
    auth::start_session(&state.store, &ssr::session().await?, user.id).await?;
    tracing::info!(user_id = user.id, "admin signed in");
    leptos_axum::redirect(&auth::safe_next(next.as_deref()));
    Ok(())
}

#[server]
pub async fn logout() -> Result<(), AppError> {
    crate::service::auth::end_session(&ssr::session().await?).await?;
    leptos_axum::redirect("/login");
    Ok(())
}

/// The signed-in admin, or `None`.
#[server]
pub async fn current_admin() -> Result<Option<UserView>, AppError> {
    let state = ssr::state()?;
    crate::service::auth::session_admin(&state.store, &ssr::session().await?).await
}

/// Display prefix of the admin API key, if one is set.
#[server]
pub async fn get_admin_api_key_prefix() -> Result<Option<String>, AppError> {
    let (state, _) = ssr::require_admin().await?;
    crate::service::admin_key::current_prefix(&state.store).await
}

/// Replaces the admin API key and returns the new key; it is never shown again.
#[server]
pub async fn regenerate_admin_api_key() -> Result<String, AppError> {
    let (state, user) = ssr::require_admin().await?;
    let key = crate::service::admin_key::regenerate(&state.store).await?;
    tracing::info!(user_id = user.id, "admin API key regenerated");
    Ok(key)
}
