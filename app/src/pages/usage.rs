//! The usage log: filters kept in the URL (so a filtered view survives a reload and can be
//! shared), totals over everything the filter selects, pages of 50 rows, and a CSV export of
//! the same selection.

use std::collections::HashMap;

use domain::usage::is_error;
use domain::{NamedId, Page, UsageFilterOptions, UsageQuery, UsageTotals, UsageView};
use leptos::prelude::*;
use leptos_router::hooks::use_query_map;
use leptos_router::params::ParamsMap;

use super::PageHeader;
use crate::api::usage::{get_usage_filter_options, get_usage_totals, list_usage};
use crate::charts::{compact, thousands, usd};
use crate::components::{EmptyRow, ErrorRow, LoadingRow, query_param, query_writer};

/// The query keys of the filters, as `UsageQuery` names them (the export link reuses them).
const FILTER_KEYS: [&str; 8] = ["start", "end", "user_id", "api_key_id", "account_id", "group_id", "model", "status"];

/// Rows per page.
const PAGE_SIZE: u32 = 50;

/// Status choices offered besides "all", "ok" and "error".
const STATUS_CODES: [i32; 10] = [400, 401, 403, 404, 408, 429, 500, 502, 503, 529];

const COLUMNS: u32 = 12;

fn non_empty(s: String) -> Option<String> {
    let s = s.trim().to_owned();
    (!s.is_empty()).then_some(s)
}

/// Id filters that are not numbers are dropped rather than failing the page; the select
/// shows "all" for them.
fn id_of(s: &str) -> Option<i64> {
    s.trim().parse().ok()
}

/// The filter part of the URL as a `UsageQuery` (no paging).
fn filter_query(get: impl Fn(&str) -> String) -> UsageQuery {
    UsageQuery {
        start: non_empty(get("start")),
        end: non_empty(get("end")),
        user_id: id_of(&get("user_id")),
        api_key_id: id_of(&get("api_key_id")),
        account_id: id_of(&get("account_id")),
        group_id: id_of(&get("group_id")),
        model: non_empty(get("model")),
        status: non_empty(get("status")),
        ..Default::default()
    }
}

/// `/api/v1/admin/usage/export` with the current filters.
fn export_href(query: &ParamsMap) -> String {
    let mut params = ParamsMap::new();
    for key in FILTER_KEYS {
        if let Some(value) = query.get(key).and_then(non_empty) {
            params.insert(key, value);
        }
    }
    format!("/api/v1/admin/usage/export{}", params.to_query_string())
}

/// "2026-11-26T10:00:00Z" → "2026-11-26 10:00:00".
fn time_text(rfc3339: &str) -> String {
    rfc3339.replacen('T', " ", 1).trim_end_matches('Z').to_owned()
}

#[component]
pub fn UsagePage() -> impl IntoView {
    let query = use_query_map();
    let filters = Memo::new(move |_| query.with(|q| filter_query(|k| q.get(k).unwrap_or_default())));
    let page =
        Memo::new(move |_| query.with(|q| q.get("page").and_then(|p| p.parse::<u32>().ok()).unwrap_or(1).max(1)));
    let rows = Resource::new(
        move || UsageQuery { page: Some(page.get()), page_size: Some(PAGE_SIZE), ..filters.get() },
        list_usage,
    );
    // Keyed on the filters alone, so turning a page does not recount the totals.
    let totals = Resource::new(move || filters.get(), get_usage_totals);
    let options = Resource::new(|| (), |_| get_usage_filter_options());
    let export = Memo::new(move |_| query.with(export_href));
    view! {
        <PageHeader title="Usage" subtitle="Every relayed request, newest first. Times are UTC."/>
        <Transition fallback=|| view! { <p class="muted">"Loading filters…"</p> }>
            {move || {
                options
                    .get()
                    .map(|res| match res {
                        Ok(o) => view! { <Filters options=o/> }.into_any(),
                        Err(e) => view! { <p class="error" role="alert">{e.to_string()}</p> }.into_any(),
                    })
            }}
        </Transition>
        <div class="toolbar">
            <Transition fallback=|| view! { <span class="muted">"Counting…"</span> }>
                {move || totals.get().map(|res| view! { <Totals totals=res/> })}
            </Transition>
            <span class="spacer"></span>
            <a class="button secondary" href=move || export.get() download data-testid="export-csv">
                "Export CSV"
            </a>
        </div>
        <div class="table-wrap">
            <table class="data usage-table" data-testid="usage-table">
                <thead>
                    <tr>
                        <th scope="col">"Time"</th>
                        <th scope="col">"User"</th>
                        <th scope="col">"Key"</th>
                        <th scope="col">"Account"</th>
                        <th scope="col">"Group"</th>
                        <th scope="col">"Model"</th>
                        <th scope="col" class="num">"In / out"</th>
                        <th scope="col" class="num">"Cache write / read"</th>
                        <th scope="col" class="num">"Cost"</th>
                        <th scope="col">"Status"</th>
                        <th scope="col" class="num">"Duration"</th>
                        <th scope="col">"Message"</th>
                    </tr>
                </thead>
                <tbody>
                    <Transition fallback=|| view! { <LoadingRow colspan=COLUMNS/> }>
                        {move || {
                            let names = Names::of(options.get().and_then(Result::ok).as_ref());
                            rows.get()
                                .map(|res| match res {
                                    Ok(p) if p.items.is_empty() => {
                                        view! { <EmptyRow colspan=COLUMNS text="No requests match these filters."/> }
                                            .into_any()
                                    }
                                    Ok(p) => {
                                        p.items
                                            .into_iter()
                                            .map(|u| view! { <UsageRowView usage=u names=names.clone()/> })
                                            .collect_view()
                                            .into_any()
                                    }
                                    Err(e) => view! { <ErrorRow colspan=COLUMNS error=e/> }.into_any(),
                                })
                        }}
                    </Transition>
                </tbody>
            </table>
        </div>
        <Transition fallback=|| ()>
            {move || rows.get().and_then(Result::ok).map(|p| view! { <Pager page=p/> })}
        </Transition>
    }
}

