//! `GET /api/v1/admin/usage/export` over real HTTP: admins only, the usage page's filters,
//! every matching row across several keyset batches, and CSV quoting that survives
//! separators, quotes and line breaks in upstream error messages.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code fails loudly on purpose")]

mod support;

use support::{ADMIN_API_KEY, TestApp};
use time::{Duration, OffsetDateTime};

/// More than two export batches (2,000 rows each) match the filter used below.
const ROWS: i64 = 4_500;

fn row(i: i64, created_at: OffsetDateTime) -> store::NewUsage {
    let failed = i % 3 == 0;
    store::NewUsage {
        request_id: format!("req-{i}"),
        user_id: Some(1 + i % 2),
        api_key_id: Some(7),
        account_id: Some(3),
        group_id: None,
        requested_model: if i % 2 == 0 { "claude-even".into() } else { "claude-odd".into() },
        upstream_model: "claude-upstream".into(),
        input_tokens: 10,
        output_tokens: 2,
        cache_creation_tokens: 0,
        cache_creation_5m_tokens: 0,
        cache_creation_1h_tokens: 0,
        cache_read_tokens: 0,
        input_cost: 0.25,
        output_cost: 0.25,
        cache_creation_cost: 0.0,
        cache_read_cost: 0.0,
        total_cost: 0.5,
        actual_cost: 0.75,
        rate_multiplier: 1.5,
        stream: false,
        status_code: if failed { 529 } else { 200 },
        error_message: if failed { format!("overloaded, \"retry\"\nlater #{i}") } else { String::new() },
        duration_ms: 100,
        first_token_ms: None,
        user_agent: "test".into(),
        created_at,
    }
}

/// Splits RFC 4180 text into records of fields (quoted fields may hold `,`, `""` and line
/// breaks).
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut records = Vec::new();
    let mut record = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => record.push(std::mem::take(&mut field)),
            (false, '\r') => {}
            (false, '\n') => {
                record.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut record));
            }
            (false, c) => field.push(c),
        }
    }
    assert!(field.is_empty() && record.is_empty(), "the file ends with a line break");
    records
}

