//! Settings. For now: the admin API key used by automation.

use leptos::prelude::*;

use super::PageHeader;
use crate::api::{RegenerateAdminApiKey, get_admin_api_key_prefix};

#[component]
pub fn SettingsPage() -> impl IntoView {
    let regenerate = ServerAction::<RegenerateAdminApiKey>::new();
    let prefix = Resource::new(move || regenerate.version().get(), |_| get_admin_api_key_prefix());
    view! {
        <PageHeader title="Settings"/>
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
            <button
                class="button"
                data-testid="generate-admin-key"
                disabled=move || regenerate.pending().get()
                on:click=move |_| {
                    regenerate.dispatch(RegenerateAdminApiKey {});
                }
            >
                "Generate new key"
            </button>
            {move || {
                regenerate
                    .value()
                    .get()
                    .map(|r| match r {
                        Ok(key) => {
                            view! {
                                <div class="notice" role="status">
                                    <p>"Copy it now; it will not be shown again."</p>
                                    <code data-testid="admin-api-key">{key}</code>
                                </div>
                            }
                                .into_any()
                        }
                        Err(e) => view! { <p class="error" role="alert">{e.to_string()}</p> }.into_any(),
                    })
            }}
        </section>
    }
}
