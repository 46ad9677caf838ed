//! The admin REST API under `/api/v1/admin`, for automation. Same envelope as the original
//! gateway: `{"code":0,"message":"success","data":…}`, errors `{"code":<status>,"message":…}`.
//! Authenticated by the admin session cookie or `x-api-key: admin-…`.

use app::AppError;
use app::service::{accounts, oauth, usage, users};
use app::state::AppState;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, Request, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use domain::account::{AccountQuery, BulkImportInput, BulkStatusInput};
use domain::{AccountInput, ApiKeyInput, GroupInput, UsageQuery, UserInput};
use serde::Serialize;
use serde_json::json;
use tower_sessions::Session;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/dashboard/stats", get(dashboard_stats_handler))
        .route("/settings", get(get_settings_handler).put(update_settings_handler))
        .route("/models", get(models_overview_handler))
        .route("/models/prices", get(model_prices_handler))
        .route("/groups", get(list_groups_handler).post(create_group_handler))
        .route("/groups/{id}", get(get_group_handler).put(update_group_handler).delete(delete_group_handler))
        .route("/accounts", get(list_accounts_handler).post(create_account_handler))
        .route("/accounts/{id}", get(get_account_handler).put(update_account_handler).delete(delete_account_handler))
        .route("/accounts/{id}/test", post(test_account_handler))
        .route("/accounts/{id}/clear-error", post(clear_account_error_handler))
        .route("/accounts/{id}/clear-rate-limit", post(clear_account_rate_limit_handler))
        .route("/accounts/{id}/schedulable", post(set_account_schedulable_handler))
        .route("/accounts/search", get(search_accounts_handler))
        .route("/accounts/bulk-import", post(bulk_import_accounts_handler))
        .route("/accounts/bulk-status", post(bulk_account_status_handler))
        .route("/accounts/generate-auth-url", post(generate_auth_url_handler))
        .route("/accounts/generate-setup-token-url", post(generate_setup_token_url_handler))
        .route("/accounts/exchange-code", post(exchange_code_handler))
        .route("/accounts/exchange-setup-token-code", post(exchange_code_handler))
        .route("/accounts/{id}/refresh", post(refresh_account_handler))
        .route("/openai/generate-auth-url", post(openai_generate_auth_url_handler))
        .route("/openai/exchange-code", post(exchange_code_handler))
        .route("/openai/accounts/{id}/refresh", post(refresh_account_handler))
        .route("/users", get(list_users_handler).post(create_user_handler))
        .route("/users/{id}", get(get_user_handler).put(update_user_handler).delete(delete_user_handler))
        .route("/users/{id}/api-keys", get(list_user_keys_handler).post(create_user_key_handler))
        .route("/api-keys", get(list_all_keys_handler))
        .route("/usage", get(list_usage_handler))
        .route("/usage/stats", get(usage_stats_handler))
        .route("/usage/export", get(crate::export::export_usage_handler))
        .route("/api-keys/{id}", axum::routing::put(update_key_handler).delete(delete_key_handler))
        .route("/proxies", get(list_proxies_handler).post(create_proxy_handler))
        .route("/proxies/probe-url", get(get_probe_url_handler).put(set_probe_url_handler))
        .route("/proxies/{id}", get(get_proxy_handler).put(update_proxy_handler).delete(delete_proxy_handler))
        .route("/proxies/{id}/test", post(test_proxy_handler))
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

async fn list_accounts_handler(_: AdminAuth, State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    Ok(Envelope(accounts::list_accounts(&state.store, &state.gateway).await?))
}

async fn get_account_handler(
    _: AdminAuth,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Envelope(accounts::get_account(&state.store, &state.gateway, id).await?))
}

async fn create_account_handler(
    _: AdminAuth,
    State(state): State<AppState>,
    ApiJson(input): ApiJson<AccountInput>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Envelope(accounts::create_account(&state.store, &state.secrets, input).await?))
}

async fn update_account_handler(
    _: AdminAuth,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    ApiJson(input): ApiJson<AccountInput>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Envelope(accounts::update_account(&state.store, &state.secrets, id, input).await?))
}

async fn delete_account_handler(
    _: AdminAuth,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<impl IntoResponse, ApiError> {
    accounts::delete_account(&state.store, id).await?;
    Ok(Envelope(serde_json::Value::Null))
}

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct TestInput {
    #[serde(default)]
    model: Option<String>,
}

async fn test_account_handler(
    _: AdminAuth,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    body: axum::body::Bytes,
) -> Result<impl IntoResponse, ApiError> {
    // The body is optional: `{}`, `{"model": …}` or nothing at all.
    let input: TestInput = if body.iter().all(u8::is_ascii_whitespace) {
        TestInput::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::from(app::AppError::Invalid(e.to_string())))?
    };
    Ok(Envelope(accounts::test_account(&state.store, &state.gateway, id, input.model).await?))
}