on_both_databases!(export_streams_the_filtered_rows_as_csv, |app| {
    let t0 = OffsetDateTime::now_utc() - Duration::days(1);
    let rows: Vec<_> = (0..ROWS).map(|i| row(i, t0 + Duration::seconds(i))).collect();
    for chunk in rows.chunks(500) {
        app.db.store.insert_usage(chunk).await.unwrap();
    }
    let export = app.url("/api/v1/admin/usage/export");

    let res = app.client.get(&export).send().await.unwrap();
    assert_eq!(res.status(), 401, "no session, no key");
    let res = app.client.get(&export).header("x-api-key", "admin-wrong").send().await.unwrap();
    assert_eq!(res.status(), 401, "a wrong key");

    let res = app
        .client
        .get(format!("{export}?model=claude-even&status=error"))
        .header("x-api-key", ADMIN_API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/csv; charset=utf-8");
    let disposition = res.headers()["content-disposition"].to_str().unwrap().to_owned();
    assert!(
        disposition.starts_with("attachment; filename=\"usage-") && disposition.ends_with(".csv\""),
        "{disposition}"
    );
    let records = parse_csv(&res.text().await.unwrap());
    let header = &records[0];
    assert_eq!(header[0], "id");
    assert_eq!(header.last().unwrap(), "error_message");
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let data = &records[1..];
    let expected: Vec<i64> = (0..ROWS).filter(|i| i % 6 == 0).collect();
    assert_eq!(data.len(), expected.len(), "every even-model failure, across several batches");
    assert!(data.iter().all(|r| r.len() == header.len()), "every record has every column");
    let ids: Vec<String> = data.iter().map(|r| r[col("request_id")].clone()).collect();
    assert_eq!(ids, expected.iter().map(|i| format!("req-{i}")).collect::<Vec<_>>(), "oldest first, none twice");
    let last = data.last().unwrap();
    let n = expected.last().unwrap();
    assert_eq!(last[col("error_message")], format!("overloaded, \"retry\"\nlater #{n}"), "quoting round-trips");
    assert_eq!(
        (last[col("status_code")].as_str(), last[col("requested_model")].as_str(), last[col("group_id")].as_str()),
        ("529", "claude-even", "")
    );
    assert_eq!(last[col("actual_cost")].parse::<f64>().unwrap(), 0.75);

    let window = format!(
        "{export}?status=ok&start={}&end={}",
        (t0 + Duration::seconds(10)).format(&time::format_description::well_known::Rfc3339).unwrap(),
        (t0 + Duration::seconds(20)).format(&time::format_description::well_known::Rfc3339).unwrap(),
    );
    let res = app.client.get(window).header("x-api-key", ADMIN_API_KEY).send().await.unwrap();
    let records = parse_csv(&res.text().await.unwrap());
    assert_eq!(records.len() - 1, (10..20).filter(|i| i % 3 != 0).count(), "the time window and status=ok");

    let res =
        app.client.get(format!("{export}?status=sometimes")).header("x-api-key", ADMIN_API_KEY).send().await.unwrap();
    assert_eq!(res.status(), 400, "a bad filter is refused before any CSV");

    app.login_admin().await;
    let res = app.client.get(format!("{export}?model=none")).send().await.unwrap();
    assert_eq!(res.status(), 200, "the admin session works too");
    assert_eq!(parse_csv(&res.text().await.unwrap()).len(), 1, "only the header when nothing matches");
});

on_both_databases!(usage_and_dashboard_pages_render_their_figures_on_the_server, |app| {
    let now = OffsetDateTime::now_utc();
    let rows: Vec<_> = (0..6).map(|i| row(i, now - Duration::seconds(6 - i))).collect();
    app.db.store.insert_usage(&rows).await.unwrap();
    let ids: Vec<i64> = app
        .db
        .store
        .list_usage(&store::UsageFilter::default(), 0, 10)
        .await
        .unwrap()
        .iter()
        .map(|r| r.id)
        .rev()
        .collect();
    app.login_admin().await;

    let html = app.client.get(app.url("/usage?status=error")).send().await.unwrap().text().await.unwrap();
    for (i, id) in ids.iter().enumerate() {
        let shown = html.contains(&format!(r#"data-testid="usage-row-{id}""#));
        assert_eq!(shown, i % 3 == 0, "row {i} (id {id}) shown only when it failed");
    }
    let total = html.split(r#"data-testid="usage-total-requests""#).nth(1).expect("totals rendered");
    assert!(total.starts_with(">2<"), "two failures: {}", &total[..40.min(total.len())]);
    assert!(html.contains(r#"href="/api/v1/admin/usage/export?status=error""#), "the export link keeps the filter");

    // What the hydrated page asks when a filter changes: the same query, as a GET server function.
    let path = <app::api::usage::ListUsage as leptos::server_fn::ServerFn>::PATH;
    let page: serde_json::Value = app
        .client
        .get(app.url(&format!("{path}?query%5Bstatus%5D=error&query%5Bpage_size%5D=50")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!((page["total"].as_i64(), page["items"].as_array().map(Vec::len)), (Some(2), Some(2)), "{page}");

    let html = app.client.get(app.url("/")).send().await.unwrap().text().await.unwrap();
    let today = html.split(r#"data-testid="stat-today-requests""#).nth(1).expect("today's requests rendered");
    assert!(today.contains(r#"<span class="stat-value">6</span>"#), "{}", &today[..200.min(today.len())]);
    assert!(html.contains(&format!(r#"data-testid="error-row-{}""#, ids[3])), "recent errors are listed");
    assert!(html.contains("<svg"), "charts are drawn on the server");
});
