//! Accounts: the upstream accounts the gateway schedules requests on. A paginated table whose
//! filters live in the URL, each account's health at a glance (state, token expiry,
//! subscription usage windows), per-row actions (test, refresh token, clear error or
//! cooldown, pause, edit, delete), the Add account wizard (an API key, or signing in to a
//! subscription), the edit form, bulk import of API keys and bulk enable / disable.

use std::collections::{BTreeMap, BTreeSet};

use domain::account::{
    ACCOUNT_PAGE_SIZE, AccountQuery, AccountState, BulkImportInput, BulkImportResult, BulkStatusInput,
    BulkStatusResult, OAuthInfo, UsageWindow,
};
use domain::oauth::{OAuthExchangeInput, OAuthStart, OAuthStartInput};
use domain::{
    AccountInput, AccountKind, AccountStatus, AccountTestResult, AccountView, CredentialsInput, GroupView, Page,
    Platform,
};
use leptos::html;
use leptos::prelude::*;

use super::PageHeader;
use super::keys::short_time;
use crate::AppError;
use crate::api::accounts::{
    bulk_import_accounts, clear_account_error, clear_account_rate_limit, create_account, delete_account,
    finish_account_sign_in, query_accounts, refresh_account_token, set_account_schedulable, set_accounts_status,
    start_account_sign_in, test_account, update_account,
};
use crate::api::groups::list_groups;
use crate::components::{
    Badge, ConfirmButton, CopyButton, EmptyRow, ErrorRow, LoadingRow, Modal, parse_opt_i64, query_param, query_writer,
    use_toasts,
};

const COLUMNS: u32 = 9;

