//! `ProxyRepo` contract: every test runs on SQLite, and on PostgreSQL when
//! `TEST_DATABASE_URL` is set (each in a fresh database that is dropped afterwards).

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code fails loudly on purpose")]

use domain::proxies::{ProxyFields, ProxyProtocol, ProxyStatus};
use store::testing::TestDb;
use store::{NewAccount, NewProxy, Store, StoreError};

/// Expands `contract!(name, |store| async { … })` into `name::sqlite` and `name::postgres`.
macro_rules! contract {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;

            #[tokio::test]
            async fn sqlite() {
                let db = TestDb::sqlite().await;
                ($body)(db.store.clone()).await;
            }

            #[tokio::test]
            async fn postgres() {
                let Some(db) = TestDb::postgres().await else {
                    eprintln!("TEST_DATABASE_URL not set: PostgreSQL variant not run");
                    return;
                };
                ($body)(db.store.clone()).await;
            }
        }
    };
}

fn new_proxy(name: &str, sealed_password: &str) -> NewProxy {
    NewProxy {
        fields: ProxyFields {
            name: name.into(),
            protocol: ProxyProtocol::Socks5h,
            host: "proxy.example.com".into(),
            port: 1080,
            username: "user".into(),
            password: None,
            status: ProxyStatus::Active,
        },
        password_encrypted: sealed_password.into(),
    }
}

fn account_using(name: &str, proxy_id: Option<i64>) -> NewAccount {
    NewAccount {
        name: name.into(),
        notes: String::new(),
        platform: "anthropic".into(),
        kind: "apikey".into(),
        credentials_encrypted: "v1:sealed".into(),
        extra: "{}".into(),
        model_mapping: "{}".into(),
        proxy_id,
        concurrency: 1,
        priority: 50,
        schedulable: true,
        group_ids: Vec::new(),
    }
}

contract!(proxies_round_trip, |store: Store| async move {
    let created = store.create_proxy(&new_proxy("office", "v1:pw")).await.expect("create");
    assert!(created.id > 0);
    assert_eq!(created.password_encrypted, "v1:pw");
    assert_eq!(created.account_count, 0);
    let fields = created.fields().expect("fields");
    assert_eq!((fields.protocol, fields.port, fields.status), (ProxyProtocol::Socks5h, 1080, ProxyStatus::Active));
    assert_eq!(fields.password, None, "the sealed password never becomes a field");

    let found = store.find_proxy(created.id).await.expect("find").expect("present");
    assert_eq!((found.name.as_str(), found.host.as_str()), ("office", "proxy.example.com"));
    assert!(store.find_proxy(created.id + 1000).await.expect("find").is_none());

    let mut change = new_proxy("office 2", "");
    change.fields.protocol = ProxyProtocol::Http;
    change.fields.port = 65_535;
    change.fields.status = ProxyStatus::Disabled;
    let updated = store.update_proxy(created.id, &change).await.expect("update");
    assert_eq!(
        (updated.name.as_str(), updated.protocol.as_str(), updated.port, updated.status.as_str()),
        ("office 2", "http", 65_535, "disabled")
    );
    assert_eq!(updated.password_encrypted, "");
    let missing = store.update_proxy(created.id + 1000, &change).await;
    assert!(matches!(missing, Err(StoreError::NotFound("proxy"))), "{missing:?}");
});

contract!(proxies_count_accounts_and_deleting_one_leaves_its_accounts_direct, |store: Store| async move {
    let a = store.create_proxy(&new_proxy("a", "")).await.expect("create a");
    let b = store.create_proxy(&new_proxy("b", "")).await.expect("create b");
    let first = store.create_account(&account_using("first", Some(a.id))).await.expect("account");
    store.create_account(&account_using("second", Some(a.id))).await.expect("account");
    store.create_account(&account_using("direct", None)).await.expect("account");

    let listed = store.list_proxies().await.expect("list");
    let counts: Vec<(i64, i64)> = listed.iter().map(|p| (p.id, p.account_count)).collect();
    assert_eq!(counts, vec![(a.id, 2), (b.id, 0)], "by id, with account counts");

    assert!(store.delete_proxy(a.id).await.expect("delete"));
    assert!(!store.delete_proxy(a.id).await.expect("delete again"), "already gone");
    let account = store.find_account(first.id).await.expect("find").expect("the account stays");
    assert_eq!(account.proxy_id, None, "ON DELETE SET NULL: the account goes direct");
    assert_eq!(store.list_proxies().await.expect("list").len(), 1);
});
