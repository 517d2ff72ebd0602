//! The UDP request header: byte-exact round trips, every malformed form,
//! and a deterministic byte soup (never panics, never looks past the header
//! it reports, and the same answer whatever DATA holds).

use std::net::SocketAddr;

use super::Rng;
use crate::proto::{ProtoError, TargetAddr, UdpHeader, UdpReplyHeader, MAX_UDP_HEADER};

fn header(frag: u8, target: TargetAddr) -> UdpHeader {
    UdpHeader { frag, target }
}

fn encoded(h: &UdpHeader) -> Vec<u8> {
    let mut out = Vec::new();
    h.encode(&mut out).expect("valid header");
    out
}

/// `bytes` (a header) followed by `payload` parses to `expected`, DATA
/// starting right after the header; every strict prefix of the header is
/// `Truncated`.
fn assert_round_trip(bytes: &[u8], expected: UdpHeader) {
    assert_eq!(encoded(&expected), bytes, "encoding of {expected:?}");
    for payload in [&b""[..], b"x", b"\x00\x00\x00\x01payload"] {
        let datagram = [bytes, payload].concat();
        assert_eq!(
            UdpHeader::parse(&datagram),
            Ok((expected.clone(), bytes.len()))
        );
    }
    for n in 0..bytes.len() {
        assert_eq!(
            UdpHeader::parse(&bytes[..n]),
            Err(ProtoError::Truncated),
            "prefix of {n} bytes"
        );
    }
}

#[test]
fn ipv4_round_trip() {
    let bytes = [
        0x00, 0x00, // RSV
        0x00, // FRAG
        0x01, // ATYP IPv4
        192, 0, 2, 7, // DST.ADDR
        0x00, 0x35, // DST.PORT 53
    ];
    let target = TargetAddr::Ip("192.0.2.7:53".parse().expect("addr"));
    assert_round_trip(&bytes, header(0, target));
}

#[test]
fn ipv6_round_trip() {
    let mut bytes = vec![0x00, 0x00, 0x00, 0x04]; // RSV, FRAG, ATYP IPv6
    bytes.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8]); // 2001:db8::
    bytes.extend_from_slice(&[0; 11]);
    bytes.push(0x01); // ...::1
    bytes.extend_from_slice(&[0x01, 0xbb]); // port 443
    let target = TargetAddr::Ip("[2001:db8::1]:443".parse().expect("addr"));
    assert_round_trip(&bytes, header(0, target));
}

#[test]
fn domain_round_trip_keeps_the_fragment_number() {
    let bytes = [
        0x00, 0x00, // RSV
        0x02, // FRAG 2 (parsed; the server drops it)
        0x03, // ATYP domain
        0x09, b'l', b'o', b'c', b'a', b'l', b'h', b'o', b's', b't', // "localhost"
        0x1f, 0x90, // port 8080
    ];
    let target = TargetAddr::Domain("localhost".into(), 8080);
    assert_round_trip(&bytes, header(2, target));
}

#[test]
fn longest_header_is_max_udp_header() {
    let target = TargetAddr::Domain("a".repeat(255), 1);
    assert_eq!(encoded(&header(0, target)).len(), MAX_UDP_HEADER);
}

#[test]
fn reply_headers_are_written_without_allocating_and_parse_back() {
    let cases: [(&str, &[u8]); 3] = [
        ("127.0.0.1:9", &[0, 0, 0, 1, 127, 0, 0, 1, 0, 9]),
        (
            "[::1]:258",
            &[
                0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 2,
            ],
        ),
        // An IPv4-mapped source is the IPv4 host the client sent to.
        ("[::ffff:10.0.0.1]:80", &[0, 0, 0, 1, 10, 0, 0, 1, 0, 80]),
    ];
    for (source, bytes) in cases {
        let source: SocketAddr = source.parse().expect("addr");
        let reply = UdpReplyHeader::new(source);
        assert_eq!(reply.as_bytes(), bytes, "{source}");
        let (parsed, len) = UdpHeader::parse(reply.as_bytes()).expect("parses");
        assert_eq!(len, bytes.len());
        assert_eq!(parsed.frag, 0);
        let canonical = SocketAddr::new(source.ip().to_canonical(), source.port());
        assert_eq!(parsed.target, TargetAddr::Ip(canonical));
    }
}

