//! Username/password sub-negotiation (RFC 1929), byte for byte.

use super::{assert_parses, assert_rejects, encoded};
use crate::proto::{
    encode_userpass_status, parse_userpass_status, ProtoError, UserPass, MAX_USERPASS,
};

fn creds(username: &str, password: &[u8]) -> UserPass {
    UserPass {
        username: username.to_owned(),
        password: password.to_vec(),
    }
}

#[test]
fn credentials_round_trip() {
    #[rustfmt::skip]
    let bytes = [
        0x01,                               // VER (of the sub-negotiation)
        0x05, b'a', b'l', b'i', b'c', b'e', // ULEN 5, "alice"
        0x06, b's', b'3', b'c', b'r', b'3', b't', // PLEN 6, "s3cr3t"
    ];
    let alice = creds("alice", b"s3cr3t");
    assert_eq!(encoded(|out| alice.encode(out)), bytes);
    assert_parses(UserPass::parse, &bytes, alice);
}

#[test]
fn password_is_raw_bytes_and_may_be_empty() {
    #[rustfmt::skip]
    let bytes = [
        0x01,                   // VER
        0x01, b'u',             // ULEN 1, "u"
        0x03, 0x00, 0xFF, 0x0A, // PLEN 3, NUL, 0xFF, LF: any bytes
    ];
    let user = creds("u", &[0x00, 0xFF, 0x0A]);
    assert_eq!(encoded(|out| user.encode(out)), bytes);
    assert_parses(UserPass::parse, &bytes, user);

    // VER, ULEN 1, "u", PLEN 0.
    let bytes = [0x01, 0x01, b'u', 0x00];
    let user = creds("u", b"");
    assert_eq!(encoded(|out| user.encode(out)), bytes);
    assert_parses(UserPass::parse, &bytes, user);
}

#[test]
fn longest_credentials_are_513_bytes() {
    let name = "n".repeat(255);
    let password = vec![b'p'; 255];
    let mut bytes = vec![0x01, 0xFF];
    bytes.extend_from_slice(name.as_bytes());
    bytes.push(0xFF);
    bytes.extend_from_slice(&password);
    assert_eq!(bytes.len(), MAX_USERPASS);
    let user = creds(&name, &password);
    assert_eq!(encoded(|out| user.encode(out)), bytes);
    assert_parses(UserPass::parse, &bytes, user);
}

#[test]
fn malformed_credentials() {
    // VER 5: the client sent a SOCKS5 message instead.
    assert_rejects(UserPass::parse, &[0x05], ProtoError::BadAuthVersion(0x05));
    assert_rejects(UserPass::parse, &[0x00], ProtoError::BadAuthVersion(0x00));
    // ULEN 0.
    assert_rejects(UserPass::parse, &[0x01, 0x00], ProtoError::EmptyUsername);
    // Usernames that are not UTF-8 or carry control characters, rejected as
    // soon as the name is complete.
    for name in [&b"\xFFroot"[..], b"ro\0ot", b"root\n", b"\x1B[31m"] {
        let mut bytes = vec![0x01, name.len() as u8];
        bytes.extend_from_slice(name);
        assert_rejects(UserPass::parse, &bytes, ProtoError::InvalidUsername);
    }
}

#[test]
fn encode_refuses_what_the_wire_cannot_hold() {
    let mut out = vec![0xAA];
    for (user, error) in [
        (creds("", b"pw"), ProtoError::EmptyUsername),
        (creds("a\tb", b"pw"), ProtoError::InvalidUsername),
        (creds(&"n".repeat(256), b"pw"), ProtoError::FieldTooLong),
        (creds("name", &[b'p'; 256]), ProtoError::FieldTooLong),
    ] {
        assert_eq!(user.encode(&mut out), Err(error));
        assert_eq!(out, [0xAA], "a failed encode appends nothing");
    }
}

#[test]
fn debug_never_shows_the_password() {
    let shown = format!("{:?}", creds("alice", b"hunter2"));
    assert!(shown.contains("alice"), "{shown}");
    assert!(!shown.contains("hunter2"), "{shown}");
    let shown = format!("{:#?}", creds("alice", b"hunter2"));
    assert!(!shown.contains("hunter2"), "{shown}");
    // Not even as a byte list.
    assert!(!shown.contains("104"), "{shown}");
}

#[test]
fn status_round_trips() {
    // VER 1, STATUS 0 = success; STATUS 1 = failure.
    assert_eq!(encode_userpass_status(true), [0x01, 0x00]);
    assert_eq!(encode_userpass_status(false), [0x01, 0x01]);
    assert_parses(parse_userpass_status, &[0x01, 0x00], true);
    assert_parses(parse_userpass_status, &[0x01, 0x01], false);
    // Any nonzero status is a failure.
    assert_parses(parse_userpass_status, &[0x01, 0xFF], false);
    assert_rejects(
        parse_userpass_status,
        &[0x05],
        ProtoError::BadAuthVersion(0x05),
    );
}
