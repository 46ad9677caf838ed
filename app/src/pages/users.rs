//! Users: create, edit and delete them; their role, state and concurrency, how many keys they
//! hold (linking to those keys) and what they used today.

use domain::user::UserListing;
use domain::{UserInput, UserRole, UserStatus, UserView};
use leptos::prelude::*;

use super::PageHeader;
use super::keys::usage_text;
use crate::AppError;
use crate::api::users::{create_user, delete_user, list_users, update_user};
use crate::components::{Badge, ConfirmButton, Crud, EmptyRow, ErrorRow, LoadingRow, Modal, parse_opt_i64};

const COLUMNS: u32 = 7;

#[component]
pub fn UsersPage() -> impl IntoView {
    let crud =
        Crud::new(create_user, update_user, delete_user, |u: &UserView| format!("Saved {}", u.email), "User deleted");
    let Crud { version, form_open, editing, save, remove } = crud;
    let users = Resource::new(move || version.get(), |_| list_users());
    let open_form = move |user: Option<UserView>| crud.open(user);

    view! {
        <PageHeader title="Users" subtitle="Who may hold gateway keys, and who may sign in here (administrators)."/>
        <div class="toolbar">
            <span class="spacer"></span>
            <button class="button" data-testid="new-user" on:click=move |_| open_form(None)>
                "New user"
            </button>
        </div>
        <div class="table-wrap">
            <table class="data" data-testid="users-table">
                <thead>
                    <tr>
                        <th>"Email"</th>
                        <th>"Role"</th>
                        <th>"State"</th>
                        <th class="num">"Concurrency"</th>
                        <th class="num">"API keys"</th>
                        <th>"Today (UTC)"</th>
                        <th>"Actions"</th>
                    </tr>
                </thead>
                <tbody>
                    <Transition fallback=|| view! { <LoadingRow colspan=COLUMNS/> }>
                        {move || {
                            users
                                .get()
                                .map(|res| match res {
                                    Err(error) => view! { <ErrorRow colspan=COLUMNS error/> }.into_any(),
                                    Ok(list) if list.is_empty() => {
                                        view! { <EmptyRow colspan=COLUMNS text="No users yet."/> }.into_any()
                                    }
                                    Ok(list) => {
                                        list.into_iter()
                                            .map(|listing| {
                                                view! {
                                                    <UserRow
                                                        listing
                                                        on_edit=Callback::new(move |u| open_form(Some(u)))
                                                        on_delete=Callback::new(move |id| {
                                                            remove.dispatch(id);
                                                        })
                                                        deleting=remove.pending()
                                                    />
                                                }
                                            })
                                            .collect_view()
                                            .into_any()
                                    }
                                })
                        }}
                    </Transition>
                </tbody>
            </table>
        </div>
        {move || {
            let title = if editing.with(Option::is_some) { "Edit user" } else { "New user" };
            view! {
                <Modal title open=form_open testid="user-dialog">
                    <UserForm editing=editing.get_untracked() save/>
                </Modal>
            }
        }}
    }
}

#[component]
fn UserRow(
    listing: UserListing,
    on_edit: Callback<UserView>,
    on_delete: Callback<i64>,
    deleting: Memo<bool>,
) -> impl IntoView {
    let user = listing.user;
    let id = user.id;
    let question = format!(
        "Delete {} and their {} API keys? Clients using those keys stop working.",
        user.email, listing.api_key_count
    );
    let edit_target = user.clone();
    let concurrency = if user.concurrency <= 0 { "unlimited".to_owned() } else { user.concurrency.to_string() };
    view! {
        <tr data-testid=format!("user-row-{id}")>
            <td data-testid="user-email">{user.email.clone()}</td>
            <td>
                <Badge kind=if user.role == UserRole::Admin { "warn" } else { "muted" } text=user.role.as_str()/>
            </td>
            <td data-testid="user-status">
                <Badge kind=user.status.as_str() text=user.status.as_str()/>
            </td>
            <td class="num">{concurrency}</td>
            <td class="num" data-testid="user-keys">
                <a href=format!("/keys?user={id}")>{listing.api_key_count}</a>
            </td>
            <td class="small" data-testid="user-today">
                {usage_text(&listing.today)}
                {(listing.today.requests > 0)
                    .then(|| view! { " " <a href=format!("/usage?user_id={id}")>"details"</a> })}
            </td>
            <td>
                <div class="row-actions">
                    <button
                        class="button secondary small"
                        data-testid=format!("edit-user-{id}")
                        on:click=move |_| on_edit.run(edit_target.clone())
                    >
                        "Edit"
                    </button>
                    <ConfirmButton
                        label="Delete"
                        question
                        danger=true
                        pending=deleting
                        testid=format!("delete-user-{id}")
                        on_confirm=Callback::new(move |()| on_delete.run(id))
                    />
                </div>
            </td>
        </tr>
    }
}

