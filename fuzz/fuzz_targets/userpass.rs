//! RFC 1929 username/password sub-negotiation: read before the client is
//! trusted, and it carries a secret.
#![no_main]

use ebbsocks_fuzz::proto::{UserPass, MAX_USERPASS};
use ebbsocks_fuzz::{check_stream, Reencode};
use libfuzzer_sys::fuzz_target;

fn encode(creds: &UserPass) -> Vec<u8> {
    let mut out = Vec::new();
    creds.encode(&mut out).expect("parsed credentials encode");
    out
}

fuzz_target!(|data: &[u8]| {
    check_stream(
        "userpass",
        UserPass::parse,
        MAX_USERPASS,
        &Reencode::Exact(encode),
        data,
    );
    if let Ok(Some((creds, _))) = UserPass::parse(data) {
        // Debug (which logs may show) never holds the password.
        let shown = format!("{creds:?}");
        assert!(shown.contains("<redacted>"), "{shown}");
    }
});