#[test]
fn malformed_headers_are_rejected() {
    let cases: &[(&[u8], ProtoError)] = &[
        (b"", ProtoError::Truncated),
        (&[0x00, 0x00], ProtoError::Truncated),
        (&[0x00, 0x00, 0x00], ProtoError::Truncated),
        (&[0x01, 0x00, 0x00, 0x01], ProtoError::BadReserved(0x01)),
        (&[0x00, 0x80, 0x00, 0x01], ProtoError::BadReserved(0x80)),
        (
            &[0x00, 0x00, 0x00, 0x02, 1, 2, 3, 4, 0, 80],
            ProtoError::UnsupportedAddressType(0x02),
        ),
        (
            &[0x00, 0x00, 0x00, 0x00],
            ProtoError::UnsupportedAddressType(0x00),
        ),
        (
            &[0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x50],
            ProtoError::EmptyDomain,
        ),
        (
            &[0x00, 0x00, 0x00, 0x03, 0x02, b'a', 0x00, 0x00, 0x50],
            ProtoError::InvalidDomain,
        ),
        (
            &[0x00, 0x00, 0x00, 0x03, 0x02, 0xff, 0xfe, 0x00, 0x50],
            ProtoError::InvalidDomain,
        ),
        // Addresses and ports cut short.
        (&[0x00, 0x00, 0x00, 0x01, 127, 0, 0], ProtoError::Truncated),
        (
            &[0x00, 0x00, 0x00, 0x01, 127, 0, 0, 1, 0],
            ProtoError::Truncated,
        ),
        (
            &[0x00, 0x00, 0x00, 0x04, 0, 0, 0, 0, 0, 0, 0, 0],
            ProtoError::Truncated,
        ),
        (&[0x00, 0x00, 0x00, 0x03], ProtoError::Truncated),
        (
            &[0x00, 0x00, 0x00, 0x03, 0x05, b'a', b'b'],
            ProtoError::Truncated,
        ),
        (
            &[0x00, 0x00, 0x00, 0x03, 0x01, b'a', 0x00],
            ProtoError::Truncated,
        ),
    ];
    for (bytes, error) in cases {
        assert_eq!(UdpHeader::parse(bytes), Err(error.clone()), "{bytes:02x?}");
    }
}

#[test]
fn invalid_domains_do_not_encode() {
    for name in ["", "a\u{0}b", &"x".repeat(256)] {
        let mut out = vec![0xAA];
        let bad = header(0, TargetAddr::Domain(name.into(), 1));
        assert!(bad.encode(&mut out).is_err(), "{name:?}");
        assert_eq!(out, [0xAA], "a failed encode leaves the buffer alone");
    }
}

/// Random and mutated datagrams: the parser never panics; a header it
/// accepts ends inside the buffer, encodes back to exactly the bytes it was
/// read from, does not depend on DATA, and every shorter cut of it is
/// `Truncated`.
#[test]
fn byte_soup_never_panics_and_never_reads_past_the_header() {
    let mut rng = Rng::new(0x5eed_0da7_a9e4);
    let seeds: Vec<Vec<u8>> = [
        header(0, TargetAddr::Ip("10.1.2.3:53".parse().expect("addr"))),
        header(0, TargetAddr::Ip("[fe80::1]:5353".parse().expect("addr"))),
        header(0, TargetAddr::Domain("example.org".into(), 443)),
    ]
    .iter()
    .map(encoded)
    .collect();
    let mut accepted = 0;
    for round in 0..20_000 {
        let mut buf = if round % 2 == 0 {
            // Random bytes behind a mostly valid prefix.
            let len = rng.below(MAX_UDP_HEADER + 40);
            let mut buf: Vec<u8> = (0..len).map(|_| rng.steering_byte()).collect();
            if len >= 3 && rng.below(4) != 0 {
                buf[..3].fill(0);
            }
            buf
        } else {
            // A valid header with a payload, then a few bytes flipped or cut.
            let mut buf = seeds[rng.below(seeds.len())].clone();
            buf.extend((0..rng.below(16)).map(|_| rng.byte()));
            for _ in 0..rng.below(3) {
                let at = rng.below(buf.len());
                buf[at] = rng.steering_byte();
            }
            buf.truncate(rng.below(buf.len() + 1));
            buf
        };
        let Ok((parsed, data_at)) = UdpHeader::parse(&buf) else {
            continue;
        };
        accepted += 1;
        assert!(data_at <= buf.len(), "{buf:02x?}");
        assert_eq!(encoded(&parsed), buf[..data_at], "{buf:02x?}");
        for n in 0..data_at {
            assert_eq!(UdpHeader::parse(&buf[..n]), Err(ProtoError::Truncated));
        }
        for byte in &mut buf[data_at..] {
            *byte = !*byte;
        }
        assert_eq!(UdpHeader::parse(&buf), Ok((parsed, data_at)));
    }
    // The soup must reach the accepting branches, or it tests little.
    assert!(accepted > 1000, "only {accepted} headers parsed");
}
