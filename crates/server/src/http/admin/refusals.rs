//! `/api/refusals`: the refusal log — trigger requests the engine refused, newest first.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::Deserialize;

use super::executions::instant;
use super::views::{Listing, RefusalView};
use super::{Admin, ApiQuery, Page, store_failed};
use crate::http::api_error::ApiError;
use hookflow_store::RefusalFilter;

/// Filters and page of the refusal log.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct RefusalQuery {
    /// Only this workflow's refusals.
    workflow: Option<String>,
    /// Only refusals with this error code (`invalid_signature`, `unauthorized`, …).
    code: Option<String>,
    /// Only refusals at or after this RFC 3339 instant.
    #[param(value_type = Option<String>, format = DateTime)]
    since: Option<String>,
    /// Most items in the page (default 50, at most 500).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<usize>,
    /// The `nextCursor` of the page before.
    cursor: Option<String>,
}

/// Lists refused trigger requests newest first, each with its reason and the workflow's
/// configured headers (secrets masked).
#[utoipa::path(get, operation_id = "listRefusals", path = "/api/refusals", tag = "refusals", params(RefusalQuery),
    security(("admin_token" = [])),
    responses((status = 200, description = "A page of refusals, newest first", body = Listing<RefusalView>),
        (status = 422, description = "A filter that does not parse", body = super::openapi::ErrorBody)))]
pub(super) async fn list(
    State(admin): State<Arc<Admin>>,
    ApiQuery(query): ApiQuery<RefusalQuery>,
) -> Result<Json<Listing<RefusalView>>, ApiError> {
    let filter = RefusalFilter {
        workflow: query.workflow.clone(),
        code: query.code.clone(),
        since: instant("since", query.since.as_deref())?,
    };
    let limit = Page { limit: query.limit, cursor: None }.limit()?;
    let mut items = admin.store.refusals(&filter, query.cursor.as_deref(), limit + 1).await.map_err(store_failed)?;
    let next_cursor = (items.len() > limit).then(|| items[limit - 1].id.clone());
    items.truncate(limit);
    Ok(Json(Listing { items: items.into_iter().map(RefusalView::from).collect(), next_cursor }))
}
