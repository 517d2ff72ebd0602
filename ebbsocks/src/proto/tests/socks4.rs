//! SOCKS4 and SOCKS4a messages, byte for byte.

use std::net::{Ipv4Addr, SocketAddrV4};

use super::{assert_parses, assert_rejects, encoded};
use crate::proto::{
    encode_socks4_reply, parse_socks4_reply, Command, ProtoError, Socks4Request, Socks4Status,
    TargetAddr, MAX_SOCKS4A_DOMAIN, MAX_SOCKS4_REQUEST, MAX_SOCKS4_USER_ID, SOCKS4_REPLY_LEN,
};

fn request(command: Command, target: TargetAddr, user_id: &[u8]) -> Socks4Request {
    Socks4Request {
        command,
        target,
        user_id: user_id.to_vec(),
    }
}

fn ip(addr: &str) -> TargetAddr {
    TargetAddr::Ip(addr.parse().expect("test address"))
}

/// Checks a request both ways: the bytes parse to it and it encodes to them.
fn assert_request(bytes: &[u8], request: Socks4Request) {
    assert_eq!(encoded(|out| request.encode(out)), bytes);
    assert_parses(Socks4Request::parse, bytes, request);
}

#[test]
fn connect_with_user_id() {
    #[rustfmt::skip]
    let bytes = [
        0x04, 0x01,             // VN = 4, CD = CONNECT
        0x00, 0x50,             // DSTPORT 80
        0x42, 0x66, 0x07, 0x63, // DSTIP 66.102.7.99
        b'f', b'r', b'e', b'd', // USERID "fred"
        0x00,                   // NULL
    ];
    let fred = request(Command::Connect, ip("66.102.7.99:80"), b"fred");
    assert_request(&bytes, fred);
}

#[test]
fn bind_with_empty_user_id() {
    #[rustfmt::skip]
    let bytes = [
        0x04, 0x02,             // VN = 4, CD = BIND
        0x1F, 0x90,             // DSTPORT 8080
        0x0A, 0x00, 0x00, 0x01, // DSTIP 10.0.0.1
        0x00,                   // empty USERID, NULL
    ];
    assert_request(&bytes, request(Command::Bind, ip("10.0.0.1:8080"), b""));
}

#[test]
fn socks4a_domain_follows_the_user_id() {
    #[rustfmt::skip]
    let bytes = [
        0x04, 0x01,             // VN = 4, CD = CONNECT
        0x01, 0xBB,             // DSTPORT 443
        0x00, 0x00, 0x00, 0x01, // DSTIP 0.0.0.1: a domain follows
        b'b', b'o', b'b', 0x00, // USERID "bob", NULL
        b'e', b'x', b'a', b'm', b'p', b'l', b'e', b'.', b'o', b'r', b'g',
        0x00,                   // NULL
    ];
    let target = TargetAddr::Domain("example.org".to_owned(), 443);
    assert_request(&bytes, request(Command::Connect, target, b"bob"));
}

#[test]
fn any_0_0_0_x_with_x_nonzero_means_socks4a() {
    for x in [0x01, 0x02, 0x7F, 0xFF] {
        // VN, CD, DSTPORT 80, DSTIP 0.0.0.x, empty USERID, "a.b", NULL
        let bytes = [4, 1, 0, 80, 0, 0, 0, x, 0, b'a', b'.', b'b', 0];
        let target = TargetAddr::Domain("a.b".to_owned(), 80);
        assert_parses(
            Socks4Request::parse,
            &bytes,
            request(Command::Connect, target, b""),
        );
    }
    // 0.0.0.0 and 0.0.1.1 are plain addresses: nothing follows the user id.
    let bytes = [4, 1, 0, 80, 0, 0, 0, 0, 0];
    let plain = request(Command::Connect, ip("0.0.0.0:80"), b"");
    assert_parses(Socks4Request::parse, &bytes, plain);
    let bytes = [4, 1, 0, 80, 0, 0, 1, 1, 0];
    let plain = request(Command::Connect, ip("0.0.1.1:80"), b"");
    assert_parses(Socks4Request::parse, &bytes, plain);
}

#[test]
fn longest_socks4a_request() {
    let user_id = vec![b'u'; MAX_SOCKS4_USER_ID];
    let name = "d".repeat(MAX_SOCKS4A_DOMAIN);
    let mut bytes = vec![0x04, 0x01, 0x00, 0x50, 0, 0, 0, 1];
    bytes.extend_from_slice(&user_id);
    bytes.push(0);
    bytes.extend_from_slice(name.as_bytes());
    bytes.push(0);
    assert_eq!(bytes.len(), MAX_SOCKS4_REQUEST);
    let target = TargetAddr::Domain(name, 80);
    assert_request(&bytes, request(Command::Connect, target, &user_id));
}

#[test]
fn user_id_without_nul_within_255_bytes_is_too_long() {
    // Header, then 255 bytes of user id: still waiting for the NUL.
    let mut bytes = vec![0x04, 0x01, 0x00, 0x50, 0x7F, 0x00, 0x00, 0x01];
    bytes.extend_from_slice(&[b'u'; 255]);
    assert_eq!(Socks4Request::parse(&bytes), Ok(None));
    // A 256th byte that is not NUL: it can never fit.
    bytes.push(b'u');
    assert_rejects(Socks4Request::parse, &bytes, ProtoError::FieldTooLong);
}

