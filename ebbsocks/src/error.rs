//! Why a client's session failed, and the one place where a failure becomes
//! a SOCKS reply code and a counted reason.

use std::io;
use std::time::Duration;

use crate::access::Denial;
use crate::proto::{ProtoError, ReplyCode};
use crate::server::limits::LimitHit;
use crate::upstream::resolve::{ResolveFailure, ResolveKind};

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("malformed message: {0}")]
    Protocol(#[from] ProtoError),
    #[error("message larger than {0} bytes")]
    Oversized(usize),
    #[error("handshake not complete within {0:?}")]
    HandshakeTimeout(Duration),
    #[error("client closed the connection during the handshake")]
    ClientClosed,
    #[error("client offered no acceptable authentication method")]
    NoAcceptableMethod,
    #[error("authentication failed for user {0:?}")]
    AuthFailed(String),
    #[error("login refused: this client used up its budget of failed logins")]
    AuthThrottled,
    #[error("SOCKS4 refused because this server requires a password")]
    Socks4NeedsAuth,
    #[error("command {0} is not supported")]
    UnsupportedCommand(&'static str),
    #[error("refused by access rule {}", .0.rule)]
    Denied(Denial),
    #[error("too many concurrent sessions ({})", .0.reason())]
    SessionLimit(LimitHit),
    #[error("cannot resolve {host}: {failure}")]
    Resolve {
        host: String,
        failure: ResolveFailure,
    },
    #[error("connect to {target} failed: {source}")]
    Connect { target: String, source: io::Error },
    #[error("client I/O error: {0}")]
    ClientIo(io::Error),
    #[error("no BIND peer connected within {0:?}")]
    BindTimeout(Duration),
    #[error("client closed its control connection while BIND was waiting")]
    BindClientClosed,
    #[error("client sent more than {0} bytes before its BIND peer connected")]
    BindEarlyData(usize),
    #[error("cannot listen for the BIND peer: {0}")]
    BindListen(io::Error),
    #[error("all {0} UDP associations are in use")]
    UdpAssociationsFull(usize),
    #[error("cannot open the UDP relay socket: {0}")]
    UdpRelaySocket(io::Error),
    #[error("PROXY protocol header from a source not in server.proxy_protocol.trusted")]
    UntrustedProxyHeader,
}

impl SessionError {
    /// The SOCKS5 reply code that tells the client what went wrong.
    pub fn reply_code(&self) -> ReplyCode {
        match self {
            Self::Protocol(ProtoError::UnsupportedCommand(_)) | Self::UnsupportedCommand(_) => {
                ReplyCode::CommandNotSupported
            }
            Self::Protocol(ProtoError::UnsupportedAddressType(_)) => {
                ReplyCode::AddressTypeNotSupported
            }
            Self::Denied(_)
            | Self::SessionLimit(_)
            | Self::AuthFailed(_)
            | Self::AuthThrottled
            | Self::Socks4NeedsAuth => ReplyCode::NotAllowed,
            // A lookup that ran out of time is a timeout like a connect's.
            Self::Resolve { failure, .. } if failure.kind == ResolveKind::Timeout => {
                ReplyCode::TtlExpired
            }
            Self::Resolve { .. } => ReplyCode::HostUnreachable,
            Self::Connect { source, .. } | Self::BindListen(source) => connect_reply_code(source),
            // As for a connect timeout: the code clients report as a timeout.
            Self::BindTimeout(_) => ReplyCode::TtlExpired,
            Self::Protocol(_)
            | Self::Oversized(_)
            | Self::HandshakeTimeout(_)
            | Self::ClientClosed
            | Self::NoAcceptableMethod
            | Self::ClientIo(_)
            | Self::BindClientClosed
            | Self::BindEarlyData(_)
            | Self::UdpAssociationsFull(_)
            | Self::UdpRelaySocket(_)
            | Self::UntrustedProxyHeader => ReplyCode::GeneralFailure,
        }
    }

    /// A short, stable label under which the failure is counted.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Protocol(err) => err.reason(),
            Self::Oversized(_) => "oversized_message",
            Self::HandshakeTimeout(_) => "handshake_timeout",
            Self::ClientClosed => "client_closed",
            Self::NoAcceptableMethod => "no_acceptable_method",
            Self::AuthFailed(_) => "auth_failed",
            Self::AuthThrottled => "auth_throttled",
            Self::Socks4NeedsAuth => "socks4_auth_required",
            Self::UnsupportedCommand(_) => "unsupported_command",
            Self::Denied(_) => "not_allowed",
            Self::SessionLimit(hit) => hit.reason(),
            Self::Resolve { failure, .. } => resolve_reason(failure.kind),
            Self::Connect { source, .. } => connect_reason(source),
            Self::ClientIo(_) => "client_io",
            Self::BindTimeout(_) => "bind_timeout",
            Self::BindClientClosed => "bind_client_closed",
            Self::BindEarlyData(_) => "bind_early_data_too_large",
            Self::BindListen(_) => "bind_listen_failed",
            Self::UdpAssociationsFull(_) => "udp_associations_full",
            Self::UdpRelaySocket(_) => "udp_relay_socket",
            Self::UntrustedProxyHeader => "proxy_header_untrusted",
        }
    }
}

