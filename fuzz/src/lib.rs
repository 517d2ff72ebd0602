//! Shared checks for the fuzz targets in `fuzz_targets/`.
//!
//! `proto` is ebbsocks' own `src/proto` module, compiled in from its source:
//! it is sans IO and needs nothing but `std` and `thiserror`, so the targets
//! build in seconds without the server's dependencies (tokio, axum,
//! jemalloc...). Should `proto` ever import more, this build says so.
//!
//! [`check_stream`] is the parser contract of `proto/mod.rs` on one input.
//! Checking every prefix of every input would cost O(n^2) per run; instead
//! each run checks the prefixes where a wrong answer is most likely (one
//! byte short, the consumed length and one byte less) and two positions
//! picked from a hash of the input, and it extends the input to the cap.
//! Over millions of runs every kind of prefix is checked many times.

#[path = "../../ebbsocks/src/proto/mod.rs"]
pub mod proto;

use std::fmt::Debug;

use proto::ParseResult;

/// How a parsed message goes back to bytes.
pub enum Reencode<T> {
    /// Parse then encode gives the very bytes that were read.
    Exact(fn(&T) -> Vec<u8>),
    /// Encoding may differ from what was read (several encodings mean the
    /// same message): `normalize` turns the bytes read into the encoding.
    Normalized(fn(&T) -> Vec<u8>, fn(&T, &[u8]) -> Vec<u8>),
}

/// FNV-1a of the input: a deterministic source of "random" prefix lengths,
/// so a crash found by the fuzzer reproduces from its input alone.
fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Asserts the parser contract of `proto/mod.rs` on `data`:
///
/// 1. no panic (the fuzzer reports one as a crash);
/// 2. a message uses at least 1 and at most `data.len()` (and `max`) bytes,
///    parses the same from exactly those bytes, and is `Ok(None)` one byte
///    short of them;
/// 3. it re-encodes to the bytes it was read from (see [`Reencode`]), and
///    those bytes parse back to it;
/// 4. an input of `max` bytes or more never gets `Ok(None)`;
/// 5. answers never change as bytes arrive: a definite answer on a prefix
///    (one byte short, two hashed positions) is the answer on the whole,
///    and the input extended to `max` bytes (with bytes of its own) gets a
///    definite answer, the same one if `data` already had one.
pub fn check_stream<T: Clone + PartialEq + Debug>(
    name: &str,
    parse: fn(&[u8]) -> ParseResult<T>,
    max: usize,
    reencode: &Reencode<T>,
    data: &[u8],
) {
    let answer = parse(data);
    if data.len() >= max {
        assert_ne!(
            answer,
            Ok(None),
            "{name}: no answer at the cap for {data:02x?}"
        );
    }

    // (5) Prefixes: one byte short and two hashed positions.
    let hash = fnv(data);
    let n = data.len() as u64 + 1;
    let cuts = [
        data.len().saturating_sub(1),
        (hash % n) as usize,
        ((hash >> 32) % n) as usize,
    ];
    for k in cuts {
        let early = parse(&data[..k]);
        if early != Ok(None) {
            assert_eq!(
                early, answer,
                "{name}: answer changed after {k} bytes of {data:02x?}"
            );
        }
    }

    // (4, 5) Extended to the cap with the input's own bytes (or NUL).
    if data.len() < max {
        let fill = if data.is_empty() { &[0u8][..] } else { data };
        let mut longer = data.to_vec();
        longer.extend(fill.iter().cycle().take(max - data.len()));
        let late = parse(&longer);
        assert_ne!(
            late,
            Ok(None),
            "{name}: no answer at the cap for {longer:02x?}"
        );
        if answer != Ok(None) {
            assert_eq!(
                late, answer,
                "{name}: more bytes changed the answer for {data:02x?}"
            );
        }
    }

    // (2, 3) A message.
    let Ok(Some((message, used))) = &answer else {
        return;
    };
    let used = *used;
    assert!(
        used >= 1 && used <= data.len() && used <= max,
        "{name}: consumed {used} of {}",
        data.len()
    );
    let read = &data[..used];
    assert_eq!(parse(read), answer, "{name}: {read:02x?}");
    assert_eq!(parse(&read[..used - 1]), Ok(None), "{name}: {read:02x?}");
    let (bytes, expected) = match reencode {
        Reencode::Exact(encode) => (encode(message), read.to_vec()),
        Reencode::Normalized(encode, normalize) => (encode(message), normalize(message, read)),
    };
    assert_eq!(bytes, expected, "{name}: re-encoding of {message:?}");
    assert_eq!(
        parse(&bytes),
        Ok(Some((message.clone(), bytes.len()))),
        "{name}: {bytes:02x?}"
    );
}
