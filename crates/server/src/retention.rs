//! Background retention: deletes executions older than `--keep-executions-days` that are no
//! longer running (never one on the async queue), forgets expired idempotency keys and the
//! dashboard's counts older than [`activity::KEPT`]. Runs in small batches through the store's writer, so ingress
//! writes interleave with it and never wait behind a long deletion.

use std::sync::Arc;
use std::time::Duration;

use crate::activity;
use hookflow_store::{Store, StoreError};
use hookflow_workflow::Clock;
use hookflow_workflow::timestamp::Timestamp;

/// Most records deleted in one commit.
const BATCH: usize = 500;

/// What retention keeps and how often it looks.
#[derive(Debug, Clone)]
pub struct RetentionConfig {
    /// How long finished executions are kept after they were created; `None` keeps them forever.
    pub keep_executions: Option<Duration>,
    /// Time between two sweeps (the first runs at start).
    pub interval: Duration,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig { keep_executions: None, interval: Duration::from_secs(60) }
    }
}

/// What one sweep deleted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    /// Finished executions past the retention period.
    pub executions: usize,
    /// Expired idempotency keys.
    pub idempotency_keys: usize,
}

/// Sweeps every `interval` until the task is aborted.
pub async fn run(store: Store, config: RetentionConfig, clock: Arc<dyn Clock>) {
    loop {
        match sweep(&store, config.keep_executions, clock.now()).await {
            Ok(swept) if swept != Swept::default() => tracing::info!(
                executions = swept.executions,
                idempotency_keys = swept.idempotency_keys,
                "retention: deleted expired records"
            ),
            Ok(_) => {}
            Err(error) => tracing::error!("retention sweep failed: {error}"),
        }
        tokio::time::sleep(config.interval).await;
    }
}

/// One sweep at `now`: deletes what has expired, batch by batch.
pub async fn sweep(store: &Store, keep_executions: Option<Duration>, now: Timestamp) -> Result<Swept, StoreError> {
    let mut swept = Swept::default();
    if let Some(keep) = keep_executions {
        let keep_ms = u64::try_from(keep.as_millis()).unwrap_or(u64::MAX);
        let cutoff = Timestamp(now.0.saturating_sub(keep_ms));
        let mut after: Option<String> = None;
        loop {
            let ids = store.settled_before(cutoff, after.as_deref(), BATCH).await?;
            let Some(last) = ids.last().cloned() else { break };
            store.delete_executions(&ids).await.map_err(|_| StoreError::Closed)??;
            swept.executions += ids.len();
            after = Some(last);
        }
    }
    let mut after: Option<(String, String)> = None;
    loop {
        let from = after.as_ref().map(|(workflow, key)| (workflow.as_str(), key.as_str()));
        let keys = store.expired_idempotency_keys(now, from, BATCH).await?;
        let Some(last) = keys.last().cloned() else { break };
        store.delete_idempotency_keys(&keys).await.map_err(|_| StoreError::Closed)??;
        swept.idempotency_keys += keys.len();
        after = Some(last);
    }
    // The dashboard's counts of minutes long past.
    let kept_ms = u64::try_from(activity::KEPT.as_millis()).unwrap_or(u64::MAX);
    let oldest_kept = activity::minute_of(Timestamp(now.0.saturating_sub(kept_ms)));
    store.delete_activity_before(oldest_kept).await.map_err(|_| StoreError::Closed)??;
    Ok(swept)
}
