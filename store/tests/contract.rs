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

fn new_account(name: &str, group_ids: Vec<i64>) -> store::NewAccount {
    store::NewAccount {
        name: name.into(),
        notes: String::new(),
        platform: "anthropic".into(),
        kind: "apikey".into(),
        credentials_encrypted: "v1:sealed".into(),
        extra: "{}".into(),
        model_mapping: r#"{"claude-x":"claude-y"}"#.into(),
        proxy_id: None,
        concurrency: 3,
        priority: 50,
        schedulable: true,
        group_ids,
    }
}

contract!(accounts_crud_memberships_and_health, |store: Store| async move {
    let g1 = store.create_group(&group("g1", domain::Platform::Anthropic)).await.expect("g1").id;
    let g2 = store.create_group(&group("g2", domain::Platform::Anthropic)).await.expect("g2").id;
    let a = store.create_account(&new_account("a", vec![g1, g2])).await.expect("create");
    assert_eq!((a.kind.as_str(), a.status.as_str(), a.schedulable), ("apikey", "active", true));
    assert_eq!(a.credentials_encrypted, "v1:sealed");
    let b = store.create_account(&new_account("b", vec![g1])).await.expect("create b");
    assert_eq!(store.account_memberships().await.expect("members"), vec![(a.id, g1), (a.id, g2), (b.id, g1)]);
    assert_eq!(store.find_group(g1).await.expect("g").expect("g").account_count, 2);

    let mut update = new_account("a2", vec![g2]);
    update.priority = 10;
    let a2 = store.update_account(a.id, &update).await.expect("update");
    assert_eq!((a2.name.as_str(), a2.priority), ("a2", 10));
    assert_eq!(store.account_memberships().await.expect("members"), vec![(a.id, g2), (b.id, g1)]);

    store.set_account_status(a.id, "error", "401 Unauthorized: invalid x-api-key").await.expect("error");
    let until = OffsetDateTime::now_utc() + Duration::seconds(90);
    store.set_account_cooldowns(b.id, Some(until), None).await.expect("cooldown");
    let stats = store.dashboard_stats(OffsetDateTime::now_utc()).await.expect("stats");
    assert_eq!((stats.accounts.total, stats.accounts.error, stats.accounts.rate_limited), (2, 1, 1));
    let b_row = store.find_account(b.id).await.expect("find").expect("b");
    assert_eq!(b_row.rate_limit_reset_at.map(|t| t.unix_timestamp()), Some(until.unix_timestamp()));
    store.set_account_cooldowns(b.id, None, None).await.expect("clear");
    assert!(store.find_account(b.id).await.expect("find").expect("b").rate_limit_reset_at.is_none());
    store.set_account_schedulable(b.id, false).await.expect("schedulable");
    store.touch_accounts_used(&[b.id], OffsetDateTime::now_utc()).await.expect("touch");
    let b_row = store.find_account(b.id).await.expect("find").expect("b");
    assert!(!b_row.schedulable && b_row.last_used_at.is_some());
    let missing = store.set_account_status(9_999, "active", "").await;
    assert!(matches!(missing, Err(StoreError::NotFound("account"))), "{missing:?}");

    assert!(store.delete_account(a.id).await.expect("delete"));
    assert_eq!(store.account_memberships().await.expect("members"), vec![(b.id, g1)]);
    assert!(store.delete_group(g1).await.expect("delete group"));
    assert!(store.account_memberships().await.expect("members").is_empty(), "memberships follow the group");
    assert_eq!(store.list_accounts().await.expect("list").len(), 1);
});

