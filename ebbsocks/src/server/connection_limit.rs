//! `server.max_connections`: one permit per open client connection, and a
//! size that a reload changes without closing anyone.
//!
//! Growing adds permits at once. Shrinking takes back the permits that are
//! free now and records the rest as a debt, paid from permits as their
//! connections end: the open connections above the new size are served to
//! their end, and new ones are refused until the count is below it.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::stats::lock;

#[derive(Debug)]
pub struct ConnectionLimit {
    permits: Arc<Semaphore>,
    /// The configured size; permits in circulation reach it once the debt
    /// is paid.
    size: AtomicUsize,
    /// Permits still to take back after a shrink.
    debt: Mutex<usize>,
    /// Whether `debt` is above 0, so that accept, in the usual case of no
    /// debt, reads one atomic and takes no lock.
    owing: AtomicBool,
}

impl ConnectionLimit {
    pub fn new(size: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(size)),
            size: AtomicUsize::new(size),
            debt: Mutex::new(0),
            owing: AtomicBool::new(false),
        }
    }

    /// A permit for one more connection, or `None` when the limit is reached.
    pub fn try_acquire(&self) -> Option<OwnedSemaphorePermit> {
        self.pay_debt();
        self.permits.clone().try_acquire_owned().ok()
    }

    /// The configured size.
    pub fn size(&self) -> usize {
        self.size.load(Relaxed)
    }

    /// Changes the size to `size` (at least 1) without touching open
    /// connections.
    pub fn resize(&self, size: usize) {
        let size = size.max(1);
        let mut debt = lock(&self.debt);
        let old = self.size.swap(size, Relaxed);
        if size > old {
            let grow = size - old;
            let forgiven = grow.min(*debt);
            *debt -= forgiven;
            self.permits.add_permits(grow - forgiven);
        } else {
            *debt += old - size;
        }
        self.owing.store(*debt > 0, Relaxed);
        drop(debt);
        self.pay_debt();
    }

    /// Takes back free permits owed after a shrink. One atomic read when
    /// nothing is owed, which is nearly always.
    fn pay_debt(&self) {
        if !self.owing.load(Relaxed) {
            return;
        }
        let mut debt = lock(&self.debt);
        if *debt > 0 {
            *debt -= self.permits.forget_permits(*debt);
        }
        self.owing.store(*debt > 0, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take(limit: &ConnectionLimit, n: usize) -> Vec<OwnedSemaphorePermit> {
        (0..n)
            .map(|i| {
                limit
                    .try_acquire()
                    .unwrap_or_else(|| panic!("permit {i} of {n}"))
            })
            .collect()
    }

    #[test]
    fn growing_admits_more_at_once() {
        let limit = ConnectionLimit::new(2);
        let _held = take(&limit, 2);
        assert!(limit.try_acquire().is_none());
        limit.resize(4);
        let _more = take(&limit, 2);
        assert!(limit.try_acquire().is_none());
    }

    #[test]
    fn shrinking_keeps_open_connections_and_refuses_until_below_the_new_size() {
        let limit = ConnectionLimit::new(4);
        let mut held = take(&limit, 3);
        limit.resize(2);
        assert_eq!(limit.size(), 2);
        // Three open connections stay open; none may join.
        assert!(limit.try_acquire().is_none());
        held.pop();
        assert!(limit.try_acquire().is_none(), "still 2 open, size 2");
        held.pop();
        let _one = limit.try_acquire().expect("1 open, size 2");
        assert!(limit.try_acquire().is_none());
    }

    #[test]
    fn growing_after_a_shrink_first_cancels_the_debt() {
        let limit = ConnectionLimit::new(4);
        let held = take(&limit, 4);
        limit.resize(1);
        limit.resize(3);
        drop(held);
        let _three = take(&limit, 3);
        assert!(limit.try_acquire().is_none());
    }
}
