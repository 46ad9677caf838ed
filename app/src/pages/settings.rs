//! Settings: site identity, relay tunables (applied without a restart), the admin API key
//! and the signed-in administrator's password.

use domain::settings::{PasswordChange, Settings, SettingsInput};
use leptos::prelude::*;

use super::PageHeader;
use crate::api::settings::{ChangePassword, SaveSettings, get_settings};
use crate::api::{RegenerateAdminApiKey, get_admin_api_key_prefix};
use crate::components::{ConfirmButton, CopyButton, use_toasts};

#[component]
pub fn SettingsPage() -> impl IntoView {
    let settings = Resource::new(|| (), |_| get_settings());
    view! {
        <PageHeader title="Settings" subtitle="Changes apply to the next request, on every instance, without a restart."/>
        <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || {
                settings
                    .get()
                    .map(|res| match res {
                        Ok(s) => view! { <SettingsForm initial=s/> }.into_any(),
                        Err(e) => view! { <p class="error" role="alert">{e.to_string()}</p> }.into_any(),
                    })
            }}
        </Transition>
        <AdminKeyCard/>
        <PasswordCard/>
    }
}

/// One text field of the form, bound to a string signal so what was typed survives an error.
#[component]
fn Field(
    label: &'static str,
    name: &'static str,
    value: RwSignal<String>,
    #[prop(default = "number")] kind: &'static str,
    #[prop(optional)] hint: &'static str,
) -> impl IntoView {
    view! {
        <label>
            {label}
            <input
                type=kind
                name=name
                data-testid=format!("setting-{name}")
                min=(kind == "number").then_some("0")
                prop:value=move || value.get()
                on:input=move |ev| value.set(event_target_value(&ev))
            />
            {(!hint.is_empty()).then(|| view! { <span class="muted small">{hint}</span> })}
        </label>
    }
}

fn number<T: std::str::FromStr>(field: &str, raw: &str) -> Result<T, String> {
    raw.trim().parse().map_err(|_| format!("{field}: must be a whole number, 0 or more"))
}

#[component]
fn SettingsForm(initial: Settings) -> impl IntoView {
    let toasts = use_toasts();
    let text = |v: String| RwSignal::new(v);
    let site_name = text(initial.site_name);
    let base_url = text(initial.public_base_url);
    let user_concurrency = text(initial.default_user_concurrency.to_string());
    let switches = text(initial.max_account_switches.to_string());
    let overload = text(initial.overload_cooldown_minutes.to_string());
    let fallback = text(initial.fallback_cooldown_seconds.to_string());
    let threshold = text(initial.window_threshold_percent.to_string());
    let sticky = text(initial.sticky_ttl_seconds.to_string());
    let wait = text(initial.wait_timeout_seconds.to_string());
    let waiters = text(initial.max_extra_waiters.to_string());
    let problem = RwSignal::new(None::<String>);
    let save = ServerAction::<SaveSettings>::new();

    let collect = move || -> Result<SettingsInput, String> {
        Ok(SettingsInput {
            site_name: Some(site_name.get_untracked()),
            public_base_url: Some(base_url.get_untracked()),
            default_user_concurrency: Some(number("default_user_concurrency", &user_concurrency.get_untracked())?),
            max_account_switches: Some(number("max_account_switches", &switches.get_untracked())?),
            sticky_ttl_seconds: Some(number("sticky_ttl_seconds", &sticky.get_untracked())?),
            wait_timeout_seconds: Some(number("wait_timeout_seconds", &wait.get_untracked())?),
            max_extra_waiters: Some(number("max_extra_waiters", &waiters.get_untracked())?),
            overload_cooldown_minutes: Some(number("overload_cooldown_minutes", &overload.get_untracked())?),
            fallback_cooldown_seconds: Some(number("fallback_cooldown_seconds", &fallback.get_untracked())?),
            window_threshold_percent: Some(number("window_threshold_percent", &threshold.get_untracked())?),
        })
    };
    Effect::new(move |_| match save.value().get() {
        Some(Ok(saved)) => {
            problem.set(None);
            // Show what the server normalised (trimmed name, URL without a trailing slash).
            site_name.set(saved.site_name);
            base_url.set(saved.public_base_url);
            toasts.ok("Settings saved");
        }
        Some(Err(e)) => {
            problem.set(Some(e.to_string()));
            toasts.err(e.to_string());
        }
        None => {}
    });

    view! {
        <form
            class="card"
            data-testid="settings-form"
            on:submit=move |ev| {
                ev.prevent_default();
                match collect() {
                    Ok(input) => {
                        problem.set(None);
                        save.dispatch(SaveSettings { input });
                    }
                    Err(msg) => problem.set(Some(msg)),
                }
            }
        >
            <h2>"Site"</h2>
            <div class="form">
                <Field label="Site name" name="site_name" value=site_name kind="text"/>
                <Field
                    label="Public base URL"
                    name="public_base_url"
                    value=base_url
                    kind="url"
                    hint="Used in the key snippets; empty: the address this page was opened with."
                />
                <Field label="Default user concurrency" name="default_user_concurrency" value=user_concurrency/>
            </div>
            <h2>"Relay"</h2>
            <div class="form">
                <Field
                    label="Max account switches"
                    name="max_account_switches"
                    value=switches
                    hint="Other accounts a request may try after the first failed."
                />
                <Field label="Overload cooldown (minutes)" name="overload_cooldown_minutes" value=overload/>
                <Field
                    label="429 fallback cooldown (seconds)"
                    name="fallback_cooldown_seconds"
                    value=fallback
                    hint="When a 429 says nothing about its reset."
                />
                <Field
                    label="Usage window threshold (%)"
                    name="window_threshold_percent"
                    value=threshold
                    hint="Subscription accounts whose 5-hour or weekly window is this full wait for its reset; 0: only when used up."
                />
                <Field label="Sticky session TTL (seconds)" name="sticky_ttl_seconds" value=sticky/>
                <Field label="Wait timeout (seconds)" name="wait_timeout_seconds" value=wait/>
                <Field
                    label="Extra waiters per slot"
                    name="max_extra_waiters"
                    value=waiters
                    hint="Requests that may queue beyond the concurrency limit."
                />
            </div>
            {move || problem.get().map(|p| view! { <p class="error" role="alert" data-testid="settings-error">{p}</p> })}
            <div class="actions">
                <button type="submit" class="button" data-testid="save-settings" disabled=move || save.pending().get()>
                    {move || if save.pending().get() { "Saving…" } else { "Save settings" }}
                </button>
            </div>
        </form>
    }
}

