//! The gateway's in-process view of keys, users, groups and accounts, so the hot path never
//! reads the database. A `Snapshot` is immutable; `SnapshotCell::refresh` builds a new one
//! from the store and swaps it in (after admin changes, and periodically as a safety net).
//!
//! It must not hold anything that changes per request (slots, cooldowns set at run time):
//! that lives in the `Coordinator`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use domain::{AccountKind, AccountStatus, ApiKeyStatus, Platform, UserStatus};
use store::cipher::SecretBox;
use store::credentials::{AccountExtra, StoredCredentials};
use store::{Store, StoreError};
use time::OffsetDateTime;

use crate::outbound::ProxyTarget;

#[derive(Debug, Clone)]
pub struct KeyEntry {
    pub id: i64,
    pub user_id: i64,
    pub group_id: Option<i64>,
    pub status: ApiKeyStatus,
    pub concurrency: i32,
    pub expires_at: Option<OffsetDateTime>,
}

#[derive(Debug, Clone)]
pub struct UserEntry {
    pub id: i64,
    pub status: UserStatus,
    pub concurrency: i32,
}

#[derive(Debug, Clone)]
pub struct GroupEntry {
    pub id: i64,
    pub name: String,
    pub platform: Platform,
    pub rate_multiplier: f64,
    /// Member accounts, by id.
    pub account_ids: Vec<i64>,
}

/// An account ready to serve: its credential already opened.
#[derive(Clone)]
pub struct AccountEntry {
    pub id: i64,
    pub name: String,
    pub platform: Platform,
    pub kind: AccountKind,
    pub api_key: String,
    pub base_url: Option<String>,
    pub model_mapping: BTreeMap<String, String>,
    pub concurrency: i32,
    pub priority: i32,
    pub status: AccountStatus,
    pub schedulable: bool,
    pub rate_limit_reset_at: Option<OffsetDateTime>,
    pub overload_until: Option<OffsetDateTime>,
    pub last_used_at: Option<OffsetDateTime>,
    /// The outbound proxy its upstream traffic must go through; `None`: direct.
    pub proxy: Option<Arc<ProxyTarget>>,
    /// OAuth / setup-token accounts: their grant (`api_key` then holds the access token).
    pub oauth: Option<Arc<OAuthEntry>>,
}

/// What the relay needs to know about an OAuth grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthEntry {
    /// Unix seconds; 0 unknown.
    pub expires_at: i64,
    pub refreshable: bool,
    /// The provider's account id (Claude account uuid, ChatGPT account id).
    pub account_uuid: Option<String>,
    /// Google accounts: the Code Assist project their requests bill to.
    pub project_id: Option<String>,
}

impl std::fmt::Debug for AccountEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountEntry").field("id", &self.id).field("name", &self.name).finish_non_exhaustive()
    }
}

/// Everything the hot path needs, as of one load.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    /// By SHA-256 of the key.
    pub keys: HashMap<String, KeyEntry>,
    pub users: HashMap<i64, UserEntry>,
    pub groups: HashMap<i64, GroupEntry>,
    pub accounts: HashMap<i64, AccountEntry>,
    /// Active proxies whose password could be opened, by id.
    pub proxies: HashMap<i64, Arc<ProxyTarget>>,
    /// Relay tunables an administrator changed at run time.
    pub settings: domain::settings::GatewayOverrides,
}

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("stored value is invalid: {0}")]
    Corrupt(String),
}

fn corrupt(what: impl std::fmt::Display) -> SnapshotError {
    SnapshotError::Corrupt(what.to_string())
}

