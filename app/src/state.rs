//! What server functions and admin handlers share at run time.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::FromRef;
use leptos::prelude::LeptosOptions;
use store::Store;
use store::coord::LoginThrottle;

/// Cheap to clone: every field is a handle.
#[derive(Clone)]
pub struct AppState {
    pub leptos_options: LeptosOptions,
    pub store: Store,
    pub throttle: Arc<LoginThrottle>,
    /// Seals and opens upstream credentials stored in the database.
    pub secrets: store::cipher::SecretBox,
    /// The relay: its snapshot is reloaded after admin changes; in-flight counts, cooldowns
    /// and account tests go through it.
    pub gateway: Arc<proxy::gateway::Gateway>,
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos_options.clone()
    }
}

/// The caller's address as the server decided to trust it (peer address, or the forwarded
/// header when the operator enabled it). Put into request extensions by the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);
