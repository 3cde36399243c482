//! `/api/plugins`: list installed node types, upload a component, delete one.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;

use super::openapi::ErrorBody;
use super::views::{Listing, PluginView};
use super::{Admin, ApiPath, internal, store_failed};
use crate::http::api_error::{ApiError, ErrorCode};
use hookflow_plugin::LoadError;

/// Lists the installed node types, built-in and uploaded.
#[utoipa::path(get, operation_id = "listPlugins", path = "/api/plugins", tag = "plugins", security(("admin_token" = [])),
    responses((status = 200, description = "Every installed node type", body = Listing<PluginView>)))]
pub(super) async fn list(State(admin): State<Arc<Admin>>) -> Json<Listing<PluginView>> {
    let items = admin.host.plugins().iter().map(|plugin| PluginView::from(plugin.as_ref())).collect();
    Json(Listing { items, next_cursor: None })
}

/// Installs (or replaces) a node type from its component bytes: checked against the `node` world
/// and compiled before it is accepted, then kept in the data directory.
#[utoipa::path(put, operation_id = "uploadPlugin", path = "/api/plugins/{name}", tag = "plugins",
    params(("name" = String, Path, description = "The node type name workflows will use")),
    request_body(content((Vec<u8> = "application/wasm"), (Vec<u8> = "application/octet-stream")), description = "A WebAssembly component of the hookflow:node world"),
    security(("admin_token" = [])),
    responses((status = 201, description = "Installed", body = PluginView),
        (status = 200, description = "Replaced", body = PluginView),
        (status = 409, description = "The name of a built-in node", body = ErrorBody),
        (status = 422, description = "Not a component, or not of the `node` world", body = ErrorBody)))]
pub(super) async fn upload(
    State(admin): State<Arc<Admin>>,
    ApiPath(name): ApiPath<String>,
    component: Bytes,
) -> Result<(StatusCode, Json<PluginView>), ApiError> {
    let existed = admin.host.plugin(&name).is_some();
    let host = admin.host.clone();
    let (install_name, bytes) = (name.clone(), component.clone());
    let installed = tokio::task::spawn_blocking(move || host.install(&install_name, &bytes))
        .await
        .map_err(|e| internal(format!("plugin install panicked: {e}")))?;
    let plugin = installed.map_err(|error| match error {
        LoadError::BuiltinName(_) => ApiError::new(ErrorCode::Conflict, error.to_string()),
        error => ApiError::new(ErrorCode::ValidationFailed, error.to_string()),
    })?;
    // Kept in the store, so it is installed again at start (and, in a cluster, on every node).
    admin.store.put_plugin(&name, &plugin.digest, &component).await.map_err(store_failed)?;
    let status = if existed { StatusCode::OK } else { StatusCode::CREATED };
    Ok((status, Json(PluginView::from(plugin.as_ref()))))
}

/// Deletes an uploaded node type; refused for built-ins and while an enabled workflow uses it.
#[utoipa::path(delete, operation_id = "deletePlugin", path = "/api/plugins/{name}", tag = "plugins",
    params(("name" = String, Path, description = "The node type name")), security(("admin_token" = [])),
    responses((status = 204, description = "Deleted"),
        (status = 404, description = "No such plugin", body = ErrorBody),
        (status = 409, description = "A built-in, or used by an enabled workflow", body = ErrorBody)))]
pub(super) async fn delete(
    State(admin): State<Arc<Admin>>,
    ApiPath(name): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let plugin =
        admin.host.plugin(&name).ok_or_else(|| ApiError::new(ErrorCode::NotFound, format!("no plugin {name:?}")))?;
    if plugin.builtin {
        return Err(ApiError::new(ErrorCode::Conflict, format!("{name:?} is a built-in node")));
    }
    let users = admin.catalog.users_of(&name);
    if !users.is_empty() {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            format!("{name:?} is used by enabled workflows: {}", users.join(", ")),
        ));
    }
    admin.host.uninstall(&name);
    admin.store.delete_plugin(&name).await.map_err(store_failed)?;
    Ok(StatusCode::NO_CONTENT)
}
