//! Live figures from the database: accounts by state, today's usage, the last hour per
//! minute, the 7- or 30-day trend with its per-model breakdown, and the newest errors.
//! Refreshed by the button and, in the browser, every 15 seconds.

use domain::dashboard::TREND_RANGES;
use domain::{DashboardStats, UsageBucket, UsageTotals, UsageTrend, UsageView};
use leptos::prelude::*;

use super::PageHeader;
use crate::api::dashboard::{get_dashboard_stats, get_usage_trend};
use crate::charts::{BarChart, Datum, HBarChart, TrendChart, TrendPoint, compact, thousands, usd, usd_compact};
use crate::components::{EmptyRow, query_param};

/// How often the open dashboard reloads its figures.
const AUTO_REFRESH: std::time::Duration = std::time::Duration::from_secs(15);

#[component]
pub fn DashboardPage() -> impl IntoView {
    // Clicks and timer ticks are counted apart: the page reports only the clicks.
    let refreshes = RwSignal::new(0u32);
    let ticks = RwSignal::new(0u32);
    #[cfg(feature = "hydrate")]
    if let Ok(handle) = set_interval_with_handle(move || ticks.update(|n| *n += 1), AUTO_REFRESH) {
        on_cleanup(move || handle.clear());
    }
    let range = query_param("range");
    let days = Memo::new(move |_| {
        range.with(|r| r.parse::<u32>().ok().filter(|d| TREND_RANGES.contains(d)).unwrap_or(TREND_RANGES[0]))
    });
    let stats = Resource::new(move || (refreshes.get(), ticks.get()), |_| get_dashboard_stats());
    let trend = Resource::new(move || (days.get(), refreshes.get(), ticks.get()), |(d, _, _)| get_usage_trend(d));
    view! {
        <PageHeader title="Dashboard" subtitle="What the gateway holds and does right now."/>
        <div class="toolbar">
            <button
                class="button secondary"
                data-testid="refresh"
                on:click=move |_| refreshes.update(|n| *n += 1)
            >
                "Refresh"
            </button>
            <span class="muted small">
                {format!("Updates every {} s. Days and minutes are UTC.", AUTO_REFRESH.as_secs())}
            </span>
        </div>
        <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || {
                stats
                    .get()
                    .map(|res| match res {
                        Ok(s) => view! { <StatsView stats=s/> }.into_any(),
                        Err(e) => view! { <p class="error" role="alert">{e.to_string()}</p> }.into_any(),
                    })
            }}
        </Transition>
        <section class="card" aria-labelledby="trend-heading">
            <div class="card-header">
                <h2 id="trend-heading">"Trend"</h2>
                <nav class="segmented" aria-label="Trend range">
                    {TREND_RANGES
                        .into_iter()
                        .map(|d| {
                            view! {
                                <a
                                    href=format!("/?range={d}")
                                    data-testid=format!("trend-range-{d}")
                                    aria-current=move || (days.get() == d).then_some("true")
                                >
                                    {format!("{d} days")}
                                </a>
                            }
                        })
                        .collect_view()}
                </nav>
            </div>
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || {
                    trend
                        .get()
                        .map(|res| match res {
                            Ok(t) => view! { <TrendView trend=t/> }.into_any(),
                            Err(e) => view! { <p class="error" role="alert">{e.to_string()}</p> }.into_any(),
                        })
                }}
            </Transition>
        </section>
        <p class="muted small" data-testid="refresh-count">
            {move || format!("Refreshed {} times", refreshes.get())}
        </p>
    }
}

#[component]
fn StatsView(stats: DashboardStats) -> impl IntoView {
    let minutes: Vec<Datum> = stats
        .last_hour
        .iter()
        .map(|b| {
            let time = b.key.get(11..16).unwrap_or(&b.key).to_owned();
            Datum {
                title: format!("{time} UTC: {} requests", thousands(b.requests)),
                label: time,
                value: b.requests as f64,
            }
        })
        .collect();
    let last_hour_total: i64 = stats.last_hour.iter().map(|b| b.requests).sum();
    view! {
        <StatCards stats=stats.clone()/>
        <TodayCards today=stats.today/>
        <section class="card" aria-labelledby="per-minute-heading">
            <div class="card-header">
                <h2 id="per-minute-heading">"Requests per minute, last hour"</h2>
                <span class="muted small" data-testid="last-hour-total">
                    {format!("{} requests", thousands(last_hour_total))}
                </span>
            </div>
            <BarChart data=minutes label="Requests per minute over the last hour" label_every=10 width=960.0 height=150.0/>
        </section>
        <RecentErrors errors=stats.recent_errors/>
    }
    .into_any()
}

