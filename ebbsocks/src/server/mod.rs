//! The SOCKS listener: accept loop, connection limit, graceful shutdown.
//! `conn.rs` is one client's way through the server; `proxy_header.rs`
//! reads a trusted balancer's PROXY header before `handshake.rs` reads the
//! greeting, credentials and request; `fd_budget.rs` says how many
//! descriptors a configuration needs (checked by `main` at startup);
//! `live.rs` puts a reloaded configuration in force, and
//! `connection_limit.rs` is `max_connections`, resizable in place.

mod bind;
mod conn;
pub mod connection_limit;
pub mod fd_budget;
mod handshake;
pub mod limits;
mod live;
mod proxy_header;
mod refusal;
mod session;
mod udp;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn, Instrument};

use crate::access::AccessRules;
use crate::auth::Authenticator;
use crate::config::{Config, TrustedSources};
use crate::memory::MemoryMonitor;
use crate::stats::limiter::EventLimiter;
use crate::stats::{Stats, Telemetry};
use crate::upstream::connect::ConnectPolicy;
use crate::upstream::pool::{Connector, Pool, TcpConnector};
use crate::upstream::resolve::Resolver;
use crate::upstream::socket_options::SocketOptions;
use connection_limit::ConnectionLimit;
use limits::SessionLimits;

/// Everything a connection needs, shared by all of them and by the HTTP API.
#[derive(Debug)]
pub struct Services {
    /// The configuration in force: swapped whole by a reload, read without
    /// locks through [`Services::config`].
    config: ArcSwap<Config>,
    pub stats: Arc<Stats>,
    pub telemetry: Arc<Telemetry>,
    pub pool: Arc<Pool>,
    pub memory: Arc<MemoryMonitor>,
    auth: Authenticator,
    resolver: Resolver,
    /// Deadline, Happy Eyeballs and socket options of every upstream
    /// connect; its socket options also go on every client socket.
    /// How upstream connections are made (deadline, Happy Eyeballs, socket
    /// options). Swapped by a reload; a connect keeps the one it started with.
    connect_policy: ArcSwap<ConnectPolicy>,
    /// The compiled `[access]` rules. Swapped whole, read without locks; a
    /// session keeps the snapshot it started with.
    access: ArcSwap<AccessRules>,
    /// The proxy's own listening addresses, refused as destinations when
    /// the proxy is not on loopback.
    own_addresses: Mutex<Vec<SocketAddr>>,
    /// Limits telemetry events about refused requests.
    denial_events: EventLimiter,
    /// Live sessions per client address and per user.
    limits: Arc<SessionLimits>,
    /// Limits telemetry events about session limits being hit.
    limit_events: EventLimiter,
    /// `server.max_connections`, resized in place by a reload.
    connection_limit: ConnectionLimit,
    /// Balancers that must send a PROXY header (`server.proxy_protocol`);
    /// `None` when the PROXY protocol is off.
    proxy_trust: Option<TrustedSources>,
}

impl Services {
    /// Must be called inside a tokio runtime: the pool starts its cleanup task.
    pub fn new(config: Config) -> Arc<Self> {
        let telemetry = Arc::new(Telemetry::default());
        let pool = configured_pool(&config, &telemetry);
        Self::assemble(config, telemetry, pool)
    }

    /// Like [`Services::new`], with upstream connections made by `connector`
    /// (benchmarks use it to simulate a network round trip).
    pub fn with_connector(config: Config, connector: Arc<dyn Connector>) -> Arc<Self> {
        let telemetry = Arc::new(Telemetry::default());
        let pool = Pool::with_connector(config.server.pool.clone(), telemetry.clone(), connector);
        Self::assemble(config, telemetry, pool)
    }

    /// Like [`Services::new`], with names resolved by `resolver`.
    pub fn with_resolver(config: Config, resolver: Resolver) -> Arc<Self> {
        let telemetry = Arc::new(Telemetry::default());
        let pool = configured_pool(&config, &telemetry);
        Self::assemble_with(config, telemetry, pool, resolver)
    }