contract!(users_update_list_and_delete_cascades_keys, |store: Store| async move {
    let u = store.create_user(&new_user("u@example.com", UserRole::User)).await.expect("create");
    let other = store.create_user(&new_user("o@example.com", UserRole::User)).await.expect("create");
    let fields = store::ApiKeyFields {
        name: "laptop".into(),
        group_id: None,
        status: domain::ApiKeyStatus::Active,
        concurrency: 0,
        expires_at: Some(OffsetDateTime::now_utc() + Duration::days(30)),
    };
    let key = store.create_api_key(u.id, "hash-1", "sk-abcd", &fields).await.expect("key");
    assert_eq!((key.key_prefix.as_str(), key.status.as_str()), ("sk-abcd", "active"));
    let dup = store.create_api_key(u.id, "hash-1", "sk-abcd", &fields).await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");
    store.create_api_key(other.id, "hash-2", "sk-efgh", &fields).await.expect("key 2");
    assert_eq!(store.find_api_key_by_hash("hash-1").await.expect("find").map(|k| k.id), Some(key.id));
    assert_eq!(store.list_api_keys(Some(u.id)).await.expect("list").len(), 1);
    assert_eq!(store.list_api_keys(None).await.expect("list").len(), 2);

    let g = store.create_group(&group("g", domain::Platform::Anthropic)).await.expect("group");
    let moved = store
        .update_api_key(
            key.id,
            &store::ApiKeyFields {
                group_id: Some(g.id),
                status: domain::ApiKeyStatus::Disabled,
                concurrency: 4,
                expires_at: None,
                ..fields
            },
        )
        .await
        .expect("update");
    assert_eq!((moved.group_id, moved.status.as_str(), moved.expires_at), (Some(g.id), "disabled", None));
    assert_eq!(moved.concurrency, 4);
    let used_at = OffsetDateTime::now_utc().replace_nanosecond(0).expect("whole second");
    store.touch_api_keys_used(&[key.id], used_at).await.expect("touch");
    assert_eq!(store.find_api_key(key.id).await.expect("find").expect("key").last_used_at, Some(used_at));
    assert_eq!(store.find_group(g.id).await.expect("g").expect("g").api_key_count, 1);
    assert!(store.delete_group(g.id).await.expect("delete group"));
    assert_eq!(store.find_api_key(key.id).await.expect("find").expect("kept").group_id, None, "keys become ungrouped");

    let update = store::UserUpdate {
        email: "u2@example.com".into(),
        role: UserRole::Admin,
        status: UserStatus::Disabled,
        concurrency: 9,
    };
    let updated = store.update_user(u.id, &update).await.expect("update");
    assert_eq!((updated.email.as_str(), updated.concurrency), ("u2@example.com", 9));
    let clash = store.update_user(u.id, &store::UserUpdate { email: "o@example.com".into(), ..update.clone() }).await;
    assert!(matches!(clash, Err(StoreError::Conflict("user"))), "{clash:?}");
    assert_eq!(store.list_users().await.expect("list").len(), 2);
    assert!(store.delete_user(u.id).await.expect("delete"));
    assert!(store.find_api_key(key.id).await.expect("find").is_none(), "keys go with their user");
    let missing = store.update_user(u.id, &update).await;
    assert!(matches!(missing, Err(StoreError::NotFound("user"))), "{missing:?}");
});

fn usage(request_id: &str, user_id: i64, model: &str, created_at: OffsetDateTime) -> store::NewUsage {
    store::NewUsage {
        request_id: request_id.into(),
        user_id: Some(user_id),
        api_key_id: Some(10 + user_id),
        account_id: Some(100),
        group_id: None,
        requested_model: model.into(),
        upstream_model: model.into(),
        input_tokens: 100,
        output_tokens: 20,
        cache_creation_tokens: 30,
        cache_creation_5m_tokens: 10,
        cache_creation_1h_tokens: 20,
        cache_read_tokens: 5,
        input_cost: 0.0003,
        output_cost: 0.0003,
        cache_creation_cost: 0.0001,
        cache_read_cost: 0.000_001_5,
        total_cost: 0.000_701_5,
        actual_cost: 0.001_403,
        rate_multiplier: 2.0,
        stream: true,
        status_code: 200,
        error_message: String::new(),
        duration_ms: 1234,
        first_token_ms: Some(87),
        user_agent: "claude-cli/2.1".into(),
        created_at,
    }
}

contract!(usage_insert_filter_page_and_totals, |store: Store| async move {
    let empty = store.usage_totals(&store::UsageFilter::default()).await.expect("totals");
    assert_eq!(empty, domain::UsageTotals::default());
    let t0 = OffsetDateTime::now_utc() - Duration::hours(2);
    let rows: Vec<_> = (0..5)
        .map(|i| {
            usage(
                &format!("req-{i}"),
                1 + i % 2,
                if i < 3 { "claude-a" } else { "claude-b" },
                t0 + Duration::minutes(i),
            )
        })
        .collect();
    store.insert_usage(&rows).await.expect("insert");

    let all = store.list_usage(&store::UsageFilter::default(), 0, 10).await.expect("list");
    assert_eq!(
        all.iter().map(|r| r.data.request_id.as_str()).collect::<Vec<_>>(),
        ["req-4", "req-3", "req-2", "req-1", "req-0"]
    );
    let first = &all[4].data;
    assert_eq!(
        (first.cache_creation_5m_tokens, first.cache_creation_1h_tokens, first.first_token_ms),
        (10, 20, Some(87))
    );
    assert!(first.stream && (first.actual_cost - 0.001_403).abs() < 1e-12);

    let page = store.list_usage(&store::UsageFilter::default(), 2, 2).await.expect("page");
    assert_eq!(page.iter().map(|r| r.data.request_id.as_str()).collect::<Vec<_>>(), ["req-2", "req-1"]);

    let by_user = store::UsageFilter { user_id: Some(1), ..Default::default() };
    assert_eq!(store.list_usage(&by_user, 0, 10).await.expect("list").len(), 3);
    let by_model = store::UsageFilter { model: Some("claude-b".into()), ..Default::default() };
    let totals = store.usage_totals(&by_model).await.expect("totals");
    assert_eq!((totals.requests, totals.input_tokens, totals.cache_read_tokens), (2, 200, 10));
    assert!((totals.actual_cost - 2.0 * 0.001_403).abs() < 1e-12);
    let window = store::UsageFilter {
        start: Some(t0 + Duration::minutes(1)),
        end: Some(t0 + Duration::minutes(3)),
        ..Default::default()
    };
    let in_window = store.list_usage(&window, 0, 10).await.expect("list");
    assert_eq!(
        in_window.iter().map(|r| r.data.request_id.as_str()).collect::<Vec<_>>(),
        ["req-2", "req-1"],
        "end is exclusive"
    );
    assert_eq!(store.usage_totals(&window).await.expect("totals").requests, 2);
});