#[component]
fn Totals(totals: Result<UsageTotals, crate::AppError>) -> impl IntoView {
    match totals {
        Ok(t) => {
            let tokens = t.input_tokens + t.output_tokens + t.cache_creation_tokens + t.cache_read_tokens;
            view! {
                <dl class="totals">
                    <div>
                        <dt>"Requests"</dt>
                        <dd data-testid="usage-total-requests">{thousands(t.requests)}</dd>
                    </div>
                    <div>
                        <dt>"Tokens"</dt>
                        <dd
                            data-testid="usage-total-tokens"
                            title=format!(
                                "in {} · out {} · cache write {} · cache read {}",
                                thousands(t.input_tokens),
                                thousands(t.output_tokens),
                                thousands(t.cache_creation_tokens),
                                thousands(t.cache_read_tokens),
                            )
                        >
                            {thousands(tokens)}
                        </dd>
                    </div>
                    <div>
                        <dt>"Cost"</dt>
                        <dd data-testid="usage-total-cost" title=format!("{} before group multipliers", usd(t.total_cost))>
                            {usd(t.actual_cost)}
                        </dd>
                    </div>
                </dl>
            }
                .into_any()
        }
        Err(e) => view! { <span class="error" role="alert">{e.to_string()}</span> }.into_any(),
    }
}

/// Names for the ids in the log; an id without a name (deleted since) shows as `#id`.
#[derive(Clone, Default)]
struct Names {
    users: HashMap<i64, String>,
    api_keys: HashMap<i64, String>,
    accounts: HashMap<i64, String>,
    groups: HashMap<i64, String>,
}

impl Names {
    fn of(options: Option<&UsageFilterOptions>) -> Self {
        let map = |list: &[NamedId]| list.iter().map(|n| (n.id, n.name.clone())).collect();
        options
            .map(|o| Names {
                users: map(&o.users),
                api_keys: map(&o.api_keys),
                accounts: map(&o.accounts),
                groups: map(&o.groups),
            })
            .unwrap_or_default()
    }

    fn show(map: &HashMap<i64, String>, id: Option<i64>) -> String {
        match id {
            Some(id) => map.get(&id).cloned().unwrap_or_else(|| format!("#{id}")),
            None => "—".to_owned(),
        }
    }
}

