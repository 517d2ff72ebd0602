//! Waiting for the one inbound connection, while watching the deadline and
//! the client's control connection.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};

use super::peer::canonical;
use crate::error::SessionError;

/// The most a client may send on its control connection before its peer
/// has connected (counting the bytes that came with its request). They are
/// kept and forwarded to the peer first; more ends the BIND, since without
/// reading we could not see the client leave.
pub(super) const EARLY_DATA_CAP: usize = 8 * 1024;

/// Accepts connections on `listener` until one passes `admit`, the client
/// closes its control connection (or fails), or `timeout` passes. A
/// connection that does not pass is closed at once and the wait goes on, so
/// a stray scanner cannot end the client's BIND.
///
/// Takes the listener by value: whatever the outcome, it is closed when
/// this returns, before the caller replies to the client.
pub(super) async fn accept_peer(
    listener: TcpListener,
    client: &mut TcpStream,
    timeout: Duration,
    early: &mut Vec<u8>,
    mut admit: impl FnMut(SocketAddr) -> bool,
) -> Result<(TcpStream, SocketAddr), SessionError> {
    let expired = tokio::time::sleep(timeout);
    tokio::pin!(expired);
    let mut chunk = [0u8; 512];
    loop {
        // All three are cancel-safe: a branch that loses the race has
        // consumed nothing.
        tokio::select! {
            () = &mut expired => return Err(SessionError::BindTimeout(timeout)),
            accepted = listener.accept() => match accepted {
                Ok((stream, from)) => {
                    let from = canonical(from);
                    if admit(from) {
                        return Ok((stream, from));
                    }
                    tracing::debug!(%from, "BIND peer rejected; still waiting");
                }
                // The connection went away before we took it: keep waiting.
                Err(err) if is_transient(&err) => {}
                // EMFILE and the like would repeat on every call.
                Err(err) => return Err(SessionError::BindListen(err)),
            },
            read = client.read(&mut chunk) => match read {
                Ok(0) | Err(_) => return Err(SessionError::BindClientClosed),
                Ok(n) if early.len() + n > EARLY_DATA_CAP => {
                    return Err(SessionError::BindEarlyData(EARLY_DATA_CAP));
                }
                Ok(n) => early.extend_from_slice(&chunk[..n]),
            },
        }
    }
}

fn is_transient(err: &io::Error) -> bool {
    use io::ErrorKind::*;
    matches!(
        err.kind(),
        ConnectionAborted | ConnectionReset | Interrupted
    )
}
