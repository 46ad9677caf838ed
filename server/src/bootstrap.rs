//! First-run and maintenance tasks on the user table: the bootstrap admin, password resets,
//! and the admin API key fixed from the environment.

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use domain::{UserRole, UserStatus};
use store::Store;
use store::repo::NewUser;
use store::secret::{hash_password, random_password};

/// Email of the bootstrap admin when `SUB2API_ADMIN_EMAIL` is not set.
pub const DEFAULT_ADMIN_EMAIL: &str = "admin@localhost";

/// The outcome of `ensure_admin`, so the caller can tell people how to sign in.
#[derive(Debug, PartialEq, Eq)]
pub enum AdminBootstrap {
    /// An active admin already existed.
    Existing,
    /// An admin was created; `generated_password` is set when nobody chose one.
    Created { email: String, generated_password: Option<String> },
}

/// Creates the first admin when no active admin exists, from `SUB2API_ADMIN_EMAIL` /
/// `SUB2API_ADMIN_PASSWORD` or with a generated password.
pub async fn ensure_admin(store: &Store, env: &BTreeMap<String, String>) -> anyhow::Result<AdminBootstrap> {
    if store.count_active_admins().await? > 0 {
        return Ok(AdminBootstrap::Existing);
    }
    let raw_email = env.get("SUB2API_ADMIN_EMAIL").map_or(DEFAULT_ADMIN_EMAIL, String::as_str);
    let email = domain::validate_email(raw_email).map_err(|e| anyhow::anyhow!("SUB2API_ADMIN_EMAIL: {e}"))?;
    let (password, generated) = match env.get("SUB2API_ADMIN_PASSWORD").filter(|p| !p.is_empty()) {
        Some(p) => {
            domain::validate_password(p).map_err(|e| anyhow::anyhow!("SUB2API_ADMIN_PASSWORD: {e}"))?;
            (p.clone(), false)
        }
        None => (random_password(20), true),
    };
    let password_hash = hash(&password).await?;
    let user = NewUser {
        email: email.clone(),
        password_hash,
        role: UserRole::Admin,
        status: UserStatus::Active,
        concurrency: 5,
    };
    match store.create_user(&user).await {
        Ok(_) => {}
        Err(store::StoreError::Conflict(_)) => {
            bail!(
                "{email} exists but is not an active admin; run `sub2api admin reset-password --make-admin --email {email}` or set SUB2API_ADMIN_EMAIL"
            )
        }
        Err(e) => return Err(e.into()),
    }
    Ok(AdminBootstrap::Created { email, generated_password: generated.then_some(password) })
}

/// Sets a user's password; returns the password (generated when `password` is `None`).
/// With `make_admin`, the user also becomes an active administrator.
pub async fn reset_password(
    store: &Store,
    email: &str,
    password: Option<String>,
    make_admin: bool,
) -> anyhow::Result<String> {
    let email = domain::validate_email(email).map_err(|e| anyhow::anyhow!("--email: {e}"))?;
    let user = store.find_user_by_email(&email).await?.with_context(|| format!("no user with email {email}"))?;
    let password = match password.filter(|p| !p.is_empty()) {
        Some(p) => {
            domain::validate_password(&p).map_err(|e| anyhow::anyhow!("--password: {e}"))?;
            p
        }
        None => random_password(20),
    };
    store.set_password_hash(user.id, &hash(&password).await?).await?;
    if make_admin {
        let update = store::UserUpdate {
            email: user.email.clone(),
            role: UserRole::Admin,
            status: UserStatus::Active,
            concurrency: user.concurrency,
        };
        store.update_user(user.id, &update).await?;
    }
    Ok(password)
}

/// Installs `SUB2API_ADMIN_API_KEY` as the admin API key when it is set.
pub async fn install_admin_api_key(store: &Store, env: &BTreeMap<String, String>) -> anyhow::Result<bool> {
    let Some(key) = env.get("SUB2API_ADMIN_API_KEY").filter(|k| !k.is_empty()) else {
        return Ok(false);
    };
    app::service::admin_key::install(store, key).await.map_err(|e| anyhow::anyhow!("SUB2API_ADMIN_API_KEY: {e}"))?;
    Ok(true)
}

async fn hash(password: &str) -> anyhow::Result<String> {
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || hash_password(&password))
        .await?
        .map_err(|e| anyhow::anyhow!("hashing the password failed: {e}"))
}
