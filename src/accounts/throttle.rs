//! What anonymous callers can make Veza spend on passwords: failed-login throttles that never
//! lock the rightful user out, and a small bounded pool for argon2 (19 MiB and ~50 ms each).

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use crate::ratelimit::ip_key;

/// Keys a failure table holds at most; past it, idle keys are swept and, if still full, the
/// new key is treated as blocked (an attacker filling the table only throttles itself).
const MAX_KEYS: usize = 100_000;

/// A leaky bucket of failures per key: each failure adds one, `rate` drain per second, and the
/// key is blocked while one more failure would take the level over `burst`.
#[derive(Debug)]
struct Failures<K: Hash + Eq> {
    burst: f64,
    rate: f64,
    table: Mutex<HashMap<K, (f64, Instant)>>,
}

impl<K: Hash + Eq + Clone> Failures<K> {
    fn new(burst: u32, per_secs: f64) -> Self {
        Failures {
            burst: f64::from(burst.max(1)),
            rate: f64::from(burst.max(1)) / per_secs,
            table: Mutex::new(HashMap::new()),
        }
    }

    fn level_at(&self, entry: &(f64, Instant), now: Instant) -> f64 {
        (entry.0 - now.duration_since(entry.1).as_secs_f64() * self.rate).max(0.0)
    }

    fn level(&self, key: &K) -> f64 {
        let now = Instant::now();
        let t = self.table.lock().unwrap_or_else(|p| p.into_inner());
        t.get(key).map_or(0.0, |e| self.level_at(e, now))
    }

    /// Whole seconds until `key` may try again (at least 1), or `None` when it may now.
    fn blocked(&self, key: &K) -> Option<u64> {
        let level = self.level(key);
        let over = level + 1.0 - self.burst;
        (over > 0.0).then(|| (over / self.rate).ceil().max(1.0) as u64)
    }

    fn fail(&self, key: &K) {
        let now = Instant::now();
        let mut t = self.table.lock().unwrap_or_else(|p| p.into_inner());
        if t.len() >= MAX_KEYS && !t.contains_key(key) {
            t.retain(|_, e| (e.0 - now.duration_since(e.1).as_secs_f64() * self.rate) > 0.0);
            if t.len() >= MAX_KEYS {
                return;
            }
        }
        let level = t.get(key).map_or(0.0, |e| self.level_at(e, now));
        t.insert(key.clone(), (level + 1.0, now));
    }

    fn clear(&self, key: &K) {
        self.table
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }

    fn full(&self) -> bool {
        self.table.lock().unwrap_or_else(|p| p.into_inner()).len() >= MAX_KEYS
    }

    fn sweep(&self) {
        let now = Instant::now();
        let mut t = self.table.lock().unwrap_or_else(|p| p.into_inner());
        t.retain(|_, e| self.level_at(e, now) > 0.0);
        t.shrink_to_fit();
    }
}

/// Failed-login throttles. Only failures count, so logging in often is never refused:
/// - per client address (IPv6 by /64): `per_min` failures a minute, any username;
/// - per (username, address): `per_min` failures, draining one a minute;
/// - per username, from everywhere: `10 × per_min` failures, draining `per_min` a minute.
///   Once spent, only addresses that have failed for this username recently are refused, so
///   the admin typing the right password from their own address gets in during a brute
///   force from elsewhere, while a distributed guesser gets one try per address per minute.
#[derive(Debug)]
pub struct LoginGuard {
    by_ip: Failures<IpAddr>,
    by_user_ip: Failures<(String, IpAddr)>,
    by_user: Failures<String>,
}

impl LoginGuard {
    /// Throttles allowing `per_min` failures per address each minute.
    pub fn new(per_min: u32) -> LoginGuard {
        LoginGuard {
            by_ip: Failures::new(per_min, 60.0),
            by_user_ip: Failures::new(per_min, 60.0 * f64::from(per_min.max(1))),
            by_user: Failures::new(per_min.saturating_mul(10), 600.0),
        }
    }

    /// Whether this address may try this (already validated, lower-case) username now;
    /// `Err` carries the seconds to wait.
    pub fn check(&self, ip: IpAddr, username: &str) -> Result<(), u64> {
        let ip = ip_key(ip);
        if let Some(w) = self.by_ip.blocked(&ip) {
            return Err(w);
        }
        let pair = (username.to_owned(), ip);
        if let Some(w) = self.by_user_ip.blocked(&pair) {
            return Err(w);
        }
        if self.by_user_ip.full() {
            return Err(60);
        }
        if let Some(w) = self.by_user.blocked(&username.to_owned())
            && self.by_user_ip.level(&pair) > 0.0
        {
            return Err(w);
        }
        Ok(())
    }

    /// Whether this address may make an attempt that is not tied to a username (setup).
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), u64> {
        self.by_ip.blocked(&ip_key(ip)).map_or(Ok(()), Err)
    }

    /// Records a failure (wrong password, unknown user, bad setup token).
    pub fn failed(&self, ip: IpAddr, username: Option<&str>) {
        let ip = ip_key(ip);
        self.by_ip.fail(&ip);
        if let Some(u) = username {
            self.by_user_ip.fail(&(u.to_owned(), ip));
            self.by_user.fail(&u.to_owned());
        }
    }

    /// Records a success: this address's failures for this username are forgotten.
    pub fn succeeded(&self, ip: IpAddr, username: &str) {
        self.by_user_ip.clear(&(username.to_owned(), ip_key(ip)));
    }

    /// Forgets keys whose failures have drained.
    pub fn sweep(&self) {
        self.by_ip.sweep();
        self.by_user_ip.sweep();
        self.by_user.sweep();
    }
}

