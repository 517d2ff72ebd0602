use std::net::{IpAddr, Ipv4Addr};

use super::*;

const WINDOW: Duration = Duration::from_secs(60);

fn ip(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(192, 0, 2, last))
}

fn fail(throttle: &FailureThrottle, client: IpAddr) {
    throttle.begin(client).expect("admitted").finish(false);
}

#[tokio::test(start_paused = true)]
async fn a_used_budget_refuses_until_the_window_ends() {
    let throttle = FailureThrottle::new(3, WINDOW, 100);
    for _ in 0..3 {
        fail(&throttle, ip(1));
    }
    assert_eq!(
        throttle.begin(ip(1)).map(|_| ()),
        Err(Throttled { first: true })
    );
    assert_eq!(
        throttle.begin(ip(1)).map(|_| ()),
        Err(Throttled { first: false })
    );
    // Another client has its own budget.
    assert!(throttle.begin(ip(2)).is_ok());
    tokio::time::advance(WINDOW - Duration::from_millis(1)).await;
    assert!(throttle.begin(ip(1)).is_err(), "window not over yet");
    tokio::time::advance(Duration::from_millis(1)).await;
    assert!(throttle.begin(ip(1)).is_ok(), "a new window, a new budget");
}

#[tokio::test(start_paused = true)]
async fn successes_neither_count_nor_refund() {
    let throttle = FailureThrottle::new(2, WINDOW, 100);
    for _ in 0..5 {
        throttle.begin(ip(1)).expect("admitted").finish(true);
    }
    assert_eq!(throttle.tracked(), 0, "clean clients are not kept");
    fail(&throttle, ip(1));
    throttle.begin(ip(1)).expect("admitted").finish(true);
    fail(&throttle, ip(1));
    assert!(throttle.begin(ip(1)).is_err());
}

#[tokio::test(start_paused = true)]
async fn attempts_in_flight_count_and_dropped_ones_are_released() {
    let throttle = FailureThrottle::new(2, WINDOW, 100);
    let first = throttle.begin(ip(1)).expect("admitted");
    let second = throttle.begin(ip(1)).expect("admitted");
    assert!(
        throttle.begin(ip(1)).is_err(),
        "two in flight use the budget"
    );
    // Dropped (deadline passed) without an answer: not a failure.
    drop(first);
    drop(second);
    assert_eq!(throttle.tracked(), 0);
    fail(&throttle, ip(1));
    fail(&throttle, ip(1));
    assert!(throttle.begin(ip(1)).is_err());
}

#[tokio::test(start_paused = true)]
async fn ipv6_clients_share_their_64_and_mapped_ipv4_is_ipv4() {
    let throttle = FailureThrottle::new(1, WINDOW, 100);
    fail(&throttle, "2001:db8:1:2::1".parse().expect("addr"));
    assert!(throttle
        .begin("2001:db8:1:2:ffff::9".parse().expect("addr"))
        .is_err());
    assert!(throttle
        .begin("2001:db8:1:3::1".parse().expect("addr"))
        .is_ok());
    fail(&throttle, ip(7));
    assert!(throttle
        .begin("::ffff:192.0.2.7".parse().expect("addr"))
        .is_err());
}

#[tokio::test(start_paused = true)]
async fn the_table_is_bounded_and_empties_after_the_window() {
    let throttle = FailureThrottle::new(3, WINDOW, 16);
    for a in 0..=255u8 {
        for b in 0..4u8 {
            fail(&throttle, IpAddr::V4(Ipv4Addr::new(10, b, 0, a)));
        }
        assert!(throttle.tracked() <= 16, "{} entries", throttle.tracked());
    }
    // The newest client is tracked, whatever was evicted for it.
    fail(&throttle, IpAddr::V4(Ipv4Addr::new(10, 3, 0, 255)));
    fail(&throttle, IpAddr::V4(Ipv4Addr::new(10, 3, 0, 255)));
    assert!(throttle
        .begin(IpAddr::V4(Ipv4Addr::new(10, 3, 0, 255)))
        .is_err());
    tokio::time::advance(WINDOW).await;
    // Any attempt after a window prunes what expired.
    throttle.begin(ip(1)).expect("admitted").finish(true);
    assert_eq!(throttle.tracked(), 0);
    let capacity = lock(&throttle.table).clients.capacity();
    assert!(capacity <= 16, "capacity {capacity} was not given back");
}

#[tokio::test(start_paused = true)]
async fn zero_turns_it_off() {
    let throttle = FailureThrottle::new(0, WINDOW, 16);
    for _ in 0..100 {
        fail(&throttle, ip(1));
    }
    assert!(throttle.begin(ip(1)).is_ok());
    assert_eq!(throttle.tracked(), 0);
}