#[test]
fn socks4a_domain_without_nul_within_255_bytes_is_too_long() {
    // Header with 0.0.0.1, "id" NUL, then 255 bytes of domain.
    let mut bytes = vec![0x04, 0x01, 0x00, 0x50, 0, 0, 0, 1, b'i', b'd', 0];
    bytes.extend_from_slice(&[b'd'; 255]);
    assert_eq!(Socks4Request::parse(&bytes), Ok(None));
    bytes.push(b'd');
    assert_rejects(Socks4Request::parse, &bytes, ProtoError::FieldTooLong);
}

#[test]
fn malformed_requests() {
    // VN 5 where SOCKS4 was detected.
    assert_rejects(Socks4Request::parse, &[0x05], ProtoError::VersionMismatch);
    // CD 3 (UDP ASSOCIATE) does not exist in SOCKS4, nor 0 or 0xFF.
    for cd in [0x00, 0x03, 0xFF] {
        let bytes = [0x04, cd];
        assert_rejects(
            Socks4Request::parse,
            &bytes,
            ProtoError::UnsupportedCommand(cd),
        );
    }
    // SOCKS4a with an empty domain: DSTIP 0.0.0.1, empty USERID, NULL, NULL.
    let bytes = [4, 1, 0, 80, 0, 0, 0, 1, 0, 0];
    assert_rejects(Socks4Request::parse, &bytes, ProtoError::EmptyDomain);
    // SOCKS4a domains with control characters or invalid UTF-8.
    for name in [&b"a\nb"[..], b"\xFF.example", b"a\x7Fb"] {
        let mut bytes = vec![4, 1, 0, 80, 0, 0, 0, 1, 0];
        bytes.extend_from_slice(name);
        bytes.push(0);
        assert_rejects(Socks4Request::parse, &bytes, ProtoError::InvalidDomain);
    }
}

#[test]
fn encode_refuses_what_socks4_cannot_say() {
    let v4 = ip("1.2.3.4:80");
    let cases = [
        (
            request(Command::UdpAssociate, v4.clone(), b""),
            ProtoError::UnsupportedCommand(3),
        ),
        (
            request(Command::Connect, ip("[::1]:80"), b""),
            ProtoError::UnsupportedAddressType(4),
        ),
        // Regression (found by the round-trip property): 0.0.0.1 was sent
        // as is, and the bytes read back as a SOCKS4a request waiting for
        // a domain. 0.0.0.0 stays a plain address.
        (
            request(Command::Connect, ip("0.0.0.1:80"), b""),
            ProtoError::UnsupportedAddressType(1),
        ),
        (
            request(Command::Bind, ip("0.0.0.255:80"), b"id"),
            ProtoError::UnsupportedAddressType(1),
        ),
        (
            request(Command::Connect, v4.clone(), b"a\0b"),
            ProtoError::InvalidUserId,
        ),
        (
            request(Command::Connect, v4, &[b'u'; 256]),
            ProtoError::FieldTooLong,
        ),
        (
            request(
                Command::Connect,
                TargetAddr::Domain("d".repeat(256), 80),
                b"",
            ),
            ProtoError::FieldTooLong,
        ),
        (
            request(Command::Connect, TargetAddr::Domain(String::new(), 80), b""),
            ProtoError::EmptyDomain,
        ),
    ];
    let mut out = vec![0xAA];
    for (request, error) in cases {
        assert_eq!(request.encode(&mut out), Err(error));
        assert_eq!(out, [0xAA], "a failed encode appends nothing");
    }
}

#[test]
fn replies_round_trip() {
    let bound = SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 7), 1080);
    #[rustfmt::skip]
    let granted = [
        0x00, 0x5A,             // VN = 0, CD = 90 granted
        0x04, 0x38,             // DSTPORT 1080
        0xC0, 0x00, 0x02, 0x07, // DSTIP 192.0.2.7
    ];
    assert_eq!(encode_socks4_reply(Socks4Status::Granted, bound), granted);
    assert_parses(parse_socks4_reply, &granted, (Socks4Status::Granted, bound));

    let none = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0);
    // VN = 0, CD = 91 rejected, port 0, 0.0.0.0
    let rejected = [0x00, 0x5B, 0, 0, 0, 0, 0, 0];
    assert_eq!(encode_socks4_reply(Socks4Status::Rejected, none), rejected);
    assert_parses(
        parse_socks4_reply,
        &rejected,
        (Socks4Status::Rejected, none),
    );
    assert_eq!(rejected.len(), SOCKS4_REPLY_LEN);

    for status in [Socks4Status::Granted, Socks4Status::Rejected] {
        assert_eq!(Socks4Status::from_u8(status.as_u8()), Some(status));
    }
}

#[test]
fn malformed_replies() {
    assert_rejects(parse_socks4_reply, &[0x04], ProtoError::VersionMismatch);
    // 0x5C and 0x5D (identd failures) are never sent by this server.
    assert_rejects(
        parse_socks4_reply,
        &[0x00, 0x5C],
        ProtoError::UnknownReplyCode(0x5C),
    );
}
