//! The admin web UI: pages, components and the server functions they call. Compiled twice:
//! with `ssr` into the server (rendering and server-function bodies) and with `hydrate` into
//! the wasm bundle. Business rules live in `service` (server only) so the admin REST API and
//! the server functions share them.

// Leptos view types nest deeply; the admin pages need more than the default 128.
#![recursion_limit = "512"]

pub mod api;
mod charts;
pub mod components;
pub mod error;
mod layout;
mod pages;
#[cfg(feature = "ssr")]
pub mod service;
#[cfg(feature = "ssr")]
pub mod state;

use leptos::prelude::*;
use leptos_meta::{MetaTags, Stylesheet, Title, provide_meta_context};
use leptos_router::components::{ParentRoute, Route, Router, Routes};
use leptos_router::{SsrMode, path};

pub use error::AppError;

/// The HTML document around the app, rendered on the server only.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <meta name="color-scheme" content="light dark"/>
                <link rel="icon" href="/favicon.svg" type="image/svg+xml"/>
                <AutoReload options=options.clone()/>
                <HydrationScripts options/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    // Effects run only in the browser, after hydration: mark the page so tests (and curious
    // operators) can tell a hydrated page from server-rendered HTML.
    Effect::new(|_| {
        #[cfg(feature = "hydrate")]
        if let Some(body) = document().body() {
            let _ = body.set_attribute("data-hydrated", "true");
        }
    });
    // Pages render completely on the server (`SsrMode::Async`): every resource is resolved
    // before the HTML goes out, so the admin UI is readable without JavaScript.
    view! {
        <Stylesheet id="leptos" href="/pkg/sub2api.css"/>
        <Title formatter=|page: String| if page.is_empty() { "sub2api".to_owned() } else { format!("{page} · sub2api") }/>
        <Router>
            <Routes fallback=pages::NotFound>
                <Route path=path!("/login") view=pages::LoginPage ssr=SsrMode::Async/>
                <ParentRoute path=path!("") view=layout::AdminLayout ssr=SsrMode::Async>
                    <Route path=path!("") view=pages::DashboardPage ssr=SsrMode::Async/>
                    <Route path=path!("accounts") view=pages::AccountsPage ssr=SsrMode::Async/>
                    <Route path=path!("groups") view=pages::GroupsPage ssr=SsrMode::Async/>
                    <Route path=path!("keys") view=pages::KeysPage ssr=SsrMode::Async/>
                    <Route path=path!("users") view=pages::UsersPage ssr=SsrMode::Async/>
                    <Route path=path!("models") view=pages::ModelsPage ssr=SsrMode::Async/>
                    <Route path=path!("proxies") view=pages::ProxiesPage ssr=SsrMode::Async/>
                    <Route path=path!("usage") view=pages::UsagePage ssr=SsrMode::Async/>
                    <Route path=path!("settings") view=pages::SettingsPage ssr=SsrMode::Async/>
                </ParentRoute>
            </Routes>
        </Router>
    }
}