/// The [`SessionError::reason`]s that are authentication failures: a
/// subset of the handshake failures, also counted on their own by
/// `/metrics`.
pub const AUTH_FAILURE_REASONS: [&str; 4] = [
    "auth_failed",
    "auth_throttled",
    "no_acceptable_method",
    "socks4_auth_required",
];

fn connect_reply_code(err: &io::Error) -> ReplyCode {
    match err.kind() {
        io::ErrorKind::ConnectionRefused => ReplyCode::ConnectionRefused,
        io::ErrorKind::NetworkUnreachable => ReplyCode::NetworkUnreachable,
        io::ErrorKind::HostUnreachable | io::ErrorKind::AddrNotAvailable => {
            ReplyCode::HostUnreachable
        }
        // RFC 1928 has no "timed out"; "TTL expired" is the code clients
        // report as a timeout.
        io::ErrorKind::TimedOut => ReplyCode::TtlExpired,
        io::ErrorKind::PermissionDenied => ReplyCode::NotAllowed,
        _ => ReplyCode::GeneralFailure,
    }
}

fn resolve_reason(kind: ResolveKind) -> &'static str {
    match kind {
        ResolveKind::NotFound => "resolve_not_found",
        ResolveKind::NoAddresses => "resolve_no_addresses",
        ResolveKind::Timeout => "resolve_timeout",
        ResolveKind::Unavailable => "resolve_unavailable",
        ResolveKind::Failed => "resolve_failed",
    }
}