/// Query-string updates: (key, value), an empty value removes the key.
type QueryUpdate = Vec<(&'static str, String)>;

/// Field name (as the server's validation messages spell it) → message.
type FieldErrors = RwSignal<BTreeMap<String, String>>;

/// What the Test dialog shows: whose test it was and how it went.
#[derive(Clone)]
struct TestOutput {
    account: String,
    result: Result<AccountTestResult, AppError>,
}

#[component]
pub fn AccountsPage() -> impl IntoView {
    let toasts = use_toasts();
    let write_query = query_writer();
    let set_query = Callback::new(move |updates: QueryUpdate| write_query(&updates));
    let platform = query_param("platform");
    let kind = query_param("type");
    let status = query_param("status");
    let group = query_param("group");
    let text = query_param("q");
    let page = query_param("page");
    // Unknown values in a hand-edited URL are ignored rather than refused.
    let query = Memo::new(move |_| AccountQuery {
        page: page.read().parse().ok(),
        page_size: Some(ACCOUNT_PAGE_SIZE),
        platform: platform.read().parse().ok(),
        kind: kind.read().parse().ok(),
        status: status.read().parse().ok(),
        group_id: group.read().parse().ok(),
        q: Some(text.get()).filter(|t| !t.trim().is_empty()),
    });
    let filtered = Memo::new(move |_| {
        let q = query.get();
        q.platform.is_some() || q.kind.is_some() || q.status.is_some() || q.group_id.is_some() || q.q.is_some()
    });

    let version = RwSignal::new(0u32);
    let refresh = Callback::new(move |()| version.update(|v| *v += 1));
    let accounts = Resource::new(move || (query.get(), version.get()), |(q, _)| query_accounts(q));
    let groups = Resource::new(|| (), |_| list_groups());
    let group_list = move || groups.get_untracked().and_then(Result::ok).unwrap_or_default();

    let selected = RwSignal::new(BTreeSet::<i64>::new());
    // A selection made under other filters or on another page would act on rows out of sight.
    Effect::new(move |_| {
        query.track();
        selected.set(BTreeSet::new());
    });
    let page_ids = move || {
        accounts.with(|r| match r {
            Some(Ok(page)) => page.items.iter().map(|a| a.id).collect(),
            _ => Vec::new(),
        })
    };

    let bulk = Action::new(|input: &BulkStatusInput| {
        let (input, status) = (input.clone(), input.status);
        async move { set_accounts_status(input).await.map(|r| (status, r)) }
    });
    Effect::new(move |_| {
        if let Some(res) = bulk.value().get() {
            toasts.result(&res, |(status, r): &(AccountStatus, BulkStatusResult)| {
                let verb = if *status == AccountStatus::Active { "Enabled" } else { "Disabled" };
                format!("{verb} {} account(s)", r.updated)
            });
            if res.is_ok() {
                selected.set(BTreeSet::new());
            }
            refresh.run(());
        }
    });
    let bulk_status = move |status: AccountStatus| {
        let ids: Vec<i64> = selected.get_untracked().into_iter().collect();
        bulk.dispatch(BulkStatusInput { ids, status });
    };

    let form_open = RwSignal::new(false);
    // The account being edited; `None` while creating.
    let editing = RwSignal::new(None::<AccountView>);
    let save = Action::new(|(id, input): &(Option<i64>, AccountInput)| {
        let (id, input) = (*id, input.clone());
        async move {
            match id {
                Some(id) => update_account(id, input).await,
                None => create_account(input).await,
            }
        }
    });
    Effect::new(move |_| {
        if let Some(res) = save.value().get() {
            toasts.result(&res, |a| format!("Saved account {}", a.name));
            if res.is_ok() {
                form_open.set(false);
                refresh.run(());
            }
        }
    });
    // The Add account wizard: the kind chosen (`None`: still choosing), and the last step of
    // a sign-in. Its success is handled here, since it closes the dialog it lives in; a
    // refusal is shown in the form, next to what was typed (a toast would cover the form's
    // buttons).
    let wizard = RwSignal::new(None::<NewKind>);
    let finish = Action::new(|input: &OAuthExchangeInput| finish_account_sign_in(input.clone()));
    Effect::new(move |_| {
        if let Some(Ok(account)) = finish.value().get() {
            toasts.ok(format!("Added account {}", account.name));
            form_open.set(false);
            refresh.run(());
        }
    });
    let open_form = move |account: Option<AccountView>| {
        save.value().set(None);
        finish.value().set(None);
        wizard.set(None);
        editing.set(account);
        form_open.set(true);
    };

    let import_open = RwSignal::new(false);
    let import = Action::new(|input: &BulkImportInput| bulk_import_accounts(input.clone()));
    Effect::new(move |_| {
        if let Some(res) = import.value().get() {
            toasts.result(&res, |r| match r.errors.len() {
                0 => format!("Imported {} account(s)", r.created),
                failed => format!("Imported {} account(s); {failed} line(s) failed", r.created),
            });
            if res.as_ref().is_ok_and(|r| r.created > 0) {
                refresh.run(());
            }
        }
    });

    let test_open = RwSignal::new(false);
    let test_output = RwSignal::new(None::<TestOutput>);
    let show_test = Callback::new(move |out: TestOutput| {
        test_output.set(Some(out));
        test_open.set(true);
    });

    view! {
        <PageHeader title="Accounts" subtitle="Upstream accounts the gateway sends requests to."/>
        <div class="toolbar" data-testid="account-filters">
            <label>
                "Search"
                <input
                    type="search"
                    data-testid="filter-q"
                    placeholder="name, notes or id"
                    value=text.get_untracked()
                    prop:value=move || text.get()
                    on:change=move |ev| set_query.run(vec![("q", event_target_value(&ev)), ("page", String::new())])
                />
            </label>
            <FilterSelect
                label="Platform"
                key="platform"
                current=platform
                options=Platform::ALL.iter().map(|p| (p.as_str().to_owned(), p.as_str().to_owned())).collect()
                set_query
            />
            <FilterSelect
                label="Type"
                key="type"
                current=kind
                options=AccountKind::ALL.iter().map(|k| (k.as_str().to_owned(), k.as_str().to_owned())).collect()
                set_query
            />
            <FilterSelect
                label="Status"
                key="status"
                current=status
                options=AccountState::ALL.iter().map(|s| (s.as_str().to_owned(), s.label().to_owned())).collect()
                set_query
            />
            <Transition fallback=|| ()>
                {move || {
                    groups
                        .get()
                        .map(|res| {
                            let options = res
                                .unwrap_or_default()
                                .into_iter()
                                .map(|g| (g.id.to_string(), format!("{} ({})", g.name, g.platform)))
                                .collect();
                            view! { <FilterSelect label="Group" key="group" current=group options set_query/> }
                        })
                }}
            </Transition>
            <span class="spacer"></span>
            <button
                class="button secondary"
                data-testid="import-accounts"
                on:click=move |_| {
                    import.value().set(None);
                    import_open.set(true);
                }
            >
                "Import keys"
            </button>
            <button class="button" data-testid="new-account" on:click=move |_| open_form(None)>
                "Add account"
            </button>
        </div>
        <div class="toolbar bulk-bar" data-testid="bulk-bar">
            <span class="muted" data-testid="selected-count">
                {move || format!("{} selected", selected.with(BTreeSet::len))}
            </span>
            <button
                class="button secondary small"
                data-testid="bulk-enable"
                disabled=move || selected.with(BTreeSet::is_empty) || bulk.pending().get()
                on:click=move |_| bulk_status(AccountStatus::Active)
            >
                "Enable selected"
            </button>
            <button
                class="button secondary small"
                data-testid="bulk-disable"
                disabled=move || selected.with(BTreeSet::is_empty) || bulk.pending().get()
                on:click=move |_| bulk_status(AccountStatus::Disabled)
            >
                "Disable selected"
            </button>
        </div>
        <div class="table-wrap">
            <table class="data" data-testid="accounts-table">
                <thead>
                    <tr>
                        <th>
                            <input
                                type="checkbox"
                                aria-label="Select every account on this page"
                                data-testid="select-page"
                                prop:checked=move || {
                                    let ids = page_ids();
                                    !ids.is_empty() && selected.with(|s| ids.iter().all(|id| s.contains(id)))
                                }
                                on:change=move |ev| {
                                    let on = event_target_checked(&ev);
                                    let ids = page_ids();
                                    selected
                                        .update(|s| {
                                            for id in ids {
                                                if on {
                                                    s.insert(id);
                                                } else {
                                                    s.remove(&id);
                                                }
                                            }
                                        });
                                }
                            />
                        </th>
                        <th>"Name"</th>
                        <th>"Platform"</th>
                        <th>"Status"</th>
                        <th>"Groups"</th>
                        <th class="num" title="Requests in flight / concurrency limit">
                            "Load"
                        </th>
                        <th class="num">"Priority"</th>
                        <th>"Last used"</th>
                        <th>"Actions"</th>
                    </tr>
                </thead>
                <tbody>
                    <Transition fallback=|| view! { <LoadingRow colspan=COLUMNS/> }>
                        {move || {
                            let group_names: BTreeMap<i64, String> = groups
                                .get()
                                .and_then(Result::ok)
                                .unwrap_or_default()
                                .into_iter()
                                .map(|g| (g.id, g.name))
                                .collect();
                            accounts
                                .get()
                                .map(|res| match res {
                                    Err(error) => view! { <ErrorRow colspan=COLUMNS error/> }.into_any(),
                                    Ok(page) if page.items.is_empty() => {
                                        let text = if filtered.get_untracked() {
                                            "No accounts match these filters."
                                        } else {
                                            "No accounts yet: add one or import API keys."
                                        };
                                        view! { <EmptyRow colspan=COLUMNS text/> }.into_any()
                                    }
                                    Ok(page) => {
                                        page.items
                                            .into_iter()
                                            .map(|account| {
                                                let groups = account
                                                    .group_ids
                                                    .iter()
                                                    .map(|id| group_names.get(id).cloned().unwrap_or_else(|| format!("#{id}")))
                                                    .collect();
                                                view! {
                                                    <AccountRow
                                                        account
                                                        groups
                                                        selected
                                                        refresh
                                                        show_test
                                                        on_edit=Callback::new(move |a| open_form(Some(a)))
                                                    />
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
        <Transition fallback=|| ()>
            {move || accounts.get().and_then(Result::ok).map(|page| view! { <Pager page set_query/> })}
        </Transition>
        {move || {
            let title = if editing.with(Option::is_some) { "Edit account" } else { "Add account" };
            view! {
                <Modal title open=form_open testid="account-dialog">
                    {move || match (editing.get_untracked(), wizard.get()) {
                        (Some(account), _) => {
                            let platform = account.platform;
                            view! { <AccountForm editing=Some(account) platform groups=group_list() save open=form_open/> }
                                .into_any()
                        }
                        (None, None) => {
                            view! {
                                <CloseOnEscape open=form_open/>
                                <KindPicker on_pick=Callback::new(move |k| {
                                    save.value().set(None);
                                    finish.value().set(None);
                                    wizard.set(Some(k));
                                })/>
                            }
                                .into_any()
                        }
                        (None, Some(kind)) => {
                            let back = Callback::new(move |()| wizard.set(None));
                            let body = if kind.signs_in() {
                                view! { <SignInForm kind groups=group_list() finish/> }.into_any()
                            } else {
                                view! {
                                    <AccountForm editing=None platform=kind.platform() groups=group_list() save open=form_open/>
                                }
                                    .into_any()
                            };
                            view! {
                                <CloseOnEscape open=form_open/>
                                <WizardHead kind back/>
                                {body}
                            }
                                .into_any()
                        }
                    }}
                </Modal>
            }
        }}
        <Modal title="Import API keys" open=import_open testid="import-dialog">
            <ImportForm groups=group_list() import open=import_open/>
        </Modal>
        <Modal title="Test result" open=test_open testid="test-dialog">
            {move || test_output.get().map(test_result_view)}
            <div class="actions">
                <button class="button secondary" on:click=move |_| test_open.set(false)>
                    "Close"
                </button>
            </div>
        </Modal>
    }
}

/// A `<select>` over one query parameter; "All" removes it. Changing it goes back to page 1.
#[component]
fn FilterSelect(
    label: &'static str,
    key: &'static str,
    current: Memo<String>,
    /// (value, text)
    options: Vec<(String, String)>,
    set_query: Callback<QueryUpdate>,
) -> impl IntoView {
    view! {
        <label>
            {label}
            <select
                data-testid=format!("filter-{key}")
                prop:value=move || current.get()
                on:change=move |ev| set_query.run(vec![(key, event_target_value(&ev)), ("page", String::new())])
            >
                <option value="" selected=move || current.read().is_empty()>
                    "All"
                </option>
                {options
                    .into_iter()
                    .map(|(value, text)| {
                        let v = value.clone();
                        view! {
                            <option value=value selected=move || *current.read() == v>
                                {text}
                            </option>
                        }
                    })
                    .collect_view()}
            </select>
        </label>
    }
}

#[component]
fn Pager(page: Page<AccountView>, set_query: Callback<QueryUpdate>) -> impl IntoView {
    let current = page.page;
    let last = u32::try_from(page.pages).unwrap_or(u32::MAX).max(1);
    let go = move |to: u32| {
        let value = if to <= 1 { String::new() } else { to.to_string() };
        set_query.run(vec![("page", value)]);
    };
    view! {
        <nav class="pager" aria-label="Pages">
            <span class="muted" data-testid="page-info">
                {format!("Page {current} of {last} · {} account(s)", page.total)}
            </span>
            <button
                class="button secondary small"
                data-testid="page-prev"
                disabled={current <= 1}
                on:click=move |_| go(current.saturating_sub(1).min(last))
            >
                "Previous"
            </button>
            <button
                class="button secondary small"
                data-testid="page-next"
                disabled={current >= last}
                on:click=move |_| go(current + 1)
            >
                "Next"
            </button>
        </nav>
    }
}

/// An action on one account: toasts the outcome in the server's words, then reloads the
/// table (also after a failure, since the account may have changed meanwhile).
fn row_action<O, F, Fu>(
    call: F,
    ok: impl Fn(&O) -> String + Send + Sync + 'static,
    refresh: Callback<()>,
) -> Action<(), Result<O, AppError>>
where
    O: Clone + Send + Sync + 'static,
    F: Fn() -> Fu + Send + Sync + 'static,
    Fu: Future<Output = Result<O, AppError>> + Send + 'static,
{
    let toasts = use_toasts();
    let action = Action::new(move |_: &()| call());
    Effect::new(move |_| {
        if let Some(res) = action.value().get() {
            toasts.result(&res, &ok);
            refresh.run(());
        }
    });
    action
}

#[component]
fn AccountRow(
    account: AccountView,
    /// Names of the account's groups.
    groups: Vec<String>,
    selected: RwSignal<BTreeSet<i64>>,
    refresh: Callback<()>,
    show_test: Callback<TestOutput>,
    on_edit: Callback<AccountView>,
) -> impl IntoView {
    let toasts = use_toasts();
    let id = account.id;
    let name = account.name.clone();
    let schedulable = account.schedulable;

    let test = Action::new(move |_: &()| test_account(id));
    let tested = name.clone();
    Effect::new(move |_| {
        if let Some(result) = test.value().get() {
            match &result {
                Ok(r) if r.success => toasts.ok(format!("{tested}: test passed")),
                Ok(r) => toasts.err(format!("{tested}: {}", r.error.as_deref().unwrap_or("test failed"))),
                Err(e) => toasts.err(e.to_string()),
            }
            show_test.run(TestOutput { account: tested.clone(), result });
            // A test changes health: success clears an error, failure may record one.
            refresh.run(());
        }
    });
    let clear_error = row_action(move || clear_account_error(id), |a| format!("{}: error cleared", a.name), refresh);
    let clear_cooldown =
        row_action(move || clear_account_rate_limit(id), |a| format!("{}: rate limit cleared", a.name), refresh);
    let toggle = row_action(
        move || set_account_schedulable(id, !schedulable),
        |a| format!("{}: {}", a.name, if a.schedulable { "scheduling resumed" } else { "scheduling paused" }),
        refresh,
    );
    let deleted = name.clone();
    let remove = row_action(move || delete_account(id), move |()| format!("{deleted}: deleted"), refresh);
    let refresh_token =
        row_action(move || refresh_account_token(id), |a| format!("{}: token refreshed", a.name), refresh);
    let refreshable = account.oauth.as_ref().is_some_and(|o| o.refreshable);
    let now = now_unix();
    let token = account.oauth.as_ref().map(|o| token_state(o, now));
    let email = account.oauth.as_ref().and_then(|o| o.email.clone());
    let windows = account.windows.clone();

    let state = account.state;
    let until = match state {
        AccountState::RateLimited => account.rate_limit_reset_at.clone(),
        AccountState::Overloaded => account.overload_until.clone(),
        _ => None,
    };
    let error_message =
        (state == AccountState::Error && !account.error_message.is_empty()).then(|| account.error_message.clone());
    let cooling = account.rate_limit_reset_at.is_some() || account.overload_until.is_some();
    let limit = if account.concurrency <= 0 { "∞".to_owned() } else { account.concurrency.to_string() };
    let edit_target = account.clone();

    view! {
        <tr data-testid=format!("account-row-{id}")>
            <td>
                <input
                    type="checkbox"
                    aria-label=format!("Select {name}")
                    data-testid=format!("select-{id}")
                    prop:checked=move || selected.with(|s| s.contains(&id))
                    on:change=move |ev| {
                        let on = event_target_checked(&ev);
                        selected
                            .update(|s| {
                                if on {
                                    s.insert(id);
                                } else {
                                    s.remove(&id);
                                }
                            });
                    }
                />
            </td>
            <td>
                <strong>{name.clone()}</strong>
                <span class="muted small">{format!(" #{id}")}</span>
                {email.map(|e| view! { <div class="muted small" data-testid=format!("account-email-{id}")>{e}</div> })}
                {(!account.notes.is_empty()).then(|| view! { <div class="muted small">{account.notes.clone()}</div> })}
            </td>
            <td>
                <Badge kind="muted" text=account.platform.as_str()/>
                <div class="muted small" data-testid=format!("account-type-{id}")>{account.kind.as_str()}</div>
                {token
                    .map(|t| {
                        view! {
                            <div
                                class=if t.expired { "small token-state error" } else { "small token-state muted" }
                                data-testid=format!("account-token-{id}")
                                title=t.title
                            >
                                {t.text}
                            </div>
                            {t.error
                                .map(|e| {
                                    view! {
                                        <div
                                            class="error small account-error"
                                            data-testid=format!("account-token-error-{id}")
                                        >
                                            {format!("refresh failed: {e}")}
                                        </div>
                                    }
                                })}
                        }
                    })}
            </td>
            <td class="account-state">
                <span
                    class=format!("badge badge-{}", state.as_str())
                    data-testid=format!("account-status-{id}")
                    title=error_message.clone()
                >
                    {state.label()}
                </span>
                {(!schedulable)
                    .then(|| {
                        view! {
                            <span
                                class="badge badge-muted"
                                data-testid=format!("account-unschedulable-{id}")
                                title="Not picked for new requests until scheduling is resumed"
                            >
                                "not schedulable"
                            </span>
                        }
                    })}
                {until
                    .map(|t| {
                        view! {
                            <div class="muted small" data-testid=format!("account-until-{id}")>
                                {format!("until {} UTC", short_time(&t))}
                            </div>
                        }
                    })}
                {error_message
                    .map(|m| {
                        view! {
                            <div class="error small account-error" data-testid=format!("account-error-{id}")>
                                {m}
                            </div>
                        }
                    })}
                {(!windows.is_empty())
                    .then(|| {
                        view! {
                            <div class="usage-windows" data-testid=format!("account-windows-{id}")>
                                {windows.into_iter().map(|w| window_badge(&w, now)).collect_view()}
                            </div>
                        }
                    })}
            </td>
            <td class="small">
                {if groups.is_empty() { "—".to_owned() } else { groups.join(", ") }}
            </td>
            <td class="num">{format!("{}/{limit}", account.in_flight)}</td>
            <td class="num">{account.priority}</td>
            <td class="small">{account.last_used_at.as_deref().map_or_else(|| "never".to_owned(), short_time)}</td>
            <td>
                <div class="row-actions">
                    <button
                        class="button secondary small"
                        data-testid=format!("test-{id}")
                        disabled=move || test.pending().get()
                        on:click=move |_| {
                            test.dispatch(());
                        }
                    >
                        {move || if test.pending().get() { "Testing…" } else { "Test" }}
                    </button>
                    <button
                        class="button secondary small"
                        data-testid=format!("edit-{id}")
                        on:click=move |_| on_edit.run(edit_target.clone())
                    >
                        "Edit"
                    </button>
                    <button
                        class="button secondary small"
                        data-testid=format!("toggle-schedulable-{id}")
                        title=if schedulable { "Stop picking this account for new requests" } else { "Pick this account for requests again" }
                        disabled=move || toggle.pending().get()
                        on:click=move |_| {
                            toggle.dispatch(());
                        }
                    >
                        {if schedulable { "Pause" } else { "Resume" }}
                    </button>
                    {refreshable
                        .then(|| {
                            view! {
                                <button
                                    class="button secondary small"
                                    data-testid=format!("refresh-token-{id}")
                                    title="Get a new access token from the provider now"
                                    disabled=move || refresh_token.pending().get()
                                    on:click=move |_| {
                                        refresh_token.dispatch(());
                                    }
                                >
                                    {move || if refresh_token.pending().get() { "Refreshing…" } else { "Refresh token" }}
                                </button>
                            }
                        })}
                    {(account.status == AccountStatus::Error)
                        .then(|| {
                            view! {
                                <button
                                    class="button secondary small"
                                    data-testid=format!("clear-error-{id}")
                                    disabled=move || clear_error.pending().get()
                                    on:click=move |_| {
                                        clear_error.dispatch(());
                                    }
                                >
                                    "Clear error"
                                </button>
                            }
                        })}
                    {cooling
                        .then(|| {
                            view! {
                                <button
                                    class="button secondary small"
                                    data-testid=format!("clear-rate-limit-{id}")
                                    disabled=move || clear_cooldown.pending().get()
                                    on:click=move |_| {
                                        clear_cooldown.dispatch(());
                                    }
                                >
                                    "Clear rate limit"
                                </button>
                            }
                        })}
                    <ConfirmButton
                        label="Delete"
                        question=format!("Delete account “{name}”? Requests stop using it at once.")
                        danger=true
                        pending=remove.pending()
                        testid=format!("delete-{id}")
                        on_confirm=Callback::new(move |()| {
                            remove.dispatch(());
                        })
                    />
                </div>
            </td>
        </tr>
    }
}

fn test_result_view(out: TestOutput) -> AnyView {
    let account = out.account;
    match out.result {
        Ok(r) if r.success => view! {
            <div class="test-result" data-testid="test-result" data-success="true">
                <p>
                    <Badge kind="ok" text="passed"/>
                    {format!(" {account} answered with {} in {} ms", r.model, r.latency_ms)}
                </p>
                <pre class="snippet">{r.text}</pre>
            </div>
        }
        .into_any(),
        Ok(r) => {
            let status = r.status.map(|s| format!(" (HTTP {s})")).unwrap_or_default();
            view! {
                <div class="test-result" data-testid="test-result" data-success="false">
                    <p>
                        <Badge kind="error" text="failed"/>
                        {format!(" {account} with {}{status} after {} ms", r.model, r.latency_ms)}
                    </p>
                    <p class="error" role="alert">{r.error.unwrap_or_else(|| "no answer".to_owned())}</p>
                </div>
            }
            .into_any()
        }
        Err(e) => view! {
            <div class="test-result" data-testid="test-result" data-success="false">
                <p class="error" role="alert">{format!("{account}: {e}")}</p>
            </div>
        }
        .into_any(),
    }
}

/// Puts a server refusal next to the field it names (`"priority: must be …"`), or in `general`.
fn show_server_error(error: &AppError, fields: &[&str], errors: FieldErrors, general: RwSignal<Option<String>>) {
    if let AppError::Invalid(message) = error
        && let Some((field, text)) = message.split_once(": ")
        && fields.contains(&field)
    {
        errors.update(|e| {
            e.insert(field.to_owned(), text.to_owned());
        });
        return;
    }
    general.set(Some(error.to_string()));
}

#[component]
fn FieldMessage(errors: FieldErrors, field: &'static str) -> impl IntoView {
    move || {
        errors.with(|e| e.get(field).cloned()).map(|message| {
            view! {
                <span class="field-error" role="alert" data-testid=format!("field-error-{field}")>
                    {message}
                </span>
            }
        })
    }
}

/// Reads a whole-number field; empty is `None`. The message is shown beside the field, so it
/// does not name it.
fn parse_number<T: TryFrom<i64>>(raw: &str) -> Result<Option<T>, String> {
    parse_opt_i64("", raw)
        .map_err(|_| "must be a whole number".to_owned())?
        .map(|v| T::try_from(v).map_err(|_| "out of range".to_owned()))
        .transpose()
}

/// Reads the model mapping box: one `requested=upstream` per line, blank lines skipped.
fn parse_mapping(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut mapping = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let Some((from, to)) = line.split_once('=') else {
            return Err(format!("line {}: write it as requested=upstream", i + 1));
        };
        let (from, to) = (from.trim(), to.trim());
        if from.is_empty() || to.is_empty() {
            return Err(format!("line {}: both model names are needed", i + 1));
        }
        mapping.insert(from.to_owned(), to.to_owned());
    }
    Ok(mapping)
}

fn mapping_text(mapping: &BTreeMap<String, String>) -> String {
    mapping.iter().map(|(from, to)| format!("{from}={to}\n")).collect()
}

/// Checkboxes for the groups of `platform`.
#[component]
fn GroupPicker(
    groups: Vec<GroupView>,
    #[prop(into)] platform: Signal<String>,
    chosen: RwSignal<BTreeSet<i64>>,
) -> impl IntoView {
    let groups = StoredValue::new(groups);
    move || {
        let platform = platform.get();
        let matching: Vec<GroupView> =
            groups.with_value(|all| all.iter().filter(|g| g.platform.as_str() == platform).cloned().collect());
        if matching.is_empty() {
            return view! { <span class="muted small">{format!("No {platform} groups yet.")}</span> }.into_any();
        }
        matching
            .into_iter()
            .map(|g| {
                let id = g.id;
                view! {
                    <label class="check">
                        <input
                            type="checkbox"
                            data-testid=format!("group-option-{id}")
                            prop:checked=move || chosen.with(|c| c.contains(&id))
                            on:change=move |ev| {
                                let on = event_target_checked(&ev);
                                chosen
                                    .update(|c| {
                                        if on {
                                            c.insert(id);
                                        } else {
                                            c.remove(&id);
                                        }
                                    });
                            }
                        />
                        {g.name}
                    </label>
                }
            })
            .collect_view()
            .into_any()
    }
}

/// Keeps only the chosen groups that belong to `platform`: an account's groups share its platform.
fn keep_platform_groups(groups: &[GroupView], platform: &str, chosen: RwSignal<BTreeSet<i64>>) {
    chosen.update(|c| c.retain(|id| groups.iter().any(|g| g.id == *id && g.platform.as_str() == platform)));
}

const ACCOUNT_FIELDS: &[&str] = &[
    "name",
    "notes",
    "platform",
    "type",
    "credentials.api_key",
    "credentials.base_url",
    "model_mapping",
    "concurrency",
    "priority",
    "proxy_id",
    "group_ids",
];

/// Create (an API-key account of `platform`) or edit form. Its fields keep what was typed
/// when the server refuses it. A signed-in account's credentials come from its sign-in, so
/// editing one shows no key or base URL.
#[component]
fn AccountForm(
    editing: Option<AccountView>,
    platform: Platform,
    groups: Vec<GroupView>,
    save: Action<(Option<i64>, AccountInput), Result<AccountView, AppError>>,
    open: RwSignal<bool>,
) -> impl IntoView {
    let id = editing.as_ref().map(|a| a.id);
    let kind = editing.as_ref().map_or(AccountKind::ApiKey, |a| a.kind);
    let has_key = kind == AccountKind::ApiKey;
    let platform_value = platform;
    let platform_name = platform.as_str();
    let platform = Signal::stored(platform_name.to_owned());
    let name = RwSignal::new(editing.as_ref().map(|a| a.name.clone()).unwrap_or_default());
    let notes = RwSignal::new(editing.as_ref().map(|a| a.notes.clone()).unwrap_or_default());
    let api_key = RwSignal::new(String::new());
    let base_url = RwSignal::new(editing.as_ref().and_then(|a| a.base_url.clone()).unwrap_or_default());
    let mapping = RwSignal::new(editing.as_ref().map(|a| mapping_text(&a.model_mapping)).unwrap_or_default());
    let concurrency =
        RwSignal::new(editing.as_ref().map_or(domain::account::DEFAULT_CONCURRENCY, |a| a.concurrency).to_string());
    let priority =
        RwSignal::new(editing.as_ref().map_or(domain::account::DEFAULT_PRIORITY, |a| a.priority).to_string());
    let proxy = RwSignal::new(editing.as_ref().and_then(|a| a.proxy_id).map(|p| p.to_string()).unwrap_or_default());
    let chosen = RwSignal::new(
        editing.as_ref().map(|a| a.group_ids.iter().copied().collect::<BTreeSet<i64>>()).unwrap_or_default(),
    );
    let schedulable = RwSignal::new(editing.as_ref().is_none_or(|a| a.schedulable));
    let errors: FieldErrors = RwSignal::new(BTreeMap::new());
    let general = RwSignal::new(None::<String>);
    let groups = StoredValue::new(groups);
    let name_input = focus_on_mount::<html::Input>();

    Effect::new(move |_| {
        if let Some(Err(e)) = save.value().get() {
            show_server_error(&e, ACCOUNT_FIELDS, errors, general);
        }
    });

    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let mut found = BTreeMap::new();
        let mut check = |field: &str, res: Result<(), String>| {
            if let Err(message) = res {
                found.insert(field.to_owned(), message);
            }
        };
        check("name", if name.read_untracked().trim().is_empty() { Err("is required".into()) } else { Ok(()) });
        let key = api_key.get_untracked().trim().to_owned();
        check(
            "credentials.api_key",
            if id.is_none() && key.is_empty() { Err("is required for a new account".into()) } else { Ok(()) },
        );
        let url = base_url.get_untracked().trim().to_owned();
        check(
            "credentials.base_url",
            if url.is_empty() || url.starts_with("http://") || url.starts_with("https://") {
                Ok(())
            } else {
                Err("must be an http:// or https:// URL".into())
            },
        );
        let model_mapping = parse_mapping(&mapping.get_untracked());
        let concurrency_value = parse_number::<i32>(&concurrency.get_untracked());
        let priority_value = parse_number::<i32>(&priority.get_untracked());
        let proxy_value = parse_number::<i64>(&proxy.get_untracked());
        check("model_mapping", model_mapping.as_ref().map(|_| ()).map_err(Clone::clone));
        check("concurrency", concurrency_value.as_ref().map(|_| ()).map_err(Clone::clone));
        check("priority", priority_value.as_ref().map(|_| ()).map_err(Clone::clone));
        check("proxy_id", proxy_value.as_ref().map(|_| ()).map_err(Clone::clone));
        general.set(None);
        errors.set(found);
        if !errors.with_untracked(BTreeMap::is_empty) {
            return;
        }
        let (Ok(model_mapping), Ok(concurrency), Ok(priority), Ok(proxy_id)) =
            (model_mapping, concurrency_value, priority_value, proxy_value)
        else {
            return;
        };
        let input = AccountInput {
            name: Some(name.get_untracked()),
            notes: Some(notes.get_untracked()),
            // Platform and type never change on an existing account.
            platform: id.is_none().then_some(platform_value),
            kind: id.is_none().then_some(AccountKind::ApiKey),
            credentials: has_key
                .then(|| CredentialsInput { api_key: (!key.is_empty()).then_some(key), base_url: Some(url) }),
            model_mapping: Some(model_mapping),
            concurrency,
            priority,
            group_ids: Some(chosen.get_untracked().into_iter().collect()),
            proxy_id: Some(proxy_id),
            schedulable: Some(schedulable.get_untracked()),
        };
        save.dispatch((id, input));
    };

    view! {
        <form class="form" data-testid="account-form" on:submit=submit novalidate>
            // Platform and type are chosen in the wizard and never change afterwards.
            <label>
                "Platform"
                <select data-testid="account-platform" disabled=true>
                    <option value=platform_name selected=true>
                        {platform_name}
                    </option>
                </select>
                <FieldMessage errors field="platform"/>
            </label>
            <label>
                "Type"
                <select data-testid="account-type" disabled=true>
                    <option value=kind.as_str() selected=true>
                        {kind.as_str()}
                    </option>
                </select>
                <FieldMessage errors field="type"/>
            </label>
            <label>
                "Name"
                <input type="text" maxlength="200" data-testid="account-name" node_ref=name_input bind:value=name/>
                <FieldMessage errors field="name"/>
            </label>
            {has_key
                .then(|| {
                    view! {
                        <label>
                            "API key"
                            <input
                                type="password"
                                autocomplete="off"
                                data-testid="account-api-key"
                                placeholder=if id.is_some() { "leave blank to keep the stored key" } else { "sk-…" }
                                bind:value=api_key
                            />
                            <FieldMessage errors field="credentials.api_key"/>
                        </label>
                        <label class="wide">
                            "Base URL"
                            <input
                                type="url"
                                data-testid="account-base-url"
                                placeholder="empty: the platform's official API"
                                bind:value=base_url
                            />
                            <FieldMessage errors field="credentials.base_url"/>
                        </label>
                    }
                })}
            <label>
                "Concurrency"
                <input type="number" data-testid="account-concurrency" title="0 or less: unlimited" bind:value=concurrency/>
                <FieldMessage errors field="concurrency"/>
            </label>
            <label>
                "Priority"
                <input
                    type="number"
                    min="0"
                    max="10000"
                    data-testid="account-priority"
                    title="Lower is preferred"
                    bind:value=priority
                />
                <FieldMessage errors field="priority"/>
            </label>
            <label>
                "Proxy id"
                <input type="number" min="1" data-testid="account-proxy" placeholder="none" bind:value=proxy/>
                <FieldMessage errors field="proxy_id"/>
            </label>
            <label class="check">
                <input type="checkbox" data-testid="account-schedulable" bind:checked=schedulable/>
                "Schedulable"
            </label>
            <fieldset class="wide account-groups" data-testid="account-groups">
                <legend>"Groups"</legend>
                <GroupPicker groups=groups.get_value() platform=platform chosen/>
                <FieldMessage errors field="group_ids"/>
            </fieldset>
            <label class="wide">
                "Model mapping"
                <textarea
                    data-testid="account-model-mapping"
                    placeholder="claude-sonnet-4-5=claude-sonnet-4-5-20250929\nclaude-*=claude-sonnet-4-5"
                    bind:value=mapping
                ></textarea>
                <span class="muted small">"One requested=upstream per line; * matches any text."</span>
                <FieldMessage errors field="model_mapping"/>
            </label>
            <label class="wide">
                "Notes"
                <textarea data-testid="account-notes" bind:value=notes></textarea>
                <FieldMessage errors field="notes"/>
            </label>
            {move || general.get().map(|m| view! { <p class="error wide" role="alert" data-testid="form-error">{m}</p> })}
            <div class="actions wide">
                <button type="button" class="button secondary" on:click=move |_| open.set(false)>
                    "Cancel"
                </button>
                <button type="submit" class="button" data-testid="account-save" disabled=move || save.pending().get()>
                    {move || if save.pending().get() { "Saving…" } else { "Save" }}
                </button>
            </div>
        </form>
    }
}

/// What the Add account wizard can add: an API key of a platform, or a subscription signed in
/// through the provider's page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NewKind {
    AnthropicKey,
    ClaudeOAuth,
    ClaudeSetupToken,
    OpenaiKey,
    CodexOAuth,
    GeminiKey,
}

impl NewKind {
    const ALL: [NewKind; 6] = [
        NewKind::AnthropicKey,
        NewKind::ClaudeOAuth,
        NewKind::ClaudeSetupToken,
        NewKind::OpenaiKey,
        NewKind::CodexOAuth,
        NewKind::GeminiKey,
    ];

    fn platform(self) -> Platform {
        match self {
            NewKind::AnthropicKey | NewKind::ClaudeOAuth | NewKind::ClaudeSetupToken => Platform::Anthropic,
            NewKind::OpenaiKey | NewKind::CodexOAuth => Platform::Openai,
            NewKind::GeminiKey => Platform::Gemini,
        }
    }

    fn kind(self) -> AccountKind {
        match self {
            NewKind::ClaudeOAuth | NewKind::CodexOAuth => AccountKind::OAuth,
            NewKind::ClaudeSetupToken => AccountKind::SetupToken,
            NewKind::AnthropicKey | NewKind::OpenaiKey | NewKind::GeminiKey => AccountKind::ApiKey,
        }
    }

    fn signs_in(self) -> bool {
        self.kind() != AccountKind::ApiKey
    }

    fn title(self) -> &'static str {
        match self {
            NewKind::AnthropicKey => "Anthropic API key",
            NewKind::ClaudeOAuth => "Claude OAuth (Pro/Max)",
            NewKind::ClaudeSetupToken => "Claude setup token",
            NewKind::OpenaiKey => "OpenAI API key",
            NewKind::CodexOAuth => "ChatGPT/Codex OAuth",
            NewKind::GeminiKey => "Gemini API key (AI Studio)",
        }
    }

    fn hint(self) -> &'static str {
        match self {
            NewKind::AnthropicKey => "An sk-ant-… key from the Anthropic Console, billed per token.",
            NewKind::ClaudeOAuth => {
                "Sign in with a Claude Pro or Max subscription; the token is refreshed automatically."
            }
            NewKind::ClaudeSetupToken => {
                "Sign in for a long-lived token that can only send messages (as claude setup-token does); it is not refreshed."
            }
            NewKind::OpenaiKey => "An sk-… key from the OpenAI platform, billed per token.",
            NewKind::CodexOAuth => "Sign in with a ChatGPT subscription, for Codex and the Responses API.",
            NewKind::GeminiKey => "A key from Google AI Studio.",
        }
    }

    /// What to paste once signed in, in the provider's own terms.
    fn paste_hint(self) -> &'static str {
        match self {
            NewKind::CodexOAuth => {
                "After you approve, the browser goes to http://localhost:1455/auth/callback?code=…, which does not \
                 load: copy that whole address from the address bar."
            }
            _ => "After you approve, the page shows a code (code#state): copy all of it.",
        }
    }

    fn testid(self) -> &'static str {
        match self {
            NewKind::AnthropicKey => "anthropic-apikey",
            NewKind::ClaudeOAuth => "claude-oauth",
            NewKind::ClaudeSetupToken => "claude-setup-token",
            NewKind::OpenaiKey => "openai-apikey",
            NewKind::CodexOAuth => "codex-oauth",
            NewKind::GeminiKey => "gemini-apikey",
        }
    }
}

fn provider_name(platform: Platform) -> &'static str {
    match platform {
        Platform::Anthropic => "Anthropic (Claude)",
        Platform::Openai => "OpenAI (ChatGPT, Codex)",
        Platform::Gemini => "Google (Gemini)",
    }
}

/// A node reference whose element takes the keyboard focus once it is in the page, so a
/// dialog's keys (Tab, Escape) start inside it.
fn focus_on_mount<E>() -> NodeRef<E>
where
    E: html::ElementType + 'static,
    E::Output: leptos::wasm_bindgen::JsCast + Clone + 'static,
{
    use leptos::wasm_bindgen::JsCast;
    let node = NodeRef::<E>::new();
    node.on_load(|el| {
        let _ = el.unchecked_ref::<leptos::web_sys::HtmlElement>().focus();
    });
    node
}

/// Closes a dialog on Escape wherever the focus is, while this is mounted (the dialog's own
/// handler only hears keys pressed inside it, and a step change can drop the focus).
#[component]
fn CloseOnEscape(open: RwSignal<bool>) -> impl IntoView {
    #[cfg(feature = "hydrate")]
    {
        let handle = window_event_listener(leptos::ev::keydown, move |ev| {
            if ev.key() == "Escape" {
                open.set(false);
            }
        });
        on_cleanup(move || handle.remove());
    }
    let _ = open;
}

/// The wizard's first step: which kind of account, grouped by provider.
#[component]
fn KindPicker(on_pick: Callback<NewKind>) -> impl IntoView {
    let first = focus_on_mount::<html::Button>();
    view! {
        <div class="kind-picker" data-testid="kind-picker">
            <p class="muted">"What kind of account are you adding?"</p>
            {[Platform::Anthropic, Platform::Openai, Platform::Gemini]
                .into_iter()
                .map(|platform| {
                    view! {
                        <fieldset class="kind-group">
                            <legend>{provider_name(platform)}</legend>
                            {NewKind::ALL
                                .into_iter()
                                .filter(|k| k.platform() == platform)
                                .map(|k| {
                                    let node = if k == NewKind::ALL[0] { first } else { NodeRef::new() };
                                    view! {
                                        <button
                                            type="button"
                                            class="kind-option"
                                            data-testid=format!("kind-{}", k.testid())
                                            node_ref=node
                                            on:click=move |_| on_pick.run(k)
                                        >
                                            <strong>{k.title()}</strong>
                                            <span class="muted small">{k.hint()}</span>
                                        </button>
                                    }
                                })
                                .collect_view()}
                        </fieldset>
                    }
                })
                .collect_view()}
        </div>
    }
}

/// The chosen kind above the wizard's form, with the way back to the choice.
#[component]
fn WizardHead(kind: NewKind, back: Callback<()>) -> impl IntoView {
    view! {
        <div class="wizard-head">
            <div>
                <strong data-testid="wizard-kind">{kind.title()}</strong>
                <div class="muted small">{kind.hint()}</div>
            </div>
            <button type="button" class="button secondary small" data-testid="wizard-back" on:click=move |_| back.run(())>
                "Other type"
            </button>
        </div>
    }
}

const SIGN_IN_FIELDS: &[&str] = &["name", "notes", "group_ids", "concurrency", "priority", "proxy_id", "code"];

/// Adding a subscription account by signing in: (1) its settings and "Start sign-in", which
/// yields the provider's authorize URL; (2) the code the provider shows, pasted back, which
/// `finish` exchanges for the account. The fields keep what was typed when the server refuses.
#[component]
fn SignInForm(
    kind: NewKind,
    groups: Vec<GroupView>,
    finish: Action<OAuthExchangeInput, Result<AccountView, AppError>>,
) -> impl IntoView {
    let platform = kind.platform();
    let name = RwSignal::new(String::new());
    let notes = RwSignal::new(String::new());
    let concurrency = RwSignal::new(domain::account::DEFAULT_CONCURRENCY.to_string());
    let priority = RwSignal::new(domain::account::DEFAULT_PRIORITY.to_string());
    let proxy = RwSignal::new(String::new());
    let chosen = RwSignal::new(BTreeSet::<i64>::new());
    let code = RwSignal::new(String::new());
    let errors: FieldErrors = RwSignal::new(BTreeMap::new());
    let general = RwSignal::new(None::<String>);
    let started = RwSignal::new(None::<OAuthStart>);
    let name_input = focus_on_mount::<html::Input>();
    let code_input = focus_on_mount::<html::Input>();

    let start = Action::new(|input: &OAuthStartInput| start_account_sign_in(input.clone()));
    Effect::new(move |_| match start.value().get() {
        Some(Ok(s)) => {
            code.set(String::new());
            started.set(Some(s));
        }
        Some(Err(e)) => show_server_error(&e, SIGN_IN_FIELDS, errors, general),
        None => {}
    });
    Effect::new(move |_| {
        if let Some(Err(e)) = finish.value().get() {
            show_server_error(&e, SIGN_IN_FIELDS, errors, general);
        }
    });

    // Checks the settings (and, once started, the code); `None` when something is wrong,
    // which the fields then say.
    let checked = move |with_code: bool| {
        let mut found = BTreeMap::new();
        if name.read_untracked().trim().is_empty() {
            found.insert("name".to_owned(), "is required".to_owned());
        }
        let concurrency_value = parse_number::<i32>(&concurrency.get_untracked());
        let priority_value = parse_number::<i32>(&priority.get_untracked());
        let proxy_value = parse_number::<i64>(&proxy.get_untracked());
        for (field, res) in [
            ("concurrency", concurrency_value.as_ref().map(|_| ())),
            ("priority", priority_value.as_ref().map(|_| ())),
            ("proxy_id", proxy_value.as_ref().map(|_| ())),
        ] {
            if let Err(message) = res {
                found.insert(field.to_owned(), message.clone());
            }
        }
        if with_code && code.read_untracked().trim().is_empty() {
            found.insert("code".to_owned(), "paste the code the sign-in page showed".to_owned());
        }
        general.set(None);
        let ok = found.is_empty();
        errors.set(found);
        match (ok, concurrency_value, priority_value, proxy_value) {
            (true, Ok(c), Ok(p), Ok(x)) => Some((c, p, x)),
            _ => None,
        }
    };
    let begin = move || {
        if let Some((_, _, proxy_id)) = checked(false) {
            start.dispatch(OAuthStartInput { platform, kind: Some(kind.kind()), proxy_id });
        }
    };
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let Some(session_id) = started.with_untracked(|s| s.as_ref().map(|s| s.session_id.clone())) else {
            begin();
            return;
        };
        if let Some((concurrency, priority, _)) = checked(true) {
            let notes = notes.get_untracked();
            finish.dispatch(OAuthExchangeInput {
                session_id,
                code: code.get_untracked().trim().to_owned(),
                name: name.get_untracked(),
                notes: (!notes.trim().is_empty()).then_some(notes),
                group_ids: chosen.get_untracked().into_iter().collect(),
                concurrency,
                priority,
                project_id: None,
            });
        }
    };
    let is_started = move || started.with(Option::is_some);

    view! {
        <form class="form" data-testid="sign-in-form" on:submit=submit novalidate>
            <h3 class="step wide">"1. Settings"</h3>
            <label>
                "Name"
                <input type="text" maxlength="200" data-testid="sign-in-name" node_ref=name_input bind:value=name/>
                <FieldMessage errors field="name"/>
            </label>
            <label>
                "Concurrency"
                <input type="number" data-testid="sign-in-concurrency" title="0 or less: unlimited" bind:value=concurrency/>
                <FieldMessage errors field="concurrency"/>
            </label>
            <label>
                "Priority"
                <input
                    type="number"
                    min="0"
                    max="10000"
                    data-testid="sign-in-priority"
                    title="Lower is preferred"
                    bind:value=priority
                />
                <FieldMessage errors field="priority"/>
            </label>
            <label>
                "Proxy id"
                <input
                    type="number"
                    min="1"
                    data-testid="sign-in-proxy"
                    placeholder="none"
                    title=move || {
                        if is_started() {
                            "The sign-in goes through this proxy; start again to change it"
                        } else {
                            "The sign-in and the account's requests go through this proxy"
                        }
                    }
                    disabled=is_started
                    bind:value=proxy
                />
                <FieldMessage errors field="proxy_id"/>
            </label>
            <fieldset class="wide account-groups" data-testid="sign-in-groups">
                <legend>"Groups"</legend>
                <GroupPicker groups platform=Signal::stored(platform.as_str().to_owned()) chosen/>
                <FieldMessage errors field="group_ids"/>
            </fieldset>
            <label class="wide">
                "Notes"
                <textarea class="short" data-testid="sign-in-notes" bind:value=notes></textarea>
                <FieldMessage errors field="notes"/>
            </label>
            {move || {
                started
                    .get()
                    .map(|s| {
                        let url = s.auth_url.clone();
                        let expires = parse_rfc3339(&s.expires_at);
                        let until = expires.map_or_else(|| s.expires_at.clone(), |t| format!("{} UTC", utc_text(t)));
                        let left = expires
                            .map(|t| t - now_unix())
                            .filter(|left| *left > 0)
                            .map(|left| format!(" (in {})", span_text(left)))
                            .unwrap_or_default();
                        view! {
                            <h3 class="step wide">"2. Sign in"</h3>
                            <div class="wide sign-in-step" data-testid="sign-in-step">
                                <p>
                                    "Open the sign-in page, sign in with the subscription's account and approve. "
                                    {kind.paste_hint()}
                                </p>
                                <div class="sign-in-link">
                                    <a
                                        class="button"
                                        href=url.clone()
                                        target="_blank"
                                        rel="noopener noreferrer"
                                        data-testid="sign-in-url"
                                    >
                                        "Open the sign-in page ↗"
                                    </a>
                                    <CopyButton text=url.clone() testid="copy-sign-in-url"/>
                                </div>
                                <code class="auth-url" data-testid="sign-in-url-text">{url}</code>
                                <p class="muted small" data-testid="sign-in-expires">
                                    {format!("This sign-in expires at {until}{left}; after that, start again.")}
                                </p>
                            </div>
                            <label class="wide">
                                "Paste the code (or the whole callback address)"
                                <input
                                    type="text"
                                    autocomplete="off"
                                    spellcheck="false"
                                    data-testid="sign-in-code"
                                    node_ref=code_input
                                    bind:value=code
                                />
                                <FieldMessage errors field="code"/>
                            </label>
                        }
                    })
            }}
            {move || general.get().map(|m| view! { <p class="error wide" role="alert" data-testid="form-error">{m}</p> })}
            <div class="actions wide">
                {move || {
                    if is_started() {
                        view! {
                            <button
                                type="button"
                                class="button secondary"
                                data-testid="sign-in-restart"
                                title="Start a new sign-in, for instance after this one expired"
                                disabled=move || start.pending().get()
                                on:click=move |_| begin()
                            >
                                {move || if start.pending().get() { "Starting…" } else { "Start again" }}
                            </button>
                            <button
                                type="submit"
                                class="button"
                                data-testid="sign-in-finish"
                                disabled=move || finish.pending().get()
                            >
                                {move || if finish.pending().get() { "Adding…" } else { "Add account" }}
                            </button>
                        }
                            .into_any()
                    } else {
                        view! {
                            <button
                                type="submit"
                                class="button"
                                data-testid="sign-in-start"
                                disabled=move || start.pending().get()
                            >
                                {move || if start.pending().get() { "Starting…" } else { "Start sign-in" }}
                            </button>
                        }
                            .into_any()
                    }
                }}
            </div>
        </form>
    }
}

