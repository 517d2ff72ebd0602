//! SOCKS5 (RFC 1928) messages, byte for byte.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};

use super::{assert_parses, assert_rejects, encoded};
use crate::proto::{
    encode_method_selection, method, parse_method_selection, Command, Greeting, ProtoError, Reply,
    ReplyCode, Request, TargetAddr, MAX_GREETING, MAX_SOCKS5_REQUEST,
};

fn ip(addr: &str) -> TargetAddr {
    TargetAddr::Ip(addr.parse().expect("test address"))
}

fn domain(name: &str, port: u16) -> TargetAddr {
    TargetAddr::Domain(name.to_owned(), port)
}

#[test]
fn greeting_with_one_and_two_methods() {
    #[rustfmt::skip]
    let bytes = [
        0x05,       // VER
        0x01,       // NMETHODS
        0x00,       // NO AUTHENTICATION REQUIRED
    ];
    let greeting = Greeting {
        methods: vec![method::NO_AUTH],
    };
    assert_parses(Greeting::parse, &bytes, greeting.clone());
    assert_eq!(encoded(|out| greeting.encode(out)), bytes);

    #[rustfmt::skip]
    let bytes = [
        0x05,       // VER
        0x02,       // NMETHODS
        0x00, 0x02, // NO AUTH, USERNAME/PASSWORD
    ];
    let greeting = Greeting {
        methods: vec![method::NO_AUTH, method::USERPASS],
    };
    assert_parses(Greeting::parse, &bytes, greeting.clone());
    assert_eq!(encoded(|out| greeting.encode(out)), bytes);
    assert!(greeting.offers(method::USERPASS));
    assert!(!greeting.offers(0x01)); // GSSAPI
}

#[test]
fn greeting_with_255_methods_is_the_largest() {
    let methods: Vec<u8> = (0..=254).collect();
    let mut bytes = vec![0x05, 0xFF]; // VER, NMETHODS = 255
    bytes.extend_from_slice(&methods);
    assert_eq!(bytes.len(), MAX_GREETING);
    let greeting = Greeting { methods };
    assert_parses(Greeting::parse, &bytes, greeting.clone());
    assert_eq!(encoded(|out| greeting.encode(out)), bytes);
}

#[test]
fn malformed_greetings() {
    // SOCKS4 byte or garbage where a SOCKS5 greeting belongs.
    assert_rejects(Greeting::parse, &[0x04], ProtoError::UnknownVersion(0x04));
    assert_rejects(Greeting::parse, &[0x47], ProtoError::UnknownVersion(0x47));
    // VER 5, NMETHODS 0.
    assert_rejects(Greeting::parse, &[0x05, 0x00], ProtoError::NoMethods);
}

#[test]
fn greeting_encode_refuses_what_the_wire_cannot_hold() {
    let mut out = vec![0xAA];
    let empty = Greeting { methods: vec![] };
    assert_eq!(empty.encode(&mut out), Err(ProtoError::NoMethods));
    let too_many = Greeting {
        methods: vec![0x00; 256],
    };
    assert_eq!(too_many.encode(&mut out), Err(ProtoError::FieldTooLong));
    assert_eq!(out, [0xAA], "a failed encode appends nothing");
}

#[test]
fn method_selection_round_trips() {
    assert_eq!(encode_method_selection(method::NO_AUTH), [0x05, 0x00]);
    assert_eq!(encode_method_selection(method::USERPASS), [0x05, 0x02]);
    assert_eq!(encode_method_selection(method::NO_ACCEPTABLE), [0x05, 0xFF]);
    for m in [method::NO_AUTH, method::USERPASS, method::NO_ACCEPTABLE] {
        assert_parses(parse_method_selection, &encode_method_selection(m), m);
    }
    assert_rejects(parse_method_selection, &[0x04], ProtoError::VersionMismatch);
}

/// Checks a request both ways: the bytes parse to it and it encodes to them.
fn assert_request(bytes: &[u8], request: Request) {
    assert_eq!(encoded(|out| request.encode(out)), bytes);
    assert_parses(Request::parse, bytes, request);
}

#[test]
fn connect_to_ipv4() {
    #[rustfmt::skip]
    let bytes = [
        0x05, 0x01, 0x00,       // VER, CMD = CONNECT, RSV
        0x01,                   // ATYP = IPv4
        0x5D, 0xB8, 0xD8, 0x22, // 93.184.216.34
        0x00, 0x50,             // port 80
    ];
    let request = Request {
        command: Command::Connect,
        target: ip("93.184.216.34:80"),
    };
    assert_request(&bytes, request);
}

