//! One module per page. Sections that later work fills in render their title and an empty
//! state for now.

mod dashboard;
mod login;
mod settings;

use leptos::prelude::*;
use leptos_meta::Title;

pub use dashboard::DashboardPage;
pub use login::LoginPage;
pub use settings::SettingsPage;

/// A page heading plus the matching document title.
#[component]
pub fn PageHeader(title: &'static str, #[prop(optional)] subtitle: &'static str) -> impl IntoView {
    view! {
        <Title text=title/>
        <div class="page-header">
            <h1>{title}</h1>
            {(!subtitle.is_empty()).then(|| view! { <p class="muted">{subtitle}</p> })}
        </div>
    }
}

#[component]
fn EmptySection(title: &'static str, what: &'static str) -> impl IntoView {
    view! {
        <PageHeader title/>
        <section class="card empty-state" data-testid="empty-state">
            <h2>{format!("No {what} yet")}</h2>
            <p class="muted">{format!("{title} you add will be listed here.")}</p>
        </section>
    }
}

#[component]
pub fn AccountsPage() -> impl IntoView {
    view! { <EmptySection title="Accounts" what="upstream accounts"/> }
}

#[component]
pub fn GroupsPage() -> impl IntoView {
    view! { <EmptySection title="Groups" what="groups"/> }
}

#[component]
pub fn KeysPage() -> impl IntoView {
    view! { <EmptySection title="API Keys" what="API keys"/> }
}

#[component]
pub fn UsersPage() -> impl IntoView {
    view! { <EmptySection title="Users" what="users besides administrators"/> }
}

#[component]
pub fn ModelsPage() -> impl IntoView {
    view! { <EmptySection title="Models" what="model mappings"/> }
}

#[component]
pub fn ProxiesPage() -> impl IntoView {
    view! { <EmptySection title="Proxies" what="proxies"/> }
}

#[component]
pub fn UsagePage() -> impl IntoView {
    view! { <EmptySection title="Usage" what="requests"/> }
}

#[component]
pub fn NotFound() -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(resp) = use_context::<leptos_axum::ResponseOptions>() {
        resp.set_status(http::StatusCode::NOT_FOUND);
    }
    view! {
        <Title text="Not found"/>
        <main class="centered">
            <h1>"Page not found"</h1>
            <a href="/">"Back to the dashboard"</a>
        </main>
    }
}
