//! SOCKS5 greeting (RFC 1928 section 3): the first bytes a client sends,
//! parsed before any authentication. Also `detect_version`, which reads the
//! same first byte.
#![no_main]

use ebbsocks_fuzz::proto::{detect_version, Greeting, Version, MAX_GREETING};
use ebbsocks_fuzz::{check_stream, Reencode};
use libfuzzer_sys::fuzz_target;

fn encode(greeting: &Greeting) -> Vec<u8> {
    let mut out = Vec::new();
    greeting
        .encode(&mut out)
        .expect("a parsed greeting encodes");
    out
}

fuzz_target!(|data: &[u8]| {
    check_stream(
        "greeting",
        Greeting::parse,
        MAX_GREETING,
        &Reencode::Exact(encode),
        data,
    );
    // A greeting can only follow a first byte that says SOCKS5.
    if let Ok(Some(_)) = Greeting::parse(data) {
        assert_eq!(detect_version(data), Ok(Some(Version::Socks5)));
    }
});