/// How an OAuth account's access token stands, for its row.
struct TokenState {
    text: String,
    /// The absolute times, for the tooltip.
    title: String,
    expired: bool,
    error: Option<String>,
}

fn token_state(info: &OAuthInfo, now: i64) -> TokenState {
    let expires = info.expires_at.as_deref().map(|raw| (raw, parse_rfc3339(raw)));
    let (text, expired) = match expires {
        None => ("token does not expire".to_owned(), false),
        Some((raw, None)) => (format!("token expires {raw}"), false),
        Some((_, Some(at))) if at <= now => (format!("token expired {} ago", span_text(now - at)), true),
        Some((_, Some(at))) => (format!("token expires in {}", span_text(at - now)), false),
    };
    let mut title = match expires {
        Some((_, Some(at))) => format!("Access token expires {} UTC", utc_text(at)),
        Some((raw, None)) => format!("Access token expires {raw}"),
        None => "The provider gave no expiry".to_owned(),
    };
    if let Some(at) = info.refreshed_at.as_deref() {
        let at = parse_rfc3339(at).map_or_else(|| at.to_owned(), |t| format!("{} UTC", utc_text(t)));
        title.push_str(&format!("; last refreshed {at}"));
    }
    title.push_str(if info.refreshable {
        "; refreshed automatically before it expires"
    } else {
        "; cannot be refreshed: sign in again when it expires"
    });
    TokenState { text, title, expired, error: info.refresh_error.clone().filter(|e| !e.is_empty()) }
}

