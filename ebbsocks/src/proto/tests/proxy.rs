//! The PROXY protocol header: byte-exact headers of both versions, every
//! kind of refusal, the size caps, and the parser contract on mutated
//! headers and byte soup.

use std::net::SocketAddr;

use proptest::prelude::*;

use super::properties::{check_contract, mutated, Reencode};
use super::robustness::{exercise, random_socket_addr, Subject};
use super::{assert_parses, assert_rejects, Rng};
use crate::proto::{
    starts_like_proxy_header, ParseResult, ProtoError, ProxyHeader, MAX_PROXY_HEADER,
    MAX_PROXY_V1_HEADER, MAX_PROXY_V2_ADDRESS_BLOCK, PROXY_V2_SIGNATURE,
};

fn parse(buf: &[u8]) -> ParseResult<ProxyHeader> {
    ProxyHeader::parse(buf)
}

fn proxied(source: &str, destination: &str) -> ProxyHeader {
    ProxyHeader::Proxied {
        source: source.parse().expect("address"),
        destination: destination.parse().expect("address"),
    }
}

fn bad(what: &'static str) -> ProtoError {
    ProtoError::BadProxyHeader(what)
}

/// The v2 signature followed by `rest`.
fn v2(rest: &[u8]) -> Vec<u8> {
    let mut out = PROXY_V2_SIGNATURE.to_vec();
    out.extend_from_slice(rest);
    out
}

// ------------------------------------------------------------- version 1

#[test]
fn v1_tcp4() {
    assert_parses(
        parse,
        b"PROXY TCP4 192.0.2.7 198.51.100.1 51234 1080\r\n",
        proxied("192.0.2.7:51234", "198.51.100.1:1080"),
    );
}

#[test]
fn v1_tcp6() {
    assert_parses(
        parse,
        b"PROXY TCP6 2001:db8::7 2001:db8::1 51234 1080\r\n",
        proxied("[2001:db8::7]:51234", "[2001:db8::1]:1080"),
    );
}

#[test]
fn v1_unknown_with_or_without_the_rest() {
    assert_parses(parse, b"PROXY UNKNOWN\r\n", ProxyHeader::Unknown);
    // The receiver ignores whatever follows UNKNOWN on the line.
    assert_parses(
        parse,
        b"PROXY UNKNOWN 192.0.2.7 198.51.100.1 51234 1080\r\n",
        ProxyHeader::Unknown,
    );
}

#[test]
fn v1_at_the_length_limit_parses_and_one_byte_more_does_not() {
    // The specification's worst case: exactly 107 bytes.
    let longest = b"PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff \
                    ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
    assert_eq!(longest.len(), MAX_PROXY_V1_HEADER);
    assert_parses(parse, longest, ProxyHeader::Unknown);
    let mut too_long = longest.to_vec();
    too_long.insert(14, b'x');
    assert_rejects(parse, &too_long[..106], ProtoError::ProxyHeaderTooLong);
}

#[test]
fn v1_refusals_name_the_part_that_is_wrong() {
    let cases: &[(&[u8], ProtoError)] = &[
        (b"PROXX", bad("signature")),
        (b"PROXY TCP5", bad("protocol")),
        (b"PROXY UD", bad("protocol")),
        (b"PROXY TCP4 192.0.2.\x01", bad("character")),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX", bad("line end")),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", bad("fields")),
        (b"PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n", bad("fields")),
        (b"PROXY TCP4 ::1 ::1 1 2\r\n", bad("address")),
        (b"PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n", bad("address")),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", bad("port")),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 +80 2\r\n", bad("port")),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 80 \r\n", bad("port")),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 080 2\r\n", bad("port")),
        (b"PROXY UNKNOWNX\r\n", bad("fields")),
    ];
    for (bytes, error) in cases {
        assert_rejects(parse, bytes, error.clone());
    }
}

#[test]
fn v1_without_line_end_is_too_long_at_the_limit() {
    let mut endless = b"PROXY TCP4 ".to_vec();
    endless.resize(MAX_PROXY_V1_HEADER - 1, b'1');
    assert_rejects(parse, &endless, ProtoError::ProxyHeaderTooLong);
}

// ------------------------------------------------------------- version 2

#[test]
fn v2_proxy_tcp_over_ipv4() {
    let bytes = v2(&[
        0x21, // version 2, PROXY
        0x11, // INET, STREAM
        0x00, 0x0c, // 12 bytes of addresses
        192, 0, 2, 7, // source
        198, 51, 100, 1, // destination
        0xc8, 0x22, // source port 51234
        0x04, 0x38, // destination port 1080
    ]);
    assert_parses(
        parse,
        &bytes,
        proxied("192.0.2.7:51234", "198.51.100.1:1080"),
    );
}