/// "3 m 20 s", "1 h 5 m", "42 s".
fn duration_text(secs: i64) -> String {
    match secs {
        s if s >= 3600 => format!("{} h {} m", s / 3600, s % 3600 / 60),
        s if s >= 60 => format!("{} m {} s", s / 60, s % 60),
        s => format!("{s} s"),
    }
}

#[component]
fn StatCards(stats: DashboardStats) -> impl IntoView {
    let a = &stats.accounts;
    let reset_note = a.next_rate_limit_reset_secs.map(|s| format!("first resets in {}", duration_text(s)));
    let cards = [
        ("users", "Users", stats.total_users, None),
        ("api-keys", "API keys", stats.total_api_keys, None),
        ("active-api-keys", "Active keys", stats.active_api_keys, None),
        ("groups", "Groups", stats.total_groups, None),
        ("accounts", "Accounts", a.total, None),
        ("accounts-active", "Active", a.active, None),
        ("accounts-rate-limited", "Rate-limited", a.rate_limited, reset_note),
        ("accounts-overloaded", "Overloaded", a.overloaded, None),
        ("accounts-error", "Error", a.error, None),
        ("accounts-disabled", "Disabled", a.disabled, None),
    ];
    view! {
        <div class="stats">
            {cards
                .into_iter()
                .map(|(id, label, value, note)| {
                    view! {
                        <div class="card stat" data-testid=format!("stat-{id}")>
                            <span class="stat-label">{label}</span>
                            <span class="stat-value">{value}</span>
                            {note.map(|n| view! { <span class="stat-note">{n}</span> })}
                        </div>
                    }
                })
                .collect_view()}
        </div>
    }
    .into_any()
}

#[component]
fn TodayCards(today: UsageTotals) -> impl IntoView {
    let tokens = today.input_tokens + today.output_tokens + today.cache_creation_tokens + today.cache_read_tokens;
    view! {
        <h2 class="section-title">"Today"</h2>
        <div class="stats">
            <div class="card stat" data-testid="stat-today-requests">
                <span class="stat-label">"Requests"</span>
                <span class="stat-value">{thousands(today.requests)}</span>
            </div>
            <div class="card stat" data-testid="stat-today-tokens">
                <span class="stat-label">"Tokens"</span>
                <span class="stat-value" title=thousands(tokens)>
                    {compact(tokens as f64)}
                </span>
                <span class="stat-note">
                    {format!(
                        "in {} · out {} · cache write {} · cache read {}",
                        compact(today.input_tokens as f64),
                        compact(today.output_tokens as f64),
                        compact(today.cache_creation_tokens as f64),
                        compact(today.cache_read_tokens as f64),
                    )}
                </span>
            </div>
            <div class="card stat" data-testid="stat-today-cost">
                <span class="stat-label">"Cost"</span>
                <span class="stat-value">{usd(today.actual_cost)}</span>
                <span class="stat-note">{format!("{} before group multipliers", usd(today.total_cost))}</span>
            </div>
        </div>
    }
    .into_any()
}

#[component]
fn RecentErrors(errors: Vec<UsageView>) -> impl IntoView {
    let empty = errors.is_empty();
    view! {
        <section class="card" aria-labelledby="errors-heading">
            <div class="card-header">
                <h2 id="errors-heading">"Recent errors"</h2>
                <a href="/usage?status=error">"All errors"</a>
            </div>
            <div class="table-wrap">
                <table class="data" data-testid="recent-errors">
                    <thead>
                        <tr>
                            <th scope="col">"Time (UTC)"</th>
                            <th scope="col">"Model"</th>
                            <th scope="col">"Account"</th>
                            <th scope="col" class="num">"Status"</th>
                            <th scope="col">"Message"</th>
                        </tr>
                    </thead>
                    <tbody>
                        {empty.then(|| view! { <EmptyRow colspan=5 text="No failed requests."/> })}
                        {errors
                            .into_iter()
                            .map(|e| {
                                let account = e.account_id.map(|id| {
                                    view! { <a href=format!("/usage?account_id={id}&status=error")>{format!("#{id}")}</a> }
                                });
                                view! {
                                    <tr data-testid=format!("error-row-{}", e.id)>
                                        <td class="nowrap">{e.created_at.replacen('T', " ", 1).trim_end_matches('Z').to_owned()}</td>
                                        <td>{e.requested_model}</td>
                                        <td>{account}</td>
                                        <td class="num">{e.status_code}</td>
                                        <td class="message">{e.error_message}</td>
                                    </tr>
                                }
                            })
                            .collect_view()}
                    </tbody>
                </table>
            </div>
        </section>
    }
    .into_any()
}