    fn assemble(config: Config, telemetry: Arc<Telemetry>, pool: Arc<Pool>) -> Arc<Self> {
        let resolver = Resolver::from_config(&config.upstream.dns);
        Self::assemble_with(config, telemetry, pool, resolver)
    }

    fn assemble_with(
        config: Config,
        telemetry: Arc<Telemetry>,
        pool: Arc<Pool>,
        resolver: Resolver,
    ) -> Arc<Self> {
        let access = config
            .compile_access(&[])
            .expect("the configuration was validated");
        Arc::new(Self {
            access: ArcSwap::from_pointee(access),
            own_addresses: Mutex::new(Vec::new()),
            denial_events: EventLimiter::new(10, Duration::from_secs(1)),
            limits: SessionLimits::new(
                config.access.max_sessions_per_client,
                config.access.max_sessions_per_user,
            ),
            limit_events: EventLimiter::new(10, Duration::from_secs(1)),
            connection_limit: ConnectionLimit::new(config.server.max_connections),
            proxy_trust: config
                .server
                .proxy_protocol
                .trusted_sources()
                .expect("the configuration was validated"),
            stats: Arc::new(Stats::new()),
            memory: MemoryMonitor::new(&config.memory),
            auth: Authenticator::new(&config.auth),
            resolver,
            connect_policy: ArcSwap::from_pointee(ConnectPolicy::from_config(&config)),
            telemetry,
            pool,
            config: ArcSwap::from_pointee(config),
        })
    }

    /// The configuration in force now. A caller that keeps the `Arc` (a
    /// session, say) keeps this snapshot whatever a reload does meanwhile.
    /// The connect policy in force.
    pub fn connect_policy(&self) -> Arc<ConnectPolicy> {
        self.connect_policy.load_full()
    }

    pub fn config(&self) -> Arc<Config> {
        self.config.load_full()
    }

    /// The access rules in force now.
    pub fn access(&self) -> Arc<AccessRules> {
        self.access.load_full()
    }

    /// Records a listening address of this proxy (the API's, the SOCKS
    /// listener's once bound) and rebuilds the rules with it.
    pub fn add_own_address(&self, addr: SocketAddr) {
        let mut own = crate::stats::lock(&self.own_addresses);
        if own.contains(&addr) {
            return;
        }
        own.push(addr);
        match self.config().compile_access(&own) {
            Ok(rules) => self.access.store(Arc::new(rules)),
            // The same config compiled at load; only the addresses differ.
            Err(err) => warn!(%err, "access rules not rebuilt with the listening addresses"),
        }
    }
}

/// The pool, connecting with the session socket options of `config`.
fn configured_pool(config: &Config, telemetry: &Arc<Telemetry>) -> Arc<Pool> {
    let connector = TcpConnector::new(SocketOptions::from_config(config));
    Pool::with_connector(
        config.server.pool.clone(),
        telemetry.clone(),
        Arc::new(connector),
    )
}

/// Pending connections the kernel may queue before `accept`. A spike arrives
/// faster than any accept loop runs; with the usual 1024, the overflow is
/// dropped and those clients wait a second or more for their SYN to be
/// retransmitted. The kernel caps this at `net.core.somaxconn`.
pub const LISTEN_BACKLOG: u32 = 4096;

/// Binds a listener the way the server wants it: address reuse (so a restart
/// does not wait out TIME_WAIT) and a deep accept queue.
pub fn bind(addr: std::net::SocketAddr) -> io::Result<TcpListener> {
    bind_with(addr, false, &SocketOptions::default())
}

/// [`bind`], with SO_REUSEPORT when `reuse_port` (`server.reuse_port`):
/// every process that sets it may bind the same address, and the kernel
/// spreads new connections across their listeners. `inherited` (the client
/// sockets' options, see [`set_inherited_options`]) is set before the socket
/// listens, so not even a connection queued before [`serve`] runs misses it.
pub fn bind_with(
    addr: std::net::SocketAddr,
    reuse_port: bool,
    inherited: &SocketOptions,
) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    if reuse_port {
        socket2::SockRef::from(&socket).set_reuse_port(true)?;
    }
    inherited.apply_to_listener(socket2::SockRef::from(&socket))?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Serves SOCKS clients on `listener` until `shutdown` completes, then drains.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    serve(listener, Services::new(config), shutdown).await
}

