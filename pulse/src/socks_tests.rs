use super::*;
use tokio::io::{duplex, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How the fake server answers each step.
#[derive(Clone)]
struct Fake {
    version: u8,
    method: u8,
    auth_status: u8,
    reply: u8,
    /// `ATYP BND.ADDR BND.PORT` sent after a success reply.
    bound: Vec<u8>,
}

impl Default for Fake {
    fn default() -> Self {
        Fake {
            version: 5,
            method: METHOD_NONE,
            auth_status: 0,
            reply: 0,
            bound: vec![1, 127, 0, 0, 1, 0x1F, 0x90],
        }
    }
}

/// What the fake server received.
#[derive(Debug, Default)]
struct Seen {
    greeting: Vec<u8>,
    auth: Option<(String, String)>,
    request: Vec<u8>,
}

/// A tiny SOCKS5 server: reads exactly what RFC 1928/1929 say a client sends
/// and answers as `fake` says.
async fn serve<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, fake: Fake) -> Seen {
    let mut seen = Seen::default();
    let mut head = [0u8; 2];
    s.read_exact(&mut head).await.unwrap();
    let mut methods = vec![0u8; usize::from(head[1])];
    s.read_exact(&mut methods).await.unwrap();
    seen.greeting = [head.to_vec(), methods.clone()].concat();
    s.write_all(&[fake.version, fake.method]).await.unwrap();
    // A client that sees a bad version or an unoffered method hangs up.
    if fake.version != 5 || !methods.contains(&fake.method) {
        return seen;
    }
    if fake.method == METHOD_USER_PASS {
        let ver = s.read_u8().await.unwrap();
        assert_eq!(ver, 1);
        let mut user = vec![0u8; usize::from(s.read_u8().await.unwrap())];
        s.read_exact(&mut user).await.unwrap();
        let mut pass = vec![0u8; usize::from(s.read_u8().await.unwrap())];
        s.read_exact(&mut pass).await.unwrap();
        seen.auth = Some((
            String::from_utf8(user).unwrap(),
            String::from_utf8(pass).unwrap(),
        ));
        s.write_all(&[1, fake.auth_status]).await.unwrap();
        if fake.auth_status != 0 {
            return seen;
        }
    }
    let mut req = [0u8; 4];
    s.read_exact(&mut req).await.unwrap();
    seen.request = req.to_vec();
    let rest = match req[3] {
        1 => 4 + 2,
        4 => 16 + 2,
        3 => usize::from(s.read_u8().await.unwrap()) + 2,
        _ => panic!("bad atyp"),
    };
    if req[3] == 3 {
        seen.request.push(u8::try_from(rest - 2).unwrap());
    }
    let mut tail = vec![0u8; rest];
    s.read_exact(&mut tail).await.unwrap();
    seen.request.extend_from_slice(&tail);
    let mut reply = vec![5, fake.reply, 0];
    reply.extend_from_slice(&fake.bound);
    s.write_all(&reply).await.unwrap();
    seen
}

async fn run(
    fake: Fake,
    target: Target,
    creds: Option<Credentials>,
) -> (Result<Target, SocksError>, Seen) {
    let (mut client, server) = duplex(1024);
    let server = tokio::spawn(serve(server, fake));
    let result = handshake(&mut client, &target, creds.as_ref()).await;
    drop(client);
    (result, server.await.unwrap())
}

fn v4(s: &str) -> Target {
    Target::parse(s).unwrap()
}

#[test]
fn encodes_messages_byte_exact() {
    // VER=5 NMETHODS=1 METHOD=no-auth
    assert_eq!(encode_greeting(false), [5, 1, 0]);
    // VER=5 NMETHODS=1 METHOD=user/pass
    assert_eq!(encode_greeting(true), [5, 1, 2]);
    let c = Credentials {
        user: "al".into(),
        pass: "xyz".into(),
    };
    // VER=1 ULEN=2 "al" PLEN=3 "xyz"
    assert_eq!(encode_auth(&c).unwrap(), b"\x01\x02al\x03xyz");
    // CONNECT, IPv4 10.0.0.1 port 80
    assert_eq!(
        encode_connect(&v4("10.0.0.1:80")).unwrap(),
        [5, 1, 0, 1, 10, 0, 0, 1, 0, 80]
    );
    // CONNECT, IPv6 ::1 port 443
    let mut v6 = vec![5, 1, 0, 4];
    v6.extend_from_slice(&[0; 15]);
    v6.extend_from_slice(&[1, 0x01, 0xBB]);
    assert_eq!(encode_connect(&v4("[::1]:443")).unwrap(), v6);
    // CONNECT, domain "ab.c" port 8080
    assert_eq!(
        encode_connect(&v4("ab.c:8080")).unwrap(),
        b"\x05\x01\x00\x03\x04ab.c\x1f\x90"
    );
    let long = Target::Domain("a".repeat(256), 1);
    assert!(matches!(encode_connect(&long), Err(SocksError::TooLong(_))));
}