/// A usage row of user 1 on `claude-a` with this outcome, written at `at`.
fn outcome(i: i64, status_code: i32, error_message: &str, at: OffsetDateTime) -> store::NewUsage {
    store::NewUsage {
        status_code,
        error_message: error_message.into(),
        ..usage(&format!("req-{i}"), 1, "claude-a", at)
    }
}

fn request_ids(rows: &[store::UsageRow]) -> Vec<&str> {
    rows.iter().map(|r| r.data.request_id.as_str()).collect()
}

contract!(usage_status_filter_and_keyset_batches, |store: Store| async move {
    use store::StatusFilter;
    let t0 = time::macros::datetime!(2026-11-20 10:00 UTC);
    let rows = [
        outcome(0, 200, "", t0),
        outcome(1, 429, "rate limited", t0 + Duration::seconds(1)),
        outcome(2, 200, "stream broke", t0 + Duration::seconds(2)),
        outcome(3, 201, "", t0 + Duration::seconds(3)),
        outcome(4, 500, "", t0 + Duration::seconds(4)),
        outcome(5, 399, "", t0 + Duration::seconds(5)),
    ];
    store.insert_usage(&rows).await.expect("insert");
    let by = |status| store::UsageFilter { status: Some(status), ..Default::default() };

    let errors = store.list_usage(&by(StatusFilter::Error), 0, 10).await.expect("errors");
    assert_eq!(request_ids(&errors), ["req-4", "req-2", "req-1"], "error statuses and error messages");
    let ok = store.list_usage(&by(StatusFilter::Ok), 0, 10).await.expect("ok");
    assert_eq!(request_ids(&ok), ["req-5", "req-3", "req-0"]);
    let code = store.list_usage(&by(StatusFilter::Code(429)), 0, 10).await.expect("code");
    assert_eq!(request_ids(&code), ["req-1"]);
    assert_eq!(store.usage_totals(&by(StatusFilter::Error)).await.expect("totals").requests, 3);
    let ok_model = store::UsageFilter { model: Some("claude-a".into()), ..by(StatusFilter::Ok) };
    assert_eq!(store.usage_totals(&ok_model).await.expect("totals").requests, 3, "status combines with the rest");

    let all = store::UsageFilter::default();
    let first = store.list_usage_after(&all, 0, 4).await.expect("batch 1");
    assert_eq!(request_ids(&first), ["req-0", "req-1", "req-2", "req-3"], "oldest first");
    let after = first.last().expect("last").id;
    let second = store.list_usage_after(&all, after, 4).await.expect("batch 2");
    assert_eq!(request_ids(&second), ["req-4", "req-5"]);
    let after = second.last().expect("last").id;
    assert!(store.list_usage_after(&all, after, 4).await.expect("batch 3").is_empty());
    let failed = store.list_usage_after(&by(StatusFilter::Error), 0, 2).await.expect("errors batch");
    assert_eq!(request_ids(&failed), ["req-1", "req-2"], "batches honour the filter");
});