#[test]
fn connect_to_ipv6() {
    #[rustfmt::skip]
    let bytes = [
        0x05, 0x01, 0x00,       // VER, CMD = CONNECT, RSV
        0x04,                   // ATYP = IPv6
        0x20, 0x01, 0x0D, 0xB8, 0x00, 0x00, 0x00, 0x00, // 2001:db8::
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, //          1
        0x01, 0xBB,             // port 443
    ];
    let request = Request {
        command: Command::Connect,
        target: ip("[2001:db8::1]:443"),
    };
    assert_request(&bytes, request);
}

#[test]
fn connect_to_domain() {
    #[rustfmt::skip]
    let bytes = [
        0x05, 0x01, 0x00,       // VER, CMD = CONNECT, RSV
        0x03,                   // ATYP = DOMAINNAME
        0x0B,                   // length 11
        b'e', b'x', b'a', b'm', b'p', b'l', b'e', b'.', b'c', b'o', b'm',
        0x01, 0xBB,             // port 443
    ];
    let request = Request {
        command: Command::Connect,
        target: domain("example.com", 443),
    };
    assert_request(&bytes, request);
}

#[test]
fn every_command_code() {
    for (code, command) in [
        (0x01, Command::Connect),
        (0x02, Command::Bind),
        (0x03, Command::UdpAssociate),
    ] {
        assert_eq!(command.as_u8(), code);
        assert_eq!(Command::from_u8(code), Some(command));
        // VER, CMD, RSV, ATYP = IPv4, 0.0.0.0, port 0 (UDP ASSOCIATE's "any").
        let bytes = [0x05, code, 0x00, 0x01, 0, 0, 0, 0, 0x00, 0x00];
        assert_request(
            &bytes,
            Request {
                command,
                target: ip("0.0.0.0:0"),
            },
        );
    }
    assert_eq!(Command::UdpAssociate.name(), "udp_associate");
}

#[test]
fn domain_of_255_bytes_is_the_largest_request() {
    let name = "a".repeat(255);
    let mut bytes = vec![0x05, 0x01, 0x00, 0x03, 0xFF]; // header, ATYP, length 255
    bytes.extend_from_slice(name.as_bytes());
    bytes.extend_from_slice(&[0xFF, 0xFF]); // port 65535
    assert_eq!(bytes.len(), MAX_SOCKS5_REQUEST);
    assert_request(
        &bytes,
        Request {
            command: Command::Connect,
            target: domain(&name, 65535),
        },
    );
}

#[test]
fn utf8_domain_is_kept_as_sent() {
    let name = "bücher.example";
    let mut bytes = vec![0x05, 0x01, 0x00, 0x03, name.len() as u8];
    bytes.extend_from_slice(name.as_bytes());
    bytes.extend_from_slice(&[0x00, 0x50]);
    assert_request(
        &bytes,
        Request {
            command: Command::Connect,
            target: domain(name, 80),
        },
    );
    // An IP address sent as a name stays a name; resolving is not parsing.
    let mut bytes = vec![0x05, 0x01, 0x00, 0x03, 0x07];
    bytes.extend_from_slice(b"1.2.3.4");
    bytes.extend_from_slice(&[0x00, 0x50]);
    let request = Request {
        command: Command::Connect,
        target: domain("1.2.3.4", 80),
    };
    assert_request(&bytes, request);
}

#[test]
fn malformed_request_headers() {
    // VER is 4 after a SOCKS5 greeting.
    assert_rejects(Request::parse, &[0x04], ProtoError::VersionMismatch);
    // CMD 0x00, 0x04, 0xFF are not defined.
    for cmd in [0x00, 0x04, 0xFF] {
        assert_rejects(
            Request::parse,
            &[0x05, cmd],
            ProtoError::UnsupportedCommand(cmd),
        );
    }
    // RSV not zero.
    assert_rejects(
        Request::parse,
        &[0x05, 0x01, 0x01],
        ProtoError::BadReserved(0x01),
    );
    // ATYP 0x00, 0x02, 0x05, 0xFF are not defined.
    for atyp in [0x00, 0x02, 0x05, 0xFF] {
        let bytes = [0x05, 0x01, 0x00, atyp];
        assert_rejects(
            Request::parse,
            &bytes,
            ProtoError::UnsupportedAddressType(atyp),
        );
    }
}

#[test]
fn malformed_domains() {
    // ATYP = DOMAINNAME, length 0: rejected at the length byte.
    let bytes = [0x05, 0x01, 0x00, 0x03, 0x00];
    assert_rejects(Request::parse, &bytes, ProtoError::EmptyDomain);
    // Rejected once the whole name is in, before the port arrives.
    let bad_names: [&[u8]; 6] = [
        b"ex\xFFample",             // not UTF-8
        b"\xC3",                    // truncated UTF-8 sequence
        b"example.com\0",           // NUL
        b"example.com\r\nX",        // CR LF (log injection)
        b"exa\x7Fmple",             // DEL
        "exa\u{85}mple".as_bytes(), // C1 control (NEL)
    ];
    for name in bad_names {
        let mut bytes = vec![0x05, 0x01, 0x00, 0x03, name.len() as u8];
        bytes.extend_from_slice(name);
        assert_rejects(Request::parse, &bytes, ProtoError::InvalidDomain);
    }
}

