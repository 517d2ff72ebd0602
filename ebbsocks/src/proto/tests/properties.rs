//! Property tests (proptest) for the whole wire format.
//!
//! Round trips: every message type with an encoder, generated from its
//! whole domain (any method list, any valid name of any characters, any
//! socket address, any IPv4 address for SOCKS4), encodes to bytes that
//! parse back to the same message using all of them, whatever follows.
//!
//! Contract on arbitrary bytes, for every parser (see `check_contract`): no
//! panic, never more consumed than given, a definite answer at the `MAX_*`
//! cap (also for the input extended to the cap), answers that never change
//! as bytes arrive, and a parsed message that encodes back to the bytes it
//! was read from.
//!
//! The case counts keep the whole file to a few seconds in a debug build;
//! `PROPTEST_CASES=10000 cargo test -p ebbsocks --lib properties` runs more.
//! The fuzz targets in `fuzz/` check the same contract for much longer.

use std::fmt::Debug;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;

use crate::proto::{
    detect_version, encode_method_selection, encode_socks4_reply, encode_userpass_status,
    parse_method_selection, parse_socks4_reply, parse_userpass_status, Command, Greeting,
    ParseResult, ProtoError, Reply, ReplyCode, Request, Socks4Request, Socks4Status, TargetAddr,
    UdpHeader, UdpReplyHeader, UserPass, Version, MAX_GREETING, MAX_SOCKS4_REQUEST,
    MAX_SOCKS5_REPLY, MAX_SOCKS5_REQUEST, MAX_UDP_HEADER, MAX_USERPASS, SOCKS4_REPLY_LEN,
};

// ---------------------------------------------------------------- generators

/// A string of 1 to 255 bytes with no control character: what the parsers
/// accept as a domain name or an RFC 1929 username. Any other character,
/// multi-byte ones included, may appear.
fn wire_name() -> impl Strategy<Value = String> {
    let char = any::<char>().prop_filter("control characters are refused", |c| !c.is_control());
    let short = vec(char.clone(), 1..16);
    let long = vec(char, 16..256);
    prop_oneof![3 => short, 1 => long].prop_map(|chars| {
        let mut name = String::new();
        for c in chars {
            if name.len() + c.len_utf8() > 255 {
                break;
            }
            name.push(c);
        }
        name
    })
}

/// Any socket address with the parts the wire carries (IPv6 flow info and
/// scope id are not on the wire, so they are zero).
fn socket_addr() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        any::<([u8; 4], u16)>().prop_map(|(ip, port)| SocketAddr::from((ip, port))),
        any::<([u8; 16], u16)>().prop_map(|(ip, port)| SocketAddr::from((ip, port))),
    ]
}

fn target_addr() -> impl Strategy<Value = TargetAddr> {
    prop_oneof![
        socket_addr().prop_map(TargetAddr::Ip),
        (wire_name(), any::<u16>()).prop_map(|(name, port)| TargetAddr::Domain(name, port)),
    ]
}

fn command() -> impl Strategy<Value = Command> {
    select(vec![Command::Connect, Command::Bind, Command::UdpAssociate])
}

/// A SOCKS4 target: any IPv4 address (including the `0.0.0.x` forms that
/// announce SOCKS4a, which the encoder must refuse) or a domain.
fn socks4_target() -> impl Strategy<Value = TargetAddr> {
    prop_oneof![
        any::<([u8; 4], u16)>().prop_map(|(ip, port)| TargetAddr::Ip(SocketAddr::from((ip, port)))),
        (any::<u8>(), any::<u16>())
            .prop_map(|(x, port)| TargetAddr::Ip(SocketAddr::from(([0, 0, 0, x], port)))),
        (wire_name(), any::<u16>()).prop_map(|(name, port)| TargetAddr::Domain(name, port)),
    ]
}

/// Bytes that often hold the values parsers branch on (versions, commands,
/// ATYPs, lengths, NUL), so arbitrary input reaches past the first checks.
fn steering_byte() -> impl Strategy<Value = u8> + Clone {
    prop_oneof![
        1 => select(vec![0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x5A, 0x5B, 0x7F, 0xC3, 0xFF]),
        1 => any::<u8>(),
    ]
}