/// The pool is full: the caller answers 503 with `retry-after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many password checks at once; retry shortly")]
pub struct HashBusy;

/// Runs argon2 work on `concurrency` threads of its own, with at most `queue` more jobs
/// waiting. Own threads, not the blocking pool: glibc keeps a freed 19 MiB argon2 block in
/// the arena of the thread that used it, so hashing on dozens of pool threads held ~80 MB
/// after a flood; two threads hold two blocks at most.
#[derive(Debug)]
pub struct HashPool {
    jobs: Mutex<std::sync::mpsc::Sender<Job>>,
    admitted: Arc<AtomicUsize>,
    capacity: usize,
}

type Job = Box<dyn FnOnce() + Send>;

impl HashPool {
    /// A pool running `concurrency` hashes at once with `queue` more waiting.
    pub fn new(concurrency: usize, queue: usize) -> HashPool {
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..concurrency.max(1) {
            let rx = rx.clone();
            // A pool that cannot start a thread still refuses cleanly: `run` answers busy.
            let _ = std::thread::Builder::new()
                .name(format!("veza-hash-{i}"))
                .spawn(move || {
                    loop {
                        let job = rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
                        match job {
                            Ok(job) => job(),
                            // The pool was dropped.
                            Err(_) => break,
                        }
                    }
                });
        }
        HashPool {
            jobs: Mutex::new(tx),
            admitted: Arc::new(AtomicUsize::new(0)),
            capacity: concurrency.max(1) + queue,
        }
    }

    /// Runs `f` (a hash or a verification) when a thread is free, or refuses at once when
    /// the queue is full. A job counts until it has run, even if its caller went away.
    pub async fn run<T, F>(&self, f: F) -> Result<T, HashBusy>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        if self.admitted.fetch_add(1, Ordering::AcqRel) >= self.capacity {
            self.admitted.fetch_sub(1, Ordering::AcqRel);
            return Err(HashBusy);
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        let admitted = self.admitted.clone();
        let job: Job = Box::new(move || {
            let _ = tx.send(f());
            admitted.fetch_sub(1, Ordering::AcqRel);
        });
        let sent = self
            .jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(job);
        if sent.is_err() {
            self.admitted.fetch_sub(1, Ordering::AcqRel);
            return Err(HashBusy);
        }
        rx.await.map_err(|_| HashBusy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn only_failures_count_and_the_rightful_user_is_not_locked_out() {
        let g = LoginGuard::new(3);
        let (attacker, admin) = (ip("203.0.113.1"), ip("198.51.100.2"));
        for _ in 0..3 {
            g.check(attacker, "admin").unwrap();
            g.failed(attacker, Some("admin"));
        }
        assert!(g.check(attacker, "admin").is_err());
        assert!(
            g.check(attacker, "someone").is_err(),
            "the address is blocked"
        );
        g.check(admin, "admin").unwrap();
        // Successes never count.
        for _ in 0..20 {
            g.check(admin, "admin").unwrap();
            g.succeeded(admin, "admin");
        }
    }

    #[test]
    fn a_spent_username_budget_refuses_only_addresses_that_failed() {
        let g = LoginGuard::new(2);
        // 20 failures from 10 addresses spend the username's budget of 20.
        for i in 0..10 {
            let a = ip(&format!("203.0.113.{i}"));
            g.failed(a, Some("admin"));
            g.failed(a, Some("admin"));
        }
        let fresh = ip("198.51.100.7");
        g.check(fresh, "admin").unwrap();
        g.failed(fresh, Some("admin"));
        assert!(g.check(fresh, "admin").is_err());
        g.check(ip("198.51.100.8"), "admin").unwrap();
    }

    #[test]
    fn ipv6_addresses_share_their_slash_64() {
        let g = LoginGuard::new(1);
        g.failed(ip("2001:db8:1:2::1"), None);
        assert!(g.check_ip(ip("2001:db8:1:2:ffff::9")).is_err());
        g.check_ip(ip("2001:db8:1:3::1")).unwrap();
    }

    #[tokio::test]
    async fn the_hash_pool_refuses_beyond_its_queue() {
        let pool = Arc::new(HashPool::new(1, 1));
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let rx = Arc::new(Mutex::new(rx));
        let running = {
            let (pool, rx) = (pool.clone(), rx.clone());
            tokio::spawn(async move {
                pool.run(move || {
                    let _ = rx.lock().unwrap().recv();
                })
                .await
            })
        };
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let queued = {
            let pool = pool.clone();
            tokio::spawn(async move { pool.run(|| 7).await })
        };
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert_eq!(pool.run(|| 1).await, Err(HashBusy));
        tx.send(()).unwrap();
        running.await.unwrap().unwrap();
        assert_eq!(queued.await.unwrap(), Ok(7));
        assert_eq!(pool.run(|| 2).await, Ok(2));
    }
}