#[test]
fn request_encode_refuses_bad_domains() {
    let mut out = vec![0xAA];
    for (name, error) in [
        (String::new(), ProtoError::EmptyDomain),
        ("a".repeat(256), ProtoError::FieldTooLong),
        ("a\nb".to_owned(), ProtoError::InvalidDomain),
    ] {
        let request = Request {
            command: Command::Connect,
            target: domain(&name, 80),
        };
        assert_eq!(request.encode(&mut out), Err(error));
        assert_eq!(out, [0xAA], "a failed encode appends nothing");
    }
}

#[test]
fn every_reply_code_with_an_ipv4_bound_address() {
    assert_eq!(ReplyCode::ALL.len(), 9);
    for (index, code) in ReplyCode::ALL.into_iter().enumerate() {
        let byte = index as u8;
        assert_eq!(code.as_u8(), byte);
        assert_eq!(ReplyCode::from_u8(byte), Some(code));
        #[rustfmt::skip]
        let bytes = [
            0x05, byte, 0x00,       // VER, REP, RSV
            0x01,                   // ATYP = IPv4
            0x0A, 0x00, 0x00, 0x02, // 10.0.0.2
            0xC3, 0x50,             // port 50000
        ];
        let reply = Reply {
            code,
            bound: "10.0.0.2:50000".parse().expect("addr"),
        };
        let mut out = Vec::new();
        reply.encode(&mut out);
        assert_eq!(out, bytes);
        assert_parses(Reply::parse, &bytes, reply);
    }
    assert_eq!(ReplyCode::from_u8(0x09), None);
    assert_eq!(ReplyCode::from_u8(0xFF), None);
}

#[test]
fn reply_with_ipv6_bound_address_drops_scope() {
    #[rustfmt::skip]
    let bytes = [
        0x05, 0x00, 0x00,       // VER, REP = succeeded, RSV
        0x04,                   // ATYP = IPv6
        0xFE, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // fe80::
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x07, //       7
        0x1F, 0x90,             // port 8080
    ];
    let ip = Ipv6Addr::new(0xFE80, 0, 0, 0, 0, 0, 0, 7);
    let scoped = SocketAddr::V6(SocketAddrV6::new(ip, 8080, 5, 3));
    let mut out = Vec::new();
    Reply {
        code: ReplyCode::Succeeded,
        bound: scoped,
    }
    .encode(&mut out);
    assert_eq!(out, bytes);
    let plain = Reply {
        code: ReplyCode::Succeeded,
        bound: SocketAddr::from((ip, 8080)),
    };
    assert_parses(Reply::parse, &bytes, plain);
}

#[test]
fn failure_reply_reports_no_address() {
    let reply = Reply::failure(ReplyCode::HostUnreachable);
    assert_eq!(reply.bound, SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)));
    let mut out = Vec::new();
    reply.encode(&mut out);
    // VER, REP = host unreachable, RSV, ATYP = IPv4, 0.0.0.0, port 0
    assert_eq!(out, [0x05, 0x04, 0x00, 0x01, 0, 0, 0, 0, 0, 0]);
}

#[test]
fn malformed_replies() {
    assert_rejects(Reply::parse, &[0x00], ProtoError::VersionMismatch);
    assert_rejects(
        Reply::parse,
        &[0x05, 0x09],
        ProtoError::UnknownReplyCode(0x09),
    );
    assert_rejects(
        Reply::parse,
        &[0x05, 0x00, 0x80],
        ProtoError::BadReserved(0x80),
    );
    // A domain BND.ADDR is legal RFC 1928 but not something this crate models.
    let bytes = [0x05, 0x00, 0x00, 0x03];
    assert_rejects(
        Reply::parse,
        &bytes,
        ProtoError::UnsupportedAddressType(0x03),
    );
    let bytes = [0x05, 0x00, 0x00, 0x02];
    assert_rejects(
        Reply::parse,
        &bytes,
        ProtoError::UnsupportedAddressType(0x02),
    );
}

#[test]
fn target_addr_display_and_port() {
    assert_eq!(ip("1.2.3.4:80").to_string(), "1.2.3.4:80");
    assert_eq!(ip("[::1]:80").to_string(), "[::1]:80");
    assert_eq!(domain("example.com", 443).to_string(), "example.com:443");
    assert_eq!(ip("[::1]:8080").port(), 8080);
    assert_eq!(domain("example.com", 443).port(), 443);
    let addr: SocketAddr = "1.2.3.4:80".parse().expect("addr");
    assert_eq!(TargetAddr::from(addr), TargetAddr::Ip(addr));
}
