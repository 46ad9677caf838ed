//! The admin web UI: pages, components and the server functions they call. Compiled twice:
//! with `ssr` into the server (rendering and server-function bodies) and with `hydrate` into
//! the wasm bundle. Business rules live in `service` (server only) so the admin REST API and
//! the server functions share them.

pub mod api;
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
use leptos_router::path;

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
    view! {
        <Stylesheet id="leptos" href="/pkg/sub2api.css"/>
        <Title formatter=|page: String| if page.is_empty() { "sub2api".to_owned() } else { format!("{page} · sub2api") }/>
        <Router>
            <Routes fallback=pages::NotFound>
                <Route path=path!("/login") view=pages::LoginPage/>
                <ParentRoute path=path!("") view=layout::AdminLayout>
                    <Route path=path!("") view=pages::DashboardPage/>
                    <Route path=path!("accounts") view=pages::AccountsPage/>
                    <Route path=path!("groups") view=pages::GroupsPage/>
                    <Route path=path!("keys") view=pages::KeysPage/>
                    <Route path=path!("users") view=pages::UsersPage/>
                    <Route path=path!("models") view=pages::ModelsPage/>
                    <Route path=path!("proxies") view=pages::ProxiesPage/>
                    <Route path=path!("usage") view=pages::UsagePage/>
                    <Route path=path!("settings") view=pages::SettingsPage/>
                </ParentRoute>
            </Routes>
        </Router>
    }
}
