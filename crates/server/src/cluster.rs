//! What one node keeps the same as the others: the uploaded components and the workflows the
//! shared store holds. Uploaded components are installed from the store at start (on any store);
//! in a cluster a node then follows the store's notices of changes — a workflow or a component
//! changed by another node — and looks at everything again after a reconnect and every
//! [`RESYNC`], since a notice can be missed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::broadcast;

use crate::catalog::Catalog;
use hookflow_plugin::PluginHost;
use hookflow_store::{Store, StoreError, StoreEvent};

/// How often a node compares its catalog and components with the store's.
pub const RESYNC: Duration = Duration::from_secs(2);

/// The uploaded components installed from the store, by name, with the digest installed: a
/// component replaced on this node by another means (`--plugins`) is left alone.
#[derive(Debug, Default)]
pub struct Installed(Mutex<HashMap<String, String>>);

impl Installed {
    fn get(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Installs what the store holds and this node lacks (or has in an older version), and
/// uninstalls what was installed from the store and is gone from it. A component that does not
/// load is logged and left out.
pub async fn sync_plugins(store: &Store, host: &Arc<PluginHost>, installed: &Installed) -> Result<(), StoreError> {
    let stored = store.plugins().await?;
    for plugin in &stored {
        let local = host.plugin(&plugin.name);
        let ours = installed.get().get(&plugin.name).cloned();
        let current = local.as_ref().is_some_and(|local| local.digest == plugin.digest);
        // Replaced here by another means since we installed it from the store: leave it.
        let replaced = local.as_ref().is_some_and(|local| ours.as_ref().is_some_and(|ours| *ours != local.digest));
        if current {
            installed.get().insert(plugin.name.clone(), plugin.digest.clone());
            continue;
        }
        if replaced || local.as_ref().is_some_and(|local| local.builtin) {
            continue;
        }
        let Some(component) = store.plugin(&plugin.name).await? else { continue };
        let (host, name) = (host.clone(), plugin.name.clone());
        let loaded = tokio::task::spawn_blocking(move || host.install(&name, &component)).await;
        match loaded {
            Ok(Ok(loaded)) => {
                tracing::info!(plugin = %loaded.name, digest = %loaded.digest, "installed uploaded custom node");
                installed.get().insert(loaded.name.clone(), loaded.digest.clone());
            }
            Ok(Err(error)) => tracing::error!(plugin = %plugin.name, "uploaded custom node left out: {error}"),
            Err(error) => {
                tracing::error!(plugin = %plugin.name, "installing an uploaded custom node panicked: {error}")
            }
        }
    }
    let gone: Vec<String> =
        installed.get().keys().filter(|name| !stored.iter().any(|plugin| &plugin.name == *name)).cloned().collect();
    for name in gone {
        let ours = installed.get().remove(&name);
        if host.plugin(&name).is_some_and(|local| Some(&local.digest) == ours.as_ref()) {
            host.uninstall(&name);
            tracing::info!(plugin = %name, "uninstalled a custom node deleted on another node");
        }
    }
    Ok(())
}

/// Follows the store's notices until the task is aborted.
pub async fn follow(
    store: Store,
    catalog: Arc<Catalog>,
    host: Arc<PluginHost>,
    installed: Arc<Installed>,
    mut events: broadcast::Receiver<StoreEvent>,
) {
    let mut resync = tokio::time::interval(RESYNC);
    loop {
        let everything = tokio::select! {
            event = events.recv() => match event {
                Ok(StoreEvent::WorkflowChanged(key)) => {
                    if let Err(error) = catalog.sync(&key).await {
                        tracing::warn!(workflow = %key, "cannot take up a workflow's change: {error}");
                    }
                    false
                }
                // A component changed: workflows that could not compile without it may now.
                Ok(StoreEvent::PluginChanged(_) | StoreEvent::Resync) | Err(broadcast::error::RecvError::Lagged(_)) => true,
                Ok(StoreEvent::QueueReady | StoreEvent::CancelRequested(_)) => false,
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = resync.tick() => true,
        };
        if everything {
            let synced = match sync_plugins(&store, &host, &installed).await {
                Ok(()) => catalog.resync().await,
                Err(error) => Err(error),
            };
            if let Err(error) = synced {
                tracing::debug!("cannot compare with the store: {error}");
            }
        }
    }
}