/// [`run`] with services the caller built (and may share with the API).
pub async fn serve(
    listener: TcpListener,
    services: Arc<Services>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        services.add_own_address(addr);
    }
    if let Err(err) = set_inherited_options(&listener, &services.connect_policy().options) {
        // On Linux `conn.rs` relies on inheritance and sets nothing itself.
        warn!(%err, "listener options not set; client sockets may lack TCP_NODELAY and keepalive");
    }
    let tasks = TaskTracker::new();
    let force_close = CancellationToken::new();
    // The accept loop runs as a task, never on the thread that called us:
    // under `block_on` that thread is not a runtime worker, and every
    // accepted connection would then cross threads (a wake-up costing tens
    // of microseconds on a virtual machine) before its first byte is read.
    let accepting = tokio::spawn(accept_loop(
        listener,
        services.clone(),
        tasks.clone(),
        force_close.clone(),
    ));
    let timer_due_soon = tokio::spawn(keep_a_timer_due_soon());
    shutdown.await;
    timer_due_soon.abort();
    // Dropping the loop closes the listener.
    accepting.abort();
    let _ = accepting.await;
    tasks.close();
    let grace = services.config().server.shutdown_grace();
    let live = services.stats.connections_open();
    info!(live, ?grace, "stopped accepting; draining sessions");
    if tokio::time::timeout(grace, tasks.wait()).await.is_err() {
        let left = services.stats.connections_open();
        warn!(left, "grace period over; closing the remaining sessions");
        force_close.cancel();
        tasks.wait().await;
    }
    info!("all sessions closed");
    Ok(())
}

/// How far ahead the server always has a timer due; see [`keep_a_timer_due_soon`].
const TIMER_DUE_WITHIN: Duration = Duration::from_secs(1);

/// Keeps one timer due within [`TIMER_DUE_WITHIN`] for as long as the
/// server runs. Registering a timer due before every other one makes tokio
/// wake its I/O driver (an eventfd `write` and an extra `epoll_wait`), and
/// every session registers deadlines seconds away (handshake, connect,
/// half-close): without an earlier timer pending, each of them did, about
/// four system calls per short session. Costs one wake-up a second.
async fn keep_a_timer_due_soon() {
    loop {
        tokio::time::sleep(TIMER_DUE_WITHIN).await;
    }
}

/// Socket options every client connection gets, set once on the listener:
/// Linux copies them to each accepted socket, sparing a `setsockopt` per
/// connection (elsewhere `conn.rs` sets them on each socket). Client-socket
/// options that the kernel inherits this way belong here. A socket accepted
/// before they were set keeps what it had, so [`bind_with`] sets them before
/// listening; [`serve`] sets them again for a listener bound otherwise.
fn set_inherited_options(listener: &TcpListener, options: &SocketOptions) -> io::Result<()> {
    options.apply_to_listener(socket2::SockRef::from(listener))
}

async fn accept_loop(
    listener: TcpListener,
    services: Arc<Services>,
    tasks: TaskTracker,
    force_close: CancellationToken,
) {
    let mut backoff = AcceptBackoff::default();
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                if let Some(pause) = backoff.after_error(&err) {
                    warn!(%err, ?pause, "accept failed; backing off");
                    tokio::time::sleep(pause).await;
                }
                continue;
            }
        };
        backoff.reset();
        let Some(permit) = services.connection_limit.try_acquire() else {
            services.stats.refused_max_connections();
            tracing::debug!(%peer, "over max_connections; closed");
            continue;
        };
        let services = services.clone();
        let force_close = force_close.clone();
        // `client` is filled in when a trusted balancer's PROXY header names
        // someone else than `peer`.
        let span = tracing::debug_span!("conn", %peer, client = tracing::field::Empty);
        tasks.spawn(
            async move {
                conn::handle(stream, peer, services, force_close, permit).await;
            }
            .instrument(span),
        );
    }
}

