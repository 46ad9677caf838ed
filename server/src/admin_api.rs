//! The admin REST API under `/api/v1/admin`, for automation. Same envelope as the original
//! gateway: `{"code":0,"message":"success","data":…}`, errors `{"code":<status>,"message":…}`.
//! Authenticated by the admin session cookie or `x-api-key: admin-…`.

use app::AppError;
use app::state::AppState;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, Request, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use domain::GroupInput;
use serde::Serialize;
use serde_json::json;
use tower_sessions::Session;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/dashboard/stats", get(dashboard_stats_handler))
        .route("/groups", get(list_groups_handler).post(create_group_handler))
        .route("/groups/{id}", get(get_group_handler).put(update_group_handler).delete(delete_group_handler))
        .fallback(not_found_handler)
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

/// JSON body whose rejection (malformed JSON, wrong type, unknown field) is a 400 envelope
/// naming the problem.
pub struct ApiJson<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(ApiError(AppError::Invalid(rejection_message(&rejection)))),
        }
    }
}

fn rejection_message(rejection: &JsonRejection) -> String {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => "expected a JSON body (Content-Type: application/json)".into(),
        other => other.body_text(),
    }
}

async fn list_groups_handler(_: AdminAuth, State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    Ok(Envelope(app::service::groups::list_groups(&state.store).await?))
}

async fn get_group_handler(
    _: AdminAuth,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Envelope(app::service::groups::get_group(&state.store, id).await?))
}

async fn create_group_handler(
    _: AdminAuth,
    State(state): State<AppState>,
    ApiJson(input): ApiJson<GroupInput>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Envelope(app::service::groups::create_group(&state.store, input).await?))
}

async fn update_group_handler(
    _: AdminAuth,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    ApiJson(input): ApiJson<GroupInput>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Envelope(app::service::groups::update_group(&state.store, id, input).await?))
}

async fn delete_group_handler(
    _: AdminAuth,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<impl IntoResponse, ApiError> {
    app::service::groups::delete_group(&state.store, id).await?;
    Ok(Envelope(serde_json::Value::Null))
}

async fn not_found_handler() -> ApiError {
    ApiError(AppError::NotFound("route".into()))
}