impl Snapshot {
    /// Reads every key, user, group, proxy and account. Accounts whose credential cannot be
    /// opened are left out (and logged): they cannot serve anyway. So are accounts whose proxy
    /// is disabled, missing or unreadable: sending their traffic direct instead could expose
    /// the operator's address or break the upstream's terms, so they do not serve at all.
    pub async fn load(store: &Store, secrets: &SecretBox) -> Result<Snapshot, SnapshotError> {
        let mut snap = Snapshot::default();
        let mut stored = Vec::new();
        for key in domain::settings::keys::GATEWAY {
            if let Some(value) = store.get_setting(key).await? {
                stored.push((*key, value));
            }
        }
        snap.settings = domain::settings::GatewayOverrides::from_pairs(stored.iter().map(|(k, v)| (*k, v.as_str())));
        for u in store.list_users().await? {
            let status = u.status()?;
            snap.users.insert(u.id, UserEntry { id: u.id, status, concurrency: u.concurrency });
        }
        for k in store.list_api_keys(None).await? {
            let status = k.status.parse().map_err(corrupt)?;
            let entry = KeyEntry {
                id: k.id,
                user_id: k.user_id,
                group_id: k.group_id,
                status,
                concurrency: k.concurrency,
                expires_at: k.expires_at,
            };
            snap.keys.insert(k.key_hash, entry);
        }
        for g in store.list_groups().await? {
            let entry = GroupEntry {
                id: g.id,
                name: g.name.clone(),
                platform: g.platform.parse().map_err(corrupt)?,
                rate_multiplier: g.rate_multiplier,
                account_ids: Vec::new(),
            };
            snap.groups.insert(g.id, entry);
        }
        let mut unusable_proxies = HashMap::new();
        for p in store.list_proxies().await? {
            match proxy_target(&p, secrets) {
                Ok(target) => {
                    snap.proxies.insert(p.id, Arc::new(target));
                }
                Err(reason) => {
                    unusable_proxies.insert(p.id, reason);
                }
            }
        }
        for a in store.list_accounts().await? {
            let proxy = match a.proxy_id {
                None => None,
                Some(proxy_id) => match snap.proxies.get(&proxy_id) {
                    Some(target) => Some(Arc::clone(target)),
                    None => {
                        let reason = unusable_proxies.get(&proxy_id).copied().unwrap_or(ProxyProblem::Missing);
                        reason.log(a.id, proxy_id);
                        continue;
                    }
                },
            };
            let credentials = match StoredCredentials::open(secrets, &a.credentials_encrypted) {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(account_id = a.id, error = %e, "account left out: its credential cannot be opened");
                    continue;
                }
            };
            let extra: AccountExtra = serde_json::from_str(&a.extra).map_err(corrupt)?;
            let oauth = credentials
                .oauth
                .as_ref()
                .map(|tokens| Arc::new(crate::oauth::keeper::entry_of(tokens, extra.oauth.as_ref())));
            let secret = match &credentials.oauth {
                Some(tokens) => tokens.access_token.clone(),
                None => credentials.api_key,
            };
            let entry = AccountEntry {
                id: a.id,
                name: a.name.clone(),
                platform: a.platform.parse().map_err(corrupt)?,
                kind: a.kind.parse().map_err(corrupt)?,
                api_key: secret,
                base_url: extra.base_url,
                model_mapping: serde_json::from_str(&a.model_mapping).map_err(corrupt)?,
                concurrency: a.concurrency,
                priority: a.priority,
                status: a.status.parse().map_err(corrupt)?,
                schedulable: a.schedulable,
                rate_limit_reset_at: a.rate_limit_reset_at,
                overload_until: a.overload_until,
                last_used_at: a.last_used_at,
                proxy,
                oauth,
            };
            snap.accounts.insert(a.id, entry);
        }
        for (account_id, group_id) in store.account_memberships().await? {
            if let (Some(group), true) = (snap.groups.get_mut(&group_id), snap.accounts.contains_key(&account_id)) {
                group.account_ids.push(account_id);
            }
        }
        Ok(snap)
    }
}

/// Why a proxy cannot carry its accounts' traffic.
#[derive(Debug, Clone, Copy)]
enum ProxyProblem {
    Disabled,
    Missing,
    Unreadable,
}

