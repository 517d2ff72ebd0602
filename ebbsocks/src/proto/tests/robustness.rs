//! Every parser against every prefix of many valid messages and against a
//! few thousand deterministic pseudo-random buffers: no panic, answers that
//! never change as bytes arrive, and a definite answer at the size cap.

use std::fmt::Debug;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4};

use super::{assert_parses, Rng};
use crate::proto::{
    encode_method_selection, encode_socks4_reply, encode_userpass_status, parse_method_selection,
    parse_socks4_reply, parse_userpass_status, Command, Greeting, ParseResult, Reply, ReplyCode,
    Request, Socks4Request, Socks4Status, TargetAddr, UserPass, MAX_GREETING, MAX_SOCKS4_REQUEST,
    MAX_SOCKS5_REPLY, MAX_SOCKS5_REQUEST, MAX_USERPASS, SOCKS4_REPLY_LEN,
};

/// One parser with what the tests need to know about it.
pub(super) struct Subject<T> {
    pub(super) name: &'static str,
    pub(super) parse: fn(&[u8]) -> ParseResult<T>,
    /// The message's bytes (a valid value must encode).
    pub(super) encode: fn(&T) -> Vec<u8>,
    /// Whether parsing then encoding gives back the very same bytes (false
    /// where several encodings mean the same message).
    pub(super) canonical: bool,
    /// A random valid message.
    pub(super) generate: fn(&mut Rng) -> T,
    /// The message's `MAX_*` size.
    pub(super) max: usize,
    /// The first byte of the message, to steer the soup past the version check.
    pub(super) version: u8,
}

fn encode_with<T>(
    encode: impl Fn(&T, &mut Vec<u8>) -> Result<(), crate::proto::ProtoError>,
    value: &T,
) -> Vec<u8> {
    let mut out = Vec::new();
    encode(value, &mut out).expect("generated messages are valid");
    out
}

fn random_ipv4(rng: &mut Rng) -> Ipv4Addr {
    // First octet nonzero: 0.0.0.x would announce SOCKS4a.
    Ipv4Addr::new(1 + rng.below(255) as u8, rng.byte(), rng.byte(), rng.byte())
}

pub(super) fn random_socket_addr(rng: &mut Rng) -> SocketAddr {
    let port = rng.next() as u16;
    if rng.below(2) == 0 {
        SocketAddr::from((random_ipv4(rng), port))
    } else {
        let ip = Ipv6Addr::from(u128::from(rng.next()) << 64 | u128::from(rng.next()));
        SocketAddr::from((ip, port))
    }
}

fn random_domain(rng: &mut Rng) -> String {
    const CHARS: &[char] = &['a', 'z', '0', '9', '-', '.', '_', 'é', 'ü', '中'];
    let mut name = String::new();
    let want = 1 + rng.below(255);
    loop {
        let c = CHARS[rng.below(CHARS.len())];
        if name.len() + c.len_utf8() > want {
            break;
        }
        name.push(c);
    }
    if name.is_empty() {
        name.push('x');
    }
    name
}

fn random_target(rng: &mut Rng) -> TargetAddr {
    match rng.below(3) {
        0 => TargetAddr::Domain(random_domain(rng), rng.next() as u16),
        _ => TargetAddr::Ip(random_socket_addr(rng)),
    }
}

fn random_bytes(rng: &mut Rng, len: usize, avoid_nul: bool) -> Vec<u8> {
    (0..len)
        .map(|_| match rng.byte() {
            0 if avoid_nul => 1,
            b => b,
        })
        .collect()
}

/// Checks one buffer: no panic, and whatever the answer, it is consistent.
/// Returns the answer's kind: 0 = need more, 1 = message, 2 = error.
fn check_buffer<T: Clone + PartialEq + Debug>(s: &Subject<T>, rng: &mut Rng, buf: &[u8]) -> usize {
    let answer = (s.parse)(buf);
    if buf.len() >= s.max {
        assert_ne!(
            answer,
            Ok(None),
            "{}: no answer at the cap for {buf:02x?}",
            s.name
        );
    }
    // A decisive answer on a prefix is the answer on the whole buffer.
    let k = rng.below(buf.len() + 1);
    let early = (s.parse)(&buf[..k]);
    if early != Ok(None) {
        assert_eq!(
            early, answer,
            "{}: answer changed after {k} bytes of {buf:02x?}",
            s.name
        );
    }
    if let Ok(Some((message, used))) = &answer {
        assert!(
            *used >= 1 && *used <= buf.len() && *used <= s.max,
            "{}",
            s.name
        );
        assert_eq!((s.parse)(&buf[..*used]), answer, "{}", s.name);
        let bytes = (s.encode)(message);
        assert_eq!(
            (s.parse)(&bytes),
            Ok(Some((message.clone(), bytes.len()))),
            "{}",
            s.name
        );
        if s.canonical {
            assert_eq!(bytes, &buf[..*used], "{}: re-encoding differs", s.name);
        }
    }
    match answer {
        Ok(None) => 0,
        Ok(Some(_)) => 1,
        Err(_) => 2,
    }
}

