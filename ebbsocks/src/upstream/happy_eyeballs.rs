//! Happy Eyeballs (RFC 8305, section 5): connection attempts to a
//! destination's addresses, started one after another with a fixed delay
//! while earlier ones are still pending, the families interleaved. The
//! first attempt to succeed wins; the others are dropped, which closes
//! their sockets (and uncounts their pool checkouts). An attempt that fails
//! starts the next one at once. So a dead first address costs the attempt
//! delay, not a whole connect timeout, and a refused one costs nothing.
//!
//! The race runs inside the caller's task (no spawned tasks), so it ends
//! with the caller, and it is driven by tokio's clock (testable with
//! paused time). The caller puts its deadline around it.

use std::future::{poll_fn, Future};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use tokio::time::Instant;

use crate::config::AddressFamily;

/// The order to try `addrs` in: alternating families, starting with
/// `prefer` when the list has both, each family in its given order; at
/// most `max` addresses.
pub fn attempt_order(addrs: &[SocketAddr], prefer: AddressFamily, max: usize) -> Vec<SocketAddr> {
    let preferred_is_v6 = prefer == AddressFamily::Ipv6;
    let (mut first, mut second): (Vec<SocketAddr>, Vec<SocketAddr>) = addrs
        .iter()
        .partition(|addr| addr.is_ipv6() == preferred_is_v6);
    if first.is_empty() {
        std::mem::swap(&mut first, &mut second);
    }
    let mut order = Vec::with_capacity(addrs.len().min(max));
    let (mut a, mut b) = (first.into_iter(), second.into_iter());
    while order.len() < max {
        match (a.next(), b.next()) {
            (None, None) => break,
            (x, y) => order.extend(x.into_iter().chain(y).take(max - order.len())),
        }
    }
    order
}

/// Runs `attempt` on each address of `order` (see [`attempt_order`]),
/// starting the next one `delay` after the previous one started, or at once
/// when an attempt fails. Returns the first success; the
/// attempts still running are dropped. When all fail, the last error.
pub async fn race<T, F, Fut>(order: &[SocketAddr], delay: Duration, mut attempt: F) -> io::Result<T>
where
    F: FnMut(SocketAddr) -> Fut,
    Fut: Future<Output = io::Result<T>>,
{
    let mut running: Vec<Pin<Box<Fut>>> = Vec::with_capacity(order.len());
    let mut next = 0;
    let mut last_error = None;
    let timer = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(timer);
    // Start the first attempt now.
    let mut start_now = true;
    poll_fn(|cx| loop {
        if next < order.len() && (start_now || timer.as_mut().poll(cx).is_ready()) {
            running.push(Box::pin(attempt(order[next])));
            next += 1;
            timer.as_mut().reset(Instant::now() + delay);
            start_now = false;
        }
        let mut i = 0;
        while i < running.len() {
            match running[i].as_mut().poll(cx) {
                Poll::Ready(Ok(won)) => return Poll::Ready(Ok(won)),
                Poll::Ready(Err(err)) => {
                    drop(running.swap_remove(i));
                    last_error = Some(err);
                    // A failure makes room for the next attempt at once.
                    start_now = true;
                }
                Poll::Pending => i += 1,
            }
        }
        if next < order.len() {
            // Start it now, or come back when the timer fires (this poll
            // registers the wake-up).
            if start_now || running.is_empty() || timer.as_mut().poll(cx).is_ready() {
                start_now = true;
                continue;
            }
            return Poll::Pending;
        }
        if running.is_empty() {
            return Poll::Ready(Err(last_error.take().unwrap_or_else(|| {
                io::Error::new(io::ErrorKind::AddrNotAvailable, "no address to connect to")
            })));
        }
        return Poll::Pending;
    })
    .await
}

