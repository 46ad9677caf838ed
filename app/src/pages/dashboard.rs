//! Live counts from the database, refreshable without a reload.

use domain::DashboardStats;
use leptos::prelude::*;

use super::PageHeader;
use crate::api::get_dashboard_stats;

#[component]
pub fn DashboardPage() -> impl IntoView {
    let refreshes = RwSignal::new(0u32);
    let stats = Resource::new(move || refreshes.get(), |_| get_dashboard_stats());
    view! {
        <PageHeader title="Dashboard" subtitle="What the gateway holds right now."/>
        <button
            class="button secondary"
            data-testid="refresh"
            on:click=move |_| refreshes.update(|n| *n += 1)
        >
            "Refresh"
        </button>
        <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || {
                stats
                    .get()
                    .map(|res| match res {
                        Ok(s) => view! { <StatCards stats=s/> }.into_any(),
                        Err(e) => view! { <p class="error" role="alert">{e.to_string()}</p> }.into_any(),
                    })
            }}
        </Transition>
        <p class="muted small" data-testid="refresh-count">
            {move || format!("Refreshed {} times", refreshes.get())}
        </p>
    }
}

#[component]
fn StatCards(stats: DashboardStats) -> impl IntoView {
    let a = &stats.accounts;
    let cards = [
        ("users", "Users", stats.total_users),
        ("api-keys", "API keys", stats.total_api_keys),
        ("active-api-keys", "Active keys", stats.active_api_keys),
        ("groups", "Groups", stats.total_groups),
        ("accounts", "Accounts", a.total),
        ("accounts-active", "Active", a.active),
        ("accounts-rate-limited", "Rate-limited", a.rate_limited),
        ("accounts-overloaded", "Overloaded", a.overloaded),
        ("accounts-error", "Error", a.error),
        ("accounts-disabled", "Disabled", a.disabled),
    ];
    view! {
        <div class="stats">
            {cards
                .into_iter()
                .map(|(id, label, value)| {
                    view! {
                        <div class="card stat" data-testid=format!("stat-{id}")>
                            <span class="stat-label">{label}</span>
                            <span class="stat-value">{value}</span>
                        </div>
                    }
                })
                .collect_view()}
        </div>
    }
}
