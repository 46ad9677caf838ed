//! Proxies: the outbound HTTP or SOCKS5 proxies accounts send their upstream traffic
//! through. Create, edit, test and delete them, see which accounts use each, and choose the
//! URL the test fetches. Passwords can be set or removed here but are never shown.

use domain::proxies::{ProxyInput, ProxyProtocol, ProxyStatus, ProxyTestResult, ProxyView};
use leptos::prelude::*;

use super::PageHeader;
use crate::AppError;
use crate::api::proxies::{
    SetProbeUrl, create_proxy, delete_proxy, get_probe_url, list_proxies, test_proxy, update_proxy,
};
use crate::components::{Badge, ConfirmButton, Crud, EmptyRow, ErrorRow, LoadingRow, Modal, use_toasts};

const COLUMNS: u32 = 7;
/// Accounts named in a row before the rest are only counted.
const NAMED_ACCOUNTS: usize = 3;

#[component]
pub fn ProxiesPage() -> impl IntoView {
    let crud = Crud::new(
        create_proxy,
        update_proxy,
        delete_proxy,
        |p: &ProxyView| format!("Saved proxy {}", p.name),
        "Proxy deleted; its accounts now connect directly",
    );
    let Crud { version, form_open, editing, save, remove } = crud;
    let proxies = Resource::new(move || version.get(), |_| list_proxies());
    let open_form = move |proxy: Option<ProxyView>| crud.open(proxy);

    view! {
        <PageHeader
            title="Proxies"
            subtitle="Accounts with a proxy send all their upstream traffic through it; if it is disabled they stop serving rather than go direct."
        />
        <div class="toolbar">
            <span class="spacer"></span>
            <button class="button" data-testid="new-proxy" on:click=move |_| open_form(None)>
                "New proxy"
            </button>
        </div>
        <div class="table-wrap">
            <table class="data" data-testid="proxies-table">
                <thead>
                    <tr>
                        <th>"Name"</th>
                        <th>"Address"</th>
                        <th>"User"</th>
                        <th>"Status"</th>
                        <th>"Accounts"</th>
                        <th>"Last test"</th>
                        <th>"Actions"</th>
                    </tr>
                </thead>
                <tbody>
                    <Transition fallback=|| view! { <LoadingRow colspan=COLUMNS/> }>
                        {move || {
                            proxies
                                .get()
                                .map(|res| match res {
                                    Err(error) => view! { <ErrorRow colspan=COLUMNS error/> }.into_any(),
                                    Ok(list) if list.is_empty() => {
                                        view! {
                                            <EmptyRow
                                                colspan=COLUMNS
                                                text="No proxies yet: every account connects directly."
                                            />
                                        }
                                            .into_any()
                                    }
                                    Ok(list) => {
                                        list.into_iter()
                                            .map(|proxy| {
                                                view! {
                                                    <ProxyRow
                                                        proxy
                                                        on_edit=Callback::new(move |p| open_form(Some(p)))
                                                        on_delete=Callback::new(move |id| {
                                                            remove.dispatch(id);
                                                        })
                                                        deleting=remove.pending()
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
        {move || {
            let title = if editing.with(Option::is_some) { "Edit proxy" } else { "New proxy" };
            view! {
                <Modal title open=form_open testid="proxy-dialog">
                    <ProxyForm editing=editing.get_untracked() save/>
                </Modal>
            }
        }}
        <ProbeUrlCard/>
    }
}

#[component]
fn ProxyRow(
    proxy: ProxyView,
    on_edit: Callback<ProxyView>,
    on_delete: Callback<i64>,
    deleting: Memo<bool>,
) -> impl IntoView {
    let toasts = use_toasts();
    let id = proxy.id;
    let name = StoredValue::new(proxy.name.clone());
    let test = Action::new(move |_: &()| test_proxy(id));
    Effect::new(move |_| match test.value().get() {
        Some(Ok(r)) if r.ok => toasts.ok(format!("{}: reachable in {} ms", name.get_value(), r.latency_ms)),
        Some(Ok(r)) => toasts.err(format!("{}: {}", name.get_value(), r.error.unwrap_or_default())),
        Some(Err(e)) => toasts.err(e.to_string()),
        None => {}
    });
    let question = match proxy.account_count {
        0 => format!("Delete proxy “{}”? No account uses it.", proxy.name),
        1 => format!("Delete proxy “{}”? The account using it will connect directly, without a proxy.", proxy.name),
        n => {
            format!("Delete proxy “{}”? The {n} accounts using it will connect directly, without a proxy.", proxy.name)
        }
    };
    let accounts = account_summary(&proxy);
    let edit_target = proxy.clone();
    view! {
        <tr data-testid=format!("proxy-row-{id}")>
            <td>
                <strong>{proxy.name.clone()}</strong>
            </td>
            <td>
                <code>{proxy.address()}</code>
            </td>
            <td>
                {if proxy.username.is_empty() {
                    view! { <span class="muted">"none"</span> }.into_any()
                } else {
                    let password = if proxy.has_password { " (password set)" } else { "" };
                    view! {
                        {proxy.username.clone()}
                        <span class="muted small">{password}</span>
                    }
                        .into_any()
                }}
            </td>
            <td>
                <Badge kind=proxy.status.as_str() text=proxy.status.as_str()/>
            </td>
            <td data-testid="proxy-accounts">{accounts}</td>
            <td class="proxy-test">
                {move || match test.value().get() {
                    None if test.pending().get() => view! { <span class="muted">"Testing…"</span> }.into_any(),
                    None => view! { <span class="muted">"—"</span> }.into_any(),
                    Some(Ok(result)) => view! { <TestOutcome result/> }.into_any(),
                    Some(Err(e)) => {
                        view! {
                            <span class="error small" data-testid="proxy-test-result">
                                {e.to_string()}
                            </span>
                        }
                            .into_any()
                    }
                }}
            </td>
            <td>
                <div class="row-actions">
                    <button
                        class="button secondary small"
                        data-testid=format!("test-proxy-{id}")
                        disabled=move || test.pending().get()
                        on:click=move |_| {
                            test.dispatch(());
                        }
                    >
                        {move || if test.pending().get() { "Testing…" } else { "Test" }}
                    </button>
                    <button
                        class="button secondary small"
                        data-testid=format!("edit-proxy-{id}")
                        on:click=move |_| on_edit.run(edit_target.clone())
                    >
                        "Edit"
                    </button>
                    <ConfirmButton
                        label="Delete"
                        question
                        danger=true
                        pending=deleting
                        testid=format!("delete-proxy-{id}")
                        on_confirm=Callback::new(move |()| on_delete.run(id))
                    />
                </div>
            </td>
        </tr>
    }
}

/// "2: alpha, beta" or "5: a, b, c and 2 more"; "none" when unused.
fn account_summary(proxy: &ProxyView) -> String {
    if proxy.account_count == 0 {
        return "none".to_owned();
    }
    let names: Vec<&str> = proxy.accounts.iter().take(NAMED_ACCOUNTS).map(|a| a.name.as_str()).collect();
    let rest = proxy.account_count - i64::try_from(names.len()).unwrap_or(0);
    let more = if rest > 0 { format!(" and {rest} more") } else { String::new() };
    format!("{}: {}{more}", proxy.account_count, names.join(", "))
}

/// The latency of a working proxy, or why it failed.
#[component]
fn TestOutcome(result: ProxyTestResult) -> impl IntoView {
    let title = format!("Fetched {}", result.probe_url);
    if result.ok {
        let status = result.status.map(|s| format!(" (HTTP {s})")).unwrap_or_default();
        view! {
            <span class="badge badge-ok" data-testid="proxy-test-result" title=title>
                {format!("{} ms{status}", result.latency_ms)}
            </span>
        }
        .into_any()
    } else {
        view! {
            <span class="error small" data-testid="proxy-test-result" title=title>
                {result.error.unwrap_or_else(|| "failed".to_owned())}
            </span>
        }
        .into_any()
    }
}

/// Create or edit form. Its fields keep what was typed when the server refuses it.
#[component]
fn ProxyForm(
    editing: Option<ProxyView>,
    save: Action<(Option<i64>, ProxyInput), Result<ProxyView, AppError>>,
) -> impl IntoView {
    let id = editing.as_ref().map(|p| p.id);
    let has_password = editing.as_ref().is_some_and(|p| p.has_password);
    let text = |f: fn(&ProxyView) -> String| RwSignal::new(editing.as_ref().map(f).unwrap_or_default());
    let name = text(|p| p.name.clone());
    let protocol = RwSignal::new(editing.as_ref().map_or(ProxyProtocol::Http, |p| p.protocol).as_str().to_owned());
    let host = text(|p| p.host.clone());
    let port = text(|p| p.port.to_string());
    let username = text(|p| p.username.clone());
    // Never pre-filled: the stored password does not leave the server.
    let password = RwSignal::new(String::new());
    let remove_password = RwSignal::new(false);
    let status = RwSignal::new(editing.as_ref().map_or(ProxyStatus::Active, |p| p.status).as_str().to_owned());
    let error = RwSignal::new(None::<String>);

    Effect::new(move |_| {
        if let Some(Err(e)) = save.value().get() {
            error.set(Some(e.to_string()));
        }
    });

    let collect = move || -> Result<ProxyInput, String> {
        let port = port.get_untracked().trim().parse::<i64>().map_err(|_| "port: must be a number from 1 to 65535")?;
        let protocol = protocol.get_untracked().parse::<ProxyProtocol>().map_err(|e| e.to_string())?;
        let status = status.get_untracked().parse::<ProxyStatus>().map_err(|e| e.to_string())?;
        let typed = password.get_untracked();
        // Empty means "keep the stored one"; removing it is a separate, explicit choice.
        let password =
            if remove_password.get_untracked() { Some(String::new()) } else { (!typed.is_empty()).then_some(typed) };
        Ok(ProxyInput {
            name: Some(name.get_untracked()),
            protocol: Some(protocol),
            host: Some(host.get_untracked()),
            port: Some(port),
            username: Some(username.get_untracked().trim().to_owned()),
            password,
            status: Some(status),
        })
    };
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        match collect() {
            Ok(input) => {
                error.set(None);
                save.dispatch((id, input));
            }
            Err(msg) => error.set(Some(msg)),
        }
    };

    view! {
        <form class="form" data-testid="proxy-form" on:submit=submit>
            <label>
                "Name"
                <input type="text" required maxlength="100" data-testid="proxy-name" bind:value=name/>
            </label>
            <label>
                "Protocol"
                <select
                    data-testid="proxy-protocol"
                    prop:value=move || protocol.get()
                    on:change=move |ev| protocol.set(event_target_value(&ev))
                >
                    {options(ProxyProtocol::ALL.iter().map(|p| p.as_str()), protocol)}
                </select>
                <span class="muted small">"socks5h: the proxy resolves host names."</span>
            </label>
            <label>
                "Host"
                <input
                    type="text"
                    required
                    placeholder="proxy.example.com"
                    autocomplete="off"
                    data-testid="proxy-host"
                    bind:value=host
                />
            </label>
            <label>
                "Port"
                <input type="number" min="1" max="65535" required data-testid="proxy-port" bind:value=port/>
            </label>
            <label>
                "Username"
                <input type="text" autocomplete="off" data-testid="proxy-username" bind:value=username/>
                <span class="muted small">"Empty: no authentication."</span>
            </label>
            <label>
                "Password"
                <input
                    type="password"
                    autocomplete="new-password"
                    data-testid="proxy-password"
                    disabled=move || remove_password.get()
                    placeholder=if has_password { "unchanged" } else { "" }
                    bind:value=password
                />
                {has_password
                    .then(|| view! { <span class="muted small">"A password is stored; leave empty to keep it."</span> })}
            </label>
            {has_password
                .then(|| {
                    view! {
                        <label class="check wide">
                            <input type="checkbox" data-testid="proxy-remove-password" bind:checked=remove_password/>
                            "Remove the stored password"
                        </label>
                    }
                })}
            <label>
                "Status"
                <select
                    data-testid="proxy-status"
                    prop:value=move || status.get()
                    on:change=move |ev| status.set(event_target_value(&ev))
                >
                    {options(ProxyStatus::ALL.iter().map(|s| s.as_str()), status)}
                </select>
                <span class="muted small">"Disabled: its accounts stop serving."</span>
            </label>
            {move || error.get().map(|e| view! { <p class="field-error wide" role="alert">{e}</p> })}
            <div class="actions wide">
                <button class="button" type="submit" data-testid="proxy-submit" disabled=move || save.pending().get()>
                    {move || if save.pending().get() { "Saving…" } else if id.is_some() { "Save" } else { "Create proxy" }}
                </button>
            </div>
        </form>
    }
}

/// The `<option>`s of a select bound to `value`.
fn options(choices: impl Iterator<Item = &'static str>, value: RwSignal<String>) -> impl IntoView {
    choices
        .map(|choice| {
            view! {
                <option value=choice selected=move || value.get() == choice>
                    {choice}
                </option>
            }
        })
        .collect_view()
}

/// Where the Test button goes through each proxy.
#[component]
fn ProbeUrlCard() -> impl IntoView {
    let current = Resource::new(|| (), |_| get_probe_url());
    view! {
        <section class="card" data-testid="probe-url-card">
            <h2>"Test probe URL"</h2>
            <p class="muted">
                "The Test button fetches this URL through the proxy (10 s at most). Any HTTP answer means the proxy works."
            </p>
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || {
                    current
                        .get()
                        .map(|res| match res {
                            Ok(url) => view! { <ProbeUrlForm initial=url/> }.into_any(),
                            Err(e) => view! { <p class="error" role="alert">{e.to_string()}</p> }.into_any(),
                        })
                }}
            </Transition>
        </section>
    }
}

#[component]
fn ProbeUrlForm(initial: String) -> impl IntoView {
    let toasts = use_toasts();
    let url = RwSignal::new(initial);
    let error = RwSignal::new(None::<String>);
    let save = ServerAction::<SetProbeUrl>::new();
    Effect::new(move |_| match save.value().get() {
        Some(Ok(saved)) => {
            error.set(None);
            url.set(saved);
            toasts.ok("Probe URL saved");
        }
        Some(Err(e)) => {
            error.set(Some(e.to_string()));
            toasts.err(e.to_string());
        }
        None => {}
    });
    view! {
        <form
            class="toolbar probe-url"
            data-testid="probe-url-form"
            on:submit=move |ev| {
                ev.prevent_default();
                save.dispatch(SetProbeUrl { url: url.get_untracked() });
            }
        >
            <label class="probe-url-field">
                "Probe URL"
                <input type="url" required data-testid="probe-url" bind:value=url/>
            </label>
            <button class="button" type="submit" data-testid="save-probe-url" disabled=move || save.pending().get()>
                {move || if save.pending().get() { "Saving…" } else { "Save" }}
            </button>
        </form>
        {move || error.get().map(|e| view! { <p class="error" role="alert">{e}</p> })}
    }
}