async fn clear_account_error_handler(
    _: AdminAuth,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Envelope(accounts::clear_error(&state.store, &state.gateway, id).await?))
}

async fn clear_account_rate_limit_handler(
    _: AdminAuth,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Envelope(accounts::clear_rate_limit(&state.store, &state.gateway, id).await?))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SchedulableInput {
    schedulable: bool,
}

async fn set_account_schedulable_handler(
    _: AdminAuth,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    ApiJson(input): ApiJson<SchedulableInput>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Envelope(accounts::set_schedulable(&state.store, &state.gateway, id, input.schedulable).await?))
}

/// A page of accounts under the filters of `AccountQuery` (`GET /accounts` lists them all).
async fn search_accounts_handler(
    _: AdminAuth,
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<AccountQuery>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Envelope(accounts::query_accounts(&state.store, &state.gateway, &q).await?))
}

async fn bulk_import_accounts_handler(
    _: AdminAuth,
    State(state): State<AppState>,
    ApiJson(input): ApiJson<BulkImportInput>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Envelope(accounts::bulk_import(&state.store, &state.secrets, input).await?))
}

async fn bulk_account_status_handler(
    _: AdminAuth,
    State(state): State<AppState>,
    ApiJson(input): ApiJson<BulkStatusInput>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Envelope(accounts::bulk_set_status(&state.store, input).await?))
}

async fn list_users_handler(_: AdminAuth, State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    Ok(Envelope(users::list_users(&state.store).await?))
}

async fn get_user_handler(
    _: AdminAuth,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Envelope(users::get_user(&state.store, id).await?))
}

async fn create_user_handler(
    _: AdminAuth,
    State(state): State<AppState>,
    ApiJson(input): ApiJson<UserInput>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Envelope(users::create_user(&state.store, input).await?))
}

async fn update_user_handler(
    _: AdminAuth,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    ApiJson(input): ApiJson<UserInput>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Envelope(users::update_user(&state.store, id, input).await?))
}

async fn delete_user_handler(
    _: AdminAuth,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<impl IntoResponse, ApiError> {
    users::delete_user(&state.store, id).await?;
    Ok(Envelope(serde_json::Value::Null))
}

async fn list_user_keys_handler(
    _: AdminAuth,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Envelope(users::list_api_keys(&state.store, Some(id)).await?))
}

async fn list_all_keys_handler(_: AdminAuth, State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    Ok(Envelope(users::list_api_keys(&state.store, None).await?))
}

async fn create_user_key_handler(
    _: AdminAuth,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    ApiJson(input): ApiJson<ApiKeyInput>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Envelope(users::create_api_key(&state.store, id, input).await?))
}

async fn update_key_handler(
    _: AdminAuth,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    ApiJson(input): ApiJson<ApiKeyInput>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Envelope(users::update_api_key(&state.store, id, input).await?))
}

async fn delete_key_handler(
    _: AdminAuth,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<impl IntoResponse, ApiError> {
    users::delete_api_key(&state.store, id).await?;
    Ok(Envelope(serde_json::Value::Null))
}

/// Query string whose rejection is a 400 envelope naming the problem.
pub struct ApiQuery<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| ApiQuery(q.0))
            .map_err(|rejection| ApiError(AppError::Invalid(rejection.body_text())))
    }
}

async fn list_usage_handler(
    _: AdminAuth,
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<UsageQuery>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Envelope(usage::list_usage(&state.store, &q).await?))
}

async fn usage_stats_handler(
    _: AdminAuth,
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<UsageQuery>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Envelope(usage::usage_stats(&state.store, &q).await?))
}

async fn models_overview_handler(_: AdminAuth, State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    Ok(Envelope(app::service::models::overview(&state.store, &state.gateway).await?))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PriceQuery {
    #[serde(default)]
    q: String,
}

async fn model_prices_handler(
    _: AdminAuth,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<PriceQuery>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Envelope(app::service::models::search_prices(&state.gateway, &query.q)))
}

async fn get_settings_handler(_: AdminAuth, State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    Ok(Envelope(app::service::settings::get_settings(&state.store, &state.gateway.config).await?))
}

async fn update_settings_handler(
    _: AdminAuth,
    State(state): State<AppState>,
    ApiJson(input): ApiJson<domain::settings::SettingsInput>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Envelope(app::service::settings::update_settings(&state.store, &state.gateway.config, input).await?))
}

