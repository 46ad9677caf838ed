//! Building blocks every page shares: toasts, dialogs, confirmation, copy buttons, badges,
//! the loading / error / empty rows of a table, and filters kept in the URL.

use leptos::prelude::*;
use leptos_router::NavigateOptions;
use leptos_router::hooks::{use_location, use_navigate, use_query_map};

use crate::AppError;

#[derive(Debug, Clone, PartialEq)]
struct Toast {
    id: u64,
    ok: bool,
    text: String,
}

/// The toast queue of the signed-in frame. `Copy`, so handlers can capture it freely.
#[derive(Clone, Copy)]
pub struct Toasts {
    items: RwSignal<Vec<Toast>>,
    next: StoredValue<u64>,
}

impl Toasts {
    pub fn ok(&self, text: impl Into<String>) {
        self.push(true, text.into());
    }

    pub fn err(&self, text: impl Into<String>) {
        self.push(false, text.into());
    }

    /// A success toast built by `ok`, or the server's error message.
    pub fn result<T>(&self, res: &Result<T, AppError>, ok: impl FnOnce(&T) -> String) {
        match res {
            Ok(v) => self.ok(ok(v)),
            Err(e) => self.err(e.to_string()),
        }
    }

    fn push(&self, ok: bool, text: String) {
        let id = self.next.get_value();
        self.next.set_value(id + 1);
        self.items.update(|v| v.push(Toast { id, ok, text }));
        // Errors stay longer: they usually need reading.
        #[cfg(feature = "hydrate")]
        {
            let items = self.items;
            let secs = if ok { 4 } else { 8 };
            set_timeout(move || items.update(|v| v.retain(|t| t.id != id)), std::time::Duration::from_secs(secs));
        }
    }

    fn dismiss(&self, id: u64) {
        self.items.update(|v| v.retain(|t| t.id != id));
    }
}

/// Creates the toast queue and makes it available to every page below.
pub fn provide_toasts() -> Toasts {
    let toasts = Toasts { items: RwSignal::new(Vec::new()), next: StoredValue::new(0) };
    provide_context(toasts);
    toasts
}

pub fn use_toasts() -> Toasts {
    expect_context::<Toasts>()
}

/// After every run of `action`: toasts the outcome (`ok` words the success) and, on
/// success, runs `then` (close a form, refetch a list).
pub fn on_outcome<I, O>(
    action: Action<I, Result<O, AppError>>,
    ok: impl Fn(&O) -> String + Send + Sync + 'static,
    then: impl Fn(&O) + Send + Sync + 'static,
) where
    I: Send + Sync + 'static,
    O: Clone + Send + Sync + 'static,
{
    let toasts = use_toasts();
    Effect::new(move |_| {
        if let Some(res) = action.value().get() {
            toasts.result(&res, &ok);
            if let Ok(value) = &res {
                then(value);
            }
        }
    });
}

/// What every list-with-a-form page shares: a version to refetch the list on, the form's open
/// flag and the row being edited (`None` while creating), and the save (create or update)
/// and delete actions, each toasting its outcome and refetching on success.
pub struct Crud<V: Send + Sync + 'static, I: Send + Sync + 'static> {
    pub version: RwSignal<u32>,
    pub form_open: RwSignal<bool>,
    pub editing: RwSignal<Option<V>>,
    pub save: Action<(Option<i64>, I), Result<V, AppError>>,
    pub remove: Action<i64, Result<(), AppError>>,
}

impl<V: Send + Sync + 'static, I: Send + Sync + 'static> Clone for Crud<V, I> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<V: Send + Sync + 'static, I: Send + Sync + 'static> Copy for Crud<V, I> {}

impl<V, I> Crud<V, I>
where
    V: Clone + Send + Sync + 'static,
    I: Clone + Send + Sync + 'static,
{
    pub fn new<CF, UF, DF>(
        create: impl Fn(I) -> CF + Copy + Send + Sync + 'static,
        update: impl Fn(i64, I) -> UF + Copy + Send + Sync + 'static,
        delete: impl Fn(i64) -> DF + Send + Sync + 'static,
        saved: impl Fn(&V) -> String + Send + Sync + 'static,
        deleted: &'static str,
    ) -> Self
    where
        CF: std::future::Future<Output = Result<V, AppError>> + Send + 'static,
        UF: std::future::Future<Output = Result<V, AppError>> + Send + 'static,
        DF: std::future::Future<Output = Result<(), AppError>> + Send + 'static,
    {
        let version = RwSignal::new(0u32);
        let form_open = RwSignal::new(false);
        let save = Action::new(move |(id, input): &(Option<i64>, I)| {
            let (id, input) = (*id, input.clone());
            async move {
                match id {
                    Some(id) => update(id, input).await,
                    None => create(input).await,
                }
            }
        });
        on_outcome(save, saved, move |_| {
            form_open.set(false);
            version.update(|v| *v += 1);
        });
        let remove = Action::new(move |id: &i64| delete(*id));
        on_outcome(remove, move |_| deleted.to_owned(), move |_| version.update(|v| *v += 1));
        Self { version, form_open, editing: RwSignal::new(None), save, remove }
    }

    /// Opens the form on `row`, or empty to create one, without the last save's error.
    pub fn open(&self, row: Option<V>) {
        self.editing.set(row);
        self.save.value().set(None);
        self.form_open.set(true);
    }
}

