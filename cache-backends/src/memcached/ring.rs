//! Which server holds a key: rendezvous hashing byte-compatible with pymemcache's `HashClient`, and
//! pymemcache's handling of failing servers.
//!
//! Rendezvous (highest random weight): every server scores `murmur3_32("{host}:{port}-{key}")` (seed 0) and the
//! highest score wins; on a tie the server whose name sorts last. Removing one of N servers moves only the keys
//! it held (about 1/N), and Python and Rust services configured with the same `host:port` list pick the same
//! server for every key — pymemcache hashes the key before its `key_prefix` is applied, and so does this
//! client. (pymemcache hashes the key's characters; for the ASCII keys it accepts these are its bytes.)
//!
//! Failures, as pymemcache counts them: a server whose connection fails is *failing*; calls to it are skipped
//! (a miss, nothing written) until `retry_timeout` has passed since its last failure, then one call tries it
//! again. After `retry_attempts` further failures it is *dead*: removed from the ring, so its keys go to the
//! other servers, until `dead_timeout` has passed, when it rejoins with a clean slate. A success clears it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// pymemcache's defaults.
pub(crate) const DEFAULT_RETRY_ATTEMPTS: u32 = 2;
pub(crate) const DEFAULT_RETRY_TIMEOUT: Duration = Duration::from_secs(1);
pub(crate) const DEFAULT_DEAD_TIMEOUT: Duration = Duration::from_secs(60);

/// The failure policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FailurePolicy {
    pub(crate) retry_attempts: u32,
    pub(crate) retry_timeout: Duration,
    pub(crate) dead_timeout: Duration,
}

impl Default for FailurePolicy {
    fn default() -> Self {
        Self {
            retry_attempts: DEFAULT_RETRY_ATTEMPTS,
            retry_timeout: DEFAULT_RETRY_TIMEOUT,
            dead_timeout: DEFAULT_DEAD_TIMEOUT,
        }
    }
}

/// pymemcache's rendezvous score of `node` (`host:port`) for `key`.
pub(crate) fn score(node: &str, key: &str) -> u32 {
    let mut text = Vec::with_capacity(node.len() + 1 + key.len());
    text.extend_from_slice(node.as_bytes());
    text.push(b'-');
    text.extend_from_slice(key.as_bytes());
    // Reading from a slice cannot fail.
    murmur3::murmur3_32(&mut std::io::Cursor::new(text), 0).unwrap_or(0)
}

/// The index of the node that wins `key` among the nodes for which `eligible` holds.
pub(crate) fn pick<'n>(nodes: impl Iterator<Item = (usize, &'n str)>, key: &str) -> Option<usize> {
    let mut best: Option<(u32, &str, usize)> = None;
    for (index, node) in nodes {
        let score = score(node, key);
        let wins = match best {
            None => true,
            Some((high, name, _)) => score > high || (score == high && node > name),
        };
        if wins {
            best = Some((score, node, index));
        }
    }
    best.map(|(_, _, index)| index)
}

/// One server's failure state.
#[derive(Debug, Default)]
pub(crate) struct Health {
    /// Whether `state` is anything but healthy: the common case reads this flag and takes no lock.
    troubled: AtomicBool,
    state: Mutex<State>,
}

#[derive(Debug, Default, Clone, Copy)]
enum State {
    #[default]
    Healthy,
    /// Failed `attempts` retries so far; last failure at `at`.
    Failing { at: Instant, attempts: u32 },
    /// Out of the ring since `since`.
    Dead { since: Instant },
}

/// What to do with a call to a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Call it.
    Call,
    /// It is failing and its retry time has not come: answer a miss without calling.
    Skip,
}

impl Health {
    /// Whether the server is in the ring now (a dead server rejoins after `dead_timeout`).
    ///
    /// `now` is asked only when the server is in trouble: a healthy server's call reads no clock.
    pub(crate) fn in_ring(&self, policy: &FailurePolicy, now: impl FnOnce() -> Instant) -> bool {
        if !self.troubled.load(Ordering::Acquire) {
            return true;
        }
        let now = now();
        let mut state = self.state.lock();
        match *state {
            State::Dead { since } if now.duration_since(since) >= policy.dead_timeout => {
                *state = State::Healthy;
                self.troubled.store(false, Ordering::Release);
                true
            }
            State::Dead { .. } => false,
            _ => true,
        }
    }