#[test]
fn v2_proxy_tcp_over_ipv6() {
    let mut rest = vec![0x21, 0x21, 0x00, 0x24]; // PROXY, INET6 STREAM, 36 bytes
    rest.extend_from_slice(
        &"2001:db8::7"
            .parse::<std::net::Ipv6Addr>()
            .expect("ip")
            .octets(),
    );
    rest.extend_from_slice(
        &"2001:db8::1"
            .parse::<std::net::Ipv6Addr>()
            .expect("ip")
            .octets(),
    );
    rest.extend_from_slice(&[0xc8, 0x22, 0x04, 0x38]);
    assert_parses(
        parse,
        &v2(&rest),
        proxied("[2001:db8::7]:51234", "[2001:db8::1]:1080"),
    );
}

#[test]
fn v2_local_ignores_any_addresses() {
    // What HAProxy's health checks send with send-proxy-v2.
    assert_parses(parse, &v2(&[0x20, 0x00, 0x00, 0x00]), ProxyHeader::Local);
    let with_addresses = v2(&[0x20, 0x11, 0x00, 0x0c, 1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0, 2]);
    assert_parses(parse, &with_addresses, ProxyHeader::Local);
}

#[test]
fn v2_without_usable_addresses_is_unknown() {
    // UNSPEC
    assert_parses(parse, &v2(&[0x21, 0x00, 0x00, 0x00]), ProxyHeader::Unknown);
    // INET over DGRAM
    let udp = v2(&[0x21, 0x12, 0x00, 0x0c, 1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0, 2]);
    assert_parses(parse, &udp, ProxyHeader::Unknown);
    // UNIX STREAM: 216 bytes of paths
    let mut unix = vec![0x21, 0x31, 0x00, 0xd8];
    unix.resize(4 + 216, b'/');
    assert_parses(parse, &v2(&unix), ProxyHeader::Unknown);
}

#[test]
fn v2_skips_tlvs_after_the_addresses() {
    let mut rest = vec![0x21, 0x11, 0x00, 0x0c + 7];
    rest.extend_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2, 0x30, 0x39, 0x04, 0x38]);
    // PP2_TYPE_AUTHORITY (0x02), length 4, "host"
    rest.extend_from_slice(&[0x02, 0x00, 0x04, b'h', b'o', b's', b't']);
    assert_parses(
        parse,
        &v2(&rest),
        proxied("10.0.0.1:12345", "10.0.0.2:1080"),
    );
}

#[test]
fn v2_refusals_name_the_part_that_is_wrong() {
    let cases: Vec<(Vec<u8>, ProtoError)> = vec![
        (b"\r\n\r\n\0\r\nQUIX".to_vec(), bad("signature")),
        (v2(&[0x11]), bad("version")),
        (v2(&[0x22]), bad("command")),
        (v2(&[0x21, 0x41]), bad("family")),
        (v2(&[0x21, 0x13]), bad("family")),
        // INET needs 12 bytes, INET6 36.
        (v2(&[0x21, 0x11, 0x00, 0x0b]), bad("length")),
        (v2(&[0x21, 0x21, 0x00, 0x23]), bad("length")),
    ];
    for (bytes, error) in cases {
        assert_rejects(parse, &bytes, error);
    }
}

#[test]
fn v2_longer_than_the_cap_is_refused_from_its_length_field() {
    let len = (MAX_PROXY_V2_ADDRESS_BLOCK + 1) as u16;
    let [hi, lo] = len.to_be_bytes();
    assert_rejects(
        parse,
        &v2(&[0x21, 0x11, hi, lo]),
        ProtoError::ProxyHeaderTooLong,
    );
    // The largest accepted header is exactly MAX_PROXY_HEADER bytes.
    let [hi, lo] = (MAX_PROXY_V2_ADDRESS_BLOCK as u16).to_be_bytes();
    let mut largest = v2(&[0x21, 0x11, hi, lo]);
    largest.resize(MAX_PROXY_HEADER, 0);
    assert_eq!(
        parse(&largest).map(|p| p.map(|(_, used)| used)),
        Ok(Some(MAX_PROXY_HEADER))
    );
}

// ------------------------------------------------------------- both

#[test]
fn anything_else_is_a_missing_header() {
    // A SOCKS5 greeting, a SOCKS4 request, an HTTP request, TLS.
    for first in [
        &b"\x05\x01\x00"[..],
        b"\x04\x01",
        b"GET / HTTP/1.1\r\n",
        b"\x16\x03\x01",
    ] {
        assert_eq!(parse(first), Err(ProtoError::MissingProxyHeader));
    }
    assert_eq!(parse(b""), Ok(None));
}

