//! `/api/stats`: the dashboard's series — a workflow's (or every workflow's) requests, refusals,
//! executions by status and p50/p99 duration, over the last hour or day, summed over the
//! processes of a cluster.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::Deserialize;

use super::openapi::ErrorBody;
use super::views::{ActivityPoint, ActivityView};
use super::{Admin, ApiQuery, store_failed};
use crate::activity::{ALL, minute_of};
use crate::http::api_error::ApiError;
use hookflow_store::Activity;
use hookflow_workflow::timestamp::Timestamp;

/// Which series.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct ActivityQuery {
    /// Only this workflow's activity (default: every workflow's).
    workflow: Option<String>,
    /// `hour` (default: 60 points of a minute) or `day` (96 points of 15 minutes).
    range: Option<ActivityRange>,
}

/// How far back the series reaches.
#[derive(Debug, Clone, Copy, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub(super) enum ActivityRange {
    /// The last hour, a point a minute.
    #[default]
    Hour,
    /// The last day, a point every 15 minutes.
    Day,
}

/// The activity of a workflow, or of every workflow, over the last hour or day.
#[utoipa::path(get, operation_id = "showActivity", path = "/api/stats", tag = "workflows", params(ActivityQuery),
    security(("admin_token" = [])),
    responses((status = 200, description = "The series, oldest point first", body = ActivityView),
        (status = 422, description = "An unknown range", body = ErrorBody)))]
pub(super) async fn show(
    State(admin): State<Arc<Admin>>,
    ApiQuery(query): ApiQuery<ActivityQuery>,
) -> Result<Json<ActivityView>, ApiError> {
    let range = query.range.unwrap_or_default();
    let (points, step_minutes, name) = match range {
        ActivityRange::Hour => (60u64, 1u64, "hour"),
        ActivityRange::Day => (96, 15, "day"),
    };
    // This process's latest counts first, so what just happened is in the answer.
    admin.dispatcher.activity().flush(&admin.store).await;
    let now = minute_of(admin.dispatcher.clock().now());
    let end = (now / step_minutes + 1) * step_minutes;
    let start = end.saturating_sub(points * step_minutes);
    let workflow = query.workflow.as_deref().unwrap_or(ALL);
    let minutes = admin.store.activity(workflow, start, end).await.map_err(store_failed)?;
    let mut steps: Vec<Activity> = vec![Activity::default(); usize::try_from(points).unwrap_or(0)];
    for (minute, activity) in &minutes {
        let step = usize::try_from((minute - start) / step_minutes).unwrap_or(usize::MAX);
        if let Some(slot) = steps.get_mut(step) {
            slot.add(activity);
        }
    }
    let points = steps
        .into_iter()
        .zip(0u64..)
        .map(|(activity, index)| ActivityPoint {
            time: Timestamp((start + index * step_minutes) * 60_000),
            requests: activity.requests,
            refusals: activity.refusals,
            p50_ms: activity.duration_quantile(0.5),
            p99_ms: activity.duration_quantile(0.99),
            executions: activity.executions,
        })
        .collect();
    Ok(Json(ActivityView {
        workflow: query.workflow,
        range: name.to_string(),
        step_seconds: step_minutes * 60,
        points,
    }))
}
