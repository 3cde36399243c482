//! `/api/cluster`: the nodes sharing this store, with the executions each holds now (one node,
//! this process, for an embedded store).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;

use super::views::{ClusterNodeView, Listing};
use super::{Admin, store_failed};
use crate::http::api_error::ApiError;

/// Lists the nodes of the cluster.
#[utoipa::path(get, operation_id = "listClusterNodes", path = "/api/cluster", tag = "cluster", security(("admin_token" = [])),
    responses((status = 200, description = "Every node holding a lease, oldest identity first", body = Listing<ClusterNodeView>)))]
pub(super) async fn list(State(admin): State<Arc<Admin>>) -> Result<Json<Listing<ClusterNodeView>>, ApiError> {
    let nodes = admin.store.nodes().await.map_err(store_failed)?;
    let items = nodes.into_iter().map(ClusterNodeView::from).collect();
    Ok(Json(Listing { items, next_cursor: None }))
}