#[test]
fn starting_like_a_header_is_judged_on_the_bytes_present() {
    assert!(starts_like_proxy_header(b"P"));
    assert!(starts_like_proxy_header(b"PROXY TCP4 garbage"));
    assert!(starts_like_proxy_header(b"\r\n\r\n"));
    assert!(starts_like_proxy_header(&v2(&[0x21])));
    assert!(!starts_like_proxy_header(b""));
    assert!(!starts_like_proxy_header(b"POST / HTTP/1.1"));
    assert!(!starts_like_proxy_header(b"\x05\x01\x00"));
}

#[test]
fn encoders_write_what_the_parser_reads() {
    let v4 = proxied("192.0.2.7:51234", "198.51.100.1:1080");
    let mut out = Vec::new();
    v4.encode_v1(&mut out).expect("encodes");
    assert_eq!(out, b"PROXY TCP4 192.0.2.7 198.51.100.1 51234 1080\r\n");
    out.clear();
    ProxyHeader::Local.encode_v2(&mut out).expect("encodes");
    assert_eq!(out, v2(&[0x20, 0x00, 0x00, 0x00]));
}

#[test]
fn encoders_refuse_what_the_format_cannot_say() {
    let mixed = ProxyHeader::Proxied {
        source: "192.0.2.7:1".parse().expect("addr"),
        destination: "[2001:db8::1]:2".parse().expect("addr"),
    };
    let mut out = vec![0xaa];
    assert_eq!(mixed.encode_v1(&mut out), Err(bad("family")));
    assert_eq!(mixed.encode_v2(&mut out), Err(bad("family")));
    assert_eq!(ProxyHeader::Local.encode_v1(&mut out), Err(bad("command")));
    assert_eq!(out, [0xaa], "nothing appended");
}

// ------------------------------------------------------------- robustness

fn random_header(rng: &mut Rng) -> ProxyHeader {
    match rng.below(4) {
        0 => ProxyHeader::Local,
        1 => ProxyHeader::Unknown,
        _ => {
            let source = random_socket_addr(rng);
            let mut destination = random_socket_addr(rng);
            if source.is_ipv4() != destination.is_ipv4() {
                destination = SocketAddr::new(source.ip(), destination.port());
            }
            ProxyHeader::Proxied {
                source,
                destination,
            }
        }
    }
}

fn v1_bytes(header: &ProxyHeader) -> Vec<u8> {
    let mut out = Vec::new();
    match header.encode_v1(&mut out) {
        Ok(()) => out,
        // LOCAL has no version 1 form.
        Err(_) => b"PROXY UNKNOWN\r\n".to_vec(),
    }
}

fn v2_bytes(header: &ProxyHeader) -> Vec<u8> {
    let mut out = Vec::new();
    header
        .encode_v2(&mut out)
        .expect("generated headers encode");
    out
}

#[test]
fn v1_robustness() {
    exercise(
        Subject {
            name: "proxy v1",
            parse,
            encode: v1_bytes,
            canonical: false,
            generate: |rng| match random_header(rng) {
                ProxyHeader::Local => ProxyHeader::Unknown,
                other => other,
            },
            max: MAX_PROXY_HEADER,
            version: b'P',
        },
        0x7072_6f78_7931,
    );
}

#[test]
fn v2_robustness() {
    exercise(
        Subject {
            name: "proxy v2",
            parse,
            encode: v2_bytes,
            canonical: false,
            generate: random_header,
            max: MAX_PROXY_HEADER,
            version: b'\r',
        },
        0x7072_6f78_7932,
    );
}

fn any_header() -> impl Strategy<Value = ProxyHeader> {
    let addr = prop_oneof![
        any::<([u8; 4], u16)>().prop_map(|(ip, port)| SocketAddr::from((ip, port))),
        any::<([u8; 16], u16)>().prop_map(|(ip, port)| SocketAddr::from((ip, port))),
    ];
    prop_oneof![
        Just(ProxyHeader::Local),
        Just(ProxyHeader::Unknown),
        (addr, any::<u16>()).prop_map(|(source, port)| ProxyHeader::Proxied {
            source,
            destination: SocketAddr::new(source.ip(), port),
        }),
    ]
}

proptest! {
    #[test]
    fn proxy_header_contract(buf in prop_oneof![
        mutated(any_header().prop_map(|h| v1_bytes(&h))),
        mutated(any_header().prop_map(|h| v2_bytes(&h))),
        // A valid v2 start, then anything: reaches the length checks.
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(|rest| v2(&rest)),
    ]) {
        check_contract(parse, MAX_PROXY_HEADER, &Reencode::Equivalent(v2_bytes), &buf)?;
    }
}

// ------------------------------------------------------------- the ppp crate as a second opinion

mod oracle {
    use std::net::{IpAddr, SocketAddr};

