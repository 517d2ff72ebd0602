//! pulse's SOCKS5 client (`pulse::socks::handshake` for CONNECT and
//! `pulse::socks::udp_associate`) against any bytes a proxy may send back:
//! method selection, RFC 1929 status, reply.
//!
//! The first input byte picks the client's side (bit 0: with credentials;
//! bit 1: a domain target; bit 2: UDP ASSOCIATE instead of CONNECT); the
//! rest is what the server sends. The reader
//! never blocks, so one poll must finish the handshake. Asserts: no panic,
//! no hang, an answer that only depends on the bytes read (a longer input
//! gives the same answer, one byte less is an early EOF), and agreement
//! with ebbsocks' own parsers: when they accept the server's bytes as a
//! successful exchange, pulse returns the same bound address, and pulse
//! accepts nothing they reject except what it documents (a domain in
//! BND.ADDR, a nonzero RSV, which it does not read).
#![no_main]

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use ebbsocks_fuzz::proto::{
    method, parse_method_selection, parse_userpass_status, ProtoError, Reply, ReplyCode,
};
use libfuzzer_sys::fuzz_target;
use pulse::socks::{handshake, udp_associate, Credentials, SocksError, Target};

/// Runs the handshake on `server`'s bytes: the result (as text, since
/// `SocksError` has no `PartialEq`) and how many bytes it read.
fn run(
    server: &[u8],
    target: &Target,
    creds: Option<&Credentials>,
    associate: bool,
) -> (Result<Target, String>, usize) {
    let mut rest = server;
    let result = {
        let mut stream = tokio::io::join(&mut rest, tokio::io::sink());
        let future = async {
            if associate {
                udp_associate(&mut stream, target, creds).await
            } else {
                handshake(&mut stream, target, creds).await
            }
        };
        let poll = pin!(future).poll(&mut Context::from_waker(Waker::noop()));
        match poll {
            Poll::Ready(result) => result.map_err(|e| describe(&e)),
            Poll::Pending => panic!("handshake waits on a reader that never blocks"),
        }
    };
    (result, server.len() - rest.len())
}

fn describe(error: &SocksError) -> String {
    match error {
        SocksError::Io(e) => format!("io {:?}", e.kind()),
        other => other.to_string(),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, server)) = data.split_first() else {
        return;
    };
    let creds = Credentials {
        user: "fuzz".into(),
        pass: "secret".into(),
    };
    let creds = (flags & 1 != 0).then_some(&creds);
    let associate = flags & 4 != 0;
    let target = if flags & 2 != 0 {
        Target::Domain("example.com".into(), 443)
    } else {
        Target::Addr(SocketAddr::from(([192, 0, 2, 1], 80)))
    };

    let (result, used) = run(server, &target, creds, associate);
    assert!(used <= server.len());
    // The answer depends on the bytes read and nothing after them.
    assert_eq!(
        run(&server[..used], &target, creds, associate),
        (result.clone(), used)
    );
    if used > 0 && result != Err(format!("io {:?}", io::ErrorKind::UnexpectedEof)) {
        let (short, _) = run(&server[..used - 1], &target, creds, associate);
        assert_eq!(short, Err(format!("io {:?}", io::ErrorKind::UnexpectedEof)));
    }

    // What ebbsocks' parsers make of the same bytes.
    let want = if creds.is_some() {
        method::USERPASS
    } else {
        method::NO_AUTH
    };
    let mut at = 0;
    let mut accepted = matches!(parse_method_selection(server), Ok(Some((m, 2))) if m == want);
    at += 2;
    if accepted && creds.is_some() {
        accepted = matches!(parse_userpass_status(&server[at..]), Ok(Some((true, 2))));
        at += 2;
    }
    let reply = if accepted {
        Some(Reply::parse(&server[at..]))
    } else {
        None
    };
    match (&result, reply) {
        (Ok(bound), Some(Ok(Some((reply, len))))) => {
            assert_eq!(reply.code, ReplyCode::Succeeded);
            assert_eq!(bound, &Target::Addr(reply.bound));
            assert_eq!(at + len, used);
        }
        (Ok(bound), Some(Err(ProtoError::UnsupportedAddressType(0x03)))) => {
            assert!(matches!(bound, Target::Domain(..)), "{bound:?}");
        }
        (Ok(_), Some(Err(ProtoError::BadReserved(_)))) => {}
        (Ok(bound), other) => panic!("pulse accepted {bound:?}; ebbsocks: {other:?}"),
        (Err(e), Some(Ok(Some((reply, _))))) => {
            assert_ne!(
                reply.code,
                ReplyCode::Succeeded,
                "pulse refused a good reply: {e}"
            );
        }
        (Err(_), _) => {}
    }
});
