//! API keys: every gateway key with its owner, group, state and today's usage. Keys are
//! created for a user here; the full key is shown once, with ready-to-paste client setups.
//! Filters (user, group, state) live in the URL.

use domain::api_key::{ApiKeyListing, UsageSummary, client_snippets};
use domain::{ApiKeyInput, ApiKeyStatus, CreatedApiKey, GroupView};
use leptos::prelude::*;

use super::PageHeader;
use crate::AppError;
use crate::api::groups::list_groups;
use crate::api::users::{
    create_api_key, delete_api_key, get_public_base_url, list_api_keys, list_users, set_api_key_group,
    set_api_key_status,
};
use crate::components::{
    Badge, ConfirmButton, CopyButton, EmptyRow, ErrorRow, LoadingRow, Modal, on_outcome, parse_opt_i64, query_param,
    query_writer,
};

const COLUMNS: u32 = 8;

/// `2026-11-26T23:10:05Z` → `2026-11-26 23:10`: minutes are enough in a table.
pub(super) fn short_time(rfc3339: &str) -> String {
    rfc3339.get(..16).map_or_else(|| rfc3339.to_owned(), |t| t.replacen('T', " ", 1))
}

/// One line for a usage summary, such as `12 req · 3400 tok · $0.0123`.
pub(super) fn usage_text(u: &UsageSummary) -> String {
    if u.requests == 0 {
        return "—".to_owned();
    }
    format!("{} req · {} tok · ${:.4}", u.requests, u.tokens, u.cost)
}

/// What the group filter selects: everything, ungrouped keys, or one group.
fn group_matches(filter: &str, group_id: Option<i64>) -> bool {
    match filter {
        "" => true,
        "none" => group_id.is_none(),
        id => id.parse::<i64>().ok() == group_id,
    }
}