/// Arbitrary bytes for a parser whose messages start with `version`: up to
/// `max + 16` bytes, some exactly `max` long, mostly behind the right
/// version byte.
fn soup(version: u8, max: usize) -> impl Strategy<Value = Vec<u8>> {
    soup_of(steering_byte(), version, max)
}

/// Like [`soup`] with no NUL after the version byte: SOCKS4 fields end at a
/// NUL, and only long runs without one reach their caps.
fn soup_without_nul(version: u8, max: usize) -> impl Strategy<Value = Vec<u8>> {
    soup_of(steering_byte().prop_map(|b| b.max(1)), version, max)
}

fn soup_of(
    byte: impl Strategy<Value = u8> + Clone,
    version: u8,
    max: usize,
) -> impl Strategy<Value = Vec<u8>> {
    let lengths = prop_oneof![3 => 0..max + 16, 1 => Just(max)];
    (lengths, any::<bool>())
        .prop_flat_map(move |(len, keep_first)| (vec(byte.clone(), len), Just(keep_first)))
        .prop_map(move |(mut buf, keep_first)| {
            if let Some(first) = buf.first_mut().filter(|_| !keep_first) {
                *first = version;
            }
            buf
        })
}

/// A valid message's bytes with a few bytes overwritten, then cut short or
/// extended: inputs close to valid ones, where parsers are most likely
/// wrong.
pub(super) fn mutated(valid: impl Strategy<Value = Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    (
        valid,
        vec((any::<prop::sample::Index>(), steering_byte()), 0..4),
        any::<prop::sample::Index>(),
        vec(any::<u8>(), 0..16),
        0..3u8,
    )
        .prop_map(|(mut buf, edits, cut, tail, how)| {
            for (at, byte) in edits {
                if !buf.is_empty() {
                    let at = at.index(buf.len());
                    buf[at] = byte;
                }
            }
            match how {
                0 => buf.truncate(cut.index(buf.len() + 1)),
                1 => buf.extend(tail),
                _ => {}
            }
            buf
        })
}

/// Encodes with a fallible encoder; `None` when it refuses.
fn try_encode<T>(
    value: &T,
    encode: impl Fn(&T, &mut Vec<u8>) -> Result<(), ProtoError>,
) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    encode(value, &mut out).ok().map(|()| out)
}

fn must_encode<T: Debug>(
    value: &T,
    encode: impl Fn(&T, &mut Vec<u8>) -> Result<(), ProtoError>,
) -> Vec<u8> {
    try_encode(value, encode).unwrap_or_else(|| panic!("{value:?} should encode"))
}

// ------------------------------------------------------------------ checks

/// `bytes` is exactly one message equal to `expected`: it parses using all
/// of it, trailing bytes change nothing, and every strict prefix needs more.
fn check_round_trip<T: Clone + PartialEq + Debug>(
    parse: fn(&[u8]) -> ParseResult<T>,
    expected: &T,
    bytes: &[u8],
    trailing: &[u8],
) -> Result<(), TestCaseError> {
    let whole = Ok(Some((expected.clone(), bytes.len())));
    prop_assert_eq!(&parse(bytes), &whole);
    prop_assert_eq!(&parse(&[bytes, trailing].concat()), &whole);
    for n in 0..bytes.len() {
        prop_assert_eq!(parse(&bytes[..n]), Ok(None), "prefix of {} bytes", n);
    }
    Ok(())
}

/// How a parsed message goes back to bytes, for the re-encoding check.
pub(super) enum Reencode<T> {
    /// Parse then encode gives the very bytes that were read.
    Exact(fn(&T) -> Vec<u8>),
    /// Several encodings mean the same message: the encoding of the parsed
    /// message parses back to it.
    Equivalent(fn(&T) -> Vec<u8>),
}

