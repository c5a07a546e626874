//! In-process single-flight: concurrent callers of one missing key share one body run.
//!
//! The first caller (the leader) registers a `watch` channel under the key and runs the body; the others wait on
//! it. The leader publishes the encoded value it stored (or `None` when the result was not cacheable, in which
//! case each waiter runs the body itself). If the leader panics or is cancelled its sender is dropped, the
//! waiters see the channel close and one of them becomes the new leader — nobody waits forever.

use std::collections::HashMap;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::watch;

#[derive(Clone)]
pub(crate) enum Flight {
    Running,
    Done(Option<Bytes>),
}

#[derive(Default)]
pub(crate) struct SingleFlight {
    inflight: Mutex<HashMap<String, (u64, watch::Receiver<Flight>)>>,
    next_id: std::sync::atomic::AtomicU64,
    /// How many flights have ended (finished or abandoned), for [`SingleFlight::ended`].
    ended: std::sync::atomic::AtomicU64,
}

pub(crate) enum Role<'a> {
    Leader(Leader<'a>),
    Follower(watch::Receiver<Flight>),
}

pub(crate) struct Leader<'a> {
    flights: &'a SingleFlight,
    key: String,
    id: u64,
    tx: watch::Sender<Flight>,
}

/// What a follower learned from its leader.
pub(crate) enum Outcome {
    /// The leader stored these bytes (an envelope).
    Shared(Bytes),
    /// The leader's result was not cacheable: run the body yourself.
    NotShared,
    /// The leader went away without finishing: try to lead.
    Abandoned,
}

impl SingleFlight {
    pub(crate) fn join(&self, key: &str) -> Role<'_> {
        let mut map = self.inflight.lock();
        if let Some((_, rx)) = map.get(key) {
            return Role::Follower(rx.clone());
        }
        let id = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (tx, rx) = watch::channel(Flight::Running);
        map.insert(key.to_owned(), (id, rx));
        Role::Leader(Leader {
            flights: self,
            key: key.to_owned(),
            id,
            tx,
        })
    }

    /// Whether a computation of `key` is running now.
    pub(crate) fn is_running(&self, key: &str) -> bool {
        self.inflight.lock().contains_key(key)
    }

    /// Identifies this table for [`crate::context::is_leading`]: its address, stable while a `Cache` holds it.
    pub(crate) fn id(&self) -> usize {
        std::ptr::from_ref(self) as usize
    }

    /// How many flights have ended so far. A caller that read this before its own cache read and finds it
    /// unchanged once it leads knows no leader of this table stored anything in between, so it need not read
    /// again.
    pub(crate) fn ended(&self) -> u64 {
        self.ended.load(std::sync::atomic::Ordering::Acquire)
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.inflight.lock().len()
    }
}

impl Leader<'_> {
    pub(crate) fn finish(self, stored: Option<Bytes>) {
        self.tx.send_replace(Flight::Done(stored));
        // Drop unregisters the key.
    }
}

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        let mut map = self.flights.inflight.lock();
        // Only remove our own registration: after an abandonment a new leader may own the key already.
        if map.get(&self.key).is_some_and(|(id, _)| *id == self.id) {
            map.remove(&self.key);
        }
        // Under the lock: whoever joins after this sees the count moved.
        self.flights
            .ended
            .fetch_add(1, std::sync::atomic::Ordering::Release);
    }
}

pub(crate) async fn wait(mut rx: watch::Receiver<Flight>) -> Outcome {
    match rx.wait_for(|f| matches!(f, Flight::Done(_))).await {
        Ok(flight) => match &*flight {
            Flight::Done(Some(bytes)) => Outcome::Shared(bytes.clone()),
            _ => Outcome::NotShared,
        },
        Err(_) => Outcome::Abandoned,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn abandoned_leader_lets_a_follower_lead() {
        let flights = SingleFlight::default();
        let Role::Leader(leader) = flights.join("k") else {
            panic!("first caller leads")
        };
        let Role::Follower(rx) = flights.join("k") else {
            panic!("second caller follows")
        };
        drop(leader);
        assert!(matches!(wait(rx).await, Outcome::Abandoned));
        assert_eq!(flights.len(), 0);
        let Role::Leader(leader) = flights.join("k") else {
            panic!("a new leader")
        };
        let Role::Follower(rx) = flights.join("k") else {
            panic!("follower")
        };
        leader.finish(Some(Bytes::from_static(b"v")));
        assert!(matches!(wait(rx).await, Outcome::Shared(b) if b == "v"));
        assert_eq!(flights.len(), 0);
    }
}