#[test]
fn parses_targets() {
    assert_eq!(
        Target::parse("127.0.0.1:1080").unwrap(),
        Target::Addr("127.0.0.1:1080".parse().unwrap())
    );
    assert_eq!(
        Target::parse("localhost:9").unwrap(),
        Target::Domain("localhost".into(), 9)
    );
    assert!(Target::parse("localhost").is_err());
    assert!(Target::parse("host:99999").is_err());
    assert!(Target::parse(":80").is_err());
}

#[tokio::test]
async fn connect_without_auth_reports_bound_address() {
    let (res, seen) = run(Fake::default(), v4("10.1.2.3:80"), None).await;
    assert_eq!(res.unwrap(), v4("127.0.0.1:8080"));
    assert_eq!(seen.greeting, [5, 1, 0]);
    assert_eq!(seen.request, [5, 1, 0, 1, 10, 1, 2, 3, 0, 80]);
}

#[tokio::test]
async fn connect_with_domain_and_v6_bound() {
    let mut bound = vec![4];
    bound.extend_from_slice(&[0; 15]);
    bound.extend_from_slice(&[1, 0, 7]);
    let fake = Fake {
        bound,
        ..Fake::default()
    };
    let (res, seen) = run(fake, v4("example.org:443"), None).await;
    assert_eq!(res.unwrap(), v4("[::1]:7"));
    assert_eq!(seen.request, b"\x05\x01\x00\x03\x0bexample.org\x01\xbb");
}

#[tokio::test]
async fn domain_bound_address_is_returned() {
    let fake = Fake {
        bound: b"\x03\x04host\x00\x50".to_vec(),
        ..Fake::default()
    };
    let (res, _) = run(fake, v4("1.1.1.1:1"), None).await;
    assert_eq!(res.unwrap(), Target::Domain("host".into(), 80));
}

#[tokio::test]
async fn username_password_is_sent() {
    let fake = Fake {
        method: METHOD_USER_PASS,
        ..Fake::default()
    };
    let creds = Credentials {
        user: "alice".into(),
        pass: "s3cret".into(),
    };
    let (res, seen) = run(fake, v4("10.0.0.1:1"), Some(creds)).await;
    assert!(res.is_ok());
    assert_eq!(seen.greeting, [5, 1, 2]);
    assert_eq!(seen.auth, Some(("alice".into(), "s3cret".into())));
}

#[tokio::test]
async fn rejected_auth_and_methods_are_errors() {
    let creds = Credentials {
        user: "u".into(),
        pass: "p".into(),
    };
    let fake = Fake {
        method: METHOD_USER_PASS,
        auth_status: 1,
        ..Fake::default()
    };
    let (res, _) = run(fake, v4("10.0.0.1:1"), Some(creds)).await;
    assert!(matches!(res, Err(SocksError::AuthRejected(1))));

    let fake = Fake {
        method: METHOD_NO_ACCEPTABLE,
        ..Fake::default()
    };
    let (res, _) = run(fake, v4("10.0.0.1:1"), None).await;
    assert!(matches!(res, Err(SocksError::NoAcceptableMethod)));

    // The server asks for user/pass but we offered none.
    let fake = Fake {
        method: METHOD_USER_PASS,
        ..Fake::default()
    };
    let (res, _) = run(fake, v4("10.0.0.1:1"), None).await;
    assert!(matches!(res, Err(SocksError::UnexpectedMethod(2))));

    let fake = Fake {
        version: 4,
        ..Fake::default()
    };
    let (res, _) = run(fake, v4("10.0.0.1:1"), None).await;
    assert!(matches!(res, Err(SocksError::BadVersion(4))));
}

#[tokio::test]
async fn every_failure_reply_code_is_reported() {
    for code in 1..=9u8 {
        let fake = Fake {
            reply: code,
            ..Fake::default()
        };
        let (res, _) = run(fake, v4("10.0.0.1:1"), None).await;
        match res {
            Err(SocksError::Reply(c)) => assert_eq!(c, code),
            other => panic!("code {code}: {other:?}"),
        }
    }
    assert_eq!(reply_text(5), "connection refused");
    assert_eq!(reply_text(9), "unassigned");
}

#[tokio::test]
async fn truncated_reply_is_an_io_error() {
    let (mut client, mut server) = duplex(64);
    let srv = tokio::spawn(async move {
        let mut b = [0u8; 3];
        server.read_exact(&mut b).await.unwrap();
        server.write_all(&[5]).await.unwrap(); // half a method choice, then EOF
    });
    let res = handshake(&mut client, &v4("10.0.0.1:1"), None).await;
    srv.await.unwrap();
    assert!(matches!(res, Err(SocksError::Io(_))));
}

#[tokio::test]
async fn works_over_loopback_tcp() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (s, _) = listener.accept().await.unwrap();
        serve(s, Fake::default()).await
    });
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let res = handshake(&mut stream, &v4("10.9.8.7:65535"), None).await;
    assert!(res.is_ok());
    let seen = server.await.unwrap();
    assert_eq!(seen.request, [5, 1, 0, 1, 10, 9, 8, 7, 0xFF, 0xFF]);
}