fn connect_reason(err: &io::Error) -> &'static str {
    match err.kind() {
        io::ErrorKind::ConnectionRefused => "connect_refused",
        io::ErrorKind::NetworkUnreachable => "network_unreachable",
        io::ErrorKind::HostUnreachable | io::ErrorKind::AddrNotAvailable => "host_unreachable",
        io::ErrorKind::TimedOut => "connect_timeout",
        io::ErrorKind::PermissionDenied => "connect_not_permitted",
        _ => "connect_failed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connect_error(kind: io::ErrorKind) -> SessionError {
        SessionError::Connect {
            target: "192.0.2.1:80".into(),
            source: io::Error::from(kind),
        }
    }

    #[test]
    fn connect_failures_map_to_their_reply_codes() {
        let cases = [
            (
                io::ErrorKind::ConnectionRefused,
                ReplyCode::ConnectionRefused,
            ),
            (
                io::ErrorKind::NetworkUnreachable,
                ReplyCode::NetworkUnreachable,
            ),
            (io::ErrorKind::HostUnreachable, ReplyCode::HostUnreachable),
            (io::ErrorKind::TimedOut, ReplyCode::TtlExpired),
            (io::ErrorKind::PermissionDenied, ReplyCode::NotAllowed),
            (io::ErrorKind::Other, ReplyCode::GeneralFailure),
        ];
        for (kind, code) in cases {
            assert_eq!(connect_error(kind).reply_code(), code, "{kind:?}");
        }
        assert_eq!(
            connect_error(io::ErrorKind::TimedOut).reason(),
            "connect_timeout"
        );
    }

    #[test]
    fn bind_failures_have_their_codes_and_reasons() {
        let cases = [
            (
                SessionError::BindTimeout(Duration::from_secs(60)),
                ReplyCode::TtlExpired,
                "bind_timeout",
            ),
            (
                SessionError::BindClientClosed,
                ReplyCode::GeneralFailure,
                "bind_client_closed",
            ),
            (
                SessionError::BindEarlyData(8192),
                ReplyCode::GeneralFailure,
                "bind_early_data_too_large",
            ),
            (
                SessionError::BindListen(io::Error::from(io::ErrorKind::NetworkUnreachable)),
                ReplyCode::NetworkUnreachable,
                "bind_listen_failed",
            ),
        ];
        for (err, code, reason) in cases {
            assert_eq!(err.reply_code(), code, "{err}");
            assert_eq!(err.reason(), reason, "{err}");
        }
    }

    #[test]
    fn protocol_failures_map_to_their_reply_codes() {
        let unsupported = SessionError::from(ProtoError::UnsupportedCommand(9));
        assert_eq!(unsupported.reply_code(), ReplyCode::CommandNotSupported);
        let bad_atyp = SessionError::from(ProtoError::UnsupportedAddressType(7));
        assert_eq!(bad_atyp.reply_code(), ReplyCode::AddressTypeNotSupported);
        assert_eq!(
            SessionError::UnsupportedCommand("BIND").reply_code(),
            ReplyCode::CommandNotSupported
        );
        let resolve = |kind| SessionError::Resolve {
            host: "nowhere.invalid".into(),
            failure: ResolveFailure::new(kind, "words from the resolver"),
        };
        let cases = [
            (
                ResolveKind::NotFound,
                ReplyCode::HostUnreachable,
                "resolve_not_found",
            ),
            (
                ResolveKind::NoAddresses,
                ReplyCode::HostUnreachable,
                "resolve_no_addresses",
            ),
            (
                ResolveKind::Timeout,
                ReplyCode::TtlExpired,
                "resolve_timeout",
            ),
            (
                ResolveKind::Unavailable,
                ReplyCode::HostUnreachable,
                "resolve_unavailable",
            ),
            (
                ResolveKind::Failed,
                ReplyCode::HostUnreachable,
                "resolve_failed",
            ),
        ];
        for (kind, code, reason) in cases {
            assert_eq!(resolve(kind).reply_code(), code, "{kind:?}");
            assert_eq!(resolve(kind).reason(), reason, "{kind:?}");
        }
        let denied = SessionError::Denied(Denial {
            rule: "no-ssh".into(),
        });
        assert_eq!(denied.reply_code(), ReplyCode::NotAllowed);
        assert_eq!(denied.to_string(), "refused by access rule no-ssh");
        assert_eq!(
            SessionError::Oversized(600).reply_code(),
            ReplyCode::GeneralFailure
        );
    }

    #[test]
    fn auth_failures_are_the_listed_reasons() {
        let auth = [
            SessionError::AuthFailed("alice".into()),
            SessionError::AuthThrottled,
            SessionError::NoAcceptableMethod,
            SessionError::Socks4NeedsAuth,
        ];
        let reasons: Vec<&str> = auth.iter().map(SessionError::reason).collect();
        assert_eq!(reasons, AUTH_FAILURE_REASONS);
        assert!(!AUTH_FAILURE_REASONS.contains(&SessionError::ClientClosed.reason()));
    }

    #[test]
    fn udp_refusals_are_general_failures_with_their_own_reasons() {
        let full = SessionError::UdpAssociationsFull(8);
        assert_eq!(full.reply_code(), ReplyCode::GeneralFailure);
        assert_eq!(full.reason(), "udp_associations_full");
        let socket = SessionError::UdpRelaySocket(io::Error::from(io::ErrorKind::AddrInUse));
        assert_eq!(socket.reply_code(), ReplyCode::GeneralFailure);
        assert_eq!(socket.reason(), "udp_relay_socket");
    }
}