#[component]
pub fn KeysPage() -> impl IntoView {
    let user_filter = query_param("user");
    let group_filter = query_param("group");
    let status_filter = query_param("status");
    let set_query = query_writer();

    let version = RwSignal::new(0u32);
    let keys = Resource::new(
        move || (version.get(), user_filter.get().parse::<i64>().ok()),
        |(_, user_id)| list_api_keys(user_id),
    );
    let users = Resource::new(|| (), |_| list_users());
    let groups = Resource::new(|| (), |_| list_groups());
    let base_url = Resource::new(|| (), |_| get_public_base_url());

    let set_status = Action::new(|(id, status): &(i64, ApiKeyStatus)| set_api_key_status(*id, *status));
    let set_group = Action::new(|(id, group): &(i64, Option<i64>)| set_api_key_group(*id, *group));
    let remove = Action::new(|id: &i64| delete_api_key(*id));
    on_outcome(set_status, |k| format!("Key {} is now {}", k.name, k.status), move |_| version.update(|v| *v += 1));
    on_outcome(set_group, |k| format!("Key {} moved", k.name), move |_| version.update(|v| *v += 1));
    on_outcome(remove, |_| "API key deleted".to_owned(), move |_| version.update(|v| *v += 1));

    let create = Action::new(|(user_id, input): &(i64, ApiKeyInput)| create_api_key(*user_id, input.clone()));
    let dialog_open = RwSignal::new(false);
    on_outcome(create, |k| format!("Created key {}", k.view.name), move |_| version.update(|v| *v += 1));
    // Only a success switches the dialog to the new key: an error leaves the form (and what
    // was typed into it) in place.
    let created = Memo::new(move |_| create.value().get().and_then(Result::ok));
    let open_dialog = move |_| {
        create.value().set(None);
        dialog_open.set(true);
    };

    let rows = move || {
        keys.get().map(|res| match res {
            Err(error) => view! { <ErrorRow colspan=COLUMNS error/> }.into_any(),
            Ok(list) => {
                let (group, status) = (group_filter.get(), status_filter.get());
                let shown: Vec<ApiKeyListing> = list
                    .into_iter()
                    .filter(|k| group_matches(&group, k.key.group_id))
                    .filter(|k| status.is_empty() || k.key.status.as_str() == status)
                    .collect();
                if shown.is_empty() {
                    return view! { <EmptyRow colspan=COLUMNS text="No API keys match."/> }.into_any();
                }
                let all_groups = groups.get().and_then(Result::ok).unwrap_or_default();
                shown
                    .into_iter()
                    .map(|listing| {
                        view! { <KeyRow listing groups=all_groups.clone() set_status set_group remove/> }
                    })
                    .collect_view()
                    .into_any()
            }
        })
    };

    view! {
        <PageHeader title="API Keys" subtitle="Keys that clients send to the gateway, and what they did today (UTC)."/>
        <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
            <div class="toolbar" data-testid="key-filters">
                <label>
                    "User"
                    <select
                        data-testid="filter-user"
                        prop:value=move || user_filter.get()
                        on:change={
                            let set_query = set_query.clone();
                            move |ev| set_query(&[("user", event_target_value(&ev))])
                        }
                    >
                        <option value="">"All users"</option>
                        {move || {
                            users
                                .get()
                                .and_then(Result::ok)
                                .unwrap_or_default()
                                .into_iter()
                                .map(|u| {
                                    let id = u.user.id.to_string();
                                    let selected = user_filter.get() == id;
                                    view! { <option value=id selected=selected>{u.user.email}</option> }
                                })
                                .collect_view()
                        }}
                    </select>
                </label>
                <label>
                    "Group"
                    <select
                        data-testid="filter-group"
                        prop:value=move || group_filter.get()
                        on:change={
                            let set_query = set_query.clone();
                            move |ev| set_query(&[("group", event_target_value(&ev))])
                        }
                    >
                        <option value="">"All groups"</option>
                        <option value="none" selected=move || group_filter.get() == "none">
                            "No group"
                        </option>
                        {move || {
                            groups
                                .get()
                                .and_then(Result::ok)
                                .unwrap_or_default()
                                .into_iter()
                                .map(|g| {
                                    let id = g.id.to_string();
                                    let selected = group_filter.get() == id;
                                    view! { <option value=id selected=selected>{g.name}</option> }
                                })
                                .collect_view()
                        }}
                    </select>
                </label>
                <label>
                    "State"
                    <select
                        data-testid="filter-status"
                        prop:value=move || status_filter.get()
                        on:change={
                            let set_query = set_query.clone();
                            move |ev| set_query(&[("status", event_target_value(&ev))])
                        }
                    >
                        <option value="">"Any"</option>
                        {ApiKeyStatus::ALL
                            .iter()
                            .map(|s| {
                                let value = s.as_str();
                                view! {
                                    <option value=value selected=move || status_filter.get() == value>
                                        {value}
                                    </option>
                                }
                            })
                            .collect_view()}
                    </select>
                </label>
                <span class="spacer"></span>
                <button class="button" data-testid="new-key" on:click=open_dialog>
                    "New API key"
                </button>
            </div>
        </Transition>
        <div class="table-wrap">
            <table class="data" data-testid="keys-table">
                <thead>
                    <tr>
                        <th>"Name"</th>
                        <th>"Owner"</th>
                        <th>"Group"</th>
                        <th>"State"</th>
                        <th>"Last used"</th>
                        <th>"Today"</th>
                        <th>"Expires"</th>
                        <th>"Actions"</th>
                    </tr>
                </thead>
                <tbody>
                    <Transition fallback=|| view! { <LoadingRow colspan=COLUMNS/> }>{rows}</Transition>
                </tbody>
            </table>
        </div>
        <Modal title="New API key" open=dialog_open testid="create-key-dialog">
            {move || match created.get() {
                Some(created) => {
                    let platform = created
                        .view
                        .group_id
                        .and_then(|id| groups.get().and_then(Result::ok)?.into_iter().find(|g| g.id == id))
                        .map(|g| g.platform);
                    let base = base_url.get().and_then(Result::ok).unwrap_or_else(|| "http://localhost".to_owned());
                    view! { <CreatedKey created base platform close=dialog_open/> }.into_any()
                }
                None => {
                    let default_user = user_filter.get_untracked();
                    view! {
                        <CreateKeyForm
                            create
                            default_user
                            users=Signal::derive(move || {
                                users.get().and_then(Result::ok).unwrap_or_default().into_iter().map(|u| u.user).collect()
                            })
                            groups=Signal::derive(move || groups.get().and_then(Result::ok).unwrap_or_default())
                        />
                    }
                        .into_any()
                }
            }}
        </Modal>
    }
}