pub(super) fn exercise<T: Clone + PartialEq + Debug>(s: Subject<T>, seed: u64) {
    let mut rng = Rng::new(seed);
    // Every prefix of many valid messages.
    let mut valid = Vec::new();
    for _ in 0..150 {
        let message = (s.generate)(&mut rng);
        let bytes = (s.encode)(&message);
        assert!(
            bytes.len() <= s.max,
            "{}: {} > MAX {}",
            s.name,
            bytes.len(),
            s.max
        );
        assert_parses(s.parse, &bytes, message);
        valid.push(bytes);
    }
    // Valid messages with a few bytes changed, cut short or extended.
    let mut kinds = [0usize; 3];
    for _ in 0..2000 {
        let mut buf = valid[rng.below(valid.len())].clone();
        for _ in 0..1 + rng.below(3) {
            let at = rng.below(buf.len());
            buf[at] = rng.steering_byte();
        }
        match rng.below(3) {
            0 => buf.truncate(rng.below(buf.len() + 1)),
            1 => {
                let extra = rng.below(16);
                buf.extend(random_bytes(&mut rng, extra, false));
            }
            _ => {}
        }
        kinds[check_buffer(&s, &mut rng, &buf)] += 1;
    }
    // Byte soup, mostly with the right version byte, some at the cap.
    for i in 0..3000 {
        let len = if i % 10 == 0 {
            s.max
        } else {
            rng.below(s.max + 16)
        };
        let mut buf: Vec<u8> = (0..len).map(|_| rng.steering_byte()).collect();
        if let Some(first) = buf.first_mut().filter(|_| i % 4 != 0) {
            *first = s.version;
        }
        kinds[check_buffer(&s, &mut rng, &buf)] += 1;
    }
    // The inputs reach every kind of answer, not only the version check.
    let [more, messages, errors] = kinds;
    assert!(
        more > 0 && messages > 0 && errors > 0,
        "{}: {kinds:?}",
        s.name
    );
}

#[test]
fn socks5_greeting() {
    exercise(
        Subject {
            name: "greeting",
            parse: Greeting::parse,
            encode: |g| encode_with(Greeting::encode, g),
            canonical: true,
            generate: |rng| {
                let n = 1 + rng.below(255);
                Greeting {
                    methods: random_bytes(rng, n, false),
                }
            },
            max: MAX_GREETING,
            version: 0x05,
        },
        1,
    );
}

#[test]
fn socks5_method_selection() {
    exercise(
        Subject {
            name: "method selection",
            parse: parse_method_selection,
            encode: |m| encode_method_selection(*m).to_vec(),
            canonical: true,
            generate: |rng| rng.byte(),
            max: 2,
            version: 0x05,
        },
        2,
    );
}

#[test]
fn socks5_request() {
    exercise(
        Subject {
            name: "request",
            parse: Request::parse,
            encode: |r| encode_with(Request::encode, r),
            canonical: true,
            generate: |rng| {
                let commands = [Command::Connect, Command::Bind, Command::UdpAssociate];
                let command = commands[rng.below(3)];
                Request {
                    command,
                    target: random_target(rng),
                }
            },
            max: MAX_SOCKS5_REQUEST,
            version: 0x05,
        },
        3,
    );
}

#[test]
fn socks5_reply() {
    exercise(
        Subject {
            name: "reply",
            parse: Reply::parse,
            encode: |r| {
                let mut out = Vec::new();
                r.encode(&mut out);
                out
            },
            canonical: true,
            generate: |rng| Reply {
                code: ReplyCode::ALL[rng.below(ReplyCode::ALL.len())],
                bound: random_socket_addr(rng),
            },
            max: MAX_SOCKS5_REPLY,
            version: 0x05,
        },
        4,
    );
}

#[test]
fn userpass_request() {
    exercise(
        Subject {
            name: "userpass",
            parse: UserPass::parse,
            encode: |u| encode_with(UserPass::encode, u),
            canonical: true,
            generate: |rng| {
                let name_len = 1 + rng.below(255);
                let username: String = (0..name_len)
                    .map(|_| char::from(b' ' + rng.below(95) as u8))
                    .collect();
                let pass_len = rng.below(256);
                UserPass {
                    username,
                    password: random_bytes(rng, pass_len, false),
                }
            },
            max: MAX_USERPASS,
            version: 0x01,
        },
        5,
    );
}

#[test]
fn userpass_status() {
    exercise(
        Subject {
            name: "userpass status",
            parse: parse_userpass_status,
            encode: |ok| encode_userpass_status(*ok).to_vec(),
            // Every nonzero status means failure; failure is sent as 0x01.
            canonical: false,
            generate: |rng| rng.below(2) == 0,
            max: 2,
            version: 0x01,
        },
        6,
    );
}

#[test]
fn socks4_request() {
    exercise(
        Subject {
            name: "socks4 request",
            parse: Socks4Request::parse,
            encode: |r| encode_with(Socks4Request::encode, r),
            // Any 0.0.0.x (x != 0) announces SOCKS4a; 0.0.0.1 is what we send.
            canonical: false,
            generate: |rng| {
                let command = [Command::Connect, Command::Bind][rng.below(2)];
                let port = rng.next() as u16;
                let target = match rng.below(2) {
                    0 => TargetAddr::Domain(random_domain(rng), port),
                    _ => TargetAddr::Ip(SocketAddr::from((random_ipv4(rng), port))),
                };
                let id_len = rng.below(256);
                Socks4Request {
                    command,
                    target,
                    user_id: random_bytes(rng, id_len, true),
                }
            },
            max: MAX_SOCKS4_REQUEST,
            version: 0x04,
        },
        7,
    );
}

#[test]
fn socks4_reply() {
    exercise(
        Subject {
            name: "socks4 reply",
            parse: parse_socks4_reply,
            encode: |(status, bound)| encode_socks4_reply(*status, *bound).to_vec(),
            canonical: true,
            generate: |rng| {
                let status = [Socks4Status::Granted, Socks4Status::Rejected][rng.below(2)];
                (
                    status,
                    SocketAddrV4::new(random_ipv4(rng), rng.next() as u16),
                )
            },
            max: SOCKS4_REPLY_LEN,
            version: 0x00,
        },
        8,
    );
}
