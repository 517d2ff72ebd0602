//! pulse's reader of datagrams from a UDP relay (`pulse::udp::parse_udp_reply`),
//! checked against ebbsocks' `UdpHeader::parse` on any datagram.
//!
//! pulse takes only whole datagrams (FRAG 0) from an IP address and splits
//! them into (source, DATA). Asserts: no panic, DATA is the tail of the
//! datagram, and the two parsers agree: pulse accepts exactly the datagrams
//! ebbsocks parses to FRAG 0 and an IP address, with the same source and
//! the same start of DATA.
#![no_main]

use ebbsocks_fuzz::proto::{TargetAddr, UdpHeader};
use libfuzzer_sys::fuzz_target;
use pulse::udp::parse_udp_reply;

fuzz_target!(|datagram: &[u8]| {
    let pulse = parse_udp_reply(datagram);
    let ebbsocks = match UdpHeader::parse(datagram) {
        Ok((
            UdpHeader {
                frag: 0,
                target: TargetAddr::Ip(source),
            },
            at,
        )) => Some((source, at)),
        _ => None,
    };
    match (pulse, ebbsocks) {
        (Some((source, data)), Some((expected, at))) => {
            assert_eq!(source, expected);
            assert_eq!(data.len(), datagram.len() - at, "DATA starts at {at}");
            assert!(datagram.ends_with(data));
        }
        (None, None) => {}
        (pulse, ebbsocks) => panic!("pulse {pulse:?}, ebbsocks {ebbsocks:?}"),
    }
});
