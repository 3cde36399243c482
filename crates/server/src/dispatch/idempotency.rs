//! Idempotency keys: a request carrying a key its workflow remembers is answered as the first
//! request with that key was; while the first is being processed, the key is held (a claim), so
//! two requests with one key never both run.

use std::collections::HashMap;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use hookflow_store::{IdempotencyEntry, IdempotencyKey, IdempotencyRecord};
use hookflow_workflow::timestamp::Timestamp;

use super::{Dispatcher, Outcome, Refusal};
use crate::catalog::Deployed;

/// How long a repeat of an async idempotency key waits for its first request to be queued.
const CLAIM_WAIT: Duration = Duration::from_secs(5);

/// Idempotency keys (workflow, key) held by their first request, each with the notification
/// its release sends to repeats waiting on it.
pub(super) type Claims = HashMap<(String, String), Arc<tokio::sync::Notify>>;

/// An idempotency key held while its request is processed; released when dropped.
pub(super) struct Claim {
    claims: Arc<StdMutex<Claims>>,
    pub(super) workflow: String,
    pub(super) key: String,
    ttl: u64,
}

impl Claim {
    /// What the key will point at once the request is answered.
    pub(super) fn record(&self, execution_id: &str, now: Timestamp) -> IdempotencyRecord {
        let expires_at = now.plus(Duration::from_secs(self.ttl));
        IdempotencyRecord { execution_id: execution_id.to_string(), expires_at, pending: false }
    }

    /// The key itself.
    pub(super) fn key(&self) -> IdempotencyKey<'_> {
        IdempotencyKey { workflow: &self.workflow, key: &self.key }
    }

    /// The key and `record`, to store.
    pub(super) fn entry<'a>(&'a self, record: &'a IdempotencyRecord) -> IdempotencyEntry<'a> {
        IdempotencyEntry { key: self.key(), record }
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        let mut claims = self.claims.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(released) = claims.remove(&(std::mem::take(&mut self.workflow), std::mem::take(&mut self.key))) {
            released.notify_waiters();
        }
    }
}

impl Dispatcher {
    /// Takes an idempotency key for this request, or answers as the first request did. A repeat
    /// of an async key still held by its first request waits (at most [`CLAIM_WAIT`]) for the
    /// first to be queued and answers like it; a sync one is told the first is running.
    pub(super) async fn claim(&self, deployed: &Deployed, key: String) -> Result<Claim, Outcome> {
        let held_by_first = (deployed.key.clone(), key);
        let in_progress = |key: &str| Outcome::Refused(Refusal::InProgress { key: key.to_string() });
        loop {
            if let Some(answer) = self.first_answer(deployed, &held_by_first.1).await? {
                return Err(answer);
            }
            let notify;
            let released;
            {
                let mut claims = self.claims.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                match claims.get(&held_by_first) {
                    None => {
                        claims.insert(held_by_first.clone(), Arc::default());
                        break;
                    }
                    Some(held) if !deployed.workflow().sync => {
                        notify = held.clone();
                        // Registered while the lock is held, so the release cannot slip by.
                        released = notify.notified();
                    }
                    Some(_) => return Err(in_progress(&held_by_first.1)),
                }
            }
            if tokio::time::timeout(CLAIM_WAIT, released).await.is_err() {
                return Err(in_progress(&held_by_first.1));
            }
        }
        let (workflow, key) = held_by_first;
        let ttl = deployed.workflow().trigger.idempotency.as_ref().map_or(0, |spec| spec.ttl_seconds);
        let claim = Claim { claims: self.claims.clone(), workflow, key, ttl };
        // The first request may have stored its answer and let go of the key between the look
        // above and the claim: look again now that the key is held.
        match self.first_answer(deployed, &claim.key).await? {
            Some(answer) => Err(answer),
            None => Ok(claim),
        }
    }

    /// The answer a repeated idempotency key gets from the store, if the key is remembered; a
    /// key held by a sync execution still running (on another node) is in progress.
    pub(super) async fn first_answer(&self, deployed: &Deployed, key: &str) -> Result<Option<Outcome>, Outcome> {
        let storage = |error| Outcome::Refused(Refusal::Storage(error));
        let Some(first) = self
            .store
            .idempotency(IdempotencyKey { workflow: &deployed.key, key }, self.clock.now())
            .await
            .map_err(storage)?
        else {
            return Ok(None);
        };
        if first.pending {
            return Err(Outcome::Refused(Refusal::InProgress { key: key.to_string() }));
        }
        let execution_id = first.execution_id;
        if !deployed.workflow().sync {
            return Ok(Some(Outcome::Answered { execution_id, reply: deployed.accept_reply.clone() }));
        }
        // The answer is stored with the key in one write; without it the execution was deleted
        // (by an operator or retention) and the key is free again.
        let reply = self.store.reply(&execution_id).await.map_err(storage)?;
        Ok(reply.map(|reply| Outcome::Answered { execution_id, reply }))
    }
}
