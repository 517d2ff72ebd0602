//! The relay's timers, under tokio's paused clock: idle, and after a
//! half-close. Loopback bytes are in the peer's queue when `write` returns,
//! so the clock only jumps when every socket is really quiet.

use super::*;

in_both_modes! {
#[tokio::test(start_paused = true)]
async fn an_idle_session_times_out(splice: bool) {
    let started = tokio::time::Instant::now();
    let options = RelayOptions {
        idle_timeout: Some(Duration::from_secs(30)),
        ..RelayOptions::default()
    };
    let (mut client, mut upstream, task) = start(options, splice).await;
    let outcome = task.await.unwrap();
    assert_eq!(outcome.end, RelayEnd::IdleTimeout);
    assert_eq!(started.elapsed().as_secs(), 30);
    // Both apps see a clean close.
    let mut buf = [0; 4];
    assert_eq!(client.read(&mut buf).await.unwrap(), 0);
    assert_eq!(upstream.read(&mut buf).await.unwrap(), 0);
}
}

in_both_modes! {
#[tokio::test(start_paused = true)]
async fn traffic_in_either_direction_keeps_a_session_alive(splice: bool) {
    let started = tokio::time::Instant::now();
    let options = RelayOptions {
        idle_timeout: Some(Duration::from_secs(30)),
        ..RelayOptions::default()
    };
    let (mut client, mut upstream, mut task) = start(options, splice).await;
    let mut byte = [0; 1];
    for round in 0..4 {
        tokio::time::sleep(Duration::from_secs(20)).await;
        if round % 2 == 0 {
            client.write_all(b"x").await.unwrap();
            upstream.read_exact(&mut byte).await.unwrap();
        } else {
            upstream.write_all(b"y").await.unwrap();
            client.read_exact(&mut byte).await.unwrap();
        }
        assert!(!task.is_finished(), "timed out in round {round}");
    }
    let outcome = (&mut task).await.unwrap();
    assert_eq!(outcome.end, RelayEnd::IdleTimeout);
    assert_eq!(started.elapsed().as_secs(), 80 + 30);
    assert_eq!(
        (outcome.client_to_upstream, outcome.upstream_to_client),
        (2, 2)
    );
}
}

/// The client asks and half-closes; the upstream reads the question to EOF
/// and then neither answers nor closes.
async fn half_closed_by_the_client(
    options: RelayOptions,
    splice: bool,
) -> (TcpStream, TcpStream, tokio::task::JoinHandle<RelayOutcome>) {
    let (mut client, mut upstream, task) = start(options, splice).await;
    client.write_all(b"question").await.unwrap();
    client.shutdown().await.unwrap();
    let mut question = Vec::new();
    upstream.read_to_end(&mut question).await.unwrap();
    assert_eq!(question, b"question");
    (client, upstream, task)
}

fn half_close_after(secs: u64) -> RelayOptions {
    RelayOptions {
        half_close_timeout: Some(Duration::from_secs(secs)),
        ..RelayOptions::default()
    }
}

in_both_modes! {
#[tokio::test(start_paused = true)]
async fn a_peer_silent_after_a_half_close_is_closed(splice: bool) {
    let (mut client, mut upstream, task) = half_closed_by_the_client(half_close_after(60), splice).await;
    let half_closed = tokio::time::Instant::now();
    let outcome = task.await.unwrap();
    assert_eq!(outcome.end, RelayEnd::HalfCloseTimeout);
    assert_eq!(half_closed.elapsed().as_secs(), 60);
    assert_eq!((outcome.client_to_upstream, outcome.upstream_to_client), (8, 0));
    // Both apps see a clean close.
    let mut buf = [0; 4];
    assert_eq!(client.read(&mut buf).await.unwrap(), 0);
    assert_eq!(upstream.read(&mut buf).await.unwrap(), 0);
}
}

in_both_modes! {
#[tokio::test(start_paused = true)]
async fn an_answer_still_flowing_after_a_half_close_is_not_cut(splice: bool) {
    let (mut client, mut upstream, mut task) = half_closed_by_the_client(half_close_after(60), splice).await;
    let started = tokio::time::Instant::now();
    // A long download after the request: a chunk every 50 s.
    let mut chunk = [0; 5];
    for round in 0..4 {
        tokio::time::sleep(Duration::from_secs(50)).await;
        upstream.write_all(b"chunk").await.unwrap();
        client.read_exact(&mut chunk).await.unwrap();
        assert!(!task.is_finished(), "cut in round {round}");
    }
    let outcome = (&mut task).await.unwrap();
    assert_eq!(outcome.end, RelayEnd::HalfCloseTimeout);
    assert_eq!(started.elapsed().as_secs(), 200 + 60);
    assert_eq!(outcome.upstream_to_client, 20);
}
}

in_both_modes! {
#[tokio::test(start_paused = true)]
async fn a_half_close_from_the_upstream_starts_the_timer_too(splice: bool) {
    let (mut client, mut upstream, task) = start(half_close_after(60), splice).await;
    upstream.write_all(b"banner").await.unwrap();
    upstream.shutdown().await.unwrap();
    let mut banner = Vec::new();
    client.read_to_end(&mut banner).await.unwrap();
    let half_closed = tokio::time::Instant::now();
    let outcome = task.await.unwrap();
    assert_eq!(outcome.end, RelayEnd::HalfCloseTimeout);
    assert_eq!(half_closed.elapsed().as_secs(), 60);
}
}

#[tokio::test(start_paused = true)]
async fn without_the_timeout_a_half_closed_session_stays_open() {
    let (_client, _upstream, task) =
        half_closed_by_the_client(RelayOptions::default(), false).await;
    tokio::time::sleep(Duration::from_secs(24 * 3600)).await;
    assert!(!task.is_finished());
    task.abort();
}

#[tokio::test(start_paused = true)]
async fn an_open_session_does_not_start_the_half_close_timer() {
    let (_client, _upstream, task) = start(half_close_after(60), false).await;
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert!(!task.is_finished());
    task.abort();
}
