//! The client-side parsers, for bytes a proxy sends back: SOCKS5 method
//! selection, RFC 1929 status, SOCKS5 reply, SOCKS4 reply. Each gets the
//! same input (their version bytes differ: 5, 1, 5, 0).
#![no_main]

use std::net::SocketAddrV4;

use ebbsocks_fuzz::proto::{
    encode_method_selection, encode_socks4_reply, encode_userpass_status, parse_method_selection,
    parse_socks4_reply, parse_userpass_status, Reply, Socks4Status, MAX_SOCKS5_REPLY,
    SOCKS4_REPLY_LEN,
};
use ebbsocks_fuzz::{check_stream, Reencode};
use libfuzzer_sys::fuzz_target;

fn method_bytes(method: &u8) -> Vec<u8> {
    encode_method_selection(*method).to_vec()
}

fn status_bytes(ok: &bool) -> Vec<u8> {
    encode_userpass_status(*ok).to_vec()
}

/// RFC 1929: any nonzero STATUS is a failure, and failure is sent as 0x01.
fn normalize_status(ok: &bool, read: &[u8]) -> Vec<u8> {
    vec![read[0], u8::from(!*ok)]
}

fn reply_bytes(reply: &Reply) -> Vec<u8> {
    let mut out = Vec::new();
    reply.encode(&mut out);
    out
}

fn socks4_reply_bytes(&(status, bound): &(Socks4Status, SocketAddrV4)) -> Vec<u8> {
    encode_socks4_reply(status, bound).to_vec()
}

fuzz_target!(|data: &[u8]| {
    check_stream(
        "method selection",
        parse_method_selection,
        2,
        &Reencode::Exact(method_bytes),
        data,
    );
    check_stream(
        "userpass status",
        parse_userpass_status,
        2,
        &Reencode::Normalized(status_bytes, normalize_status),
        data,
    );
    check_stream(
        "socks5 reply",
        Reply::parse,
        MAX_SOCKS5_REPLY,
        &Reencode::Exact(reply_bytes),
        data,
    );
    check_stream(
        "socks4 reply",
        parse_socks4_reply,
        SOCKS4_REPLY_LEN,
        &Reencode::Exact(socks4_reply_bytes),
        data,
    );
});
