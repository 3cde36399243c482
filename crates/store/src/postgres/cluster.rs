//! Membership of a cluster: each node holds a lease in `hookflow.nodes`, renewed every third of
//! its length on the database's clock; a node that finds its lease gone (another node reaped
//! it) or cannot renew it for a whole lease stops claiming as that identity and joins again
//! under a new one — what it held is released and counted as taken over. Any node reaps the
//! nodes whose lease expired, once it has itself been connected for a whole lease (after an
//! outage of the database, the others get that long to renew first).
//!
//! And the listener: a connection of its own that `LISTEN`s on the store's channels and turns
//! notifications into [`StoreEvent`]s; after each (re)connect it says [`StoreEvent::Resync`],
//! since notifications sent meanwhile are lost.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tokio_postgres::AsyncMessage;

use super::connect::Target;
use super::sql::{CANCEL_CHANNEL, CATALOG_CHANNEL, NOTIFY, PLUGINS_CHANNEL, QUEUE_CHANNEL};
use super::{Pool, column, read_failed, write_failed};
use crate::{Owner, StoreError, StoreEvent};

const JOIN: &str = "INSERT INTO hookflow.nodes (address, expires_at) \
     VALUES ($1, now() + $2::bigint * interval '1 millisecond') RETURNING id";
const RENEW: &str = "UPDATE hookflow.nodes SET renewed_at = now(), expires_at = now() + $2::bigint * interval '1 millisecond' \
     WHERE id = $1 AND expires_at > now()";
const REAP: &str = "WITH dead AS (DELETE FROM hookflow.nodes WHERE expires_at < now() RETURNING id), \
     freed AS (UPDATE hookflow.queue SET owner = NULL, takeovers = takeovers + 1 \
         WHERE owner IN (SELECT id FROM dead) OR (owner IS NOT NULL AND owner NOT IN (SELECT id FROM hookflow.nodes)) \
         RETURNING id) \
     SELECT (SELECT count(*) FROM dead), (SELECT count(*) FROM freed)";
const RELEASE_TAKEN: &str = "UPDATE hookflow.queue SET owner = NULL, takeovers = takeovers + 1 WHERE owner = $1";
const RELEASE: &str = "UPDATE hookflow.queue SET owner = NULL WHERE owner = $1";
const FORGET: &str = "DELETE FROM hookflow.nodes WHERE id = $1";

/// This node's place in the cluster.
pub(crate) struct Membership {
    pool: Pool,
    lease: Duration,
    events: broadcast::Sender<StoreEvent>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Where this node serves (what `join` was given).
    address: String,
    /// Its current identity; `None` before it joins and while it joins again.
    owner: Option<Owner>,
    /// The identity it lost, released when it joins again.
    lost: Option<Owner>,
    /// The task renewing the lease.
    renewing: Option<JoinHandle<()>>,
}

