//! The admin REST API under `/api/v1/admin`, for automation. Same envelope as the original
//! gateway: `{"code":0,"message":"success","data":…}`, errors `{"code":<status>,"message":…}`.
//! Authenticated by the admin session cookie or `x-api-key: admin-…`.

use app::AppError;
use app::state::AppState;
use axum::extract::{FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use serde_json::json;
use tower_sessions::Session;

pub fn router() -> Router<AppState> {
    Router::new().route("/dashboard/stats", get(dashboard_stats_handler)).fallback(not_found_handler)
}

/// A successful envelope.
pub struct Envelope<T>(pub T);

impl<T: Serialize> IntoResponse for Envelope<T> {
    fn into_response(self) -> Response {
        Json(json!({ "code": 0, "message": "success", "data": self.0 })).into_response()
    }
}

/// An error envelope whose `code` is the HTTP status.
pub struct ApiError(pub AppError);

impl From<AppError> for ApiError {
    fn from(err: AppError) -> Self {
        ApiError(err)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, Json(json!({ "code": status.as_u16(), "message": self.0.to_string() }))).into_response()
    }
}

/// Proof that the caller is an administrator: by admin API key or by session.
pub struct AdminAuth;

impl FromRequestParts<AppState> for AdminAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        if let Some(key) = parts.headers.get("x-api-key") {
            let key = key.to_str().map_err(|_| ApiError(AppError::Unauthorized))?;
            return match app::service::admin_key::verify(&state.store, key).await? {
                true => Ok(AdminAuth),
                false => Err(ApiError(AppError::InvalidApiKey)),
            };
        }
        let session = Session::from_request_parts(parts, state).await.map_err(|_| ApiError(AppError::Unauthorized))?;
        match app::service::auth::session_admin(&state.store, &session).await? {
            Some(_) => Ok(AdminAuth),
            None => Err(ApiError(AppError::Unauthorized)),
        }
    }
}

async fn dashboard_stats_handler(_: AdminAuth, State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    Ok(Envelope(app::service::dashboard_stats(&state.store).await?))
}

async fn not_found_handler() -> ApiError {
    ApiError(AppError::NotFound("route".into()))
}