/// The parser contract of `proto/mod.rs`, on one buffer.
pub(super) fn check_contract<T: Clone + PartialEq + Debug>(
    parse: fn(&[u8]) -> ParseResult<T>,
    max: usize,
    reencode: &Reencode<T>,
    buf: &[u8],
) -> Result<(), TestCaseError> {
    let answer = parse(buf);
    if buf.len() >= max {
        prop_assert_ne!(&answer, &Ok(None), "no answer at the cap of {}", max);
    }
    // Answers never change as bytes arrive: every prefix either needs more
    // or already gives the final answer.
    for n in 0..buf.len() {
        let early = parse(&buf[..n]);
        if early != Ok(None) {
            prop_assert_eq!(&early, &answer, "answer changed after {} bytes", n);
        }
    }
    // Nor when more arrive: the buffer extended to the cap with its own
    // bytes (NUL if empty) gets a definite answer, the same if it had one.
    if buf.len() < max {
        let fill = if buf.is_empty() { &[0u8][..] } else { buf };
        let mut longer = buf.to_vec();
        longer.extend(fill.iter().cycle().take(max - buf.len()));
        let late = parse(&longer);
        prop_assert_ne!(&late, &Ok(None), "no answer at the cap for {:02x?}", longer);
        if answer != Ok(None) {
            prop_assert_eq!(&late, &answer, "more bytes changed the answer");
        }
    }
    if let Ok(Some((message, used))) = &answer {
        prop_assert!(*used >= 1 && *used <= buf.len() && *used <= max);
        let read = &buf[..*used];
        prop_assert_eq!(&parse(read), &answer);
        match reencode {
            Reencode::Exact(encode) => prop_assert_eq!(encode(message), read),
            Reencode::Equivalent(encode) => {
                let bytes = encode(message);
                prop_assert_eq!(parse(&bytes), Ok(Some((message.clone(), bytes.len()))));
            }
        }
    }
    Ok(())
}

/// A whole datagram seen as a stream message: `Truncated` is "need more".
fn udp_as_stream(datagram: &[u8]) -> ParseResult<UdpHeader> {
    match UdpHeader::parse(datagram) {
        Ok(parsed) => Ok(Some(parsed)),
        Err(ProtoError::Truncated) => Ok(None),
        Err(e) => Err(e),
    }
}

fn greeting_bytes(g: &Greeting) -> Vec<u8> {
    must_encode(g, Greeting::encode)
}
fn userpass_bytes(u: &UserPass) -> Vec<u8> {
    must_encode(u, UserPass::encode)
}
fn request_bytes(r: &Request) -> Vec<u8> {
    must_encode(r, Request::encode)
}
fn reply_bytes(r: &Reply) -> Vec<u8> {
    let mut out = Vec::new();
    r.encode(&mut out);
    out
}
fn socks4_bytes(r: &Socks4Request) -> Vec<u8> {
    must_encode(r, Socks4Request::encode)
}
fn socks4_reply_bytes(&(status, bound): &(Socks4Status, SocketAddrV4)) -> Vec<u8> {
    encode_socks4_reply(status, bound).to_vec()
}
fn udp_bytes(h: &UdpHeader) -> Vec<u8> {
    must_encode(h, UdpHeader::encode)
}

fn greeting() -> impl Strategy<Value = Greeting> {
    vec(any::<u8>(), 1..=255).prop_map(|methods| Greeting { methods })
}
fn userpass() -> impl Strategy<Value = UserPass> {
    (wire_name(), vec(any::<u8>(), 0..=255))
        .prop_map(|(username, password)| UserPass { username, password })
}
fn request() -> impl Strategy<Value = Request> {
    (command(), target_addr()).prop_map(|(command, target)| Request { command, target })
}
fn reply() -> impl Strategy<Value = Reply> {
    (select(ReplyCode::ALL.to_vec()), socket_addr()).prop_map(|(code, bound)| Reply { code, bound })
}
fn socks4_request() -> impl Strategy<Value = Socks4Request> {
    let user_id = vec(1..=u8::MAX, 0..=255);
    (
        select(vec![Command::Connect, Command::Bind]),
        socks4_target(),
        user_id,
    )
        .prop_map(|(command, target, user_id)| Socks4Request {
            command,
            target,
            user_id,
        })
}
fn socks4_status() -> impl Strategy<Value = Socks4Status> {
    select(vec![Socks4Status::Granted, Socks4Status::Rejected])
}
fn udp_header() -> impl Strategy<Value = UdpHeader> {
    (any::<u8>(), target_addr()).prop_map(|(frag, target)| UdpHeader { frag, target })
}

