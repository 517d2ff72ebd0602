//! SOCKS4 and SOCKS4a requests: NUL-terminated user id and domain, the
//! fields with no length byte, where a missing cap would wait forever.
#![no_main]

use ebbsocks_fuzz::proto::{Socks4Request, TargetAddr, MAX_SOCKS4_REQUEST};
use ebbsocks_fuzz::{check_stream, Reencode};
use libfuzzer_sys::fuzz_target;

fn encode(request: &Socks4Request) -> Vec<u8> {
    let mut out = Vec::new();
    request.encode(&mut out).expect("a parsed request encodes");
    out
}

/// Any DSTIP `0.0.0.x` (x != 0) announces SOCKS4a; the encoder writes
/// `0.0.0.1`. Everything else is byte for byte what was read.
fn normalize(request: &Socks4Request, read: &[u8]) -> Vec<u8> {
    let mut bytes = read.to_vec();
    if let TargetAddr::Domain(..) = request.target {
        bytes[4..8].copy_from_slice(&[0, 0, 0, 1]);
    }
    bytes
}

fuzz_target!(|data: &[u8]| {
    check_stream(
        "socks4 request",
        Socks4Request::parse,
        MAX_SOCKS4_REQUEST,
        &Reencode::Normalized(encode, normalize),
        data,
    );
});