// In tests a panic is the failure report.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    fn addrs(list: &[&str]) -> Vec<SocketAddr> {
        list.iter().map(|a| a.parse().unwrap()).collect()
    }

    #[test]
    fn families_alternate_starting_with_the_preferred_one() {
        let resolved = addrs(&[
            "192.0.2.1:80",
            "192.0.2.2:80",
            "192.0.2.3:80",
            "[2001:db8::1]:80",
            "[2001:db8::2]:80",
        ]);
        assert_eq!(
            attempt_order(&resolved, AddressFamily::Ipv6, 8),
            addrs(&[
                "[2001:db8::1]:80",
                "192.0.2.1:80",
                "[2001:db8::2]:80",
                "192.0.2.2:80",
                "192.0.2.3:80",
            ])
        );
        assert_eq!(
            attempt_order(&resolved, AddressFamily::Ipv4, 3),
            addrs(&["192.0.2.1:80", "[2001:db8::1]:80", "192.0.2.2:80"])
        );
        // One family only: its order, whatever the preference.
        let v4 = addrs(&["192.0.2.9:80", "192.0.2.1:80"]);
        assert_eq!(attempt_order(&v4, AddressFamily::Ipv6, 8), v4);
        assert_eq!(attempt_order(&v4, AddressFamily::Ipv6, 1), v4[..1]);
    }

    /// What the fake attempts did: (address, start time, finished). An
    /// attempt dropped before its end never marks itself finished.
    type Log = Arc<Mutex<Vec<(SocketAddr, Duration, bool)>>>;

    /// Attempts that end after their planned time, refused or connected.
    fn fake(
        log: &Log,
        origin: Instant,
        plan: &[(&str, Duration, bool)],
    ) -> impl FnMut(SocketAddr) -> Pin<Box<dyn Future<Output = io::Result<SocketAddr>>>> {
        let plan: Vec<(SocketAddr, Duration, bool)> = plan
            .iter()
            .map(|(a, d, ok)| (a.parse().unwrap(), *d, *ok))
            .collect();
        let log = log.clone();
        move |addr| {
            let (_, after, ok) = *plan.iter().find(|p| p.0 == addr).unwrap();
            let index = {
                let mut log = log.lock().unwrap();
                log.push((addr, origin.elapsed(), false));
                log.len() - 1
            };
            let log = log.clone();
            Box::pin(async move {
                tokio::time::sleep(after).await;
                log.lock().unwrap()[index].2 = true;
                if ok {
                    Ok(addr)
                } else {
                    Err(io::Error::from(io::ErrorKind::ConnectionRefused))
                }
            })
        }
    }

    const MS: Duration = Duration::from_millis(1);

    #[tokio::test(start_paused = true)]
    async fn a_silent_first_address_costs_one_delay_and_is_dropped() {
        let log = Log::default();
        let origin = Instant::now();
        let order = addrs(&["[::1]:80", "127.0.0.1:80"]);
        let attempt = fake(
            &log,
            origin,
            &[
                ("[::1]:80", Duration::from_secs(3600), true),
                ("127.0.0.1:80", 10 * MS, true),
            ],
        );
        let won = race(&order, 250 * MS, attempt).await.unwrap();
        assert_eq!(won, order[1]);
        assert_eq!(origin.elapsed(), 260 * MS);
        let log = log.lock().unwrap().clone();
        assert_eq!(
            log,
            vec![
                (order[0], Duration::ZERO, false),
                (order[1], 250 * MS, true)
            ],
            "the first attempt was dropped unfinished"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_failure_starts_the_next_attempt_at_once() {
        let log = Log::default();
        let origin = Instant::now();
        let order = addrs(&["[::1]:80", "127.0.0.1:80", "127.0.0.2:80"]);
        let attempt = fake(
            &log,
            origin,
            &[
                ("[::1]:80", 5 * MS, false),
                ("127.0.0.1:80", 5 * MS, false),
                ("127.0.0.2:80", 5 * MS, true),
            ],
        );
        let won = race(&order, 250 * MS, attempt).await.unwrap();
        assert_eq!(won, order[2]);
        let starts: Vec<Duration> = log.lock().unwrap().iter().map(|e| e.1).collect();
        assert_eq!(starts, vec![Duration::ZERO, 5 * MS, 10 * MS]);
    }

    #[tokio::test(start_paused = true)]
    async fn the_earliest_success_wins_even_if_started_later() {
        let log = Log::default();
        let origin = Instant::now();
        let order = addrs(&["[::1]:80", "127.0.0.1:80", "127.0.0.2:80"]);
        let attempt = fake(
            &log,
            origin,
            &[
                ("[::1]:80", 900 * MS, true),
                ("127.0.0.1:80", 100 * MS, true),
                ("127.0.0.2:80", 900 * MS, true),
            ],
        );
        let won = race(&order, 250 * MS, attempt).await.unwrap();
        assert_eq!(won, order[1]);
        assert_eq!(origin.elapsed(), 350 * MS);
        let log = log.lock().unwrap().clone();
        // The third started at 500 ms would be after the win: never started.
        assert_eq!(log.len(), 2, "{log:?}");
        assert!(!log[0].2, "the slower first attempt was dropped unfinished");
    }

    #[tokio::test(start_paused = true)]
    async fn when_every_attempt_fails_the_last_error_is_returned() {
        let log = Log::default();
        let order = addrs(&["127.0.0.1:80", "127.0.0.2:80"]);
        let attempt = fake(
            &log,
            Instant::now(),
            &[("127.0.0.1:80", MS, false), ("127.0.0.2:80", MS, false)],
        );
        let err = race(&order, 250 * MS, attempt).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
        assert_eq!(log.lock().unwrap().len(), 2);
        let none: io::Result<()> = race(&[], MS, |_| async { Ok(()) }).await;
        assert_eq!(none.unwrap_err().kind(), io::ErrorKind::AddrNotAvailable);
    }
}
