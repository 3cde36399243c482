//! `/api/executions`: list with filters, show with jobs, cancel, re-run one, re-run every match
//! of a filter (a redrive).

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::Value;

use super::openapi::ErrorBody;
use super::views::{Listing, RedriveRequest, RedriveView};
use super::{Admin, ApiPath, ApiQuery, BodyText, Page, deployed, internal, store_failed};
use crate::dispatch::RedriveFilter;
use crate::http::api_error::{ApiError, ErrorCode};
use hookflow_store::ExecutionFilter;
use hookflow_workflow::timestamp::Timestamp;
use hookflow_workflow::{Execution, ExecutionStatus};

/// Filters and page of an execution listing.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
#[serde(rename_all = "camelCase")]
pub(super) struct ExecutionQuery {
    /// Only this workflow's executions.
    workflow: Option<String>,
    /// Only executions with this status (`queued`, `started`, `resolved`, `failed`, `error`,
    /// `aborted`, `canceled`, `unreadable`).
    #[param(value_type = Option<ExecutionStatus>)]
    status: Option<String>,
    /// Only executions created at or after this RFC 3339 instant, e.g. `2026-11-29T18:00:00Z`.
    #[param(value_type = Option<String>, format = DateTime)]
    since: Option<String>,
    /// Only executions created before this RFC 3339 instant.
    #[param(value_type = Option<String>, format = DateTime)]
    until: Option<String>,
    /// Only dead letters (`true`: failed their last attempt), or only executions that are not.
    dead_letter: Option<bool>,
    /// Most items in the page (default 50, at most 500).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<usize>,
    /// The `nextCursor` of the page before.
    cursor: Option<String>,
}

/// Lists executions newest first, each with its jobs.
#[utoipa::path(get, operation_id = "listExecutions", path = "/api/executions", tag = "executions", params(ExecutionQuery),
    security(("admin_token" = [])),
    responses((status = 200, description = "A page of executions, newest first", body = Listing<Execution>),
        (status = 422, description = "A filter that does not parse", body = ErrorBody)))]
pub(super) async fn list(
    State(admin): State<Arc<Admin>>,
    ApiQuery(query): ApiQuery<ExecutionQuery>,
) -> Result<Json<Listing<Execution>>, ApiError> {
    let status = query.status.as_deref().map(|name| status_named("status", name)).transpose()?;
    let filter = ExecutionFilter {
        workflow: query.workflow.clone(),
        status,
        since: instant("since", query.since.as_deref())?,
        until: instant("until", query.until.as_deref())?,
        dead_letter: query.dead_letter,
        rerun: None,
    };
    let limit = Page { limit: query.limit, cursor: None }.limit()?;
    // The store decodes the page off the async runtime.
    let listed = admin.store.executions(&filter, query.cursor.as_deref(), limit + 1).await;
    let mut items = listed.map_err(store_failed)?;
    let next_cursor = (items.len() > limit).then(|| items[limit - 1].id.clone());
    items.truncate(limit);
    items.iter_mut().for_each(|execution| admin.host.secrets().mask_execution(execution));
    Ok(Json(Listing { items, next_cursor }))
}

/// The execution status called `name` (at `field`).
fn status_named(field: &str, name: &str) -> Result<ExecutionStatus, ApiError> {
    serde_json::from_value::<ExecutionStatus>(Value::String(name.to_string())).map_err(|_| {
        ApiError::new(ErrorCode::ValidationFailed, format!("{field}: {name:?} is not an execution status"))
    })
}

/// An RFC 3339 query parameter such as `2026-11-29T18:00:00Z`.
pub(super) fn instant(name: &str, text: Option<&str>) -> Result<Option<Timestamp>, ApiError> {
    text.map(|text| {
        Timestamp::parse(text).ok_or_else(|| {
            ApiError::new(
                ErrorCode::ValidationFailed,
                format!("{name}: {text:?} is not an RFC 3339 instant such as 2026-11-29T18:00:00Z"),
            )
        })
    })
    .transpose()
}

/// Shows one execution with its jobs (resolved input, output, error, timings).
#[utoipa::path(get, operation_id = "showExecution", path = "/api/executions/{id}", tag = "executions",
    params(("id" = String, Path, description = "The execution id")), security(("admin_token" = [])),
    responses((status = 200, description = "The execution and its jobs", body = Execution),
        (status = 404, description = "No such execution", body = ErrorBody)))]
pub(super) async fn show(
    State(admin): State<Arc<Admin>>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Execution>, ApiError> {
    Ok(Json(execution(&admin, &id).await?))
}

/// Cancels a queued or running async execution: a queued one ends `canceled` at once (200), a
/// running one before its next node (202).
#[utoipa::path(post, operation_id = "cancelExecution", path = "/api/executions/{id}/cancel", tag = "executions",
    params(("id" = String, Path, description = "The execution id")), security(("admin_token" = [])),
    responses((status = 200, description = "Canceled", body = Execution),
        (status = 202, description = "Running: it stops before its next node", body = Execution),
        (status = 404, description = "No such execution", body = ErrorBody),
        (status = 409, description = "Finished already, or a sync execution", body = ErrorBody)))]
pub(super) async fn cancel(
    State(admin): State<Arc<Admin>>,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let execution = stored(&admin, &id).await?;
    let status = execution.status;
    match admin.dispatcher.cancel(execution).await.map_err(store_failed)? {
        Some(canceled) if canceled.status.is_final() => Ok(Json(masked(&admin, canceled)).into_response()),
        Some(running) => Ok((StatusCode::ACCEPTED, Json(masked(&admin, running))).into_response()),
        None => Err(ApiError::new(
            ErrorCode::Conflict,
            format!("execution {id} cannot be canceled: it is {} (or a sync execution)", status.as_str()),
        )),
    }
}

