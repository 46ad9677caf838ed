//! The one error type every server function returns. It crosses the wire as JSON, so the
//! browser can tell "sign in again" from "fix the form" from "try later".

use leptos::server_fn::codec::JsonEncoding;
use leptos::server_fn::error::{FromServerFnError, ServerFnErrorErr};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum AppError {
    #[error("please sign in")]
    Unauthorized,
    #[error("invalid API key")]
    InvalidApiKey,
    #[error("wrong email or password")]
    BadCredentials,
    #[error("too many failed sign-ins; try again in {0} s")]
    TooManyAttempts(u64),
    #[error("{0}")]
    Invalid(String),
    #[error("{0} not found")]
    NotFound(String),
    /// Details went to the server log; the browser only learns that it failed.
    #[error("internal error; see the server log")]
    Internal,
    #[error("request failed: {0}")]
    Transport(String),
}

impl AppError {
    /// HTTP status for the REST API and for the server-function response.
    pub fn status(&self) -> u16 {
        match self {
            AppError::Unauthorized | AppError::InvalidApiKey | AppError::BadCredentials => 401,
            AppError::TooManyAttempts(_) => 429,
            AppError::Invalid(_) => 400,
            AppError::NotFound(_) => 404,
            AppError::Internal | AppError::Transport(_) => 500,
        }
    }
}

impl FromServerFnError for AppError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        match value {
            ServerFnErrorErr::Args(msg) | ServerFnErrorErr::MissingArg(msg) => AppError::Invalid(msg),
            other => AppError::Transport(other.to_string()),
        }
    }
}

#[cfg(feature = "ssr")]
impl From<store::StoreError> for AppError {
    fn from(err: store::StoreError) -> Self {
        match err {
            store::StoreError::NotFound(what) => AppError::NotFound(what.to_owned()),
            store::StoreError::Conflict(what) => AppError::Invalid(format!("{what} already exists")),
            other => {
                tracing::error!(error = %other, "storage error");
                AppError::Internal
            }
        }
    }
}
