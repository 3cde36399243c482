//! `options.rateLimit`: a token bucket per deployed workflow (governor's GCRA: a token bucket
//! kept as arrival times, with no refill task), which the trigger checks before it reads a body.
//! Each process keeps its own buckets: in a cluster every node allows the workflow's rate.

use std::fmt;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota};

use hookflow_workflow::{RateLimit, parse_duration};

/// One workflow's bucket.
pub struct RateLimiter {
    limiter: DefaultDirectRateLimiter,
    clock: DefaultClock,
    /// What the limit is, for the refusal's message.
    described: String,
}

impl RateLimiter {
    /// The bucket `limit` describes: `burst` tokens (default `requests`) refilled at `requests`
    /// per `per`; `None` when the limit does not parse (validation refuses such a definition).
    pub fn new(limit: &RateLimit) -> Option<RateLimiter> {
        let requests = NonZeroU32::new(limit.requests)?;
        let burst = NonZeroU32::new(limit.burst.unwrap_or(limit.requests))?;
        let per = parse_duration(&limit.per)?;
        let period = (per / requests.get()).max(Duration::from_nanos(1));
        let quota = Quota::with_period(period)?.allow_burst(burst);
        let clock = DefaultClock::default();
        Some(RateLimiter {
            limiter: DefaultDirectRateLimiter::direct_with_clock(quota, clock.clone()),
            clock,
            described: format!("{} requests per {} (burst {burst})", limit.requests, limit.per.trim()),
        })
    }

    /// Takes a token; `Err(wait)` until the next one when the bucket is empty.
    pub fn check(&self) -> Result<(), Duration> {
        self.limiter.check().map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    /// The limit, as a refusal names it: `10 requests per 1s (burst 20)`.
    pub fn described(&self) -> &str {
        &self.described
    }
}

impl fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimiter").field("limit", &self.described).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_requests_wait_for_the_refill() {
        let limit = RateLimit { requests: 10, per: "1s".into(), burst: Some(3) };
        let limiter = RateLimiter::new(&limit).unwrap();
        for _ in 0..3 {
            assert!(limiter.check().is_ok());
        }
        let wait = limiter.check().unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_millis(100), "{wait:?}");
        assert_eq!(limiter.described(), "10 requests per 1s (burst 3)");
        std::thread::sleep(Duration::from_millis(120));
        assert!(limiter.check().is_ok(), "a token every 100 ms");
    }
}