/// One usage window as a small badge: `5h 42% · resets 14:00`, exhausted ones in the error
/// colour, with the details in its tooltip.
fn window_badge(w: &UsageWindow, now: i64) -> impl IntoView + use<> {
    let used = w.used_percent.map(|p| format!("{p:.0}%"));
    let status = w.status.as_deref().map(|s| s.replace('_', " "));
    let resets = w.resets_at.as_deref().and_then(parse_rfc3339);
    let mut text = w.name.clone();
    if let Some(shown) = used.clone().or_else(|| status.clone()) {
        text.push(' ');
        text.push_str(&shown);
    }
    if let Some(at) = resets {
        text.push_str(&format!(" · resets {}", reset_text(at, now)));
    }
    let mut title = format!("{} window", w.name);
    if let Some(minutes) = w.window_minutes {
        title.push_str(&format!(" ({})", span_text(minutes * 60)));
    }
    if let Some(used) = &used {
        title.push_str(&format!(": {used} used"));
    }
    if let Some(status) = &status {
        title.push_str(&format!("; status {status}"));
    }
    if let Some(at) = resets {
        title.push_str(&format!("; resets {} UTC", utc_text(at)));
    }
    if let Some(at) = parse_rfc3339(&w.updated_at) {
        title.push_str(&format!("; reported {} UTC", utc_text(at)));
    }
    let warning = w.status.as_deref() == Some("allowed_warning") || w.used_percent.is_some_and(|p| p >= 80.0);
    let class = if w.exhausted() {
        "badge window exhausted"
    } else if warning {
        "badge window badge-warn"
    } else {
        "badge window badge-muted"
    };
    view! {
        <span class=class data-testid=format!("window-{}", w.name) data-exhausted=w.exhausted().to_string() title=title>
            {text}
        </span>
    }
}