async fn not_found_handler() -> ApiError {
    ApiError(AppError::NotFound("route".into()))
}

async fn list_proxies_handler(_: AdminAuth, State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    Ok(Envelope(app::service::proxies::list_proxies(&state.store).await?))
}

async fn get_proxy_handler(
    _: AdminAuth,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Envelope(app::service::proxies::get_proxy(&state.store, id).await?))
}

async fn create_proxy_handler(
    _: AdminAuth,
    State(state): State<AppState>,
    ApiJson(input): ApiJson<domain::proxies::ProxyInput>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Envelope(app::service::proxies::create_proxy(&state.store, &state.secrets, input).await?))
}

async fn update_proxy_handler(
    _: AdminAuth,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    ApiJson(input): ApiJson<domain::proxies::ProxyInput>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Envelope(app::service::proxies::update_proxy(&state.store, &state.secrets, id, input).await?))
}

async fn delete_proxy_handler(
    _: AdminAuth,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<impl IntoResponse, ApiError> {
    app::service::proxies::delete_proxy(&state.store, id).await?;
    Ok(Envelope(serde_json::Value::Null))
}

async fn test_proxy_handler(
    _: AdminAuth,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Envelope(app::service::proxies::test_proxy(&state.store, &state.secrets, id).await?))
}

/// Body and answer of `/proxies/probe-url`.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ProbeUrl {
    url: String,
}

async fn get_probe_url_handler(_: AdminAuth, State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    Ok(Envelope(ProbeUrl { url: app::service::proxies::probe_url(&state.store).await? }))
}

async fn set_probe_url_handler(
    _: AdminAuth,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<ProbeUrl>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Envelope(ProbeUrl { url: app::service::proxies::set_probe_url(&state.store, &body.url).await? }))
}

/// Body of the sign-in starters. Each route implies what it leaves out: the Claude routes
/// the platform, the setup-token route the type, the OpenAI route both.
#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct SignInBody {
    #[serde(default)]
    platform: Option<domain::Platform>,
    #[serde(default, rename = "type")]
    kind: Option<domain::AccountKind>,
    #[serde(default)]
    proxy_id: Option<i64>,
}

async fn start_sign_in(
    state: &AppState,
    body: &axum::body::Bytes,
    platform: domain::Platform,
    kind: domain::AccountKind,
) -> Result<Envelope<domain::oauth::OAuthStart>, ApiError> {
    let parsed: SignInBody = if body.iter().all(u8::is_ascii_whitespace) {
        SignInBody::default()
    } else {
        serde_json::from_slice(body).map_err(|e| ApiError::from(AppError::Invalid(e.to_string())))?
    };
    let input = domain::oauth::OAuthStartInput {
        platform: parsed.platform.unwrap_or(platform),
        kind: Some(parsed.kind.unwrap_or(kind)),
        proxy_id: parsed.proxy_id,
    };
    Ok(Envelope(oauth::start_sign_in(&state.store, &state.secrets, &state.gateway, input).await?))
}

async fn generate_auth_url_handler(
    _: AdminAuth,
    State(state): State<AppState>,
    body: axum::body::Bytes,
) -> Result<impl IntoResponse, ApiError> {
    start_sign_in(&state, &body, domain::Platform::Anthropic, domain::AccountKind::OAuth).await
}

async fn generate_setup_token_url_handler(
    _: AdminAuth,
    State(state): State<AppState>,
    body: axum::body::Bytes,
) -> Result<impl IntoResponse, ApiError> {
    start_sign_in(&state, &body, domain::Platform::Anthropic, domain::AccountKind::SetupToken).await
}

async fn openai_generate_auth_url_handler(
    _: AdminAuth,
    State(state): State<AppState>,
    body: axum::body::Bytes,
) -> Result<impl IntoResponse, ApiError> {
    start_sign_in(&state, &body, domain::Platform::Openai, domain::AccountKind::OAuth).await
}

async fn exchange_code_handler(
    _: AdminAuth,
    State(state): State<AppState>,
    ApiJson(input): ApiJson<domain::oauth::OAuthExchangeInput>,
) -> Result<impl IntoResponse, ApiError> {
    let view = oauth::exchange_code(&state.store, &state.secrets, &state.gateway, input).await?;
    Ok((StatusCode::CREATED, Envelope(view)))
}

async fn refresh_account_handler(
    _: AdminAuth,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Envelope(oauth::refresh_now(&state.store, &state.gateway, id).await?))
}
