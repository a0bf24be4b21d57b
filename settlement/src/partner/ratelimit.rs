//! Rate limits per partner: one GCRA limiter (`governor`) per partner code, all its applications
//! together, with the partner's quota (calls per minute and burst, set by the operator). A quota
//! change replaces the partner's limiter. In-process: several switch processes each allow the
//! quota (the limit is per process, which the operator sets knowing the process count).

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

/// Most partners with a live limiter; past it the map is cleared (limits restart full).
pub const LIMITERS_MAX: usize = 100_000;

/// A partner's limiter with the quota it was built for (per minute, burst).
type Limiter = (u32, u32, Arc<DefaultDirectRateLimiter>);

/// The limiters of all partners.
#[derive(Debug, Default)]
pub struct PartnerLimits {
    limiters: Mutex<HashMap<String, Limiter>>,
}

impl PartnerLimits {
    /// Takes one call from `partner`'s quota (`per_minute` sustained, `burst` at once).
    /// Errors: the whole seconds to wait before a call would be allowed (at least 1).
    pub fn check(&self, partner: &str, per_minute: u32, burst: u32) -> Result<(), u64> {
        let limiter = {
            let mut limiters = self.limiters.lock().unwrap_or_else(|p| p.into_inner());
            match limiters.get(partner) {
                Some((p, b, limiter)) if *p == per_minute && *b == burst => Arc::clone(limiter),
                _ => {
                    if limiters.len() >= LIMITERS_MAX {
                        limiters.clear();
                    }
                    let quota =
                        Quota::per_minute(NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN))
                            .allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN));
                    let limiter = Arc::new(RateLimiter::direct(quota));
                    limiters.insert(
                        partner.to_owned(),
                        (per_minute, burst, Arc::clone(&limiter)),
                    );
                    limiter
                }
            }
        };
        limiter.check().map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            // Round up: a client that waits the advertised seconds is let through.
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            seconds.max(1)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refusal_with_retry_after() {
        let limits = PartnerLimits::default();
        // 60 per minute = one per second; a burst of 3.
        for _ in 0..3 {
            assert_eq!(limits.check("A", 60, 3), Ok(()));
        }
        assert_eq!(limits.check("A", 60, 3), Err(1));
        // Another partner has its own quota.
        assert_eq!(limits.check("B", 60, 3), Ok(()));
        // 1 per minute: the next call is ~60 s away.
        assert_eq!(limits.check("C", 1, 1), Ok(()));
        let wait = limits.check("C", 1, 1).unwrap_err();
        assert!((59..=60).contains(&wait), "{wait}");
    }
}