/// Seconds since the Unix epoch. The browser's clock after hydration, the server's before:
/// relative times may differ by the page's age, which is at most a render.
fn now_unix() -> i64 {
    #[cfg(all(target_arch = "wasm32", feature = "hydrate"))]
    {
        (leptos::web_sys::js_sys::Date::now() / 1000.0) as i64
    }
    #[cfg(not(all(target_arch = "wasm32", feature = "hydrate")))]
    {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
    }
}

/// `2026-05-20T14:00:00Z` (or with a fraction, or an offset) → seconds since the Unix epoch.
fn parse_rfc3339(text: &str) -> Option<i64> {
    let t = text.trim();
    let bytes = t.as_bytes();
    let num = |from: usize, to: usize| t.get(from..to).filter(|d| d.bytes().all(|b| b.is_ascii_digit()))?.parse().ok();
    let separators = [(4, b'-'), (7, b'-'), (13, b':'), (16, b':')];
    if separators.iter().any(|(i, c)| bytes.get(*i) != Some(c)) || !matches!(bytes.get(10), Some(b'T' | b't' | b' ')) {
        return None;
    }
    let (year, month, day): (i64, i64, i64) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (hour, minute, second): (i64, i64, i64) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut rest = t.get(19..)?;
    if let Some(fraction) = rest.strip_prefix('.') {
        rest = fraction.trim_start_matches(|c: char| c.is_ascii_digit());
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first() {
                Some(b'+') => 1,
                Some(b'-') => -1,
                _ => return None,
            };
            let (h, m): (i64, i64) = match rest.len() {
                6 if rest.as_bytes()[3] == b':' => (rest[1..3].parse().ok()?, rest[4..6].parse().ok()?),
                _ => return None,
            };
            sign * (h * 3600 + m * 60)
        }
    };
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// (year, month, day) of a day count since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days - era * 146_097;
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (year_of_era + era * 400 + i64::from(month <= 2), month, day)
}