#[component]
fn KeyRow(
    listing: ApiKeyListing,
    groups: Vec<GroupView>,
    set_status: Action<(i64, ApiKeyStatus), Result<domain::ApiKeyView, AppError>>,
    set_group: Action<(i64, Option<i64>), Result<domain::ApiKeyView, AppError>>,
    remove: Action<i64, Result<(), AppError>>,
) -> impl IntoView {
    let key = listing.key;
    let id = key.id;
    let (toggle_label, next_status) = match key.status {
        ApiKeyStatus::Active => ("Disable", ApiKeyStatus::Disabled),
        ApiKeyStatus::Disabled => ("Enable", ApiKeyStatus::Active),
    };
    let current_group = key.group_id;
    let question = format!("Delete key “{}” ({}…)? Clients using it stop working at once.", key.name, key.key_prefix);
    view! {
        <tr data-testid=format!("key-row-{id}")>
            <td>
                <strong>{key.name.clone()}</strong>
                <div class="muted small">
                    <code>{format!("{}…", key.key_prefix)}</code>
                </div>
            </td>
            <td data-testid="key-owner">
                <a href=format!("/keys?user={}", key.user_id)>{listing.user_email}</a>
            </td>
            <td>
                <select
                    aria-label=format!("Group of {}", key.name)
                    data-testid=format!("key-group-{id}")
                    disabled=move || set_group.pending().get()
                    on:change=move |ev| {
                        let value = event_target_value(&ev);
                        set_group.dispatch((id, value.parse::<i64>().ok()));
                    }
                >
                    <option value="" selected=current_group.is_none()>
                        "No group"
                    </option>
                    {groups
                        .into_iter()
                        .map(|g| {
                            view! {
                                <option value=g.id.to_string() selected=current_group == Some(g.id)>
                                    {format!("{} ({})", g.name, g.platform.as_str())}
                                </option>
                            }
                        })
                        .collect_view()}
                </select>
            </td>
            <td data-testid="key-status">
                <Badge kind=key.status.as_str() text=key.status.as_str()/>
            </td>
            <td class="small">{key.last_used_at.as_deref().map_or_else(|| "never".to_owned(), short_time)}</td>
            <td class="small" data-testid="key-today">
                {usage_text(&listing.today)}
                {(listing.today.requests > 0)
                    .then(|| view! { " " <a href=format!("/usage?api_key_id={id}")>"details"</a> })}
            </td>
            <td class="small">{key.expires_at.as_deref().map_or_else(|| "never".to_owned(), short_time)}</td>
            <td>
                <div class="row-actions">
                    <button
                        class="button secondary small"
                        data-testid=format!("toggle-key-{id}")
                        disabled=move || set_status.pending().get()
                        on:click=move |_| {
                            set_status.dispatch((id, next_status));
                        }
                    >
                        {toggle_label}
                    </button>
                    <ConfirmButton
                        label="Delete"
                        question
                        danger=true
                        pending=remove.pending()
                        testid=format!("delete-key-{id}")
                        on_confirm=Callback::new(move |()| {
                            remove.dispatch(id);
                        })
                    />
                </div>
            </td>
        </tr>
    }
}

