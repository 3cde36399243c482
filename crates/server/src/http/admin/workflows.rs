//! `/api/workflows`: create, list, show, replace, delete, enable and disable workflows.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};

use super::openapi::ErrorBody;
use super::views::{LastExecution, Listing, MASK, VersionView, WorkflowView, masked};
use super::{Admin, ApiPath, ApiQuery, BodyText, Page, deploy_error, deployed, store_failed};
use crate::catalog::{DeployError, DeployMode, Deployed};
use crate::http::api_error::{ApiError, ErrorCode};
use crate::http::ingress::TRIGGER_PATH;
use hookflow_workflow::timestamp::Timestamp;
use hookflow_workflow::{Workflow, parse_workflow};

/// Lists deployed workflows by key.
#[utoipa::path(get, operation_id = "listWorkflows", path = "/api/workflows", tag = "workflows", params(Page),
    security(("admin_token" = [])),
    responses((status = 200, description = "A page of workflows, by key", body = Listing<WorkflowView>),
        (status = 401, description = "Missing or wrong token", body = ErrorBody)))]
pub(super) async fn list(
    State(admin): State<Arc<Admin>>,
    ApiQuery(page): ApiQuery<Page>,
) -> Result<Json<Listing<WorkflowView>>, ApiError> {
    let limit = page.limit()?;
    let after = page.cursor.unwrap_or_default();
    let all = admin.catalog.all();
    let remaining: Vec<_> = all.iter().filter(|deployed| deployed.key > after).collect();
    let mut items = Vec::new();
    for deployed in remaining.iter().take(limit) {
        items.push(view(&admin, deployed).await?);
    }
    let next_cursor = (remaining.len() > limit).then(|| remaining[limit - 1].key.clone());
    Ok(Json(Listing { items, next_cursor }))
}

/// Creates a workflow; its key is generated when the definition has none.
#[utoipa::path(post, operation_id = "createWorkflow", path = "/api/workflows", tag = "workflows", request_body = Workflow,
    security(("admin_token" = [])),
    responses((status = 201, description = "Created, with its key and webhook URL", body = WorkflowView),
        (status = 409, description = "A workflow with that key exists", body = ErrorBody),
        (status = 422, description = "Invalid definition: `error.faults` names each fault's JSON path", body = ErrorBody)))]
pub(super) async fn create(
    State(admin): State<Arc<Admin>>,
    BodyText(body): BodyText,
) -> Result<(StatusCode, Json<WorkflowView>), ApiError> {
    let definition = parse_workflow(&body).map_err(|e| deploy_error(DeployError::Invalid(e)))?;
    let deployed = admin.catalog.deploy(definition, None, DeployMode::Create).await.map_err(deploy_error)?;
    Ok((StatusCode::CREATED, Json(view(&admin, &deployed).await?)))
}

/// Shows one workflow.
#[utoipa::path(get, operation_id = "showWorkflow", path = "/api/workflows/{key}", tag = "workflows",
    params(("key" = String, Path, description = "The workflow key")), security(("admin_token" = [])),
    responses((status = 200, description = "The workflow", body = WorkflowView),
        (status = 404, description = "No such workflow", body = ErrorBody)))]
pub(super) async fn show(
    State(admin): State<Arc<Admin>>,
    ApiPath(key): ApiPath<String>,
) -> Result<Json<WorkflowView>, ApiError> {
    let deployed = deployed(&admin, &key)?;
    Ok(Json(view(&admin, &deployed).await?))
}

/// Replaces a workflow's definition with a new version; running executions keep theirs.
/// Masked secrets (`********`) sent back keep the stored ones. With `If-Match: "<version>"` the
/// replacement is refused (409) when the workflow changed since that version.
#[utoipa::path(put, operation_id = "replaceWorkflow", path = "/api/workflows/{key}", tag = "workflows", request_body = Workflow,
    params(("key" = String, Path, description = "The workflow key"),
        ("If-Match" = Option<String>, Header, description = "The version the new definition was made from, e.g. \"3\"")),
    security(("admin_token" = [])),
    responses((status = 200, description = "The new version", body = WorkflowView),
        (status = 404, description = "No such workflow", body = ErrorBody),
        (status = 409, description = "The workflow changed since the If-Match version", body = ErrorBody),
        (status = 422, description = "Invalid definition", body = ErrorBody)))]