    /// Whether to call the server now.
    pub(crate) fn admit(&self, policy: &FailurePolicy, now: impl FnOnce() -> Instant) -> Admission {
        if !self.troubled.load(Ordering::Acquire) {
            return Admission::Call;
        }
        let now = now();
        let mut state = self.state.lock();
        match *state {
            State::Healthy => Admission::Call,
            State::Failing { at, attempts } => {
                if attempts >= policy.retry_attempts {
                    *state = State::Dead { since: now };
                    return Admission::Skip;
                }
                if now.duration_since(at) > policy.retry_timeout {
                    // This call is the retry; others wait for its outcome for another retry_timeout.
                    *state = State::Failing { at: now, attempts };
                    Admission::Call
                } else {
                    Admission::Skip
                }
            }
            State::Dead { .. } => Admission::Skip,
        }
    }

    /// A call reached the server.
    pub(crate) fn succeeded(&self) {
        if !self.troubled.load(Ordering::Acquire) {
            return;
        }
        let mut state = self.state.lock();
        *state = State::Healthy;
        self.troubled.store(false, Ordering::Release);
    }

    /// A call could not reach the server (connect error, broken connection, timeout).
    pub(crate) fn failed(&self, policy: &FailurePolicy, now: Instant) {
        let mut state = self.state.lock();
        *state = match *state {
            State::Healthy if policy.retry_attempts == 0 => State::Dead { since: now },
            State::Healthy => State::Failing {
                at: now,
                attempts: 0,
            },
            State::Failing { attempts, .. } => State::Failing {
                at: now,
                attempts: attempts + 1,
            },
            dead @ State::Dead { .. } => dead,
        };
        self.troubled.store(true, Ordering::Release);
    }

    /// Whether the server is currently out of the ring.
    #[cfg(test)]
    pub(crate) fn is_dead(&self) -> bool {
        matches!(*self.state.lock(), State::Dead { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// murmur3_32 reference vectors (seed 0), the function pymemcache implements.
    #[test]
    fn murmur3_matches_the_reference() {
        let hash = |s: &str| murmur3::murmur3_32(&mut std::io::Cursor::new(s), 0).unwrap();
        assert_eq!(hash(""), 0);
        assert_eq!(hash("hello"), 0x248b_fa47);
        assert_eq!(
            hash("The quick brown fox jumps over the lazy dog"),
            0x2e4f_f723
        );
    }

    #[test]
    fn a_removed_server_moves_only_its_keys() {
        let nodes: Vec<String> = (0..10).map(|i| format!("10.0.0.{i}:11211")).collect();
        let all = |k: &str| pick(nodes.iter().map(String::as_str).enumerate(), k);
        let without_3 = |k: &str| {
            pick(
                nodes
                    .iter()
                    .map(String::as_str)
                    .enumerate()
                    .filter(|(i, _)| *i != 3),
                k,
            )
        };
        let mut moved = 0;
        for i in 0..1_000 {
            let key = format!("key:{i}");
            let before = all(&key).unwrap();
            let after = without_3(&key).unwrap();
            if before != 3 {
                assert_eq!(before, after, "{key} moved though its server stayed");
            } else {
                moved += 1;
            }
        }
        assert!(
            (60..=140).contains(&moved),
            "{moved} of 1000 keys were on the removed server"
        );
    }

    #[test]
    fn failing_then_dead_then_back() {
        let policy = FailurePolicy {
            retry_attempts: 2,
            retry_timeout: Duration::from_millis(100),
            dead_timeout: Duration::from_secs(1),
        };
        let health = Health::default();
        let t0 = Instant::now();
        assert_eq!(health.admit(&policy, || t0), Admission::Call);
        health.failed(&policy, t0);
        assert_eq!(
            health.admit(&policy, || t0 + Duration::from_millis(50)),
            Admission::Skip
        );
        let t1 = t0 + Duration::from_millis(150);
        assert_eq!(health.admit(&policy, || t1), Admission::Call);
        health.failed(&policy, t1);
        let t2 = t1 + Duration::from_millis(150);
        assert_eq!(health.admit(&policy, || t2), Admission::Call);
        health.failed(&policy, t2);
        // Two retries failed: dead, out of the ring.
        let t3 = t2 + Duration::from_millis(150);
        assert_eq!(health.admit(&policy, || t3), Admission::Skip);
        assert!(health.is_dead() && !health.in_ring(&policy, || t3));
        assert!(health.in_ring(&policy, || t3 + Duration::from_secs(1)));
        assert_eq!(
            health.admit(&policy, || t3 + Duration::from_secs(1)),
            Admission::Call
        );
    }
}