impl ProxyProblem {
    fn log(self, account_id: i64, proxy_id: i64) {
        match self {
            // An administrator's choice: not worth a warning on every reload.
            ProxyProblem::Disabled => {
                tracing::debug!(account_id, proxy_id, "account left out: its proxy is disabled");
            }
            ProxyProblem::Missing => {
                tracing::warn!(account_id, proxy_id, "account left out: its proxy does not exist");
            }
            ProxyProblem::Unreadable => {
                tracing::error!(account_id, proxy_id, "account left out: its proxy cannot be read");
            }
        }
    }
}

/// The proxy as the gateway connects to it, password opened; only active proxies qualify.
fn proxy_target(row: &store::ProxyRow, secrets: &SecretBox) -> Result<ProxyTarget, ProxyProblem> {
    let fields = row.fields().map_err(|e| {
        tracing::error!(proxy_id = row.id, error = %e, "stored proxy is invalid");
        ProxyProblem::Unreadable
    })?;
    if fields.status != domain::proxies::ProxyStatus::Active {
        return Err(ProxyProblem::Disabled);
    }
    let password = match row.password_encrypted.as_str() {
        "" => String::new(),
        sealed => secrets.open_string(sealed).map_err(|e| {
            tracing::error!(proxy_id = row.id, error = %e, "proxy password cannot be opened");
            ProxyProblem::Unreadable
        })?,
    };
    Ok(ProxyTarget {
        protocol: fields.protocol,
        host: fields.host,
        port: fields.port,
        username: fields.username,
        password,
    })
}

/// The current snapshot, swapped atomically on refresh. Readers take an `Arc` and never block
/// a refresh for longer than a pointer copy.
pub struct SnapshotCell {
    store: Store,
    secrets: SecretBox,
    /// A std lock: held only to clone or replace the `Arc`, never across `.await`.
    current: RwLock<Arc<Snapshot>>,
}

impl SnapshotCell {
    pub async fn load(store: Store, secrets: SecretBox) -> Result<SnapshotCell, SnapshotError> {
        let snap = Snapshot::load(&store, &secrets).await?;
        Ok(SnapshotCell { store, secrets, current: RwLock::new(Arc::new(snap)) })
    }

    /// The key credentials are sealed with.
    pub fn secrets(&self) -> &SecretBox {
        &self.secrets
    }

