//! One module per page.

mod accounts;
mod dashboard;
mod groups;
mod keys;
mod login;
mod models;
mod proxies;
mod settings;
mod usage;
mod users;

use leptos::prelude::*;
use leptos_meta::Title;

pub use accounts::AccountsPage;
pub use dashboard::DashboardPage;
pub use groups::GroupsPage;
pub use keys::KeysPage;
pub use login::LoginPage;
pub use models::ModelsPage;
pub use proxies::ProxiesPage;
pub use settings::SettingsPage;
pub use usage::UsagePage;
pub use users::UsersPage;

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
