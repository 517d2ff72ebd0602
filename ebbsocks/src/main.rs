//! The `ebbsocks` command: run the proxy, check or print a configuration,
//! hash a password.

use std::io::BufRead;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use ebbsocks::config::{Config, DEFAULT_CONFIG_TOML};
use ebbsocks::{api, logging, memory, reload, server};
use tokio::net::TcpListener;

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Debug, Parser)]
#[command(
    version,
    about = "A SOCKS5/SOCKS4 proxy whose memory ebbs after spikes"
)]
struct Cli {
    /// Configuration file; without it the embedded default is used
    /// (listen 127.0.0.1:1080, no authentication).
    #[arg(long, short, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Load and validate FILE, then exit.
    CheckConfig { file: PathBuf },
    /// Print the commented default configuration.
    DefaultConfig,
    /// Read a password from the first line of stdin and print its argon2 hash.
    HashPassword,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::CheckConfig { file }) => Config::load(&file)
            .map(|_| println!("{}: ok", file.display()))
            .map_err(anyhow::Error::from),
        Some(Command::DefaultConfig) => {
            print!("{DEFAULT_CONFIG_TOML}");
            Ok(())
        }
        Some(Command::HashPassword) => hash_password(),
        None => run(cli.config),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("ebbsocks: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn hash_password() -> anyhow::Result<()> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the password from stdin")?;
    let password = line.trim_end_matches(['\r', '\n']);
    anyhow::ensure!(!password.is_empty(), "the password on stdin is empty");
    let hash = ebbsocks::auth::hash_password(password).map_err(anyhow::Error::msg)?;
    println!("{hash}");
    Ok(())
}

fn run(config_path: Option<PathBuf>) -> anyhow::Result<()> {
    let config = match &config_path {
        Some(path) => Config::load(path)?,
        None => Config::embedded_default(),
    };
    let log_level = logging::init(&config.logging);
    let open_files = raise_open_files_limit();
    warn_if_open_files_too_low(open_files, &config);
    if let Err(err) = memory::configure(&config.memory) {
        tracing::warn!(%err, "allocator settings not applied");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let served = runtime.block_on(serve(config, config_path, log_level));
    // Every session has finished: its access-log line is in a buffer.
    logging::flush();
    served
}

async fn serve(
    config: Config,
    config_path: Option<PathBuf>,
    log_level: Option<logging::LogLevel>,
) -> anyhow::Result<()> {
    let listen = config.server.listen;
    let inherited = ebbsocks::upstream::socket_options::SocketOptions::from_config(&config);
    let listener = server::bind_with(listen, config.server.reuse_port, &inherited)
        .with_context(|| format!("binding the SOCKS listener to {listen} (server.listen)"))?;
    let api_listener = if config.api.enabled {
        let addr = config.api.listen;
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding the API listener to {addr} (api.listen)"))?;
        Some(listener)
    } else {
        None
    };
    let mut api_options = api::ServeOptions::from_config(&config.api);
    let flush_ms = config.logging.access_log_flush_ms;
    if flush_ms > 0 {
        // Ends with the runtime; `run` flushes what is left. Spawned even
        // with the access log off, since a reload may turn it on; it waits
        // without a timer while no line comes.
        let interval = std::time::Duration::from_millis(flush_ms);
        tokio::spawn(logging::flush_every(interval));
    }
    let services = server::Services::new(config);
    let shutdown = tokio_util::sync::CancellationToken::new();
    let reloader = reload::Reloader::new(config_path, services.clone(), log_level);
    reload::watch_sighup(&reloader, shutdown.clone()).context("watching SIGHUP")?;
    api_options.reloader = Some(reloader);

    if let Some(listener) = api_listener {
        let state = api::ApiState {
            stats: services.stats.clone(),
            telemetry: services.telemetry.clone(),
            pool: services.pool.clone(),
            memory: services.memory.clone(),
        };
        let addr = listener.local_addr()?;
        services.add_own_address(addr);
        tracing::info!(%addr, "HTTP API listening");
        let stop = shutdown.clone().cancelled_owned();
        tokio::spawn(async move {
            if let Err(err) = api::serve_with(listener, state, api_options, stop).await {
                tracing::error!(%err, "HTTP API stopped");
            }
        });
    }

    // Installed before the server says it listens: a SIGTERM sent as soon as
    // it does must find the handler, not the default action (exit at once).
    let stop_signals = watch_stop_signals();
    tracing::info!(addr = %listener.local_addr()?, "SOCKS proxy listening");
    let signal = shutdown.clone();
    tokio::spawn(async move {
        stop_signals.await;
        signal.cancel();
    });
    server::serve(listener, services, shutdown.cancelled_owned()).await?;
    Ok(())
}

/// A proxy holds two descriptors per session; the usual soft limit of 1024
/// would cap it near 500 sessions, so take everything the hard limit allows.
/// Returns the soft limit now in force (`None` when unknown or unlimited).
fn raise_open_files_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only access the struct passed in.
    let read = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 };
    if !read {
        tracing::warn!("cannot read the open files limit");
        return None;
    }
    let wanted = libc::rlimit {
        rlim_cur: limit.rlim_max,
        rlim_max: limit.rlim_max,
    };
    // SAFETY: as above.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) } == 0 {
        limit = wanted;
        tracing::debug!(open_files = limit.rlim_cur, "open files limit raised");
    } else {
        tracing::warn!(
            open_files = limit.rlim_cur,
            "cannot raise the open files limit"
        );
    }
    (limit.rlim_cur != libc::RLIM_INFINITY).then_some(limit.rlim_cur)
}

/// Says at startup, rather than at the first EMFILE under load, that the
/// limit cannot hold `server.max_connections` sessions and what happens then.
fn warn_if_open_files_too_low(limit: Option<u64>, config: &Config) {
    let budget = server::fd_budget::FdBudget::for_config(config);
    if let Some(shortfall) = limit.and_then(|limit| budget.check(limit)) {
        tracing::warn!(
            limit = shortfall.limit,
            need = budget.total(),
            sessions = shortfall.sessions(),
            "{shortfall}"
        );
    }
}

/// Installs the SIGINT and SIGTERM handlers now; the future completes when
/// either signal arrives.
fn watch_stop_signals() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{signal, SignalKind};
    let interrupt = signal(SignalKind::interrupt());
    let term = signal(SignalKind::terminate());
    async move {
        let (mut interrupt, mut term) = match (interrupt, term) {
            (Ok(interrupt), Ok(term)) => (interrupt, term),
            (Err(err), _) | (_, Err(err)) => {
                tracing::warn!(%err, "cannot watch SIGINT/SIGTERM; falling back to ctrl-c only");
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = interrupt.recv() => tracing::info!("SIGINT received"),
            _ = term.recv() => tracing::info!("SIGTERM received"),
        }
    }
}
