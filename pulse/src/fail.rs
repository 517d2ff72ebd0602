//! Why a connection failed, as a small set of kinds that are counted and
//! printed. A load tool that hides failures measures the wrong thing, so
//! every failure ends up in one of these buckets.

use std::collections::BTreeMap;
use std::fmt;
use std::io;

use crate::socks::{reply_text, SocksError};

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FailKind {
    Refused,
    Timeout,
    Reset,
    /// EMFILE/ENFILE: this process (or the system) ran out of descriptors.
    FdLimit,
    /// EADDRNOTAVAIL: no free local port for another connection.
    NoLocalPort,
    /// The other side closed before the exchange finished.
    PeerClosed,
    /// A held connection turned out closed or reset when the hold ended.
    ClosedDuringHold,
    SocksReply(u8),
    SocksNoMethod,
    SocksAuthRejected,
    /// Wrong version byte, unexpected method or address type.
    SocksProtocol,
    /// Echoed bytes differ from what was sent.
    BadEcho,
    /// The run's overall deadline passed before it finished.
    Deadline,
    Other(String),
}

impl FailKind {
    /// A stable key for JSON output.
    pub fn key(&self) -> String {
        match self {
            FailKind::Refused => "refused".into(),
            FailKind::Timeout => "timeout".into(),
            FailKind::Reset => "reset".into(),
            FailKind::FdLimit => "fd_limit".into(),
            FailKind::NoLocalPort => "no_local_port".into(),
            FailKind::PeerClosed => "peer_closed".into(),
            FailKind::ClosedDuringHold => "closed_during_hold".into(),
            FailKind::SocksReply(c) => format!("socks_reply_{c:02x}"),
            FailKind::SocksNoMethod => "socks_no_acceptable_method".into(),
            FailKind::SocksAuthRejected => "socks_auth_rejected".into(),
            FailKind::SocksProtocol => "socks_protocol".into(),
            FailKind::BadEcho => "bad_echo".into(),
            FailKind::Deadline => "deadline".into(),
            FailKind::Other(s) => format!("other_{s}"),
        }
    }

    pub fn from_io(e: &io::Error) -> FailKind {
        match e.raw_os_error() {
            Some(libc::EMFILE) | Some(libc::ENFILE) => return FailKind::FdLimit,
            Some(libc::EADDRNOTAVAIL) => return FailKind::NoLocalPort,
            _ => {}
        }
        match e.kind() {
            io::ErrorKind::ConnectionRefused => FailKind::Refused,
            io::ErrorKind::TimedOut => FailKind::Timeout,
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe => FailKind::Reset,
            io::ErrorKind::UnexpectedEof => FailKind::PeerClosed,
            kind => FailKind::Other(format!("{kind:?}").to_lowercase()),
        }
    }

    pub fn from_socks(e: &SocksError) -> FailKind {
        match e {
            SocksError::Io(io) => FailKind::from_io(io),
            SocksError::NoAcceptableMethod => FailKind::SocksNoMethod,
            SocksError::AuthRejected(_) => FailKind::SocksAuthRejected,
            SocksError::Reply(c) => FailKind::SocksReply(*c),
            SocksError::UnexpectedMethod(_)
            | SocksError::BadVersion(_)
            | SocksError::BadAddressType(_)
            | SocksError::TooLong(_) => FailKind::SocksProtocol,
        }
    }
}

impl fmt::Display for FailKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailKind::Refused => f.write_str("connection refused"),
            FailKind::Timeout => f.write_str("timeout"),
            FailKind::Reset => f.write_str("connection reset"),
            FailKind::FdLimit => f.write_str("fd limit (EMFILE/ENFILE)"),
            FailKind::NoLocalPort => f.write_str("no free local port (EADDRNOTAVAIL)"),
            FailKind::PeerClosed => f.write_str("closed by peer mid-exchange"),
            FailKind::ClosedDuringHold => f.write_str("closed by peer while held"),
            FailKind::SocksReply(c) => write!(f, "socks reply {c:#04x} ({})", reply_text(*c)),
            FailKind::SocksNoMethod => f.write_str("socks: no acceptable method"),
            FailKind::SocksAuthRejected => f.write_str("socks: authentication rejected"),
            FailKind::SocksProtocol => f.write_str("socks: protocol violation"),
            FailKind::BadEcho => f.write_str("echo mismatch"),
            FailKind::Deadline => f.write_str("overall deadline passed"),
            FailKind::Other(s) => write!(f, "other i/o error ({s})"),
        }
    }
}

/// Failure counts by kind. Each worker keeps its own and they are merged,
/// so counting needs no lock.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FailCounts(BTreeMap<FailKind, u64>);

impl FailCounts {
    pub fn add(&mut self, kind: FailKind) {
        self.add_n(kind, 1);
    }

    pub fn add_n(&mut self, kind: FailKind, n: u64) {
        if n > 0 {
            *self.0.entry(kind).or_default() += n;
        }
    }

    pub fn merge(&mut self, other: FailCounts) {
        for (k, n) in other.0 {
            self.add_n(k, n);
        }
    }

    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Stable keys to counts, for JSON.
    pub fn to_map(&self) -> BTreeMap<String, u64> {
        self.0.iter().map(|(k, n)| (k.key(), *n)).collect()
    }

    /// One line per kind, most frequent first, for people.
    pub fn lines(&self) -> Vec<String> {
        let mut v: Vec<_> = self.0.iter().collect();
        v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        v.into_iter().map(|(k, n)| format!("{n:>8}  {k}")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_os_errors() {
        let emfile = io::Error::from_raw_os_error(libc::EMFILE);
        assert_eq!(FailKind::from_io(&emfile), FailKind::FdLimit);
        let refused = io::Error::from_raw_os_error(libc::ECONNREFUSED);
        assert_eq!(FailKind::from_io(&refused), FailKind::Refused);
        let reset = io::Error::from_raw_os_error(libc::ECONNRESET);
        assert_eq!(FailKind::from_io(&reset), FailKind::Reset);
        let eof = io::Error::from(io::ErrorKind::UnexpectedEof);
        assert_eq!(FailKind::from_io(&eof), FailKind::PeerClosed);
        let reply = SocksError::Reply(5);
        assert_eq!(FailKind::from_socks(&reply).key(), "socks_reply_05");
    }

    #[test]
    fn counts_merge_and_sort() {
        let mut a = FailCounts::default();
        a.add(FailKind::Timeout);
        let mut b = FailCounts::default();
        b.add_n(FailKind::SocksReply(5), 3);
        b.add(FailKind::Timeout);
        b.add_n(FailKind::Refused, 0);
        a.merge(b);
        assert_eq!(a.total(), 5);
        assert_eq!(a.to_map().len(), 2);
        assert!(a.lines()[0].contains("socks reply 0x05 (connection refused)"));
    }
}