pub(super) async fn replace(
    State(admin): State<Arc<Admin>>,
    ApiPath(key): ApiPath<String>,
    headers: HeaderMap,
    BodyText(body): BodyText,
) -> Result<Json<WorkflowView>, ApiError> {
    let mode = match headers.get(header::IF_MATCH) {
        None => DeployMode::Replace,
        Some(value) => DeployMode::ReplaceVersion(if_match_version(value)?),
    };
    let current = deployed(&admin, &key)?;
    let mut definition = parse_workflow(&body).map_err(|e| deploy_error(DeployError::Invalid(e)))?;
    if definition.key.as_deref().is_some_and(|given| given != key) {
        return Err(ApiError::new(ErrorCode::ValidationFailed, "the definition's key differs from the URL's"));
    }
    definition.key = Some(key);
    keep_masked_secrets(&mut definition, current.workflow());
    let deployed = admin.catalog.deploy(definition, None, mode).await.map_err(deploy_error)?;
    Ok(Json(view(&admin, &deployed).await?))
}

/// The version an `If-Match` header names: `"3"`, `W/"3"` or `3`.
fn if_match_version(value: &HeaderValue) -> Result<u64, ApiError> {
    let text = value.to_str().unwrap_or_default().trim();
    let text = text.strip_prefix("W/").unwrap_or(text).trim_matches('"');
    text.parse().map_err(|_| {
        ApiError::new(
            ErrorCode::ValidationFailed,
            "If-Match: expected the workflow version the change was made from, e.g. \"3\"",
        )
    })
}

/// Deletes a workflow; its executions and their versions stay readable.
#[utoipa::path(delete, operation_id = "deleteWorkflow", path = "/api/workflows/{key}", tag = "workflows",
    params(("key" = String, Path, description = "The workflow key")), security(("admin_token" = [])),
    responses((status = 204, description = "Deleted"),
        (status = 404, description = "No such workflow", body = ErrorBody)))]
pub(super) async fn delete(
    State(admin): State<Arc<Admin>>,
    ApiPath(key): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    admin.catalog.remove(&key).await.map_err(deploy_error)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Enables a workflow's webhook URL.
#[utoipa::path(post, operation_id = "enableWorkflow", path = "/api/workflows/{key}/enable", tag = "workflows",
    params(("key" = String, Path, description = "The workflow key")), security(("admin_token" = [])),
    responses((status = 200, description = "The new version, enabled", body = WorkflowView),
        (status = 404, description = "No such workflow", body = ErrorBody)))]
pub(super) async fn enable(
    State(admin): State<Arc<Admin>>,
    ApiPath(key): ApiPath<String>,
) -> Result<Json<WorkflowView>, ApiError> {
    set_enabled(&admin, &key, true).await
}

/// Disables a workflow: its URL answers 404 until it is enabled again.
#[utoipa::path(post, operation_id = "disableWorkflow", path = "/api/workflows/{key}/disable", tag = "workflows",
    params(("key" = String, Path, description = "The workflow key")), security(("admin_token" = [])),
    responses((status = 200, description = "The new version, disabled", body = WorkflowView),
        (status = 404, description = "No such workflow", body = ErrorBody)))]
pub(super) async fn disable(
    State(admin): State<Arc<Admin>>,
    ApiPath(key): ApiPath<String>,
) -> Result<Json<WorkflowView>, ApiError> {
    set_enabled(&admin, &key, false).await
}

/// Lists every stored version of a workflow, newest first.
#[utoipa::path(get, operation_id = "listWorkflowVersions", path = "/api/workflows/{key}/versions", tag = "workflows",
    params(("key" = String, Path, description = "The workflow key")), security(("admin_token" = [])),
    responses((status = 200, description = "Its versions, newest first", body = Listing<VersionView>),
        (status = 404, description = "No such workflow", body = ErrorBody)))]
pub(super) async fn versions(
    State(admin): State<Arc<Admin>>,
    ApiPath(key): ApiPath<String>,
) -> Result<Json<Listing<VersionView>>, ApiError> {
    let current = deployed(&admin, &key)?.version;
    let versions = admin.catalog.versions(&key).await.map_err(store_failed)?;
    let items = versions
        .into_iter()
        .rev()
        .filter(|(version, _)| *version <= current)
        .map(|(version, definition)| VersionView {
            version,
            current: version == current,
            definition: masked(&definition),
        })
        .collect();
    Ok(Json(Listing { items, next_cursor: None }))
}

