//! The UDP request header (RFC 1928 section 7) in front of every datagram
//! of an association. A datagram arrives whole, so `Truncated` plays the
//! part of a stream parser's `Ok(None)`: the stream contract applies with
//! that reading, and DATA must never change the answer.
#![no_main]

use ebbsocks_fuzz::proto::{ParseResult, ProtoError, UdpHeader, MAX_UDP_HEADER};
use ebbsocks_fuzz::{check_stream, Reencode};
use libfuzzer_sys::fuzz_target;

fn as_stream(datagram: &[u8]) -> ParseResult<UdpHeader> {
    match UdpHeader::parse(datagram) {
        Ok(parsed) => Ok(Some(parsed)),
        Err(ProtoError::Truncated) => Ok(None),
        Err(e) => Err(e),
    }
}

fn encode(header: &UdpHeader) -> Vec<u8> {
    let mut out = Vec::new();
    header.encode(&mut out).expect("a parsed header encodes");
    out
}

fuzz_target!(|data: &[u8]| {
    check_stream(
        "udp header",
        as_stream,
        MAX_UDP_HEADER,
        &Reencode::Exact(encode),
        data,
    );
    // DATA is the payload: other bytes there give the same header.
    if let Ok((header, at)) = UdpHeader::parse(data) {
        let flipped: Vec<u8> = data
            .iter()
            .enumerate()
            .map(|(i, &b)| if i < at { b } else { !b })
            .collect();
        assert_eq!(UdpHeader::parse(&flipped), Ok((header, at)));
    }
});
