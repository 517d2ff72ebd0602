//! PROXY protocol header, versions 1 (text) and 2 (binary), as a trusted
//! balancer sends it before the SOCKS handshake.
#![no_main]

use ebbsocks_fuzz::proto::{ProxyHeader, MAX_PROXY_HEADER};
use ebbsocks_fuzz::{check_stream, Reencode};
use libfuzzer_sys::fuzz_target;

/// Several encodings mean one header (v1 or v2, TLVs skipped): the v2
/// encoding without TLVs stands for all of them.
fn encode(header: &ProxyHeader) -> Vec<u8> {
    let mut out = Vec::new();
    header.encode_v2(&mut out).expect("a parsed header encodes");
    out
}

fuzz_target!(|data: &[u8]| {
    check_stream(
        "proxy header",
        ProxyHeader::parse,
        MAX_PROXY_HEADER,
        &Reencode::Normalized(encode, |header, _read| encode(header)),
        data,
    );
    // A header read from a v1 line also encodes as a v1 line that reads
    // back the same.
    if let (Some(b'P'), Ok(Some((header, _)))) = (data.first(), ProxyHeader::parse(data)) {
        let mut line = Vec::new();
        header.encode_v1(&mut line).expect("v1 headers encode as v1");
        assert_eq!(ProxyHeader::parse(&line), Ok(Some((header, line.len()))));
    }
});