// ------------------------------------------------------------- round trips

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn greeting_round_trips(g in greeting(), tail in vec(any::<u8>(), 0..8)) {
        check_round_trip(Greeting::parse, &g, &greeting_bytes(&g), &tail)?;
    }

    #[test]
    fn method_selection_round_trips(m in any::<u8>(), tail in vec(any::<u8>(), 0..8)) {
        check_round_trip(parse_method_selection, &m, &encode_method_selection(m), &tail)?;
    }

    #[test]
    fn userpass_round_trips(u in userpass(), tail in vec(any::<u8>(), 0..8)) {
        check_round_trip(UserPass::parse, &u, &userpass_bytes(&u), &tail)?;
    }

    #[test]
    fn userpass_status_round_trips(ok in any::<bool>(), status in any::<u8>()) {
        check_round_trip(parse_userpass_status, &ok, &encode_userpass_status(ok), &[])?;
        // RFC 1929: any nonzero STATUS is a failure.
        prop_assert_eq!(parse_userpass_status(&[0x01, status]), Ok(Some((status == 0, 2))));
    }

    #[test]
    fn socks5_request_round_trips(r in request(), tail in vec(any::<u8>(), 0..8)) {
        check_round_trip(Request::parse, &r, &request_bytes(&r), &tail)?;
    }

    #[test]
    fn socks5_reply_round_trips(r in reply(), tail in vec(any::<u8>(), 0..8)) {
        check_round_trip(Reply::parse, &r, &reply_bytes(&r), &tail)?;
    }

    /// A SOCKS4 request either refuses to encode (only an IPv4 target that
    /// would read as SOCKS4a may) or encodes to bytes that read back as it.
    #[test]
    fn socks4_request_round_trips(r in socks4_request(), tail in vec(any::<u8>(), 0..8)) {
        match try_encode(&r, Socks4Request::encode) {
            Some(bytes) => check_round_trip(Socks4Request::parse, &r, &bytes, &tail)?,
            None => prop_assert!(
                matches!(r.target, TargetAddr::Ip(SocketAddr::V4(v4))
                    if matches!(v4.ip().octets(), [0, 0, 0, x] if x != 0)),
                "{:?} refused", r
            ),
        }
    }

    #[test]
    fn socks4_reply_round_trips(
        status in socks4_status(),
        ip in any::<[u8; 4]>(),
        port in any::<u16>(),
        tail in vec(any::<u8>(), 0..8),
    ) {
        let reply = (status, SocketAddrV4::new(Ipv4Addr::from(ip), port));
        check_round_trip(parse_socks4_reply, &reply, &socks4_reply_bytes(&reply), &tail)?;
    }

    /// A datagram arrives whole: the header parses from the front of any
    /// payload, DATA starts right after it, and every cut is `Truncated`.
    #[test]
    fn udp_header_round_trips(h in udp_header(), payload in vec(any::<u8>(), 0..32)) {
        let bytes = udp_bytes(&h);
        let datagram = [&bytes[..], &payload].concat();
        prop_assert_eq!(UdpHeader::parse(&datagram), Ok((h.clone(), bytes.len())));
        for n in 0..bytes.len() {
            prop_assert_eq!(UdpHeader::parse(&bytes[..n]), Err(ProtoError::Truncated));
        }
    }

    /// The allocation-free reply header reads back as the source address,
    /// an IPv4-mapped IPv6 source as the IPv4 address it stands for.
    #[test]
    fn udp_reply_header_parses_back(source in socket_addr()) {
        let header = UdpReplyHeader::new(source);
        let canonical = SocketAddr::new(source.ip().to_canonical(), source.port());
        let expected = UdpHeader { frag: 0, target: TargetAddr::Ip(canonical) };
        prop_assert_eq!(&udp_bytes(&expected), header.as_bytes());
        prop_assert_eq!(
            UdpHeader::parse(header.as_bytes()),
            Ok((expected, header.as_bytes().len()))
        );
    }
}

