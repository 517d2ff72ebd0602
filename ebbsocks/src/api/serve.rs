//! Serving the API over HTTP/1.1 with hyper directly, because `axum::serve`
//! has no timer: without one a client that sends half a request line keeps
//! its connection (and a task) forever.
//!
//! Each connection gets a header-read deadline (from connecting, and again
//! after each response, so idle keep-alive connections are closed too) and
//! a bounded read buffer. At most `max_connections` are served at once; one
//! more is answered `503` with a JSON body, written without waiting, and
//! closed: queueing would let slow clients hold the queue instead.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use crate::config::{ApiConfig, Secret};
use crate::reload::Reloader;

/// The largest request head hyper reads (request line and headers). Heads
/// over [`super::guard::MAX_HEAD_BYTES`] but within this get a JSON `431`
/// from the router; beyond it hyper answers `431` without a body.
pub const MAX_READ_BUFFER: usize = 16 * 1024;

/// How long shutdown waits for requests in progress.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

const BUSY_RESPONSE: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: application/json\r\ncontent-length: 36\r\nconnection: close\r\n\r\n\
{\"error\":\"too many API connections\"}";

/// How the API is served.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// With a token, every route but `/healthz` requires it.
    pub token: Option<Secret>,
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    /// Serves `POST /api/reload`, and takes the token from the
    /// configuration in force instead of `token`.
    pub reloader: Option<Arc<Reloader>>,
}

impl ServeOptions {
    pub fn from_config(api: &ApiConfig) -> Self {
        Self {
            token: api.token.clone(),
            max_connections: api.max_connections,
            header_read_timeout: api.header_read_timeout(),
            reloader: None,
        }
    }
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self::from_config(&ApiConfig::default())
    }
}

/// Accepts connections until `shutdown` completes, then lets the requests
/// in progress finish (for a few seconds at most).
pub(super) async fn run(
    listener: TcpListener,
    router: Router,
    options: ServeOptions,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let limit = Arc::new(Semaphore::new(options.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_read_timeout)
        .max_buf_size(MAX_READ_BUFFER);
    let builder = Arc::new(builder);
    let mut pause = AcceptPause::default();
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(err) => {
                    pause.after_error(&err).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        pause.reset();
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            refuse_busy(stream);
            continue;
        };
        let service = TowerToHyperService::new(router.clone());
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            // Errors here are the client's (timeouts, resets, bad requests).
            if let Err(err) = connection.await {
                tracing::debug!(%err, "API connection ended");
            }
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::debug!("API connections still open at shutdown; dropped");
    }
    Ok(())
}

/// Answers a connection over the cap without waiting for it: the response
/// fits an empty socket buffer, and whatever does not is not worth a task.
fn refuse_busy(stream: TcpStream) {
    let _ = stream.try_write(BUSY_RESPONSE);
    tracing::debug!("API connection over api.max_connections; answered 503 and closed");
}

/// Backs off after accept errors that would repeat (EMFILE), as the SOCKS
/// accept loop does, instead of spinning a core.
#[derive(Debug)]
struct AcceptPause(Duration);

impl Default for AcceptPause {
    fn default() -> Self {
        Self(Duration::from_millis(5))
    }
}

impl AcceptPause {
    async fn after_error(&mut self, err: &io::Error) {
        use io::ErrorKind::*;
        if matches!(
            err.kind(),
            ConnectionAborted | ConnectionReset | Interrupted
        ) {
            return;
        }
        tracing::warn!(%err, pause = ?self.0, "API accept failed; backing off");
        tokio::time::sleep(self.0).await;
        self.0 = (self.0 * 2).min(Duration::from_secs(1));
    }

    fn reset(&mut self) {
        *self = Self::default();
    }
}

#[cfg(test)]
mod tests {
    use super::BUSY_RESPONSE;

    #[test]
    fn the_busy_response_has_the_right_length() {
        let text = std::str::from_utf8(BUSY_RESPONSE).expect("ascii");
        let (head, body) = text.split_once("\r\n\r\n").expect("head and body");
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let json: serde_json::Value = serde_json::from_str(body).expect("JSON body");
        assert!(json["error"].is_string());
    }
}
