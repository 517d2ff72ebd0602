//! SOCKS5 request (RFC 1928 section 4): command, target address, port.
#![no_main]

use ebbsocks_fuzz::proto::{Request, MAX_SOCKS5_REQUEST};
use ebbsocks_fuzz::{check_stream, Reencode};
use libfuzzer_sys::fuzz_target;

fn encode(request: &Request) -> Vec<u8> {
    let mut out = Vec::new();
    request.encode(&mut out).expect("a parsed request encodes");
    out
}

fuzz_target!(|data: &[u8]| {
    check_stream(
        "request",
        Request::parse,
        MAX_SOCKS5_REQUEST,
        &Reencode::Exact(encode),
        data,
    );
});
