//! `GET /api/v1/admin/usage/export`: the usage rows a `UsageQuery` selects, as CSV, oldest
//! first. Rows are read in keyset batches and written as each batch arrives, so the response
//! never holds more than one batch however many rows match; nothing here may collect the
//! whole export.

use std::future::ready;

use app::service::usage;
use app::state::AppState;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use domain::{UsageQuery, UsageView};
use futures_util::StreamExt;
use futures_util::stream;
use store::{Store, UsageFilter};
use time::OffsetDateTime;
use time::macros::format_description;

use crate::admin_api::{AdminAuth, ApiError, ApiQuery};

/// Rows per database round trip.
const BATCH: i64 = 2_000;

const COLUMNS: [&str; 23] = [
    "id",
    "created_at",
    "request_id",
    "user_id",
    "api_key_id",
    "account_id",
    "group_id",
    "requested_model",
    "upstream_model",
    "stream",
    "status_code",
    "input_tokens",
    "output_tokens",
    "cache_creation_tokens",
    "cache_creation_5m_tokens",
    "cache_creation_1h_tokens",
    "cache_read_tokens",
    "total_cost",
    "actual_cost",
    "rate_multiplier",
    "duration_ms",
    "first_token_ms",
    "error_message",
];

pub async fn export_usage_handler(
    _: AdminAuth,
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<UsageQuery>,
) -> Result<Response, ApiError> {
    let filter = usage::filter(&q)?;
    // The first batch is read before answering, so a bad database shows as an error status
    // rather than as a cut-off file.
    let first = usage::usage_after(&state.store, &filter, 0, BATCH).await?;
    let mut head = String::new();
    push_record(&mut head, COLUMNS.map(Cell::Text));
    let after = next_cursor(&first);
    push_rows(&mut head, &first);
    let store = state.store;
    let rest = stream::unfold(after, move |after| batch(store.clone(), filter.clone(), after));
    let body = Body::from_stream(stream::once(ready(Ok(Bytes::from(head)))).chain(rest));
    let day = OffsetDateTime::now_utc().format(format_description!("[year]-[month]-[day]")).unwrap_or_default();
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"usage-{day}.csv\"")),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        body,
    )
        .into_response())
}

/// The next batch after row `after` (`None` once the last batch was short), as CSV.
async fn batch(
    store: Store,
    filter: UsageFilter,
    after: Option<i64>,
) -> Option<(Result<Bytes, std::io::Error>, Option<i64>)> {
    let after = after?;
    match usage::usage_after(&store, &filter, after, BATCH).await {
        Ok(rows) if rows.is_empty() => None,
        Ok(rows) => {
            let mut out = String::new();
            push_rows(&mut out, &rows);
            Some((Ok(Bytes::from(out)), next_cursor(&rows)))
        }
        // The status line is gone; breaking the body tells the client the file is incomplete.
        Err(e) => {
            tracing::warn!(error = %e, after, "usage export aborted");
            Some((Err(std::io::Error::other("usage export aborted")), None))
        }
    }
}

/// Where the next batch starts, or `None` when this one was the last.
fn next_cursor(rows: &[UsageView]) -> Option<i64> {
    if rows.len() < BATCH as usize { None } else { rows.last().map(|r| r.id) }
}

enum Cell<'a> {
    Text(&'a str),
    Number(String),
    Empty,
}

fn num(v: impl ToString) -> Cell<'static> {
    Cell::Number(v.to_string())
}

fn opt(v: Option<i64>) -> Cell<'static> {
    v.map_or(Cell::Empty, num)
}

fn push_rows(out: &mut String, rows: &[UsageView]) {
    for r in rows {
        push_record(
            out,
            [
                num(r.id),
                Cell::Text(&r.created_at),
                Cell::Text(&r.request_id),
                opt(r.user_id),
                opt(r.api_key_id),
                opt(r.account_id),
                opt(r.group_id),
                Cell::Text(&r.requested_model),
                Cell::Text(&r.upstream_model),
                num(r.stream),
                num(r.status_code),
                num(r.input_tokens),
                num(r.output_tokens),
                num(r.cache_creation_tokens),
                num(r.cache_creation_5m_tokens),
                num(r.cache_creation_1h_tokens),
                num(r.cache_read_tokens),
                num(r.total_cost),
                num(r.actual_cost),
                num(r.rate_multiplier),
                num(r.duration_ms),
                opt(r.first_token_ms),
                Cell::Text(&r.error_message),
            ],
        );
    }
}

/// One RFC 4180 record. Text is quoted when it holds a separator, quote or line break;
/// text a spreadsheet would run as a formula (`=`, `+`, `-`, `@`, tab, CR first) gets a
/// leading `'`, since upstream error messages end up in these cells.
fn push_record<'a>(out: &mut String, cells: impl IntoIterator<Item = Cell<'a>>) {
    for (i, cell) in cells.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        match cell {
            Cell::Empty => {}
            Cell::Number(n) => out.push_str(&n),
            Cell::Text(t) => {
                let guard = t.starts_with(['=', '+', '-', '@', '\t', '\r']);
                if guard || t.contains([',', '"', '\n', '\r']) {
                    out.push('"');
                    if guard {
                        out.push('\'');
                    }
                    out.push_str(&t.replace('"', "\"\""));
                    out.push('"');
                } else {
                    out.push_str(t);
                }
            }
        }
    }
    out.push_str("\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record<'a>(cells: impl IntoIterator<Item = Cell<'a>>) -> String {
        let mut out = String::new();
        push_record(&mut out, cells);
        out
    }

    #[test]
    fn text_is_quoted_only_when_it_must_be() {
        assert_eq!(record([Cell::Text("plain"), num(1.5), Cell::Empty, num(true)]), "plain,1.5,,true\r\n");
        assert_eq!(
            record([Cell::Text("a, \"b\"\nc")]),
            "\"a, \"\"b\"\"\nc\"\r\n",
            "separators, quotes and line breaks are quoted, quotes doubled"
        );
    }

    #[test]
    fn formulas_are_defused() {
        assert_eq!(record([Cell::Text("=HYPERLINK(\"x\")")]), "\"'=HYPERLINK(\"\"x\"\")\"\r\n");
        assert_eq!(record([Cell::Text("-1")]), "\"'-1\"\r\n");
        assert_eq!(record([num(-1)]), "-1\r\n", "numbers are numbers");
    }
}
