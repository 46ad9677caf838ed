//! Group management, shared by the admin REST API and the Groups page.

use domain::{GroupInput, GroupView};
use store::Store;

use crate::AppError;

fn invalid(err: domain::FieldError) -> AppError {
    AppError::Invalid(err.to_string())
}

fn view(row: &store::GroupRow) -> Result<GroupView, AppError> {
    Ok(row.view()?)
}

pub async fn list_groups(store: &Store) -> Result<Vec<GroupView>, AppError> {
    store.list_groups().await?.iter().map(view).collect()
}

pub async fn get_group(store: &Store, id: i64) -> Result<GroupView, AppError> {
    view(&store.find_group(id).await?.ok_or_else(|| AppError::NotFound("group".into()))?)
}

pub async fn create_group(store: &Store, input: GroupInput) -> Result<GroupView, AppError> {
    let fields = input.resolve(None).map_err(invalid)?;
    view(&store.create_group(&fields).await.map_err(name_taken)?)
}

pub async fn update_group(store: &Store, id: i64, input: GroupInput) -> Result<GroupView, AppError> {
    let current = store.find_group(id).await?.ok_or_else(|| AppError::NotFound("group".into()))?;
    let before = current.fields()?;
    let fields = input.resolve(Some(&before)).map_err(invalid)?;
    // Every account of a group has the group's platform; changing it would strand them.
    if fields.platform != before.platform && current.account_count > 0 {
        return Err(AppError::Invalid(format!(
            "platform: the group has {} {} accounts; remove them from it first",
            current.account_count,
            before.platform.as_str()
        )));
    }
    view(&store.update_group(id, &fields).await.map_err(name_taken)?)
}

pub async fn delete_group(store: &Store, id: i64) -> Result<(), AppError> {
    if store.delete_group(id).await? { Ok(()) } else { Err(AppError::NotFound("group".into())) }
}

fn name_taken(err: store::StoreError) -> AppError {
    match err {
        store::StoreError::Conflict(_) => AppError::Invalid("name: a group with this name already exists".into()),
        other => other.into(),
    }
}
