//! What the console's dashboard charts: per workflow and minute, the trigger requests answered
//! and refused, the executions ended by status and their durations. Each process counts in
//! memory and writes its recent minutes to the store every [`FLUSH_INTERVAL`] (and before a
//! dashboard read, and at shutdown), under a writer id of its own, so the processes of a cluster —
//! and a restarted one — never overwrite each other's counts; a read sums them. Minutes older
//! than [`KEPT`] are forgotten by the retention sweep.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hookflow_store::{Activity, Store};
use hookflow_workflow::timestamp::Timestamp;
use hookflow_workflow::{Clock, Execution};

/// The workflow key the counts of every workflow together go under.
pub const ALL: &str = "*";

/// How often a process writes its counts.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(5);

/// How long counted minutes are kept.
pub const KEPT: Duration = Duration::from_secs(48 * 3600);

/// How many minutes a count stays in memory after its minute has passed (a late execution's end
/// may still land in it).
const HOT_MINUTES: u64 = 2;

/// The minute (since the epoch) of an instant.
pub fn minute_of(time: Timestamp) -> u64 {
    time.0 / 60_000
}

/// This process's counts of the recent minutes.
pub struct ActivityCounter {
    /// Who this process is among the store's writers (a fresh ULID per start).
    writer: String,
    clock: Arc<dyn Clock>,
    /// (minute, workflow) → the count so far, and whether it changed since it was written.
    minutes: Mutex<BTreeMap<(u64, String), (Activity, bool)>>,
}

impl ActivityCounter {
    /// A counter going by `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> ActivityCounter {
        ActivityCounter { writer: ulid::Ulid::new().to_string(), clock, minutes: Mutex::default() }
    }

    /// A trigger request to `workflow` was answered; `refused` when it was a refusal.
    pub fn request(&self, workflow: &str, refused: bool) {
        self.count(workflow, self.clock.now(), |activity| {
            activity.requests += 1;
            activity.refusals += u64::from(refused);
        });
    }

    /// An execution ended (counted in the minute it ended).
    pub fn finished(&self, execution: &Execution) {
        let ended = execution.finished_at.unwrap_or_else(|| self.clock.now());
        let took = ended.0.saturating_sub(execution.created_at.0);
        self.count(&execution.workflow, ended, |activity| activity.execution(execution.status.as_str(), took));
    }

    fn count(&self, workflow: &str, time: Timestamp, add: impl Fn(&mut Activity)) {
        let minute = minute_of(time);
        let mut minutes = self.minutes.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        for key in [workflow, ALL] {
            let (activity, changed) = minutes.entry((minute, key.to_string())).or_default();
            add(activity);
            *changed = true;
        }
    }

    /// Writes the counts that changed since they were last written, and forgets minutes long
    /// past; returns once the store has them.
    pub async fn flush(&self, store: &Store) {
        let written: Vec<(u64, String, Activity)> = {
            let mut minutes = self.minutes.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let changed = minutes
                .iter_mut()
                .filter(|(_, (_, changed))| *changed)
                .map(|((minute, workflow), (activity, changed))| {
                    *changed = false;
                    (*minute, workflow.clone(), activity.clone())
                })
                .collect();
            let current = minute_of(self.clock.now());
            minutes.retain(|(minute, _), (_, changed)| *changed || minute + HOT_MINUTES > current);
            changed
        };
        let commits: Vec<_> = written
            .iter()
            .map(|(minute, workflow, activity)| store.put_activity(workflow, *minute, &self.writer, activity))
            .collect();
        for commit in commits {
            match commit.await {
                Ok(Ok(_)) => {}
                Ok(Err(error)) => tracing::debug!("activity counts not written: {error}"),
                Err(_) => tracing::debug!("activity counts not written: the store closed"),
            }
        }
    }
}

/// Writes `counter`'s counts every [`FLUSH_INTERVAL`], until the task is aborted.
pub async fn flush_every(counter: Arc<ActivityCounter>, store: Store) {
    loop {
        tokio::time::sleep(FLUSH_INTERVAL).await;
        counter.flush(&store).await;
    }
}