    pub fn current(&self) -> Arc<Snapshot> {
        self.current.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Applies a change the gateway itself just wrote to the store (an account put in the
    /// error state), so the next request sees it without waiting for a full reload.
    pub fn update(&self, change: impl FnOnce(&mut Snapshot)) {
        let mut guard = self.current.write().unwrap_or_else(|p| p.into_inner());
        let mut next = Snapshot::clone(&guard);
        change(&mut next);
        *guard = Arc::new(next);
    }

    /// Rebuilds from the store; on failure the previous snapshot stays in place.
    pub async fn refresh(&self) -> Result<(), SnapshotError> {
        let snap = Arc::new(Snapshot::load(&self.store, &self.secrets).await?);
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = snap;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use store::testing::TestDb;

    #[tokio::test]
    async fn loads_open_credentials_and_memberships_and_refreshes() {
        let db = TestDb::sqlite().await;
        let secrets = SecretBox::from_key_text(&"ab".repeat(32)).unwrap();
        let other = SecretBox::from_key_text(&"cd".repeat(32)).unwrap();
        let group = domain::GroupFields {
            name: "g".into(),
            description: String::new(),
            platform: Platform::Anthropic,
            rate_multiplier: 1.5,
        };
        let g = db.store.create_group(&group).await.unwrap();
        let account = |name: &str, sealed: String| store::NewAccount {
            name: name.into(),
            notes: String::new(),
            platform: "anthropic".into(),
            kind: "apikey".into(),
            credentials_encrypted: sealed,
            extra: r#"{"base_url":"http://127.0.0.1:1"}"#.into(),
            model_mapping: "{}".into(),
            proxy_id: None,
            concurrency: 2,
            priority: 10,
            schedulable: true,
            group_ids: vec![g.id],
        };
        let good = db
            .store
            .create_account(&account("good", StoredCredentials::api_key("sk-ant-good").seal(&secrets)))
            .await
            .unwrap();
        db.store.create_account(&account("foreign", StoredCredentials::api_key("x").seal(&other))).await.unwrap();

        let cell = SnapshotCell::load(db.store.clone(), secrets).await.unwrap();
        let snap = cell.current();
        assert_eq!(snap.accounts.len(), 1, "an account sealed with another key is left out");
        let entry = &snap.accounts[&good.id];
        assert_eq!((entry.api_key.as_str(), entry.base_url.as_deref()), ("sk-ant-good", Some("http://127.0.0.1:1")));
        assert!(!format!("{entry:?}").contains("sk-ant"), "Debug never shows the credential");
        assert_eq!(snap.groups[&g.id].account_ids, vec![good.id]);
        assert_eq!(snap.groups[&g.id].rate_multiplier, 1.5);

        db.store.delete_account(good.id).await.unwrap();
        assert_eq!(cell.current().accounts.len(), 1, "unchanged until refreshed");
        cell.refresh().await.unwrap();
        assert!(cell.current().accounts.is_empty());
        assert!(cell.current().groups[&g.id].account_ids.is_empty());
    }

    #[tokio::test]
    async fn accounts_get_their_proxy_or_are_left_out_but_never_go_direct() {
        use domain::proxies::{ProxyFields, ProxyProtocol, ProxyStatus};

        let db = TestDb::sqlite().await;
        let secrets = SecretBox::from_key_text(&"ab".repeat(32)).unwrap();
        let other = SecretBox::from_key_text(&"cd".repeat(32)).unwrap();
        let proxy = |status: ProxyStatus, sealed: String| store::NewProxy {
            fields: ProxyFields {
                name: "p".into(),
                protocol: ProxyProtocol::Socks5,
                host: "10.0.0.1".into(),
                port: 1080,
                username: "u".into(),
                password: None,
                status,
            },
            password_encrypted: sealed,
        };
        let working = db.store.create_proxy(&proxy(ProxyStatus::Active, secrets.seal_str("pw"))).await.unwrap();
        let disabled = db.store.create_proxy(&proxy(ProxyStatus::Disabled, secrets.seal_str("pw"))).await.unwrap();
        let foreign = db.store.create_proxy(&proxy(ProxyStatus::Active, other.seal_str("pw"))).await.unwrap();
        let account = |name: &str, proxy_id: Option<i64>| store::NewAccount {
            name: name.into(),
            notes: String::new(),
            platform: "anthropic".into(),
            kind: "apikey".into(),
            credentials_encrypted: StoredCredentials::api_key("sk").seal(&secrets),
            extra: "{}".into(),
            model_mapping: "{}".into(),
            proxy_id,
            concurrency: 1,
            priority: 1,
            schedulable: true,
            group_ids: Vec::new(),
        };
        let direct = db.store.create_account(&account("direct", None)).await.unwrap();
        let proxied = db.store.create_account(&account("proxied", Some(working.id))).await.unwrap();
        db.store.create_account(&account("held", Some(disabled.id))).await.unwrap();
        db.store.create_account(&account("unreadable", Some(foreign.id))).await.unwrap();

        let snap = Snapshot::load(&db.store, &secrets).await.unwrap();
        let mut ids: Vec<i64> = snap.accounts.keys().copied().collect();
        ids.sort_unstable();
        assert_eq!(ids, vec![direct.id, proxied.id], "disabled or unreadable proxy: the account does not serve");
        assert!(snap.accounts[&direct.id].proxy.is_none());
        let target = snap.accounts[&proxied.id].proxy.as_deref().unwrap();
        assert_eq!((target.address().as_str(), target.password.as_str()), ("socks5://10.0.0.1:1080", "pw"));
        assert_eq!(snap.proxies.len(), 1);
    }
}