#[component]
fn AdminKeyCard() -> impl IntoView {
    let toasts = use_toasts();
    let regenerate = ServerAction::<RegenerateAdminApiKey>::new();
    let prefix = Resource::new(move || regenerate.version().get(), |_| get_admin_api_key_prefix());
    let new_key = Signal::derive(move || regenerate.value().get().and_then(Result::ok).unwrap_or_default());
    Effect::new(move |_| {
        if let Some(res) = regenerate.value().get() {
            toasts.result(&res, |_| "New admin API key generated; the old one no longer works".to_owned());
        }
    });
    view! {
        <section class="card">
            <h2>"Admin API key"</h2>
            <p class="muted">
                "Automation calls " <code>"/api/v1/admin/…"</code> " with " <code>"x-api-key: admin-…"</code>
                ". Generating a new key replaces the old one."
            </p>
            <p>
                "Current key: "
                <Transition fallback=|| "…">
                    {move || {
                        prefix
                            .get()
                            .map(|r| match r {
                                Ok(Some(p)) => format!("{p}…"),
                                Ok(None) => "not set".to_owned(),
                                Err(e) => e.to_string(),
                            })
                    }}
                </Transition>
            </p>
            <ConfirmButton
                label="Generate new key"
                question="Generate a new admin API key? Automation using the current key stops working."
                on_confirm=Callback::new(move |()| {
                    regenerate.dispatch(RegenerateAdminApiKey {});
                })
                pending=regenerate.pending()
                testid="generate-admin-key"
            />
            <Show when=move || !new_key.get().is_empty()>
                <div class="notice" role="status">
                    <p>"Copy it now; it will not be shown again."</p>
                    <code data-testid="admin-api-key">{move || new_key.get()}</code>
                    " "
                    <CopyButton text=new_key testid="copy-admin-key"/>
                </div>
            </Show>
        </section>
    }
}

#[component]
fn PasswordCard() -> impl IntoView {
    let toasts = use_toasts();
    let current = RwSignal::new(String::new());
    let new = RwSignal::new(String::new());
    let confirm = RwSignal::new(String::new());
    let problem = RwSignal::new(None::<String>);
    let change = ServerAction::<ChangePassword>::new();
    Effect::new(move |_| match change.value().get() {
        Some(Ok(())) => {
            problem.set(None);
            current.set(String::new());
            new.set(String::new());
            confirm.set(String::new());
            toasts.ok("Password changed; other sessions were signed out");
        }
        Some(Err(e)) => {
            problem.set(Some(e.to_string()));
            toasts.err(e.to_string());
        }
        None => {}
    });
    let password = |label: &'static str, id: &'static str, value: RwSignal<String>, autocomplete: &'static str| {
        view! {
            <label>
                {label}
                <input
                    type="password"
                    data-testid=id
                    autocomplete=autocomplete
                    prop:value=move || value.get()
                    on:input=move |ev| value.set(event_target_value(&ev))
                />
            </label>
        }
    };
    view! {
        <form
            class="card"
            data-testid="password-form"
            on:submit=move |ev| {
                ev.prevent_default();
                if new.get_untracked() != confirm.get_untracked() {
                    problem.set(Some("the new password and its confirmation differ".into()));
                    return;
                }
                problem.set(None);
                change
                    .dispatch(ChangePassword {
                        change: PasswordChange {
                            current_password: current.get_untracked(),
                            new_password: new.get_untracked(),
                        },
                    });
            }
        >
            <h2>"Change your password"</h2>
            <div class="form">
                {password("Current password", "current-password", current, "current-password")}
                {password("New password", "new-password", new, "new-password")}
                {password("Repeat the new password", "confirm-password", confirm, "new-password")}
            </div>
            {move || problem.get().map(|p| view! { <p class="error" role="alert">{p}</p> })}
            <div class="actions">
                <button type="submit" class="button" data-testid="change-password" disabled=move || change.pending().get()>
                    "Change password"
                </button>
            </div>
        </form>
    }
}