    use ppp::v2;
    use proptest::collection::vec;
    use proptest::prelude::*;

    use super::super::properties::mutated;
    use crate::proto::{ProtoError, ProxyHeader};

    /// What ppp's header means to a TCP listener, in this crate's terms.
    fn meaning(theirs: &v2::Header<'_>) -> ProxyHeader {
        let pair = |source: IpAddr, sport, destination: IpAddr, dport| ProxyHeader::Proxied {
            source: SocketAddr::new(source, sport),
            destination: SocketAddr::new(destination, dport),
        };
        match (theirs.command, theirs.protocol, theirs.addresses) {
            (v2::Command::Local, ..) => ProxyHeader::Local,
            (v2::Command::Proxy, v2::Protocol::Stream, v2::Addresses::IPv4(a)) => pair(
                a.source_address.into(),
                a.source_port,
                a.destination_address.into(),
                a.destination_port,
            ),
            (v2::Command::Proxy, v2::Protocol::Stream, v2::Addresses::IPv6(a)) => pair(
                a.source_address.into(),
                a.source_port,
                a.destination_address.into(),
                a.destination_port,
            ),
            (v2::Command::Proxy, ..) => ProxyHeader::Unknown,
        }
    }

    fn endpoints() -> impl Strategy<Value = (SocketAddr, SocketAddr)> {
        prop_oneof![
            any::<([u8; 4], u16, [u8; 4], u16)>()
                .prop_map(|(s, sp, d, dp)| (SocketAddr::from((s, sp)), SocketAddr::from((d, dp)))),
            any::<([u8; 16], u16, [u8; 16], u16)>()
                .prop_map(|(s, sp, d, dp)| (SocketAddr::from((s, sp)), SocketAddr::from((d, dp)))),
        ]
    }

    /// A v2 header written by ppp: PROXY or LOCAL, stream or datagram,
    /// with a few TLVs.
    fn ppp_v2() -> impl Strategy<Value = Vec<u8>> {
        (
            endpoints(),
            any::<bool>(),
            any::<bool>(),
            vec((any::<u8>(), vec(any::<u8>(), 0..24)), 0..3),
        )
            .prop_map(|((source, destination), local, datagram, tlvs)| {
                let command = if local { 0x20 } else { 0x21 };
                let protocol = if datagram {
                    v2::Protocol::Datagram
                } else {
                    v2::Protocol::Stream
                };
                let mut builder =
                    v2::Builder::with_addresses(command, protocol, (source, destination));
                for (kind, value) in tlvs {
                    builder = builder.write_tlv(kind, &value).expect("small TLV");
                }
                builder.build().expect("header")
            })
    }

    proptest! {
        #[test]
        fn v2_headers_written_by_ppp_parse_to_the_same_meaning(bytes in ppp_v2()) {
            let theirs = v2::Header::try_from(bytes.as_slice()).expect("ppp reads its own");
            prop_assert_eq!(ProxyHeader::parse(&bytes), Ok(Some((meaning(&theirs), bytes.len()))));
        }

        #[test]
        fn v1_lines_written_by_ppp_parse_to_the_same_addresses((source, destination) in endpoints()) {
            let line = ppp::v1::Addresses::from((source, destination)).to_string();
            let expected = ProxyHeader::Proxied { source, destination };
            prop_assert_eq!(ProxyHeader::parse(line.as_bytes()), Ok(Some((expected, line.len()))));
        }

        /// On mutated headers the two parsers agree, but for two things
        /// this one allows on purpose: a LOCAL header's address block is
        /// ignored whatever its length (the specification says to discard
        /// it), and so is a UNIX one. ppp sets no size cap: the cases over
        /// this one's are left out.
        #[test]
        fn on_mutated_v2_headers_the_verdicts_agree(buf in mutated(ppp_v2())) {
            let theirs = v2::Header::try_from(buf.as_slice());
            match ProxyHeader::parse(&buf) {
                Ok(Some((ours, used))) => match v2::Header::try_from(&buf[..used]) {
                    Ok(theirs) => prop_assert_eq!(ours, meaning(&theirs)),
                    Err(v2::ParseError::InvalidAddresses(..)) => {
                        prop_assert!(ours == ProxyHeader::Local || ours == ProxyHeader::Unknown);
                    }
                    Err(err) => prop_assert!(false, "ppp refuses {ours:?} with {err}"),
                },
                Ok(None) => prop_assert!(theirs.is_err(), "ppp reads a header in {buf:02x?}"),
                // ppp has no cap to compare with.
                Err(ProtoError::ProxyHeaderTooLong) => {}
                Err(err) => prop_assert!(theirs.is_err(), "{err} but ppp reads {theirs:?}"),
            }
        }
    }
}
