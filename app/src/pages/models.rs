//! Models: what each group lists on `GET /v1/models`, each account's model mapping (editable),
//! and the price table with search.

use domain::models::{AccountMapping, ModelsOverview, format_mapping, parse_mapping};
use leptos::prelude::*;

use super::PageHeader;
use crate::api::models::{SaveModelMapping, get_models_overview, search_prices};
use crate::components::{EmptyRow, ErrorRow, LoadingRow, query_param, query_writer, use_toasts};

#[component]
pub fn ModelsPage() -> impl IntoView {
    let saved = RwSignal::new(0u32);
    let overview = Resource::new(move || saved.get(), |_| get_models_overview());
    view! {
        <PageHeader title="Models" subtitle="What each group offers, how accounts rename models, and what they cost."/>
        <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || {
                overview
                    .get()
                    .map(|res| match res {
                        Ok(o) => view! { <Overview overview=o saved/> }.into_any(),
                        Err(e) => view! { <p class="error" role="alert">{e.to_string()}</p> }.into_any(),
                    })
            }}
        </Transition>
        <Prices/>
    }
}

#[component]
fn Overview(overview: ModelsOverview, saved: RwSignal<u32>) -> impl IntoView {
    let source = format!("{} · {} models priced", overview.price_source, overview.price_count);
    view! {
        <section class="card">
            <h2>"Models per group"</h2>
            <p class="muted small">"Exactly what " <code>"GET /v1/models"</code> " returns to a key bound to the group."</p>
            {if overview.groups.is_empty() {
                view! { <p class="muted" data-testid="empty-state">"No groups yet."</p> }.into_any()
            } else {
                overview
                    .groups
                    .into_iter()
                    .map(|g| {
                        let note = if g.built_in { "built-in list: no account maps a model name" } else { "from account mappings" };
                        view! {
                            <div class="group-models" data-testid=format!("group-models-{}", g.group_id)>
                                <h3>{g.name} " " <span class="muted small">{format!("{} · {note}", g.platform)}</span></h3>
                                <p>
                                    {g.models.into_iter().map(|m| view! { <code class="chip">{m}</code> " " }).collect_view()}
                                </p>
                            </div>
                        }
                    })
                    .collect_view()
                    .into_any()
            }}
        </section>
        <section class="card">
            <h2>"Model mapping per account"</h2>
            <p class="muted small">
                "One " <code>"requested = upstream"</code> " per line; " <code>"*"</code>
                " matches any suffix. Named models become the group's model list."
            </p>
            <div class="table-wrap">
                <table class="data">
                    <thead>
                        <tr>
                            <th>"Account"</th>
                            <th>"Platform"</th>
                            <th>"Mapping"</th>
                        </tr>
                    </thead>
                    <tbody>
                        {if overview.accounts.is_empty() {
                            view! { <EmptyRow colspan=3 text="No accounts yet."/> }.into_any()
                        } else {
                            overview
                                .accounts
                                .into_iter()
                                .map(|a| view! { <MappingRow account=a saved/> })
                                .collect_view()
                                .into_any()
                        }}
                    </tbody>
                </table>
            </div>
        </section>
        <p class="muted small" data-testid="price-source">"Prices: " {source}</p>
    }
}

#[component]
fn MappingRow(account: AccountMapping, saved: RwSignal<u32>) -> impl IntoView {
    let toasts = use_toasts();
    let id = account.account_id;
    let text = RwSignal::new(format_mapping(&account.mapping));
    let problem = RwSignal::new(None::<String>);
    let save = ServerAction::<SaveModelMapping>::new();
    Effect::new(move |_| match save.value().get() {
        Some(Ok(())) => {
            problem.set(None);
            toasts.ok("Model mapping saved");
            saved.update(|n| *n += 1);
        }
        Some(Err(e)) => {
            problem.set(Some(e.to_string()));
            toasts.err(e.to_string());
        }
        None => {}
    });
    view! {
        <tr data-testid=format!("mapping-row-{id}")>
            <td>{account.name}</td>
            <td>{account.platform.to_string()}</td>
            <td>
                <form on:submit=move |ev| {
                    ev.prevent_default();
                    match parse_mapping(&text.get_untracked()) {
                        Ok(mapping) => {
                            problem.set(None);
                            save.dispatch(SaveModelMapping { account_id: id, mapping });
                        }
                        Err(e) => problem.set(Some(e)),
                    }
                }>
                    <textarea
                        aria-label=format!("Model mapping of {}", id)
                        data-testid=format!("mapping-{id}")
                        rows=3
                        prop:value=move || text.get()
                        on:input=move |ev| text.set(event_target_value(&ev))
                    ></textarea>
                    {move || problem.get().map(|p| view! { <p class="error small" role="alert">{p}</p> })}
                    <button type="submit" class="button small" data-testid=format!("save-mapping-{id}") disabled=move || save.pending().get()>
                        "Save"
                    </button>
                </form>
            </td>
        </tr>
    }
}

#[component]
fn Prices() -> impl IntoView {
    let q = query_param("q");
    let write = query_writer();
    let prices = Resource::new(move || q.get(), search_prices);
    view! {
        <section class="card">
            <h2>"Prices"</h2>
            <form
                class="toolbar"
                on:submit=move |ev| {
                    ev.prevent_default();
                }
            >
                <label>
                    "Search models"
                    <input
                        type="search"
                        data-testid="price-search"
                        placeholder="claude-sonnet, gpt-5…"
                        prop:value=move || q.get()
                        on:change=move |ev| write(&[("q", event_target_value(&ev))])
                    />
                </label>
                <span class="muted small">"USD per million tokens; at most 200 rows."</span>
            </form>
            <div class="table-wrap">
                <table class="data">
                    <thead>
                        <tr>
                            <th>"Model"</th>
                            <th>"Provider"</th>
                            <th class="num">"Input"</th>
                            <th class="num">"Output"</th>
                            <th class="num">"Cache write"</th>
                            <th class="num">"Cache read"</th>
                            <th class="num">"Context"</th>
                        </tr>
                    </thead>
                    <tbody>
                        <Transition fallback=|| view! { <LoadingRow colspan=7/> }>
                            {move || {
                                prices
                                    .get()
                                    .map(|res| match res {
                                        Err(e) => view! { <ErrorRow colspan=7 error=e/> }.into_any(),
                                        Ok(rows) if rows.is_empty() => {
                                            view! { <EmptyRow colspan=7 text="No model matches."/> }.into_any()
                                        }
                                        Ok(rows) => {
                                            rows.into_iter()
                                                .map(|r| {
                                                    view! {
                                                        <tr data-testid="price-row">
                                                            <td><code>{r.model}</code></td>
                                                            <td>{r.provider}</td>
                                                            <td class="num">{money(r.input)}</td>
                                                            <td class="num">{money(r.output)}</td>
                                                            <td class="num">{money(r.cache_write)}</td>
                                                            <td class="num">{money(r.cache_read)}</td>
                                                            <td class="num">{r.max_input_tokens.map(|t| t.to_string()).unwrap_or_default()}</td>
                                                        </tr>
                                                    }
                                                })
                                                .collect_view()
                                                .into_any()
                                        }
                                    })
                            }}
                        </Transition>
                    </tbody>
                </table>
            </div>
        </section>
    }
}

fn money(v: f64) -> String {
    if v == 0.0 { "—".to_owned() } else { format!("${v:.2}") }
}