/// Accept errors that concern one connection (the peer went away before
/// accept) are retried at once; anything else, such as EMFILE when the
/// process is out of descriptors, would repeat on every call, so the loop
/// sleeps with exponential backoff instead of spinning a core. Existing
/// connections keep being served meanwhile.
#[derive(Debug)]
struct AcceptBackoff {
    next: Duration,
}

impl AcceptBackoff {
    const FIRST: Duration = Duration::from_millis(5);
    const MAX: Duration = Duration::from_secs(1);

    fn after_error(&mut self, err: &io::Error) -> Option<Duration> {
        use io::ErrorKind::*;
        if matches!(
            err.kind(),
            ConnectionAborted | ConnectionReset | Interrupted
        ) {
            return None;
        }
        let pause = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        Some(pause)
    }

    fn reset(&mut self) {
        self.next = Self::FIRST;
    }
}

impl Default for AcceptBackoff {
    fn default() -> Self {
        Self { next: Self::FIRST }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_a_cap_and_resets() {
        let mut backoff = AcceptBackoff::default();
        let emfile = io::Error::from_raw_os_error(libc::EMFILE);
        let pauses: Vec<_> = (0..10)
            .filter_map(|_| backoff.after_error(&emfile))
            .collect();
        assert_eq!(pauses[0], Duration::from_millis(5));
        assert_eq!(pauses[1], Duration::from_millis(10));
        assert_eq!(*pauses.last().expect("ten pauses"), AcceptBackoff::MAX);
        backoff.reset();
        assert_eq!(backoff.after_error(&emfile), Some(Duration::from_millis(5)));
    }

    /// Every open connection is one task whose size is this future's: it is
    /// most of what an idle proxied connection costs, so it stays small
    /// (the handshake and connect states are boxed and freed early).
    #[tokio::test]
    async fn a_connection_task_stays_small() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let client = tokio::net::TcpStream::connect(listener.local_addr().expect("addr"))
            .await
            .expect("connect");
        let permit = Arc::new(tokio::sync::Semaphore::new(1))
            .try_acquire_owned()
            .expect("permit");
        let peer = client.local_addr().expect("addr");
        let services = Services::new(Config::default());
        let task = conn::handle(client, peer, services, CancellationToken::new(), permit);
        let size = std::mem::size_of_val(&task);
        eprintln!("connection task future: {size} bytes");
        assert!(size <= 768, "connection task is {size} bytes");
    }

    /// The per-connection `setsockopt` was dropped because accepted sockets
    /// inherit TCP_NODELAY from the listener; this pins that they do.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn accepted_sockets_inherit_nodelay_and_keepalive_from_the_listener() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let keepalive = crate::config::KeepaliveConfig::default();
        let options = SocketOptions::from_config(&Config {
            server: crate::config::ServerConfig {
                keepalive: keepalive.clone(),
                ..Default::default()
            },
            ..Default::default()
        });
        set_inherited_options(&listener, &options).expect("options");
        let addr = listener.local_addr().expect("addr");
        let (accepted, client) =
            tokio::join!(listener.accept(), tokio::net::TcpStream::connect(addr));
        let (accepted, _) = accepted.expect("accept");
        let _client = client.expect("connect");
        assert!(accepted.nodelay().expect("getsockopt"));
        let socket = socket2::SockRef::from(&accepted);
        assert!(socket.keepalive().expect("SO_KEEPALIVE"));
        assert_eq!(
            socket.keepalive_time().expect("TCP_KEEPIDLE"),
            std::time::Duration::from_secs(keepalive.idle_secs)
        );
        assert_eq!(
            socket.keepalive_interval().expect("TCP_KEEPINTVL"),
            std::time::Duration::from_secs(keepalive.interval_secs)
        );
        assert_eq!(
            socket.keepalive_retries().expect("TCP_KEEPCNT"),
            keepalive.count
        );
    }

    #[test]
    fn per_connection_errors_do_not_back_off() {
        let mut backoff = AcceptBackoff::default();
        let aborted = io::Error::from(io::ErrorKind::ConnectionAborted);
        assert_eq!(backoff.after_error(&aborted), None);
    }
}