// -------------------------------------------------- contract on any bytes

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn detect_version_reads_one_byte(buf in vec(steering_byte(), 0..4)) {
        let expected = match buf.first() {
            None => Ok(None),
            Some(4) => Ok(Some(Version::Socks4)),
            Some(5) => Ok(Some(Version::Socks5)),
            Some(&b) => Err(ProtoError::UnknownVersion(b)),
        };
        prop_assert_eq!(detect_version(&buf), expected);
    }

    #[test]
    fn greeting_contract(buf in prop_oneof![
        soup(0x05, MAX_GREETING),
        mutated(greeting().prop_map(|g| greeting_bytes(&g))),
    ]) {
        check_contract(Greeting::parse, MAX_GREETING, &Reencode::Exact(greeting_bytes), &buf)?;
    }

    #[test]
    fn method_selection_contract(buf in soup(0x05, 2)) {
        let encode = |m: &u8| encode_method_selection(*m).to_vec();
        check_contract(parse_method_selection, 2, &Reencode::Exact(encode), &buf)?;
    }

    #[test]
    fn userpass_contract(buf in prop_oneof![
        soup(0x01, MAX_USERPASS),
        mutated(userpass().prop_map(|u| userpass_bytes(&u))),
    ]) {
        check_contract(UserPass::parse, MAX_USERPASS, &Reencode::Exact(userpass_bytes), &buf)?;
    }

    #[test]
    fn userpass_status_contract(buf in soup(0x01, 2)) {
        // Every nonzero STATUS means failure, which is sent as 0x01.
        let encode = |ok: &bool| encode_userpass_status(*ok).to_vec();
        check_contract(parse_userpass_status, 2, &Reencode::Equivalent(encode), &buf)?;
    }

    #[test]
    fn socks5_request_contract(buf in prop_oneof![
        soup(0x05, MAX_SOCKS5_REQUEST),
        mutated(request().prop_map(|r| request_bytes(&r))),
    ]) {
        check_contract(Request::parse, MAX_SOCKS5_REQUEST, &Reencode::Exact(request_bytes), &buf)?;
    }

    #[test]
    fn socks5_reply_contract(buf in prop_oneof![
        soup(0x05, MAX_SOCKS5_REPLY),
        mutated(reply().prop_map(|r| reply_bytes(&r))),
    ]) {
        check_contract(Reply::parse, MAX_SOCKS5_REPLY, &Reencode::Exact(reply_bytes), &buf)?;
    }

    #[test]
    fn socks4_request_contract(buf in prop_oneof![
        soup(0x04, MAX_SOCKS4_REQUEST),
        soup_without_nul(0x04, MAX_SOCKS4_REQUEST),
        mutated(socks4_request().prop_filter_map("refused", |r| {
            try_encode(&r, Socks4Request::encode)
        })),
    ]) {
        // Any 0.0.0.x (x != 0) announces SOCKS4a; the encoder writes 0.0.0.1.
        check_contract(
            Socks4Request::parse,
            MAX_SOCKS4_REQUEST,
            &Reencode::Equivalent(socks4_bytes),
            &buf,
        )?;
    }

    #[test]
    fn socks4_reply_contract(buf in prop_oneof![
        soup(0x00, SOCKS4_REPLY_LEN),
        mutated(Just(encode_socks4_reply(Socks4Status::Granted, SocketAddrV4::new(
            Ipv4Addr::LOCALHOST, 1080,
        )).to_vec())),
    ]) {
        check_contract(
            parse_socks4_reply,
            SOCKS4_REPLY_LEN,
            &Reencode::Exact(socks4_reply_bytes),
            &buf,
        )?;
    }

    #[test]
    fn udp_header_contract(buf in prop_oneof![
        soup(0x00, MAX_UDP_HEADER).prop_map(|mut buf| {
            // Mostly a valid RSV, so the address parser is reached.
            if let Some(rsv) = buf.get_mut(1) { *rsv = 0; }
            buf
        }),
        mutated(udp_header().prop_map(|h| udp_bytes(&h))),
    ]) {
        check_contract(udp_as_stream, MAX_UDP_HEADER, &Reencode::Exact(udp_bytes), &buf)?;
    }
}
