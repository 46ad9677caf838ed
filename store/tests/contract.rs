//! Repository contract: every test runs on SQLite, and on PostgreSQL when
//! `TEST_DATABASE_URL` is set (each in a fresh database that is dropped afterwards).

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code fails loudly on purpose")]

use domain::{UserRole, UserStatus};
use store::repo::NewUser;
use store::testing::TestDb;
use store::{Store, StoreError};
use time::{Duration, OffsetDateTime};

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

fn new_user(email: &str, role: UserRole) -> NewUser {
    NewUser {
        email: email.into(),
        password_hash: "$argon2id$placeholder".into(),
        role,
        status: UserStatus::Active,
        concurrency: 5,
    }
}

contract!(users_round_trip_and_unique_email, |store: Store| async move {
    let created = store.create_user(&new_user("a@example.com", UserRole::Admin)).await.expect("create");
    assert!(created.id > 0);
    assert_eq!(created.role().expect("role"), UserRole::Admin);
    let by_email = store.find_user_by_email("a@example.com").await.expect("find").expect("present");
    assert_eq!(by_email.id, created.id);
    let by_id = store.find_user(created.id).await.expect("find").expect("present");
    assert_eq!(by_id.email, "a@example.com");
    assert!(store.find_user_by_email("missing@example.com").await.expect("find").is_none());
    let dup = store.create_user(&new_user("a@example.com", UserRole::User)).await;
    assert!(matches!(dup, Err(StoreError::Conflict("user"))), "{dup:?}");
});

contract!(admin_count_and_password_change, |store: Store| async move {
    assert_eq!(store.count_active_admins().await.expect("count"), 0);
    let admin = store.create_user(&new_user("root@example.com", UserRole::Admin)).await.expect("create");
    store.create_user(&new_user("user@example.com", UserRole::User)).await.expect("create");
    assert_eq!(store.count_active_admins().await.expect("count"), 1);
    store.set_password_hash(admin.id, "$argon2id$new").await.expect("set");
    let row = store.find_user(admin.id).await.expect("find").expect("present");
    assert_eq!(row.password_hash, "$argon2id$new");
    let missing = store.set_password_hash(9_999, "x").await;
    assert!(matches!(missing, Err(StoreError::NotFound("user"))), "{missing:?}");
    let at = OffsetDateTime::now_utc();
    store.record_login(admin.id, at).await.expect("login");
    let row = store.find_user(admin.id).await.expect("find").expect("present");
    assert_eq!(row.last_login_at.map(|t| t.unix_timestamp()), Some(at.unix_timestamp()));
});

contract!(settings_upsert_and_delete, |store: Store| async move {
    assert_eq!(store.get_setting("site_name").await.expect("get"), None);
    store.put_setting("site_name", "one").await.expect("put");
    store.put_setting("site_name", "two").await.expect("put again");
    assert_eq!(store.get_setting("site_name").await.expect("get").as_deref(), Some("two"));
    assert!(store.delete_setting("site_name").await.expect("delete"));
    assert!(!store.delete_setting("site_name").await.expect("delete twice"));
});

contract!(sessions_expire, |store: Store| async move {
    let now = OffsetDateTime::now_utc();
    assert!(store.insert_session("s1", b"{}", now + Duration::hours(1)).await.expect("insert"));
    assert!(!store.insert_session("s1", b"{}", now + Duration::hours(1)).await.expect("dup insert"));
    store.upsert_session("s1", b"{\"a\":1}", now + Duration::hours(1)).await.expect("upsert");
    assert_eq!(store.load_session("s1", now).await.expect("load").as_deref(), Some(&b"{\"a\":1}"[..]));
    store.upsert_session("old", b"{}", now - Duration::seconds(5)).await.expect("upsert old");
    assert_eq!(store.load_session("old", now).await.expect("load"), None, "expired sessions never load");
    assert_eq!(store.delete_expired_sessions(now).await.expect("purge"), 1);
    store.delete_session("s1").await.expect("delete");
    assert_eq!(store.load_session("s1", now).await.expect("load"), None);
});

contract!(dashboard_counts_reflect_rows, |store: Store| async move {
    let empty = store.dashboard_stats(OffsetDateTime::now_utc()).await.expect("stats");
    assert_eq!(empty, domain::DashboardStats::default());
    store.create_user(&new_user("a@example.com", UserRole::Admin)).await.expect("create");
    store.create_user(&new_user("b@example.com", UserRole::User)).await.expect("create");
    let stats = store.dashboard_stats(OffsetDateTime::now_utc()).await.expect("stats");
    assert_eq!(stats.total_users, 2);
    assert_eq!(stats.accounts.total, 0);
});

contract!(ping_and_pool_stats, |store: Store| async move {
    store.ping().await.expect("ping");
    let stats = store.pool_stats();
    assert!(stats.max >= 1 && stats.size <= stats.max, "{stats:?}");
});

fn group(name: &str, platform: domain::Platform) -> domain::GroupFields {
    domain::GroupFields { name: name.into(), description: String::new(), platform, rate_multiplier: 1.0 }
}

contract!(groups_crud_and_counts, |store: Store| async move {
    let created = store.create_group(&group("claude", domain::Platform::Anthropic)).await.expect("create");
    assert_eq!(created.platform, "anthropic");
    assert_eq!((created.account_count, created.api_key_count), (0, 0));
    let dup = store.create_group(&group("claude", domain::Platform::Openai)).await;
    assert!(matches!(dup, Err(StoreError::Conflict("group"))), "{dup:?}");

    let mut fields = created.fields().expect("fields");
    fields.rate_multiplier = 1.5;
    fields.description = "pro accounts".into();
    let updated = store.update_group(created.id, &fields).await.expect("update");
    assert_eq!(updated.rate_multiplier, 1.5);
    assert_eq!(updated.view().expect("view").description, "pro accounts");
    let missing = store.update_group(9_999, &fields).await;
    assert!(matches!(missing, Err(StoreError::NotFound("group"))), "{missing:?}");

    store.create_group(&group("gpt", domain::Platform::Openai)).await.expect("second");
    let names: Vec<String> = store.list_groups().await.expect("list").into_iter().map(|g| g.name).collect();
    assert_eq!(names, ["claude", "gpt"]);
    assert_eq!(store.dashboard_stats(OffsetDateTime::now_utc()).await.expect("stats").total_groups, 2);

    assert!(store.delete_group(created.id).await.expect("delete"));
    assert!(!store.delete_group(created.id).await.expect("delete twice"));
    assert!(store.find_group(created.id).await.expect("find").is_none());
});
