//! The signed-in frame: navigation, who is signed in, sign out, and the page outlet.

use leptos::prelude::*;
use leptos_router::components::{A, Outlet};

use crate::api::{Logout, current_admin};
use crate::components::{ToastRegion, provide_toasts};

/// Navigation entries: (path, label).
pub const NAV: &[(&str, &str)] = &[
    ("/", "Dashboard"),
    ("/accounts", "Accounts"),
    ("/groups", "Groups"),
    ("/keys", "API Keys"),
    ("/users", "Users"),
    ("/models", "Models"),
    ("/proxies", "Proxies"),
    ("/usage", "Usage"),
    ("/settings", "Settings"),
];

#[component]
pub fn AdminLayout() -> impl IntoView {
    let admin = Resource::new(|| (), |_| current_admin());
    let logout = ServerAction::<Logout>::new();
    provide_toasts();
    view! {
        <div class="frame">
            <nav class="sidebar" aria-label="Main">
                <a class="brand" href="/">"sub2api"</a>
                <ul>
                    {NAV
                        .iter()
                        .map(|(href, label)| {
                            view! {
                                <li>
                                    <A href=*href exact=true>
                                        {*label}
                                    </A>
                                </li>
                            }
                        })
                        .collect_view()}
                </ul>
            </nav>
            <div class="main">
                <header class="topbar">
                    <Transition fallback=|| ()>
                        {move || {
                            admin
                                .get()
                                .and_then(Result::ok)
                                .flatten()
                                .map(|u| view! { <span class="who" data-testid="who">{u.email}</span> })
                        }}
                    </Transition>
                    <ActionForm action=logout attr:class="logout">
                        <button type="submit" class="button secondary">
                            "Sign out"
                        </button>
                    </ActionForm>
                </header>
                <main class="content">
                    <Outlet/>
                </main>
                <ToastRegion/>
            </div>
        </div>
    }
}