#[component]
fn CreateKeyForm(
    create: Action<(i64, ApiKeyInput), Result<CreatedApiKey, AppError>>,
    default_user: String,
    users: Signal<Vec<domain::UserView>>,
    groups: Signal<Vec<GroupView>>,
) -> impl IntoView {
    let user = RwSignal::new(default_user);
    let name = RwSignal::new(String::new());
    let group = RwSignal::new(String::new());
    let concurrency = RwSignal::new(String::new());
    let expires = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    Effect::new(move |_| {
        if let Some(Err(e)) = create.value().get() {
            error.set(Some(e.to_string()));
        }
    });

    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let Ok(user_id) = user.get_untracked().parse::<i64>() else {
            error.set(Some("user: choose who the key is for".into()));
            return;
        };
        let concurrency = match parse_opt_i64("concurrency", &concurrency.get_untracked()) {
            Ok(v) => v.map(|c| i32::try_from(c).unwrap_or(i32::MAX)),
            Err(e) => {
                error.set(Some(e));
                return;
            }
        };
        let expires = expires.get_untracked();
        error.set(None);
        let input = ApiKeyInput {
            name: Some(name.get_untracked()),
            group_id: Some(group.get_untracked().parse::<i64>().ok()),
            status: None,
            concurrency,
            // The date picker gives a day; the key expires when that day begins (UTC).
            expires_at: (!expires.is_empty()).then(|| format!("{expires}T00:00:00Z")),
        };
        create.dispatch((user_id, input));
    };

    view! {
        <form class="form" data-testid="create-key-form" on:submit=submit>
            <label>
                "User"
                <select
                    required
                    data-testid="key-user"
                    prop:value=move || user.get()
                    on:change=move |ev| user.set(event_target_value(&ev))
                >
                    <option value="">"Choose a user…"</option>
                    {move || {
                        users
                            .get()
                            .into_iter()
                            .map(|u| {
                                let id = u.id.to_string();
                                let selected = user.get_untracked() == id;
                                view! { <option value=id selected=selected>{u.email}</option> }
                            })
                            .collect_view()
                    }}
                </select>
            </label>
            <label>
                "Name"
                <input type="text" required maxlength="100" placeholder="laptop" data-testid="key-name" bind:value=name/>
            </label>
            <label>
                "Group"
                <select
                    data-testid="key-group"
                    prop:value=move || group.get()
                    on:change=move |ev| group.set(event_target_value(&ev))
                >
                    <option value="">"No group"</option>
                    {move || {
                        groups
                            .get()
                            .into_iter()
                            .map(|g| {
                                view! { <option value=g.id.to_string()>{format!("{} ({})", g.name, g.platform.as_str())}</option> }
                            })
                            .collect_view()
                    }}
                </select>
            </label>
            <label>
                "Concurrency"
                <input type="number" min="0" step="1" placeholder="0 = unlimited" data-testid="key-concurrency" bind:value=concurrency/>
            </label>
            <label>
                "Expires on (UTC)"
                <input type="date" data-testid="key-expires" bind:value=expires/>
            </label>
            {move || error.get().map(|e| view! { <p class="field-error wide" role="alert">{e}</p> })}
            <div class="actions wide">
                <button class="button" type="submit" data-testid="create-key-submit" disabled=move || create.pending().get()>
                    {move || if create.pending().get() { "Creating…" } else { "Create key" }}
                </button>
            </div>
        </form>
    }
}

/// The new key, shown this once, and how to use it with each client.
#[component]
fn CreatedKey(
    created: CreatedApiKey,
    base: String,
    platform: Option<domain::Platform>,
    close: RwSignal<bool>,
) -> impl IntoView {
    let snippets = client_snippets(&base, &created.key, platform);
    let key = created.key;
    view! {
        <div class="notice" role="status">
            <p>"Copy the key now: it will not be shown again."</p>
            <div class="created-key">
                <code data-testid="created-key">{key.clone()}</code>
                <CopyButton text=key testid="copy-created-key"/>
            </div>
        </div>
        <p class="muted small">
            "Gateway address: " <code data-testid="public-base-url">{base}</code>
            " (change it with " <a href="/settings">"Settings → Public base URL"</a> ")"
        </p>
        {snippets
            .into_iter()
            .map(|s| {
                view! {
                    <section class="snippet-block">
                        <div class="snippet-head">
                            <h3>{s.title}</h3>
                            <CopyButton text=s.text.clone() testid=format!("copy-snippet-{}", s.id)/>
                        </div>
                        <pre class="snippet" data-testid=format!("snippet-{}", s.id)>{s.text}</pre>
                    </section>
                }
            })
            .collect_view()}
        <div class="actions">
            <button class="button" data-testid="created-key-done" on:click=move |_| close.set(false)>
                "Done"
            </button>
        </div>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_shown_to_the_minute() {
        assert_eq!(short_time("2026-11-26T23:10:05Z"), "2026-11-26 23:10");
        assert_eq!(short_time("soon"), "soon");
    }

    #[test]
    fn usage_reads_as_one_line_or_a_dash() {
        assert_eq!(usage_text(&UsageSummary::default()), "—");
        assert_eq!(usage_text(&UsageSummary { requests: 2, tokens: 250, cost: 0.0024 }), "2 req · 250 tok · $0.0024");
    }

    #[test]
    fn the_group_filter_selects_all_none_or_one() {
        assert!(group_matches("", Some(3)) && group_matches("", None));
        assert!(group_matches("none", None) && !group_matches("none", Some(3)));
        assert!(group_matches("3", Some(3)) && !group_matches("3", Some(4)) && !group_matches("3", None));
    }
}