#[component]
fn UsageRowView(usage: UsageView, names: Names) -> impl IntoView {
    let u = usage;
    let failed = is_error(u.status_code, &u.error_message);
    let model_title = (u.upstream_model != u.requested_model && !u.upstream_model.is_empty())
        .then(|| format!("sent upstream as {}", u.upstream_model));
    let duration = match u.first_token_ms {
        Some(first) => format!("{} ms (first token {first} ms)", thousands(u.duration_ms)),
        None => format!("{} ms", thousands(u.duration_ms)),
    };
    view! {
        <tr data-testid=format!("usage-row-{}", u.id) class:failed=failed>
            <td class="nowrap" title=u.request_id.clone()>{time_text(&u.created_at)}</td>
            <td>{Names::show(&names.users, u.user_id)}</td>
            <td>{Names::show(&names.api_keys, u.api_key_id)}</td>
            <td>{Names::show(&names.accounts, u.account_id)}</td>
            <td>{Names::show(&names.groups, u.group_id)}</td>
            <td class="nowrap" title=model_title>
                {u.requested_model.clone()}
                {u.stream.then(|| view! { <span class="muted small">" stream"</span> })}
            </td>
            <td class="num">{format!("{} / {}", compact(u.input_tokens as f64), compact(u.output_tokens as f64))}</td>
            <td class="num">
                {format!("{} / {}", compact(u.cache_creation_tokens as f64), compact(u.cache_read_tokens as f64))}
            </td>
            <td class="num" title=format!("{} before the ×{} group multiplier", usd(u.total_cost), u.rate_multiplier)>
                {usd(u.actual_cost)}
            </td>
            <td>
                <span class=if failed { "badge badge-error" } else { "badge badge-ok" }>{u.status_code}</span>
            </td>
            <td class="num nowrap" title=duration.clone()>{format!("{} ms", thousands(u.duration_ms))}</td>
            <td class="message" title=u.error_message.clone()>{u.error_message.clone()}</td>
        </tr>
    }
    .into_any()
}

/// Previous / next as links, so paging works before hydration and keeps the filters.
#[component]
fn Pager(page: Page<UsageView>) -> impl IntoView {
    let query = use_query_map();
    let link = move |to: u32| {
        let mut q = query.get_untracked();
        q.replace("page", to.to_string());
        format!("/usage{}", q.to_query_string())
    };
    let current = page.page;
    let last = page.pages.max(1);
    let prev = (current > 1).then(|| link(current - 1));
    let next = (i64::from(current) < page.pages).then(|| link(current + 1));
    view! {
        <nav class="pager" aria-label="Pages">
            {match prev {
                Some(href) => view! { <a class="button secondary small" href=href rel="prev" data-testid="page-prev">"Previous"</a> }.into_any(),
                None => view! { <span class="button secondary small" aria-disabled="true">"Previous"</span> }.into_any(),
            }}
            <span class="muted" data-testid="page-info">
                {format!("Page {current} of {last} · {} rows", thousands(page.total))}
            </span>
            {match next {
                Some(href) => view! { <a class="button secondary small" href=href rel="next" data-testid="page-next">"Next"</a> }.into_any(),
                None => view! { <span class="button secondary small" aria-disabled="true">"Next"</span> }.into_any(),
            }}
        </nav>
    }
    .into_any()
}

/// One `<select>` over named ids: "All" plus every choice, plus the current id when it names
/// nothing the list knows (a deleted user, say) so the control never lies about the filter.
#[component]
fn IdSelect(key: &'static str, #[prop(into)] label: String, all: &'static str, choices: Vec<NamedId>) -> impl IntoView {
    let current = query_param(key);
    let write = query_writer();
    let orphan = current.with_untracked(|c| {
        id_of(c).filter(|id| !choices.iter().any(|n| n.id == *id)).map(|id| NamedId { id, name: format!("#{id}") })
    });
    let options: Vec<NamedId> = choices.into_iter().chain(orphan).collect();
    view! {
        <label>
            {label}
            <select
                name=key
                data-testid=format!("filter-{key}")
                on:change=move |ev| write(&[(key, event_target_value(&ev)), ("page", String::new())])
            >
                <option value="" selected=move || current.with(String::is_empty)>{all}</option>
                {options
                    .into_iter()
                    .map(|n| {
                        let value = n.id.to_string();
                        let selected = value.clone();
                        view! {
                            <option value=value selected=move || current.with(|c| c.trim() == selected)>
                                {n.name}
                            </option>
                        }
                    })
                    .collect_view()}
            </select>
        </label>
    }
    .into_any()
}