/// What the per-model chart measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Measure {
    Requests,
    Tokens,
    Cost,
}

impl Measure {
    const ALL: [Measure; 3] = [Measure::Requests, Measure::Tokens, Measure::Cost];

    fn name(self) -> &'static str {
        match self {
            Measure::Requests => "Requests",
            Measure::Tokens => "Tokens",
            Measure::Cost => "Cost",
        }
    }

    fn of(self, b: &UsageBucket) -> f64 {
        match self {
            Measure::Requests => b.requests as f64,
            Measure::Tokens => b.tokens() as f64,
            Measure::Cost => b.actual_cost,
        }
    }

    fn format(self) -> fn(f64) -> String {
        match self {
            Measure::Cost => usd,
            Measure::Requests | Measure::Tokens => compact,
        }
    }
}

fn bucket_title(name: &str, b: &UsageBucket) -> String {
    format!(
        "{name}: {} requests, {} tokens (in {}, out {}, cache write {}, cache read {}), {}",
        thousands(b.requests),
        thousands(b.tokens()),
        thousands(b.input_tokens),
        thousands(b.output_tokens),
        thousands(b.cache_creation_tokens),
        thousands(b.cache_read_tokens),
        usd(b.actual_cost),
    )
}

#[component]
fn TrendView(trend: UsageTrend) -> impl IntoView {
    let label_every = if trend.days.len() > 10 { 5 } else { 1 };
    let points: Vec<TrendPoint> = trend
        .days
        .iter()
        .map(|b| TrendPoint {
            label: b.key.get(5..).unwrap_or(&b.key).to_owned(),
            bar: b.requests as f64,
            line: b.actual_cost,
            title: bucket_title(&b.key, b),
        })
        .collect();
    let measure = RwSignal::new(Measure::Requests);
    let models = StoredValue::new(trend.models);
    let model_chart = move || {
        let m = measure.get();
        let data: Vec<Datum> = models.with_value(|models| {
            models
                .iter()
                .map(|b| {
                    let name = if b.key.is_empty() { "(none)" } else { b.key.as_str() };
                    Datum { label: name.to_owned(), value: m.of(b), title: bucket_title(name, b) }
                })
                .collect()
        });
        if data.is_empty() {
            view! { <p class="muted">"No requests in this range."</p> }.into_any()
        } else {
            view! { <HBarChart data label=format!("{} per model", m.name()) format=m.format()/> }.into_any()
        }
    };
    view! {
        <div class="grid-2">
            <div data-testid="trend-chart">
                <h3>"Requests and cost per day"</h3>
                <TrendChart points label="Requests (bars) and cost (line) per day" label_every line_format=usd_compact/>
                <p class="chart-legend muted small">
                    <span class="key key-bar"></span>
                    "Requests (left axis) "
                    <span class="key key-line"></span>
                    "Cost (right axis)"
                </p>
            </div>
            <div data-testid="model-chart">
                <div class="card-header">
                    <h3>"Per model"</h3>
                    <div class="segmented" role="group" aria-label="Measure">
                        {Measure::ALL
                            .into_iter()
                            .map(|m| {
                                view! {
                                    <button
                                        type="button"
                                        aria-pressed=move || (measure.get() == m).to_string()
                                        on:click=move |_| measure.set(m)
                                    >
                                        {m.name()}
                                    </button>
                                }
                            })
                            .collect_view()}
                    </div>
                </div>
                {model_chart}
            </div>
        </div>
    }
    .into_any()
}

#[cfg(test)]
mod tests {
    use super::duration_text;

    #[test]
    fn reset_times_read_naturally() {
        assert_eq!(duration_text(42), "42 s");
        assert_eq!(duration_text(200), "3 m 20 s");
        assert_eq!(duration_text(3900), "1 h 5 m");
    }
}
