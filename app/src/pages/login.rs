//! Sign-in. A plain form post, so it also works before (or without) hydration.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use crate::api::Login;

#[component]
pub fn LoginPage() -> impl IntoView {
    let login = ServerAction::<Login>::new();
    let query = use_query_map();
    let next = move || query.read().get("next").unwrap_or_default();
    let error = move || login.value().get().and_then(Result::err).map(|e| e.to_string());
    view! {
        <Title text="Sign in"/>
        <main class="centered">
            <section class="card login">
                <h1>"sub2api"</h1>
                <p class="muted">"Sign in to manage the gateway."</p>
                <ActionForm action=login>
                    <label>
                        "Email" <input type="email" name="email" autocomplete="username" required autofocus/>
                    </label>
                    <label>
                        "Password"
                        <input type="password" name="password" autocomplete="current-password" required/>
                    </label>
                    <input type="hidden" name="next" value=next/>
                    <button type="submit" class="button" disabled=move || login.pending().get()>
                        {move || if login.pending().get() { "Signing in…" } else { "Sign in" }}
                    </button>
                </ActionForm>
                <Show when=move || error().is_some()>
                    <p class="error" role="alert" data-testid="login-error">
                        {error}
                    </p>
                </Show>
            </section>
        </main>
    }
}