/// Runs the workflow's current version again, in the background, on the execution's stored
/// trigger data.
#[utoipa::path(post, operation_id = "rerunExecution", path = "/api/executions/{id}/rerun", tag = "executions",
    params(("id" = String, Path, description = "The execution id")), security(("admin_token" = [])),
    responses((status = 201, description = "The new execution, queued", body = Execution),
        (status = 404, description = "No such execution, or its workflow is gone", body = ErrorBody)))]
pub(super) async fn rerun(
    State(admin): State<Arc<Admin>>,
    ApiPath(id): ApiPath<String>,
) -> Result<(StatusCode, Json<Execution>), ApiError> {
    let earlier = stored(&admin, &id).await?;
    let deployed = deployed(&admin, &earlier.workflow)?;
    let rerun = admin.dispatcher.rerun(&deployed, &earlier).await.map_err(store_failed)?;
    Ok((StatusCode::CREATED, Json(masked(&admin, rerun))))
}

/// The statuses a redrive matches when none are given.
const REDRIVE_STATUSES: [ExecutionStatus; 3] =
    [ExecutionStatus::Error, ExecutionStatus::Aborted, ExecutionStatus::Failed];

/// Re-runs every finished execution a filter matches that was not re-run before (a redrive), on
/// its workflow's current version, in batches; each records its rerun as `rerunAs` and is not
/// matched again. With `dryRun` only counts them.
#[utoipa::path(post, operation_id = "redriveExecutions", path = "/api/executions/rerun", tag = "executions",
    request_body = RedriveRequest, security(("admin_token" = [])),
    responses((status = 200, description = "How many matched, and the reruns queued", body = RedriveView),
        (status = 400, description = "Not a JSON filter", body = ErrorBody),
        (status = 422, description = "A filter that does not parse", body = ErrorBody)))]
pub(super) async fn redrive(
    State(admin): State<Arc<Admin>>,
    BodyText(body): BodyText,
) -> Result<Json<RedriveView>, ApiError> {
    let filter: Value = serde_json::from_str(&body).map_err(|e| {
        ApiError::new(
            ErrorCode::InvalidJson,
            format!("the body must be a JSON filter ({{}} matches every failed execution): {e}"),
        )
    })?;
    let request: RedriveRequest = serde_json::from_value(filter)
        .map_err(|e| ApiError::new(ErrorCode::ValidationFailed, format!("not a redrive filter: {e}")))?;
    let statuses = match &request.status {
        None => REDRIVE_STATUSES.to_vec(),
        Some(names) => names
            .iter()
            .enumerate()
            .map(|(index, name)| {
                let status = status_named(&format!("status[{index}]"), name)?;
                if !status.is_final() || status == ExecutionStatus::Unreadable {
                    return Err(ApiError::new(
                        ErrorCode::ValidationFailed,
                        format!("status[{index}]: {name:?} executions are not finished: only finished ones are re-run"),
                    ));
                }
                Ok(status)
            })
            .collect::<Result<Vec<_>, ApiError>>()?,
    };
    let filter = RedriveFilter {
        workflow: request.workflow.clone(),
        statuses,
        dead_letter: request.dead_letter,
        since: instant("since", request.since.as_deref())?,
        until: instant("until", request.until.as_deref())?,
    };
    let redriven = admin.dispatcher.redrive(&filter, request.dry_run).await.map_err(store_failed)?;
    Ok(Json(RedriveView { matched: redriven.matched, queued: redriven.queued }))
}

/// Deletes an execution's record: a finished one, or a sync one a crash left `started`; a queued
/// or running one must be canceled first.
#[utoipa::path(delete, operation_id = "deleteExecution", path = "/api/executions/{id}", tag = "executions",
    params(("id" = String, Path, description = "The execution id")), security(("admin_token" = [])),
    responses((status = 204, description = "Deleted"),
        (status = 404, description = "No such execution", body = ErrorBody),
        (status = 409, description = "Still queued or running", body = ErrorBody)))]
pub(super) async fn delete(
    State(admin): State<Arc<Admin>>,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let execution = execution(&admin, &id).await?;
    let queued = admin.store.is_queued(&id).await.map_err(store_failed)?;
    // A sync execution is not queued; past its caller's timeout it no longer runs.
    let running_for = Duration::from_millis(Timestamp::now().0.saturating_sub(execution.created_at.0));
    let sync_over = running_for > admin.dispatcher.sync_timeout() + Duration::from_secs(1);
    // An unreadable record cannot be run or canceled: it can always be deleted.
    let unreadable = execution.status == ExecutionStatus::Unreadable;
    if !unreadable && (queued || !(execution.status.is_final() || sync_over)) {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            format!("execution {id} is {}: cancel it before deleting it", execution.status.as_str()),
        )
        .with_execution(&id, execution.status));
    }
    admin.store.delete_executions(&[id]).await.map_err(internal)?.map_err(store_failed)?;
    Ok(StatusCode::NO_CONTENT)
}

/// One execution as the API shows it: secrets masked.
async fn execution(admin: &Admin, id: &str) -> Result<Execution, ApiError> {
    Ok(masked(admin, stored(admin, id).await?))
}

/// One execution as stored (what a rerun or a cancel works on).
async fn stored(admin: &Admin, id: &str) -> Result<Execution, ApiError> {
    admin.store.settle().await;
    admin
        .store
        .execution(id)
        .await
        .map_err(store_failed)?
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, format!("no execution {id:?}")))
}

fn masked(admin: &Admin, mut execution: Execution) -> Execution {
    admin.host.secrets().mask_execution(&mut execution);
    execution
}
