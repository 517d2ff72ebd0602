//! A fixed-window limit on how often one kind of telemetry event is
//! recorded, so a flood of refusals cannot flush every other event out of
//! the bounded ring. An event that gets through says how many were held back.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use super::lock;

#[derive(Debug)]
pub struct EventLimiter {
    per_window: u32,
    window: Duration,
    state: Mutex<WindowState>,
}

#[derive(Debug, Default)]
struct WindowState {
    start: Option<Instant>,
    sent: u32,
    suppressed: u64,
}

impl EventLimiter {
    pub fn new(per_window: u32, window: Duration) -> Self {
        Self {
            per_window,
            window,
            state: Mutex::new(WindowState::default()),
        }
    }

    /// `Some(events held back since the last one admitted)` when an event
    /// may be recorded now; `None` when this one is held back.
    pub fn admit(&self) -> Option<u64> {
        let now = Instant::now();
        let mut state = lock(&self.state);
        if state
            .start
            .is_none_or(|start| now.duration_since(start) >= self.window)
        {
            state.start = Some(now);
            state.sent = 0;
        }
        if state.sent >= self.per_window {
            state.suppressed += 1;
            return None;
        }
        state.sent += 1;
        Some(std::mem::take(&mut state.suppressed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn admits_a_window_full_then_reports_what_it_held_back() {
        let limiter = EventLimiter::new(2, Duration::from_secs(1));
        assert_eq!(limiter.admit(), Some(0));
        assert_eq!(limiter.admit(), Some(0));
        assert_eq!(limiter.admit(), None);
        assert_eq!(limiter.admit(), None);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(limiter.admit(), Some(2));
        assert_eq!(limiter.admit(), Some(0));
    }
}