contract!(usage_aggregates_per_minute_day_and_model, |store: Store| async move {
    let day1 = time::macros::datetime!(2026-11-20 23:58:10 UTC);
    let model = |i: i64, m: &str, at| store::NewUsage { requested_model: m.into(), ..outcome(i, 200, "", at) };
    let rows = [
        model(0, "claude-a", day1),
        model(1, "claude-a", day1 + Duration::seconds(40)),
        model(2, "claude-b", day1 + Duration::seconds(60)),
        model(3, "claude-a", day1 + Duration::seconds(110)),
        model(4, "", day1 + Duration::seconds(111)),
    ];
    store.insert_usage(&rows).await.expect("insert");
    let all = store::UsageFilter::default();

    let minutes = store.usage_by_minute(&all).await.expect("minutes");
    let keys: Vec<(&str, i64)> = minutes.iter().map(|b| (b.key.as_str(), b.requests)).collect();
    assert_eq!(keys, [("2026-11-20T23:58", 2), ("2026-11-20T23:59", 1), ("2026-11-21T00:00", 2)]);
    assert_eq!((minutes[0].input_tokens, minutes[0].cache_read_tokens), (200, 10));
    assert!((minutes[0].actual_cost - 2.0 * 0.001_403).abs() < 1e-12);

    let days = store.usage_by_day_and_model(&all).await.expect("days");
    let keys: Vec<(&str, &str, i64)> = days.iter().map(|(d, b)| (d.as_str(), b.key.as_str(), b.requests)).collect();
    assert_eq!(
        keys,
        [
            ("2026-11-20", "claude-a", 2),
            ("2026-11-20", "claude-b", 1),
            ("2026-11-21", "", 1),
            ("2026-11-21", "claude-a", 1)
        ],
        "UTC days, split by model"
    );
    assert_eq!(days[0].1.tokens(), 2 * (100 + 20 + 30 + 5));

    let later = store::UsageFilter { start: Some(day1 + Duration::seconds(60)), ..Default::default() };
    assert_eq!(store.usage_by_minute(&later).await.expect("minutes").len(), 2, "filters apply");
    assert_eq!(store.usage_models().await.expect("models"), ["claude-a", "claude-b"], "unnamed models are left out");
});

contract!(dashboard_usage_today_last_hour_and_errors, |store: Store| async move {
    let now = time::macros::datetime!(2026-11-26 12:30:30 UTC);
    let mut rows = vec![
        outcome(0, 200, "", time::macros::datetime!(2026-11-25 23:59:59 UTC)),
        outcome(1, 200, "", time::macros::datetime!(2026-11-26 00:00:00 UTC)),
        outcome(2, 200, "", now - Duration::minutes(61)),
        outcome(3, 200, "", now - Duration::minutes(59)),
        outcome(4, 200, "", now),
    ];
    rows.extend((10..21).map(|i| outcome(i, 502, "bad gateway", now - Duration::minutes(90) + Duration::seconds(i))));
    store.insert_usage(&rows).await.expect("insert");
    let account = store.create_account(&new_account("limited", vec![])).await.expect("account");
    store.set_account_cooldowns(account.id, Some(now + Duration::seconds(95)), None).await.expect("cooldown");

    let stats = store.dashboard_stats(now).await.expect("stats");
    assert_eq!(stats.accounts.rate_limited, 1);
    assert_eq!(stats.accounts.next_rate_limit_reset_secs, Some(95));
    assert_eq!(stats.today.requests, 4 + 11, "from 00:00 UTC on");
    assert_eq!(stats.today.input_tokens, 15 * 100);
    let minutes: Vec<(&str, i64)> = stats.last_hour.iter().map(|b| (b.key.as_str(), b.requests)).collect();
    assert_eq!(
        minutes,
        [("2026-11-26T11:31", 1), ("2026-11-26T12:30", 1)],
        "the 60 minutes up to now, quiet ones absent"
    );
    let errors: Vec<&str> = stats.recent_errors.iter().map(|u| u.request_id.as_str()).collect();
    assert_eq!(errors.len(), domain::dashboard::RECENT_ERRORS as usize);
    assert_eq!((errors[0], errors[9]), ("req-20", "req-11"), "newest first");

    let later = store.dashboard_stats(now + Duration::seconds(100)).await.expect("stats");
    assert_eq!((later.accounts.rate_limited, later.accounts.next_rate_limit_reset_secs), (0, None));
});

contract!(usage_by_key_since_groups_by_owner_and_key, |store: Store| async move {
    let now = OffsetDateTime::now_utc();
    let since = now - Duration::hours(1);
    // `usage` gives user 1 key 11 and user 2 key 12; one row is older than `since`.
    let mut deleted_key = usage("r-4", 2, "claude-a", now);
    deleted_key.api_key_id = None;
    let rows = [
        usage("r-1", 1, "claude-a", now),
        usage("r-2", 1, "claude-b", now - Duration::minutes(5)),
        usage("r-3", 1, "claude-a", since - Duration::minutes(1)),
        usage("r-5", 2, "claude-a", since),
        deleted_key,
    ];
    store.insert_usage(&rows).await.expect("insert");
    let got = store.usage_by_key_since(since).await.expect("usage");
    let summary: Vec<_> = got.iter().map(|r| (r.user_id, r.api_key_id, r.requests, r.tokens)).collect();
    // 100 input + 20 output + 30 cache creation + 5 cache read tokens per row.
    assert_eq!(summary, [(Some(1), Some(11), 2, 310), (Some(2), None, 1, 155), (Some(2), Some(12), 1, 155)]);
    assert!((got[0].actual_cost - 2.0 * 0.001_403).abs() < 1e-12, "{got:?}");
    assert!(store.usage_by_key_since(now + Duration::minutes(1)).await.expect("usage").is_empty());
});
