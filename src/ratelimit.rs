//! Keyed rate limits (GCRA, via governor) shared by every anonymous or unauthenticated door:
//! the web-vitals beacon, logins, stream-URL issuance.

use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// The key an address is limited under: IPv4 as is, IPv6 by its /64 (one host usually holds
/// a whole /64, so per-/128 keys would give it 2^64 budgets).
pub fn ip_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
    }
}

/// `per_min` events per key per minute, bursting up to `per_min`.
#[derive(Debug)]
pub struct KeyedLimiter<K: Hash + Eq + Clone> {
    limiter: DefaultKeyedRateLimiter<K>,
    clock: DefaultClock,
}

impl<K: Hash + Eq + Clone> KeyedLimiter<K> {
    /// A limiter admitting `per_min` events per key per minute (at least one).
    pub fn per_minute(per_min: u32) -> Self {
        let per_min = NonZeroU32::new(per_min).unwrap_or(NonZeroU32::MIN);
        KeyedLimiter {
            limiter: RateLimiter::keyed(Quota::per_minute(per_min)),
            clock: DefaultClock::default(),
        }
    }

    /// Takes one event for `key`: `Ok`, or the whole seconds to wait (at least 1).
    pub fn check(&self, key: &K) -> Result<(), u64> {
        self.limiter.check_key(key).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            // Round up: a client retrying after `retry-after` seconds must succeed.
            (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
        })
    }

    /// Forgets keys whose budget is full again, so the table does not grow without bound.
    pub fn sweep(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_after_the_budget_and_keys_are_independent() {
        let l = KeyedLimiter::per_minute(3);
        for _ in 0..3 {
            l.check(&"a").unwrap();
        }
        let wait = l.check(&"a").unwrap_err();
        assert!((1..=60).contains(&wait), "{wait}");
        l.check(&"b").unwrap();
    }
}
