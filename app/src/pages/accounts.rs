//! Accounts: the upstream accounts the gateway schedules requests on. A paginated table whose
//! filters live in the URL, each account's health at a glance, per-row actions (test, clear
//! error or cooldown, pause, edit, delete), the create / edit form, bulk import of API keys
//! and bulk enable / disable.

use std::collections::{BTreeMap, BTreeSet};

use domain::account::{
    ACCOUNT_PAGE_SIZE, AccountQuery, AccountState, BulkImportInput, BulkImportResult, BulkStatusInput, BulkStatusResult,
};
use domain::{
    AccountInput, AccountKind, AccountStatus, AccountTestResult, AccountView, CredentialsInput, GroupView, Page,
    Platform,
};
use leptos::prelude::*;

use super::PageHeader;
use super::keys::short_time;
use crate::AppError;
use crate::api::accounts::{
    bulk_import_accounts, clear_account_error, clear_account_rate_limit, create_account, delete_account,
    query_accounts, set_account_schedulable, set_accounts_status, test_account, update_account,
};
use crate::api::groups::list_groups;
use crate::components::{
    Badge, ConfirmButton, EmptyRow, ErrorRow, LoadingRow, Modal, parse_opt_i64, query_param, query_writer, use_toasts,
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
    let open_form = move |account: Option<AccountView>| {
        save.value().set(None);
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
                    <AccountForm editing=editing.get_untracked() groups=group_list() save open=form_open/>
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
                {(!account.notes.is_empty()).then(|| view! { <div class="muted small">{account.notes.clone()}</div> })}
            </td>
            <td>
                <Badge kind="muted" text=account.platform.as_str()/>
                <div class="muted small">{account.kind.as_str()}</div>
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

/// Create or edit form. Its fields keep what was typed when the server refuses it.
#[component]
fn AccountForm(
    editing: Option<AccountView>,
    groups: Vec<GroupView>,
    save: Action<(Option<i64>, AccountInput), Result<AccountView, AppError>>,
    open: RwSignal<bool>,
) -> impl IntoView {
    let id = editing.as_ref().map(|a| a.id);
    let platform = RwSignal::new(editing.as_ref().map_or(Platform::Anthropic, |a| a.platform).as_str().to_owned());
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
        let platform_value = platform.get_untracked().parse::<Platform>().ok();
        check("platform", platform_value.map(|_| ()).ok_or_else(|| "pick a platform".to_owned()));
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
        let (Some(platform_value), Ok(model_mapping), Ok(concurrency), Ok(priority), Ok(proxy_id)) =
            (platform_value, model_mapping, concurrency_value, priority_value, proxy_value)
        else {
            return;
        };
        let input = AccountInput {
            name: Some(name.get_untracked()),
            notes: Some(notes.get_untracked()),
            // Platform and type never change on an existing account.
            platform: id.is_none().then_some(platform_value),
            kind: id.is_none().then_some(AccountKind::ApiKey),
            credentials: Some(CredentialsInput { api_key: (!key.is_empty()).then_some(key), base_url: Some(url) }),
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
            <label>
                "Platform"
                <select
                    data-testid="account-platform"
                    disabled=id.is_some()
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
                <select data-testid="account-type" disabled=id.is_some()>
                    {AccountKind::ALL
                        .iter()
                        .map(|k| {
                            let usable = *k == AccountKind::ApiKey;
                            view! {
                                <option value=k.as_str() selected=usable disabled=!usable>
                                    {if usable { k.as_str().to_owned() } else { format!("{} (sign-in flow)", k.as_str()) }}
                                </option>
                            }
                        })
                        .collect_view()}
                </select>
                <FieldMessage errors field="type"/>
            </label>
            <label>
                "Name"
                <input type="text" maxlength="200" data-testid="account-name" bind:value=name/>
                <FieldMessage errors field="name"/>
            </label>
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
    fn numbers_are_optional_whole_and_in_range() {
        assert_eq!(parse_number::<i32>(" "), Ok(None));
        assert_eq!(parse_number::<i32>(" 7 "), Ok(Some(7)));
        assert_eq!(parse_number::<i32>("1.5").err().as_deref(), Some("must be a whole number"));
        assert_eq!(parse_number::<i32>("9999999999").err().as_deref(), Some("out of range"));
    }
}