/// Create or edit form. On edit an empty password keeps the current one.
#[component]
fn UserForm(
    editing: Option<UserView>,
    save: Action<(Option<i64>, UserInput), Result<UserView, AppError>>,
) -> impl IntoView {
    let id = editing.as_ref().map(|u| u.id);
    let email = RwSignal::new(editing.as_ref().map(|u| u.email.clone()).unwrap_or_default());
    let password = RwSignal::new(String::new());
    let role = RwSignal::new(editing.as_ref().map_or(UserRole::User, |u| u.role).as_str().to_owned());
    let status = RwSignal::new(editing.as_ref().map_or(UserStatus::Active, |u| u.status).as_str().to_owned());
    let concurrency =
        RwSignal::new(editing.as_ref().map_or(domain::user::DEFAULT_USER_CONCURRENCY, |u| u.concurrency).to_string());
    let error = RwSignal::new(None::<String>);
    Effect::new(move |_| {
        if let Some(Err(e)) = save.value().get() {
            error.set(Some(e.to_string()));
        }
    });

    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let parsed = (|| -> Result<UserInput, String> {
            let concurrency = parse_opt_i64("concurrency", &concurrency.get_untracked())?
                .map(|c| i32::try_from(c).map_err(|_| "concurrency: too large".to_owned()))
                .transpose()?;
            let password = password.get_untracked();
            Ok(UserInput {
                email: Some(email.get_untracked()),
                password: (!password.is_empty()).then_some(password),
                role: Some(role.get_untracked().parse().map_err(|e: domain::UnknownVariant| e.to_string())?),
                concurrency,
                status: Some(status.get_untracked().parse().map_err(|e: domain::UnknownVariant| e.to_string())?),
            })
        })();
        match parsed {
            Ok(input) => {
                error.set(None);
                save.dispatch((id, input));
            }
            Err(e) => error.set(Some(e)),
        }
    };

    view! {
        <form class="form" data-testid="user-form" on:submit=submit>
            <label>
                "Email"
                <input type="email" required data-testid="user-email-input" bind:value=email/>
            </label>
            <label>
                {if id.is_some() { "New password" } else { "Password" }}
                <input
                    type="password"
                    autocomplete="new-password"
                    minlength=domain::user::MIN_PASSWORD_LEN.to_string()
                    required=id.is_none()
                    placeholder=if id.is_some() { "leave empty to keep" } else { "" }
                    data-testid="user-password"
                    bind:value=password
                />
            </label>
            <label>
                "Role"
                <select data-testid="user-role" prop:value=move || role.get() on:change=move |ev| role.set(event_target_value(&ev))>
                    {UserRole::ALL
                        .iter()
                        .map(|r| {
                            let value = r.as_str();
                            view! { <option value=value selected=move || role.get() == value>{value}</option> }
                        })
                        .collect_view()}
                </select>
                <span class="muted small">"Administrators can sign in to this UI."</span>
            </label>
            <label>
                "State"
                <select data-testid="user-status-input" prop:value=move || status.get() on:change=move |ev| status.set(event_target_value(&ev))>
                    {UserStatus::ALL
                        .iter()
                        .map(|s| {
                            let value = s.as_str();
                            view! { <option value=value selected=move || status.get() == value>{value}</option> }
                        })
                        .collect_view()}
                </select>
            </label>
            <label>
                "Concurrency"
                <input type="number" step="1" data-testid="user-concurrency" bind:value=concurrency/>
                <span class="muted small">"In-flight gateway requests over all their keys; 0 is unlimited."</span>
            </label>
            {move || error.get().map(|e| view! { <p class="field-error wide" role="alert">{e}</p> })}
            <div class="actions wide">
                <button class="button" type="submit" data-testid="user-submit" disabled=move || save.pending().get()>
                    {move || if save.pending().get() { "Saving…" } else if id.is_some() { "Save" } else { "Create user" }}
                </button>
            </div>
        </form>
    }
}
