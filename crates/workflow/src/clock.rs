//! Where the executor reads the time: [`SystemClock`] in the engine, a [`ManualClock`] that
//! moves only when told in tests (so a delay is tested by advancing it, not by sleeping).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::timestamp::Timestamp;

/// A source of the current time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Wall-clock time: job records, `$system.now`, when a delay ends.
    fn now(&self) -> Timestamp;

    /// Monotonic time: the deadlines node calls get.
    fn instant(&self) -> Instant;
}

/// The system's clocks.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }

    fn instant(&self) -> Instant {
        Instant::now()
    }
}

/// A clock standing still at a given time until [`ManualClock::advance`] moves it.
#[derive(Debug)]
pub struct ManualClock {
    /// Wall-clock time and monotonic time, moved together.
    time: Mutex<(Timestamp, Instant)>,
}

impl ManualClock {
    /// A clock showing `now`.
    pub fn at(now: Timestamp) -> ManualClock {
        ManualClock { time: Mutex::new((now, Instant::now())) }
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let mut time = self.time.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        *time = (time.0.plus(by), time.1 + by);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        self.time.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).0
    }

    fn instant(&self) -> Instant {
        self.time.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).1
    }
}