/// Makes an earlier version's definition current again, as a new version (the workflow stays
/// enabled or disabled as it is).
#[utoipa::path(post, operation_id = "restoreWorkflowVersion", path = "/api/workflows/{key}/versions/{version}/restore",
    tag = "workflows",
    params(("key" = String, Path, description = "The workflow key"), ("version" = u64, Path, description = "The version to restore")),
    security(("admin_token" = [])),
    responses((status = 200, description = "The new current version", body = WorkflowView),
        (status = 404, description = "No such workflow or version", body = ErrorBody),
        (status = 422, description = "The old definition no longer validates (e.g. a node type is gone)", body = ErrorBody)))]
pub(super) async fn restore(
    State(admin): State<Arc<Admin>>,
    ApiPath((key, version)): ApiPath<(String, u64)>,
) -> Result<Json<WorkflowView>, ApiError> {
    let current = deployed(&admin, &key)?;
    let versions = admin.catalog.versions(&key).await.map_err(store_failed)?;
    let Some((_, mut definition)) =
        versions.into_iter().find(|(stored, _)| *stored == version && *stored <= current.version)
    else {
        return Err(ApiError::new(ErrorCode::NotFound, format!("workflow {key:?} has no version {version}")));
    };
    definition.enabled = current.workflow().enabled;
    keep_current_secrets(&mut definition, current.workflow());
    let deployed = admin.catalog.deploy(definition, None, DeployMode::Replace).await.map_err(deploy_error)?;
    Ok(Json(view(&admin, &deployed).await?))
}

async fn set_enabled(admin: &Admin, key: &str, enabled: bool) -> Result<Json<WorkflowView>, ApiError> {
    let deployed = admin.catalog.set_enabled(key, enabled).await.map_err(deploy_error)?;
    Ok(Json(view(admin, &deployed).await?))
}

/// A workflow as the API shows it.
async fn view(admin: &Admin, deployed: &Deployed) -> Result<WorkflowView, ApiError> {
    let url = format!("{}{TRIGGER_PATH}{}", admin.origin.trim_end_matches('/'), deployed.key);
    let mut view = WorkflowView::masked(deployed.workflow(), deployed.version, url);
    let record = admin.catalog.record(&deployed.key).await.map_err(store_failed)?;
    view.created_at = record.as_ref().map(|r| r.created_at);
    view.updated_at = record.as_ref().map(|r| r.updated_at);
    let last = admin.store.last_execution(&deployed.key).await.map_err(store_failed)?;
    view.last_execution = last.map(|(id, status)| {
        let created_at = ulid::Ulid::from_string(&id).map_or(Timestamp(0), |ulid| Timestamp(ulid.timestamp_ms()));
        LastExecution { id, status, created_at }
    });
    Ok(view)
}

/// A restored definition keeps today's credentials: a password, secret or key rotated since that
/// version (after a leak, say) must not come back with it. A signing scheme's secrets are the
/// ones today's definition has for the same scheme.
fn keep_current_secrets(restored: &mut Workflow, current: &Workflow) {
    let today = current.trigger.secrets();
    if let (Some(old), Some(now)) = (&mut restored.trigger.signature, &current.trigger.signature)
        && old.scheme() == now.scheme()
    {
        *old.secrets_mut() = now.secrets().to_vec();
    }
    for (slot, secret) in restored.trigger.secrets_mut() {
        if slot.path.starts_with("signature.") {
            continue;
        }
        if let Some((_, now)) = today.iter().find(|(kept, _)| *kept == slot) {
            secret.clone_from(now);
        }
    }
}

/// A replacement that sends back masked secrets keeps the stored ones (the same slot of the same
/// scheme).
fn keep_masked_secrets(definition: &mut Workflow, current: &Workflow) {
    let stored = current.trigger.secrets();
    for (slot, secret) in definition.trigger.secrets_mut() {
        if *secret == MASK
            && let Some((_, kept)) = stored.iter().find(|(kept, _)| *kept == slot)
        {
            secret.clone_from(kept);
        }
    }
}
