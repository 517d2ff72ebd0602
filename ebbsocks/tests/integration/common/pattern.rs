//! Byte-exact transfers: a deterministic pattern written in chunks and a
//! checksum on each side, so a lost, doubled or reordered chunk shows.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

const CHUNK: usize = 64 * 1024;
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

fn fnv1a(hash: u64, data: &[u8]) -> u64 {
    data.iter().fold(hash, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// Writes the pattern, which differs per offset, and hashes what it wrote.
pub struct PatternWriter {
    buf: Vec<u8>,
    hash: u64,
    sent: u64,
}

impl PatternWriter {
    pub fn new() -> Self {
        PatternWriter {
            buf: vec![0u8; CHUNK],
            hash: FNV_OFFSET,
            sent: 0,
        }
    }

    /// Writes the next chunk of the pattern.
    pub async fn write_chunk(&mut self, writer: &mut (impl AsyncWrite + Unpin)) {
        for (i, byte) in self.buf.iter_mut().enumerate() {
            let x = self.sent + i as u64;
            *byte = (x ^ (x >> 8) ^ (x >> 16)) as u8;
        }
        writer.write_all(&self.buf).await.expect("send");
        self.hash = fnv1a(self.hash, &self.buf);
        self.sent += self.buf.len() as u64;
    }

    /// Bytes written so far.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// The checksum of everything written.
    pub fn hash(&self) -> u64 {
        self.hash
    }
}

/// Reads `reader` to its end: (bytes read, their checksum), to compare
/// with a [`PatternWriter`]'s.
pub async fn read_and_hash(mut reader: impl AsyncRead + Unpin) -> (u64, u64) {
    let mut buf = vec![0u8; CHUNK];
    let mut hash = FNV_OFFSET;
    let mut total = 0u64;
    loop {
        let n = reader.read(&mut buf).await.expect("receive");
        if n == 0 {
            break;
        }
        hash = fnv1a(hash, &buf[..n]);
        total += n as u64;
    }
    (total, hash)
}
