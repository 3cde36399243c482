//! Hot reload: watches `--workflows DIR` and `--plugins DIR` (by polling modification times) and
//! applies what changed without a restart. A file that does not load is reported and the
//! previous version keeps serving.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::catalog::Catalog;
use hookflow_plugin::PluginHost;

/// How often the directories are looked at.
pub const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// What is watched.
pub struct Watched {
    /// Workflow definitions (`*.json`).
    pub workflows_dir: Option<PathBuf>,
    /// Node components (`<type>.wasm`).
    pub plugins_dir: Option<PathBuf>,
}

/// Polls the directories until the task is aborted.
pub async fn watch(watched: Watched, catalog: Arc<Catalog>, host: Arc<PluginHost>) {
    let mut workflows = snapshot(watched.workflows_dir.as_deref(), "json");
    let mut plugins = snapshot(watched.plugins_dir.as_deref(), "wasm");
    loop {
        tokio::time::sleep(POLL_INTERVAL).await;
        let now = snapshot(watched.plugins_dir.as_deref(), "wasm");
        for path in changed(&plugins, &now) {
            let name = path.file_stem().map(|stem| stem.to_string_lossy().into_owned()).unwrap_or_default();
            let host = host.clone();
            let installed = tokio::task::spawn_blocking(move || {
                std::fs::read(&path)
                    .map_err(|e| e.to_string())
                    .and_then(|wasm| host.install(&name, &wasm).map_err(|e| e.to_string()))
            })
            .await;
            match installed {
                Ok(Ok(plugin)) => {
                    tracing::info!(plugin = %plugin.name, digest = %plugin.digest, "reloaded custom node")
                }
                Ok(Err(error)) => tracing::error!("plugin not reloaded, the previous version keeps serving: {error}"),
                Err(error) => tracing::error!("plugin reload panicked: {error}"),
            }
        }
        plugins = now;

        let now = snapshot(watched.workflows_dir.as_deref(), "json");
        for path in changed(&workflows, &now) {
            let source = path.display().to_string();
            let deployed = match std::fs::read_to_string(&path) {
                Ok(json) => catalog.deploy_source(&source, &json).await.map_err(|e| e.to_string()),
                Err(error) => Err(error.to_string()),
            };
            match deployed {
                Ok(deployed) => {
                    tracing::info!(workflow = %deployed.key, version = deployed.version, "reloaded {source}")
                }
                Err(error) => tracing::error!("refused {source}, the previous version keeps serving: {error}"),
            }
        }
        workflows = now;
    }
}

/// Modification time and size of every `*.<extension>` file in `dir`.
fn snapshot(dir: Option<&Path>, extension: &str) -> HashMap<PathBuf, (SystemTime, u64)> {
    let Some(entries) = dir.and_then(|dir| std::fs::read_dir(dir).ok()) else {
        return HashMap::new();
    };
    entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == extension))
        .filter_map(|path| {
            let metadata = std::fs::metadata(&path).ok()?;
            Some((path, (metadata.modified().ok()?, metadata.len())))
        })
        .collect()
}

/// Files that are new or changed in `now`, sorted.
fn changed(before: &HashMap<PathBuf, (SystemTime, u64)>, now: &HashMap<PathBuf, (SystemTime, u64)>) -> Vec<PathBuf> {
    let mut changed: Vec<PathBuf> =
        now.iter().filter(|(path, stamp)| before.get(*path) != Some(stamp)).map(|(path, _)| path.clone()).collect();
    changed.sort();
    changed
}
