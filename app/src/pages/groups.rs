//! Groups: create, edit and delete them; see how many accounts serve each and how many keys
//! are bound to it.

use domain::{GroupInput, GroupView, Platform};
use leptos::prelude::*;

use super::PageHeader;
use crate::AppError;
use crate::api::groups::{create_group, delete_group, list_groups, update_group};
use crate::components::{Badge, ConfirmButton, Crud, EmptyRow, ErrorRow, LoadingRow, Modal};

const COLUMNS: u32 = 7;

#[component]
pub fn GroupsPage() -> impl IntoView {
    let crud = Crud::new(
        create_group,
        update_group,
        delete_group,
        |g: &GroupView| format!("Saved group {}", g.name),
        "Group deleted",
    );
    let Crud { version, form_open, editing, save, remove } = crud;
    let groups = Resource::new(move || version.get(), |_| list_groups());
    let open_form = move |group: Option<GroupView>| crud.open(group);

    view! {
        <PageHeader title="Groups" subtitle="An API key is bound to a group; the group's accounts serve it."/>
        <div class="toolbar">
            <span class="spacer"></span>
            <button class="button" data-testid="new-group" on:click=move |_| open_form(None)>
                "New group"
            </button>
        </div>
        <div class="table-wrap">
            <table class="data" data-testid="groups-table">
                <thead>
                    <tr>
                        <th>"Name"</th>
                        <th>"Platform"</th>
                        <th class="num">"Rate multiplier"</th>
                        <th class="num">"Accounts"</th>
                        <th class="num">"API keys"</th>
                        <th>"Created"</th>
                        <th>"Actions"</th>
                    </tr>
                </thead>
                <tbody>
                    <Transition fallback=|| view! { <LoadingRow colspan=COLUMNS/> }>
                        {move || {
                            groups
                                .get()
                                .map(|res| match res {
                                    Err(error) => view! { <ErrorRow colspan=COLUMNS error/> }.into_any(),
                                    Ok(list) if list.is_empty() => {
                                        view! { <EmptyRow colspan=COLUMNS text="No groups yet: create one to hand out keys."/> }
                                            .into_any()
                                    }
                                    Ok(list) => {
                                        list.into_iter()
                                            .map(|group| {
                                                view! {
                                                    <GroupRow
                                                        group
                                                        on_edit=Callback::new(move |g| open_form(Some(g)))
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
            let title = if editing.with(Option::is_some) { "Edit group" } else { "New group" };
            view! {
                <Modal title open=form_open testid="group-dialog">
                    <GroupForm editing=editing.get_untracked() save/>
                </Modal>
            }
        }}
    }
}

#[component]
fn GroupRow(
    group: GroupView,
    on_edit: Callback<GroupView>,
    on_delete: Callback<i64>,
    deleting: Memo<bool>,
) -> impl IntoView {
    let id = group.id;
    let question = format!(
        "Delete group “{}”? Its {} accounts leave it and its {} API keys become ungrouped.",
        group.name, group.account_count, group.api_key_count
    );
    let edit_target = group.clone();
    view! {
        <tr data-testid=format!("group-row-{id}")>
            <td>
                <strong>{group.name.clone()}</strong>
                {(!group.description.is_empty()).then(|| view! { <div class="muted small">{group.description.clone()}</div> })}
            </td>
            <td>
                <Badge kind="muted" text=group.platform.as_str()/>
            </td>
            <td class="num" data-testid="group-rate">{format!("{}×", group.rate_multiplier)}</td>
            <td class="num" data-testid="group-accounts">{group.account_count}</td>
            <td class="num" data-testid="group-keys">
                <a href=format!("/keys?group={id}")>{group.api_key_count}</a>
            </td>
            <td class="small">{super::keys::short_time(&group.created_at)}</td>
            <td>
                <div class="row-actions">
                    <button
                        class="button secondary small"
                        data-testid=format!("edit-group-{id}")
                        on:click=move |_| on_edit.run(edit_target.clone())
                    >
                        "Edit"
                    </button>
                    <ConfirmButton
                        label="Delete"
                        question
                        danger=true
                        pending=deleting
                        testid=format!("delete-group-{id}")
                        on_confirm=Callback::new(move |()| on_delete.run(id))
                    />
                </div>
            </td>
        </tr>
    }
}

/// Create or edit form. Its fields keep what was typed when the server refuses it.
#[component]
fn GroupForm(
    editing: Option<GroupView>,
    save: Action<(Option<i64>, GroupInput), Result<GroupView, AppError>>,
) -> impl IntoView {
    let id = editing.as_ref().map(|g| g.id);
    // A group's accounts must share its platform, so it is fixed while it has any.
    let platform_locked = editing.as_ref().is_some_and(|g| g.account_count > 0);
    let name = RwSignal::new(editing.as_ref().map(|g| g.name.clone()).unwrap_or_default());
    let description = RwSignal::new(editing.as_ref().map(|g| g.description.clone()).unwrap_or_default());
    let platform = RwSignal::new(editing.as_ref().map_or(Platform::Anthropic, |g| g.platform).as_str().to_owned());
    let multiplier = RwSignal::new(editing.as_ref().map_or_else(|| "1".to_owned(), |g| g.rate_multiplier.to_string()));
    let error = RwSignal::new(None::<String>);

    Effect::new(move |_| {
        if let Some(Err(e)) = save.value().get() {
            error.set(Some(e.to_string()));
        }
    });

    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let rate_multiplier = match multiplier.get_untracked().trim().parse::<f64>() {
            Ok(v) => v,
            Err(_) => {
                error.set(Some("rate_multiplier: must be a number such as 1 or 0.5".into()));
                return;
            }
        };
        let platform = match platform.get_untracked().parse::<Platform>() {
            Ok(p) => p,
            Err(e) => {
                error.set(Some(e.to_string()));
                return;
            }
        };
        error.set(None);
        let input = GroupInput {
            name: Some(name.get_untracked()),
            description: Some(description.get_untracked()),
            platform: Some(platform),
            rate_multiplier: Some(rate_multiplier),
        };
        save.dispatch((id, input));
    };

    view! {
        <form class="form" data-testid="group-form" on:submit=submit>
            <label>
                "Name"
                <input type="text" required maxlength="100" data-testid="group-name" bind:value=name/>
            </label>
            <label>
                "Platform"
                <select
                    data-testid="group-platform"
                    disabled=platform_locked
                    prop:value=move || platform.get()
                    on:change=move |ev| platform.set(event_target_value(&ev))
                >
                    {Platform::ALL
                        .iter()
                        .map(|p| {
                            let value = p.as_str();
                            view! {
                                <option value=value selected=move || platform.get() == value>
                                    {value}
                                </option>
                            }
                        })
                        .collect_view()}
                </select>
                {platform_locked.then(|| view! { <span class="muted small">"Fixed while the group has accounts."</span> })}
            </label>
            <label>
                "Rate multiplier"
                <input
                    type="number"
                    min="0"
                    step="any"
                    required
                    data-testid="group-rate-multiplier"
                    bind:value=multiplier
                />
                <span class="muted small">"Recorded cost × this; 1 is list price."</span>
            </label>
            <label class="wide">
                "Description"
                <input type="text" data-testid="group-description" bind:value=description/>
            </label>
            {move || error.get().map(|e| view! { <p class="field-error wide" role="alert">{e}</p> })}
            <div class="actions wide">
                <button class="button" type="submit" data-testid="group-submit" disabled=move || save.pending().get()>
                    {move || if save.pending().get() { "Saving…" } else if id.is_some() { "Save" } else { "Create group" }}
                </button>
            </div>
        </form>
    }
}
