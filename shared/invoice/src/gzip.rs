//! gzip with one reused compressor.
//!
//! Creating a deflate compressor allocates and initialises its window and
//! hash tables (hundreds of KB); for a 4 KB invoice that costs more than the
//! compression itself (DESIGN §6: a new encoder per invoice 133–169 µs with
//! flate2's default backend, 15 µs with zlib-rs, against 12 µs reused). So
//! [`Gzip`] keeps one raw-deflate [`Compress`] and resets it between
//! invoices, and writes the gzip framing (RFC 1952) itself: a 10-byte header
//! without name or timestamp, the raw deflate stream, CRC-32 and the input
//! size. The bytes depend only on input and level, so equal invoices give
//! equal objects.

use flate2::{Compress, Compression, Crc, FlushCompress, Status};

/// The level rendering uses unless configured otherwise.
///
/// Measured on the v1 samples (3.6 KB of HTML; `cargo bench -p invoice
/// --bench render`, reused compressor, one core): level 1 gives 1,620 B in
/// about 15 µs, level 6 1,310 B in about 41 µs, level 9 1,292 B in about
/// 56 µs (levels 2–5 cost about as much as 6; 5 and 6 give the same size).
/// Level 6 stores and transfers 19% fewer bytes than level 1 for every
/// invoice, kept for years and fetched by the senders and by every link
/// click, for 26 µs more of CPU once, at rendering — about 26 s of Lambda
/// time per million invoices, a fraction of a cent. Level 9 saves another
/// 1.4% for a third more CPU: not worth it.
pub const DEFAULT_GZIP_LEVEL: u32 = 6;

#[derive(Debug, thiserror::Error)]
pub enum GzipError {
    #[error("deflate failed: {0}")]
    Deflate(#[from] flate2::CompressError),
    #[error("deflate made no progress")]
    Stalled,
}

/// A gzip writer that reuses one compressor for many members. Not shared
/// between threads: use one per worker.
pub struct Gzip {
    deflate: Compress,
    crc: Crc,
    level: u32,
}

impl Gzip {
    /// A compressor at `level` (0 = stored … 9 = smallest; above 9 means 9).
    pub fn new(level: u32) -> Gzip {
        let level = level.min(9);
        Gzip {
            deflate: Compress::new(Compression::new(level), false),
            crc: Crc::new(),
            level,
        }
    }

    pub fn level(&self) -> u32 {
        self.level
    }

    /// Appends one complete gzip member holding `input` to `out`.
    pub fn compress(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), GzipError> {
        self.deflate.reset();
        self.crc.reset();
        let xfl = match self.level {
            9 => 2,
            0 | 1 => 4,
            _ => 0,
        };
        // ID1 ID2, CM = deflate, FLG = none, MTIME = 0 (none), XFL, OS = unknown.
        out.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, 255]);

        let start_in = self.deflate.total_in();
        out.reserve(input.len() / 2 + 128);
        loop {
            let consumed = usize::try_from(self.deflate.total_in() - start_in).unwrap_or(input.len());
            let rest = input.get(consumed..).unwrap_or_default();
            let before = (self.deflate.total_in(), self.deflate.total_out());
            let status = self.deflate.compress_vec(rest, out, FlushCompress::Finish)?;
            match status {
                Status::StreamEnd => break,
                Status::Ok | Status::BufError => {
                    let progressed = (self.deflate.total_in(), self.deflate.total_out()) != before;
                    if !progressed && out.capacity() > out.len() {
                        return Err(GzipError::Stalled);
                    }
                    // Out of room: grow and go on.
                    out.reserve(out.capacity().max(256));
                }
            }
        }
        self.crc.update(input);
        out.extend_from_slice(&self.crc.sum().to_le_bytes());
        // ISIZE is the input size modulo 2^32.
        out.extend_from_slice(&(input.len() as u32).to_le_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn gunzip(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(bytes).read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn round_trips_at_every_level_with_reuse() {
        let text = "<tr><td>5G 프리미엄</td><td>89,000원</td></tr>\n".repeat(100);
        for level in 0..=9 {
            let mut gz = Gzip::new(level);
            for input in [text.as_bytes(), b"", b"x", text.as_bytes()] {
                let mut out = Vec::new();
                gz.compress(input, &mut out).unwrap();
                assert_eq!(gunzip(&out), input, "level {level}");
            }
        }
    }

    #[test]
    fn reused_output_equals_fresh_output() {
        let a = "가나다라 invoice ".repeat(300);
        let b = "other text ".repeat(50);
        let mut reused = Gzip::new(6);
        let mut first = Vec::new();
        reused.compress(a.as_bytes(), &mut first).unwrap();
        let mut second = Vec::new();
        reused.compress(b.as_bytes(), &mut second).unwrap();
        let mut fresh = Vec::new();
        Gzip::new(6).compress(b.as_bytes(), &mut fresh).unwrap();
        assert_eq!(second, fresh);
        assert_eq!(&second[..4], &[0x1f, 0x8b, 8, 0]);
    }

    #[test]
    fn grows_a_small_output_buffer_and_appends() {
        // Incompressible input needs more room than the first reservation.
        let mut x: u32 = 1;
        let noise: Vec<u8> = (0..50_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        let mut out = b"prefix".to_vec();
        Gzip::new(9).compress(&noise, &mut out).unwrap();
        assert_eq!(&out[..6], b"prefix");
        assert_eq!(gunzip(&out[6..]), noise);
    }
}