impl Membership {
    pub(crate) fn new(pool: Pool, lease: Duration, events: broadcast::Sender<StoreEvent>) -> Membership {
        Membership { pool, lease, events, state: Mutex::default() }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The identity this node claims as now.
    pub(crate) fn owner(&self) -> Option<Owner> {
        self.state().owner
    }

    fn lease_ms(&self) -> i64 {
        i64::try_from(self.lease.as_millis()).unwrap_or(i64::MAX)
    }

    /// Joins as a new node serving at `address` and keeps the lease renewed.
    pub(crate) async fn join(self: &Arc<Self>, address: &str) -> Result<Owner, StoreError> {
        let owner = self.register(address, None).await?;
        let mut state = self.state();
        state.address = address.to_string();
        state.owner = Some(owner);
        if let Some(previous) = state.renewing.replace(tokio::spawn(renew(Arc::downgrade(self)))) {
            previous.abort();
        }
        tracing::info!(node = owner.0, "joined the cluster, lease {:?}", self.lease);
        Ok(owner)
    }

    /// Leaves: stops renewing, releases every claim of this node (they are not counted as taken
    /// over: nothing crashed) and forgets it.
    pub(crate) async fn leave(&self) -> Result<(), StoreError> {
        let owner = {
            let mut state = self.state();
            if let Some(renewing) = state.renewing.take() {
                renewing.abort();
            }
            state.owner.take()
        };
        let Some(owner) = owner else { return Ok(()) };
        let mut client = self.pool.get().await.map_err(write_failed)?;
        let txn = client.transaction().await.map_err(write_failed)?;
        txn.execute(RELEASE, &[&owner.0]).await.map_err(write_failed)?;
        txn.execute(FORGET, &[&owner.0]).await.map_err(write_failed)?;
        txn.execute(NOTIFY, &[&QUEUE_CHANNEL, &""]).await.map_err(write_failed)?;
        txn.commit().await.map_err(write_failed)?;
        tracing::info!(node = owner.0, "left the cluster; its claims are released");
        Ok(())
    }

    /// A new identity in `nodes`; when it replaces `previous`, that one's claims are released
    /// (counted as taken over) and it is forgotten, in the same transaction.
    async fn register(&self, address: &str, previous: Option<Owner>) -> Result<Owner, StoreError> {
        let mut client = self.pool.get().await.map_err(write_failed)?;
        let txn = client.transaction().await.map_err(write_failed)?;
        if let Some(previous) = previous {
            let released = txn.execute(RELEASE_TAKEN, &[&previous.0]).await.map_err(write_failed)?;
            txn.execute(FORGET, &[&previous.0]).await.map_err(write_failed)?;
            if released > 0 {
                txn.execute(NOTIFY, &[&QUEUE_CHANNEL, &""]).await.map_err(write_failed)?;
            }
        }
        let row = txn.query_one(JOIN, &[&address, &self.lease_ms()]).await.map_err(write_failed)?;
        txn.commit().await.map_err(write_failed)?;
        Ok(Owner(column(&row, 0)?))
    }

    /// Whether the lease of `owner` was renewed (`false`: it expired, or another node reaped it:
    /// an expired lease is never renewed, so a node frozen past it always starts over).
    async fn renew_once(&self, owner: Owner) -> Result<bool, StoreError> {
        let client = self.pool.get().await.map_err(write_failed)?;
        let renewed = client.execute(RENEW, &[&owner.0, &self.lease_ms()]).await.map_err(write_failed)?;
        Ok(renewed == 1)
    }

    /// Releases the claims of nodes whose lease expired, for others to take over.
    async fn reap(&self) -> Result<(), StoreError> {
        let client = self.pool.get().await.map_err(write_failed)?;
        let row = client.query_one(REAP, &[]).await.map_err(read_failed)?;
        let (dead, freed): (i64, i64) = (column(&row, 0)?, column(&row, 1)?);
        if dead > 0 || freed > 0 {
            tracing::warn!("reaped {dead} nodes whose lease expired; {freed} executions released to be taken over");
        }
        if freed > 0 {
            client.execute(NOTIFY, &[&QUEUE_CHANNEL, &""]).await.map_err(write_failed)?;
            let _ = self.events.send(StoreEvent::QueueReady);
        }
        Ok(())
    }
}

/// Renews the lease of a membership until it is dropped; joins again after losing it.
async fn renew(membership: std::sync::Weak<Membership>) {
    let Some(lease) = membership.upgrade().map(|membership| membership.lease) else { return };
    let period = lease / 3;
    let mut renewed = Instant::now();
    let mut connected_since = Some(Instant::now());
    loop {
        tokio::time::sleep(period).await;
        let Some(membership) = membership.upgrade() else { return };
        let Some(owner) = membership.owner() else {
            // Lost: join again under a new identity, releasing what the old one held.
            let (address, lost) = {
                let state = membership.state();
                (state.address.clone(), state.lost)
            };
            match membership.register(&address, lost).await {
                Ok(owner) => {
                    {
                        let mut state = membership.state();
                        state.owner = Some(owner);
                        state.lost = None;
                    }
                    renewed = Instant::now();
                    connected_since = Some(renewed);
                    tracing::warn!(node = owner.0, "joined the cluster again under a new identity");
                    let _ = membership.events.send(StoreEvent::Resync);
                }
                Err(error) => tracing::warn!("cannot join the cluster again yet: {error}"),
            }
            continue;
        };
        match membership.renew_once(owner).await {
            Ok(true) => {
                renewed = Instant::now();
                let since = *connected_since.get_or_insert(renewed);
                if since.elapsed() >= lease
                    && let Err(error) = membership.reap().await
                {
                    tracing::warn!("reaping expired nodes failed: {error}");
                }
            }
            Ok(false) => membership.lose(owner, "it expired, or another node reaped it"),
            Err(error) => {
                connected_since = None;
                if renewed.elapsed() > lease {
                    membership.lose(owner, &format!("it could not be renewed for longer than the lease ({error})"));
                } else {
                    tracing::warn!("cannot renew the lease: {error}");
                }
            }
        }
    }
}

impl Membership {
    /// This node's lease is lost: it claims nothing more as `owner`; what it runs stops before
    /// its next node (and its writes are refused once another node took its claims).
    fn lose(&self, owner: Owner, why: &str) {
        let mut state = self.state();
        state.owner = None;
        state.lost = Some(owner);
        tracing::error!(node = owner.0, "lost the cluster lease: {why}; stopping its work and joining again");
    }
}

/// Listens for the store's notifications, reconnecting as needed, until the task is aborted.
pub(crate) async fn listen(target: Target, events: broadcast::Sender<StoreEvent>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        match target.config.connect(target.tls.clone()).await {
            Ok((client, mut connection)) => {
                backoff = Duration::from_millis(100);
                let (heard, mut notifications) = tokio::sync::mpsc::unbounded_channel();
                let driver = tokio::spawn(async move {
                    let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
                    while let Some(Ok(message)) = messages.next().await {
                        if let AsyncMessage::Notification(notification) = message {
                            let _ = heard.send(notification);
                        }
                    }
                });
                let channels = [QUEUE_CHANNEL, CATALOG_CHANNEL, PLUGINS_CHANNEL, CANCEL_CHANNEL];
                let listening: String = channels.iter().map(|channel| format!("LISTEN {channel};")).collect();
                match client.batch_execute(&listening).await {
                    Ok(()) => {
                        // Notifications sent while it was not listening are lost.
                        let _ = events.send(StoreEvent::Resync);
                        while let Some(notification) = notifications.recv().await {
                            let event = match notification.channel() {
                                QUEUE_CHANNEL => StoreEvent::QueueReady,
                                CATALOG_CHANNEL => StoreEvent::WorkflowChanged(notification.payload().to_string()),
                                PLUGINS_CHANNEL => StoreEvent::PluginChanged(notification.payload().to_string()),
                                CANCEL_CHANNEL => StoreEvent::CancelRequested(notification.payload().to_string()),
                                _ => continue,
                            };
                            let _ = events.send(event);
                        }
                    }
                    Err(error) => tracing::warn!("cannot listen for the store's notifications: {error}"),
                }
                driver.abort();
                tracing::warn!("the store's notification connection ended; reconnecting");
            }
            Err(error) => tracing::debug!("cannot connect to listen for notifications: {error}"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(crate::RECOVERY_INTERVAL);
    }
}
