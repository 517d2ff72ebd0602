//! Unit tests for the wire format, through the public API only.
//!
//! `socks5`, `userpass`, `socks4`: byte-exact messages with the bytes
//! commented. `udp`: the UDP request header, with its own byte soup.
//! `proxy`: the PROXY protocol header, both versions.
//! `robustness`: every prefix, pseudo-random byte soup, size caps.
//! `properties`: proptest round trips and the parser contract on any bytes.

mod properties;
mod proxy;
mod robustness;
mod socks4;
mod socks5;
mod udp;
mod userpass;

use std::collections::HashSet;
use std::fmt::Debug;

use super::{detect_version, ParseResult, ProtoError, Version};

/// Bytes a client may send right after a message (read-ahead payload, here
/// the start of a TLS ClientHello); parsers must leave them alone.
const TRAILING: &[u8] = &[0x16, 0x03, 0x01, 0x02, 0x00];

/// Asserts that `bytes` is exactly one message equal to `expected`: every
/// strict prefix needs more bytes, the whole parses using all of it, and
/// trailing bytes are not consumed.
fn assert_parses<T: Clone + PartialEq + Debug>(
    parse: fn(&[u8]) -> ParseResult<T>,
    bytes: &[u8],
    expected: T,
) {
    for n in 0..bytes.len() {
        assert_eq!(parse(&bytes[..n]), Ok(None), "prefix of {n} bytes");
    }
    assert_eq!(parse(bytes), Ok(Some((expected.clone(), bytes.len()))));
    let mut extended = bytes.to_vec();
    extended.extend_from_slice(TRAILING);
    assert_eq!(parse(&extended), Ok(Some((expected, bytes.len()))));
}

/// Asserts that `bytes` is rejected with `error` exactly when its last byte
/// arrives: every strict prefix needs more bytes, and trailing bytes do not
/// change the verdict.
fn assert_rejects<T: PartialEq + Debug>(
    parse: fn(&[u8]) -> ParseResult<T>,
    bytes: &[u8],
    error: ProtoError,
) {
    for n in 0..bytes.len() {
        assert_eq!(parse(&bytes[..n]), Ok(None), "prefix of {n} bytes");
    }
    assert_eq!(parse(bytes), Err(error.clone()));
    let mut extended = bytes.to_vec();
    extended.extend_from_slice(TRAILING);
    assert_eq!(parse(&extended), Err(error));
}

/// Encodes with a fallible encoder, failing the test on error.
fn encoded(encode: impl FnOnce(&mut Vec<u8>) -> Result<(), ProtoError>) -> Vec<u8> {
    let mut out = Vec::new();
    encode(&mut out).expect("message should encode");
    out
}

/// A small deterministic generator (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A value in `0..n` (n > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn byte(&mut self) -> u8 {
        self.next().to_le_bytes()[0]
    }

    /// A byte that is often one of the small values that steer a parser
    /// down its deeper branches (versions, commands, ATYPs, NUL).
    fn steering_byte(&mut self) -> u8 {
        const INTERESTING: [u8; 10] = [0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x5A, 0x7F, 0xC3, 0xFF];
        if self.below(2) == 0 {
            INTERESTING[self.below(INTERESTING.len())]
        } else {
            self.byte()
        }
    }
}

#[test]
fn detect_version_reads_only_the_first_byte() {
    assert_eq!(detect_version(&[]), Ok(None));
    assert_eq!(detect_version(&[0x04]), Ok(Some(Version::Socks4)));
    assert_eq!(detect_version(&[0x05, 0xFF]), Ok(Some(Version::Socks5)));
    // An HTTP proxy request sent to the SOCKS port: 'C' of "CONNECT".
    assert_eq!(
        detect_version(b"CONNECT"),
        Err(ProtoError::UnknownVersion(b'C'))
    );
    for b in (0..=u8::MAX).filter(|b| ![4, 5].contains(b)) {
        assert_eq!(detect_version(&[b]), Err(ProtoError::UnknownVersion(b)));
    }
}

#[test]
fn every_error_has_a_distinct_snake_case_reason() {
    let errors = [
        ProtoError::UnknownVersion(0x47),
        ProtoError::NoMethods,
        ProtoError::UnsupportedCommand(0x09),
        ProtoError::UnsupportedAddressType(0x02),
        ProtoError::BadReserved(0x01),
        ProtoError::EmptyDomain,
        ProtoError::InvalidDomain,
        ProtoError::BadAuthVersion(0x05),
        ProtoError::EmptyUsername,
        ProtoError::InvalidUsername,
        ProtoError::FieldTooLong,
        ProtoError::InvalidUserId,
        ProtoError::VersionMismatch,
        ProtoError::UnknownReplyCode(0x09),
        ProtoError::Truncated,
    ];
    let mut seen = HashSet::new();
    for error in &errors {
        let reason = error.reason();
        assert!(seen.insert(reason), "duplicate reason {reason}");
        assert!(!reason.is_empty());
        assert!(reason.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
        assert!(!error.to_string().is_empty());
    }
    assert_eq!(
        ProtoError::UnknownVersion(0x47).to_string(),
        "unknown SOCKS version 0x47"
    );
}