/// Where toasts appear. Screen readers hear them through the live region.
#[component]
pub fn ToastRegion() -> impl IntoView {
    let toasts = use_toasts();
    view! {
        <div class="toasts" role="status" aria-live="polite">
            <For each=move || toasts.items.get() key=|t| t.id let:toast>
                <div
                    class=if toast.ok { "toast ok" } else { "toast err" }
                    data-testid=if toast.ok { "toast-ok" } else { "toast-error" }
                >
                    <span>{toast.text.clone()}</span>
                    <button class="link" aria-label="Dismiss" on:click=move |_| toasts.dismiss(toast.id)>
                        "×"
                    </button>
                </div>
            </For>
        </div>
    }
}

/// A modal dialog shown while `open` is true. Escape, the close button and a click on the
/// backdrop close it.
#[component]
pub fn Modal(
    #[prop(into)] title: String,
    open: RwSignal<bool>,
    children: ChildrenFn,
    #[prop(optional, into)] testid: String,
) -> impl IntoView {
    let title = StoredValue::new(title);
    let testid = StoredValue::new(testid);
    let children = StoredValue::new(children);
    view! {
        <Show when=move || open.get()>
            <div class="modal-backdrop" on:click=move |_| open.set(false)>
                <div
                    class="modal"
                    role="dialog"
                    aria-modal="true"
                    aria-label=title.get_value()
                    data-testid=testid.get_value()
                    on:click=|ev| ev.stop_propagation()
                    on:keydown=move |ev| {
                        if ev.key() == "Escape" {
                            open.set(false);
                        }
                    }
                >
                    <header class="modal-header">
                        <h2>{title.get_value()}</h2>
                        <button class="link" aria-label="Close" on:click=move |_| open.set(false)>
                            "×"
                        </button>
                    </header>
                    {children.read_value()()}
                </div>
            </div>
        </Show>
    }
}

/// A button that asks before it acts: the question appears in a dialog with Cancel and the
/// action itself.
#[component]
pub fn ConfirmButton(
    #[prop(into)] label: String,
    #[prop(into)] question: String,
    on_confirm: Callback<()>,
    #[prop(optional, into)] pending: Signal<bool>,
    #[prop(optional, into)] testid: String,
    #[prop(optional)] danger: bool,
) -> impl IntoView {
    let open = RwSignal::new(false);
    let label = StoredValue::new(label);
    let question = StoredValue::new(question);
    let class = if danger { "button danger small" } else { "button secondary small" };
    view! {
        <button class=class data-testid=testid disabled=move || pending.get() on:click=move |_| open.set(true)>
            {label.get_value()}
        </button>
        <Modal title="Please confirm" open testid="confirm-dialog">
            <p>{question.get_value()}</p>
            <div class="actions">
                <button class="button secondary" on:click=move |_| open.set(false)>
                    "Cancel"
                </button>
                <button
                    class=class
                    data-testid="confirm"
                    on:click=move |_| {
                        open.set(false);
                        on_confirm.run(());
                    }
                >
                    {label.get_value()}
                </button>
            </div>
        </Modal>
    }
}

/// Copies `text` to the clipboard and says so. Never submits the form it sits in.
#[component]
pub fn CopyButton(#[prop(into)] text: Signal<String>, #[prop(optional, into)] testid: String) -> impl IntoView {
    let toasts = use_toasts();
    view! {
        <button
            type="button"
            class="button secondary small"
            data-testid=testid
            on:click=move |_| {
                copy_to_clipboard(&text.get_untracked());
                toasts.ok("Copied to the clipboard");
            }
        >
            "Copy"
        </button>
    }
}

fn copy_to_clipboard(_text: &str) {
    #[cfg(feature = "hydrate")]
    {
        let _promise = window().navigator().clipboard().write_text(_text);
    }
}

/// A coloured label such as an account or key state.
#[component]
pub fn Badge(#[prop(into)] kind: String, #[prop(into)] text: String) -> impl IntoView {
    view! { <span class=format!("badge badge-{kind}")>{text}</span> }
}

/// The single row of a table body while its data loads.
#[component]
pub fn LoadingRow(colspan: u32) -> impl IntoView {
    view! {
        <tr class="state-row">
            <td colspan=colspan class="muted">"Loading…"</td>
        </tr>
    }
}

/// The single row of a table body when loading failed.
#[component]
pub fn ErrorRow(colspan: u32, error: AppError) -> impl IntoView {
    view! {
        <tr class="state-row">
            <td colspan=colspan class="error" role="alert">{error.to_string()}</td>
        </tr>
    }
}

/// The single row of an empty table body.
#[component]
pub fn EmptyRow(colspan: u32, #[prop(into)] text: String) -> impl IntoView {
    view! {
        <tr class="state-row" data-testid="empty-row">
            <td colspan=colspan class="muted">{text}</td>
        </tr>
    }
}

/// A query parameter of the current URL, empty when absent.
pub fn query_param(name: &'static str) -> Memo<String> {
    let query = use_query_map();
    Memo::new(move |_| query.read().get(name).unwrap_or_default())
}

/// Returns a function that writes `updates` into the current URL's query string (an empty
/// value removes the key) and navigates there, so filters survive a reload and can be shared.
pub fn query_writer() -> impl Fn(&[(&str, String)]) + Clone + Send + Sync + 'static {
    let query = use_query_map();
    let location = use_location();
    let navigate = use_navigate();
    move |updates| {
        let mut q = query.get_untracked();
        for (key, value) in updates {
            if value.is_empty() {
                q.remove(key);
            } else {
                q.replace(key.to_string(), value.clone());
            }
        }
        let path = location.pathname.get_untracked();
        navigate(&format!("{path}{}", q.to_query_string()), NavigateOptions { scroll: false, ..Default::default() });
    }
}

/// Parses a numeric form field: empty is `None`, anything else must be a number.
pub fn parse_opt_i64(field: &str, raw: &str) -> Result<Option<i64>, String> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    raw.parse().map(Some).map_err(|_| format!("{field}: must be a whole number"))
}