/// `2026-05-20 14:00` (UTC), like the rest of the page.
fn utc_text(at: i64) -> String {
    let (year, month, day) = civil_from_days(at.div_euclid(86_400));
    let secs = at.rem_euclid(86_400);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02}", secs / 3600, secs % 3600 / 60)
}

/// When a window resets: the time alone within a day, else with the date (`05-23 14:00`).
fn reset_text(at: i64, now: i64) -> String {
    let full = utc_text(at);
    if (at - now).abs() < 86_400 { full[11..].to_owned() } else { full[5..].to_owned() }
}

/// A duration in its largest sensible unit: `42 min`, `7 h`, `3 d`.
fn span_text(secs: i64) -> String {
    match secs {
        s if s < 60 => "under a minute".to_owned(),
        s if s < 3600 => format!("{} min", s / 60),
        s if s < 48 * 3600 => format!("{} h", s / 3600),
        s => format!("{} d", s / 86_400),
    }
}

const IMPORT_FIELDS: &[&str] =
    &["name_prefix", "api_keys", "credentials.base_url", "group_ids", "concurrency", "priority", "type"];

/// Bulk import: one account per pasted key, all with the settings above the box.
#[component]
fn ImportForm(
    groups: Vec<GroupView>,
    import: Action<BulkImportInput, Result<BulkImportResult, AppError>>,
    open: RwSignal<bool>,
) -> impl IntoView {
    let platform = RwSignal::new(Platform::Anthropic.as_str().to_owned());
    let prefix = RwSignal::new(String::new());
    let base_url = RwSignal::new(String::new());
    let concurrency = RwSignal::new(domain::account::DEFAULT_CONCURRENCY.to_string());
    let priority = RwSignal::new(domain::account::DEFAULT_PRIORITY.to_string());
    let chosen = RwSignal::new(BTreeSet::<i64>::new());
    let keys = RwSignal::new(String::new());
    let errors: FieldErrors = RwSignal::new(BTreeMap::new());
    let general = RwSignal::new(None::<String>);
    let groups = StoredValue::new(groups);

    Effect::new(move |_| match import.value().get() {
        Some(Err(e)) => show_server_error(&e, IMPORT_FIELDS, errors, general),
        // Every key went in: clear the box so a second click cannot import them twice.
        Some(Ok(r)) if r.errors.is_empty() => keys.set(String::new()),
        _ => {}
    });

    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let mut found = BTreeMap::new();
        let platform_value = platform.get_untracked().parse::<Platform>().ok();
        if platform_value.is_none() {
            found.insert("platform".to_owned(), "pick a platform".to_owned());
        }
        if prefix.read_untracked().trim().is_empty() {
            found.insert("name_prefix".to_owned(), "is required".to_owned());
        }
        let lines: Vec<String> = keys.get_untracked().lines().map(str::to_owned).collect();
        if lines.iter().all(|l| l.trim().is_empty()) {
            found.insert("api_keys".to_owned(), "paste at least one key, one per line".to_owned());
        }
        let concurrency_value = parse_number::<i32>(&concurrency.get_untracked());
        let priority_value = parse_number::<i32>(&priority.get_untracked());
        for (field, res) in [("concurrency", &concurrency_value), ("priority", &priority_value)] {
            if let Err(message) = res {
                found.insert(field.to_owned(), message.clone());
            }
        }
        general.set(None);
        let ok = found.is_empty();
        errors.set(found);
        let (true, Some(platform), Ok(concurrency), Ok(priority)) =
            (ok, platform_value, concurrency_value, priority_value)
        else {
            return;
        };
        let url = base_url.get_untracked().trim().to_owned();
        import.dispatch(BulkImportInput {
            platform,
            kind: Some(AccountKind::ApiKey),
            name_prefix: prefix.get_untracked(),
            api_keys: lines,
            base_url: (!url.is_empty()).then_some(url),
            group_ids: chosen.get_untracked().into_iter().collect(),
            concurrency,
            priority,
        });
    };

    view! {
        <form class="form" data-testid="import-form" on:submit=submit novalidate>
            <label>
                "Platform"
                <select
                    data-testid="import-platform"
                    prop:value=move || platform.get()
                    on:change=move |ev| {
                        let value = event_target_value(&ev);
                        groups.with_value(|g| keep_platform_groups(g, &value, chosen));
                        platform.set(value);
                    }
                >
                    {Platform::ALL
                        .iter()
                        .map(|p| {
                            let value = p.as_str();
                            view! {
                                <option value=value selected=move || platform.get() == value>
                                    {value}
                                </option>
                            }
                        })
                        .collect_view()}
                </select>
                <FieldMessage errors field="platform"/>
            </label>
            <label>
                "Type"
                <select data-testid="import-type" disabled=true>
                    <option value=AccountKind::ApiKey.as_str() selected=true>
                        {AccountKind::ApiKey.as_str()}
                    </option>
                </select>
                <FieldMessage errors field="type"/>
            </label>
            <label>
                "Name prefix"
                <input type="text" maxlength="180" data-testid="import-prefix" placeholder="claude" bind:value=prefix/>
                <span class="muted small">"Accounts are named prefix-1, prefix-2, …"</span>
                <FieldMessage errors field="name_prefix"/>
            </label>
            <label>
                "Base URL"
                <input type="url" data-testid="import-base-url" placeholder="optional" bind:value=base_url/>
                <FieldMessage errors field="credentials.base_url"/>
            </label>
            <label>
                "Concurrency"
                <input type="number" data-testid="import-concurrency" bind:value=concurrency/>
                <FieldMessage errors field="concurrency"/>
            </label>
            <label>
                "Priority"
                <input type="number" min="0" max="10000" data-testid="import-priority" bind:value=priority/>
                <FieldMessage errors field="priority"/>
            </label>
            <fieldset class="wide account-groups" data-testid="import-groups">
                <legend>"Groups"</legend>
                <GroupPicker groups=groups.get_value() platform=platform chosen/>
                <FieldMessage errors field="group_ids"/>
            </fieldset>
            <label class="wide">
                "API keys, one per line"
                <textarea data-testid="import-keys" autocomplete="off" spellcheck="false" bind:value=keys></textarea>
                <FieldMessage errors field="api_keys"/>
            </label>
            {move || general.get().map(|m| view! { <p class="error wide" role="alert" data-testid="form-error">{m}</p> })}
            {move || {
                import
                    .value()
                    .get()
                    .and_then(Result::ok)
                    .map(|r| {
                        view! {
                            <div class="notice wide" role="status" data-testid="import-result">
                                <p>{format!("Created {} account(s).", r.created)}</p>
                                {(!r.errors.is_empty())
                                    .then(|| {
                                        view! {
                                            <ul class="import-errors" data-testid="import-errors">
                                                {r
                                                    .errors
                                                    .into_iter()
                                                    .map(|e| view! { <li class="error">{format!("Line {}: {}", e.line, e.message)}</li> })
                                                    .collect_view()}
                                            </ul>
                                        }
                                    })}
                            </div>
                        }
                    })
            }}
            <div class="actions wide">
                <button type="button" class="button secondary" on:click=move |_| open.set(false)>
                    "Close"
                </button>
                <button type="submit" class="button" data-testid="import-submit" disabled=move || import.pending().get()>
                    {move || if import.pending().get() { "Importing…" } else { "Import" }}
                </button>
            </div>
        </form>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_mapping_lines_round_trip_and_name_the_bad_line() {
        let text = "claude-*=claude-sonnet-4-5\n\n gpt-4o = gpt-4o-2024-08-06 \n";
        let mapping = parse_mapping(text).unwrap_or_default();
        assert_eq!(mapping.get("gpt-4o").map(String::as_str), Some("gpt-4o-2024-08-06"));
        assert_eq!(parse_mapping(&mapping_text(&mapping)), Ok(mapping));
        assert_eq!(parse_mapping("a=b\nno-equals").err().as_deref(), Some("line 2: write it as requested=upstream"));
        assert_eq!(parse_mapping("=b").err().as_deref(), Some("line 1: both model names are needed"));
    }

    #[test]
    fn times_parse_and_print_in_utc() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2026-05-20T14:00:00Z"), Some(1_779_285_600));
        assert_eq!(parse_rfc3339("2026-05-20T16:30:00.123+02:30"), Some(1_779_285_600));
        assert_eq!(parse_rfc3339("2024-02-29T23:59:59-01:00"), parse_rfc3339("2024-03-01T00:59:59Z"));
        for bad in ["", "2026-05-20", "2026-05-20T14:00:00", "2026-13-01T00:00:00Z", "2026-05-20T14:00:00+0200"] {
            assert_eq!(parse_rfc3339(bad), None, "{bad:?}");
        }
        assert_eq!(utc_text(1_779_285_600), "2026-05-20 14:00");
        assert_eq!(utc_text(parse_rfc3339("2000-03-01T00:00:00Z").unwrap_or_default()), "2000-03-01 00:00");
        let now = 1_779_285_600;
        assert_eq!(reset_text(now + 3600, now), "15:00");
        assert_eq!(reset_text(now + 3 * 86_400, now), "05-23 14:00");
        assert_eq!(span_text(30), "under a minute");
        assert_eq!(span_text(42 * 60 + 5), "42 min");
        assert_eq!(span_text(8 * 3600 - 1), "7 h");
        assert_eq!(span_text(365 * 86_400), "365 d");
    }

    #[test]
    fn token_state_says_how_long_and_why_it_failed() {
        let now = 1_779_285_600;
        let info = OAuthInfo {
            expires_at: Some("2026-05-20T21:00:00Z".into()),
            refreshable: true,
            refreshed_at: Some("2026-05-20T13:00:00Z".into()),
            ..OAuthInfo::default()
        };
        let t = token_state(&info, now);
        assert_eq!((t.text.as_str(), t.expired, t.error), ("token expires in 7 h", false, None));
        assert!(t.title.contains("2026-05-20 21:00 UTC") && t.title.contains("last refreshed 2026-05-20 13:00 UTC"));
        let failed = OAuthInfo { refresh_error: Some("invalid_grant".into()), ..info.clone() };
        let t = token_state(&failed, now + 8 * 3600);
        assert_eq!(
            (t.text.as_str(), t.expired, t.error.as_deref()),
            ("token expired 1 h ago", true, Some("invalid_grant"))
        );
        let forever = OAuthInfo { expires_at: None, ..OAuthInfo::default() };
        let t = token_state(&forever, now);
        assert_eq!(t.text, "token does not expire");
        assert!(t.title.contains("cannot be refreshed"));
    }

    #[test]
    fn every_kind_of_the_wizard_is_one_the_server_takes() {
        for kind in NewKind::ALL {
            let start = OAuthStartInput { platform: kind.platform(), kind: Some(kind.kind()), proxy_id: None };
            assert_eq!(kind.signs_in(), start.resolve().is_ok(), "{kind:?}");
        }
    }

    #[test]
    fn numbers_are_optional_whole_and_in_range() {
        assert_eq!(parse_number::<i32>(" "), Ok(None));
        assert_eq!(parse_number::<i32>(" 7 "), Ok(Some(7)));
        assert_eq!(parse_number::<i32>("1.5").err().as_deref(), Some("must be a whole number"));
        assert_eq!(parse_number::<i32>("9999999999").err().as_deref(), Some("out of range"));
    }
}
