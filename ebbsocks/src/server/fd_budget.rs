//! How many file descriptors a configuration needs, against the process's
//! open-files limit. Running out does not crash the server: accept fails
//! with EMFILE and the accept loop backs off while live sessions carry on.
//! But clients beyond the limit wait in the kernel's queue, so `main` warns
//! at startup when the limit is below what `server.max_connections` asks.

use std::fmt;

use crate::config::Config;
use crate::relay::MAX_SPLICE_PIPES;

/// A session holds its client socket and its upstream socket (a BIND its
/// listener or peer, a UDP association its datagram socket instead).
pub const PER_SESSION: u64 = 2;

/// The HTTP API's listener; its connections are capped by
/// `api.max_connections`, plus the one it answers 503 and closes at once.
pub const API_LISTENER: u64 = 1;

/// Stdio, the runtime's epoll and wake-up descriptors, the signal pipe, the
/// SOCKS listener, resolver sockets and /proc reads.
pub const MARGIN: u64 = 32;

/// Descriptors the configuration needs, by what holds them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdBudget {
    /// `PER_SESSION` for each of `server.max_connections`.
    pub sessions: u64,
    /// `server.pool.max_total_idle` when the pool is on: idle upstream
    /// connections belong to no session yet.
    pub pool_idle: u64,
    /// Two per splice pipe, at the relay's cap.
    pub splice_pipes: u64,
    /// The API's listener and connection cap when the API is on.
    pub api: u64,
    pub margin: u64,
}

impl FdBudget {
    pub fn for_config(config: &Config) -> Self {
        let pool = &config.server.pool;
        Self {
            sessions: PER_SESSION.saturating_mul(config.server.max_connections as u64),
            pool_idle: if pool.enabled {
                pool.max_total_idle as u64
            } else {
                0
            },
            splice_pipes: 2 * MAX_SPLICE_PIPES as u64,
            api: if config.api.enabled {
                API_LISTENER + config.api.max_connections as u64 + 1
            } else {
                0
            },
            margin: MARGIN,
        }
    }

    /// Everything but the sessions: held whatever the number of clients.
    pub fn fixed(&self) -> u64 {
        self.pool_idle + self.splice_pipes + self.api + self.margin
    }

    pub fn total(&self) -> u64 {
        self.sessions.saturating_add(self.fixed())
    }

    /// Sessions that fit under `limit` once the fixed part is set aside.
    pub fn sessions_within(&self, limit: u64) -> u64 {
        limit.saturating_sub(self.fixed()) / PER_SESSION
    }

    /// `None` when `limit` covers the budget, else what falls short.
    pub fn check(&self, limit: u64) -> Option<Shortfall> {
        (limit < self.total()).then_some(Shortfall {
            limit,
            budget: *self,
        })
    }
}

/// An open-files limit below the budget; its `Display` is the startup warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shortfall {
    pub limit: u64,
    pub budget: FdBudget,
}

impl Shortfall {
    pub fn sessions(&self) -> u64 {
        self.budget.sessions_within(self.limit)
    }
}

impl fmt::Display for Shortfall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = &self.budget;
        write!(
            f,
            "the open-files limit (RLIMIT_NOFILE) is {}, but server.max_connections = {} needs \
             about {} descriptors ({} for sessions, {} for idle pooled connections, {} for \
             splice pipes, {} for the API, {} margin): about {} sessions can be served; accept \
             will fail beyond that and back off. Raise the limit (ulimit -n, LimitNOFILE= under \
             systemd) or lower server.max_connections",
            self.limit,
            b.sessions / PER_SESSION,
            b.total(),
            b.sessions,
            b.pool_idle,
            b.splice_pipes,
            b.api,
            b.margin,
            self.sessions(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(toml: &str) -> Config {
        Config::from_toml(toml, std::path::Path::new("test.toml")).expect("valid config")
    }

    #[test]
    fn the_budget_counts_each_holder() {
        let plain = FdBudget::for_config(&config("[server]\nmax_connections = 1000\n"));
        assert_eq!(plain.sessions, 2000);
        assert_eq!(plain.pool_idle, 0, "the pool is off by default");
        assert_eq!(plain.api, 0, "the API is off by default");
        assert_eq!(plain.splice_pipes, 2 * MAX_SPLICE_PIPES as u64);
        assert_eq!(plain.total(), 2000 + plain.splice_pipes + MARGIN);

        let full = FdBudget::for_config(&config(
            "[server]\nmax_connections = 1000\n[server.pool]\nenabled = true\n\
             max_total_idle = 300\n[api]\nenabled = true\n",
        ));
        assert_eq!(full.pool_idle, 300);
        // Listener, 32 capped connections, one refused with a 503.
        assert_eq!(full.api, 1 + 32 + 1);
        assert_eq!(full.total(), plain.total() + 300 + full.api);
    }

    #[test]
    fn a_limit_that_covers_the_budget_passes() {
        let budget = FdBudget::for_config(&config("[server]\nmax_connections = 100\n"));
        assert_eq!(budget.check(budget.total()), None);
        assert_eq!(budget.check(1 << 20), None);
        assert!(budget.check(budget.total() - 1).is_some());
    }

    #[test]
    fn a_low_limit_says_how_many_sessions_fit_and_what_happens() {
        let budget = FdBudget::for_config(&config("[server]\nmax_connections = 10000\n"));
        let limit = 1024;
        let shortfall = budget.check(limit).expect("1024 is too low for 10000");
        let expected = (limit - budget.fixed()) / 2;
        assert_eq!(shortfall.sessions(), expected);
        let text = shortfall.to_string();
        for part in [
            "is 1024",
            "max_connections = 10000",
            &format!("about {} descriptors", budget.total()),
            &format!("about {expected} sessions can be served"),
            "accept will fail beyond that and back off",
        ] {
            assert!(text.contains(part), "{part:?} missing from: {text}");
        }
    }

    #[test]
    fn a_limit_below_the_fixed_part_serves_no_session() {
        let budget = FdBudget::for_config(&config(""));
        assert_eq!(budget.sessions_within(10), 0);
        assert_eq!(budget.check(10).expect("too low").sessions(), 0);
    }
}
