//! The wasm entry point: hydrates the server-rendered admin UI.

// Leptos view types nest deeply; the admin pages need more than the default 128.
#![recursion_limit = "512"]

#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(app::App);
}