#[component]
fn Filters(options: UsageFilterOptions) -> impl IntoView {
    let write = query_writer();
    let start = query_param("start");
    let end = query_param("end");
    let model = query_param("model");
    let status = query_param("status");
    let on_date = {
        let write = write.clone();
        move |key: &'static str| {
            let write = write.clone();
            move |ev: leptos::ev::Event| write(&[(key, event_target_value(&ev)), ("page", String::new())])
        }
    };
    let write_model = write.clone();
    let write_status = write.clone();
    let clear = move |_| {
        let mut updates: Vec<(&str, String)> = FILTER_KEYS.iter().map(|k| (*k, String::new())).collect();
        updates.push(("page", String::new()));
        write(&updates);
    };
    let models: Vec<String> = {
        let current = model.get_untracked();
        let mut models = options.models;
        if !current.is_empty() && !models.contains(&current) {
            models.push(current);
        }
        models
    };
    let status_choices: Vec<(String, String)> = {
        let mut choices = vec![("ok".to_owned(), "OK".to_owned()), ("error".to_owned(), "Errors".to_owned())];
        choices.extend(STATUS_CODES.iter().map(|c| (c.to_string(), c.to_string())));
        let current = status.get_untracked();
        if !current.is_empty() && !choices.iter().any(|(v, _)| *v == current) {
            choices.push((current.clone(), current));
        }
        choices
    };
    // A date input only shows YYYY-MM-DD; an exact time from a link shows as its day.
    let day = |m: Memo<String>| move || m.with(|v| v.get(..10).unwrap_or(v).to_owned());
    view! {
        <form class="toolbar usage-filters" role="search" aria-label="Usage filters" on:submit=|ev| ev.prevent_default()>
            <label>
                "From"
                <input type="date" name="start" data-testid="filter-start" value=day(start) prop:value=day(start) on:change=on_date("start")/>
            </label>
            <label>
                "To (inclusive)"
                <input type="date" name="end" data-testid="filter-end" value=day(end) prop:value=day(end) on:change=on_date("end")/>
            </label>
            <IdSelect key="user_id" label="User" all="All users" choices=options.users/>
            <IdSelect key="api_key_id" label="Key" all="All keys" choices=options.api_keys/>
            <IdSelect key="account_id" label="Account" all="All accounts" choices=options.accounts/>
            <IdSelect key="group_id" label="Group" all="All groups" choices=options.groups/>
            <label>
                "Model"
                <select
                    name="model"
                    data-testid="filter-model"
                    on:change=move |ev| write_model(&[("model", event_target_value(&ev)), ("page", String::new())])
                >
                    <option value="" selected=move || model.with(String::is_empty)>"All models"</option>
                    {models
                        .into_iter()
                        .map(|m| {
                            let selected = m.clone();
                            let text = m.clone();
                            view! {
                                <option value=m selected=move || model.with(|c| *c == selected)>
                                    {text}
                                </option>
                            }
                        })
                        .collect_view()}
                </select>
            </label>
            <label>
                "Status"
                <select
                    name="status"
                    data-testid="filter-status"
                    on:change=move |ev| write_status(&[("status", event_target_value(&ev)), ("page", String::new())])
                >
                    <option value="" selected=move || status.with(String::is_empty)>"All"</option>
                    {status_choices
                        .into_iter()
                        .map(|(value, text)| {
                            let selected = value.clone();
                            view! {
                                <option value=value selected=move || status.with(|c| *c == selected)>
                                    {text}
                                </option>
                            }
                        })
                        .collect_view()}
                </select>
            </label>
            <button type="button" class="button secondary" data-testid="filter-clear" on:click=clear>
                "Clear filters"
            </button>
        </form>
    }
    .into_any()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Without `ssr`, `ParamsMap` escapes through the browser's encoder, which native tests lack.
    #[cfg(feature = "ssr")]
    #[test]
    fn export_link_carries_only_the_filters() {
        let query: ParamsMap = [("model", "claude sonnet"), ("page", "3"), ("status", "error"), ("user_id", "")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let href = export_href(&query);
        assert!(href.starts_with("/api/v1/admin/usage/export?"), "{href}");
        assert!(href.contains("model=claude%20sonnet") || href.contains("model=claude+sonnet"), "{href}");
        assert!(href.contains("status=error"), "{href}");
        assert!(!href.contains("page") && !href.contains("user_id"), "{href}");
        assert_eq!(export_href(&ParamsMap::new()), "/api/v1/admin/usage/export");
    }

    #[test]
    fn bad_ids_are_ignored_and_blanks_dropped() {
        let q = filter_query(|k| match k {
            "user_id" => "7".into(),
            "group_id" => "x".into(),
            "model" => "  ".into(),
            _ => String::new(),
        });
        assert_eq!((q.user_id, q.group_id, q.model), (Some(7), None, None));
    }
}
