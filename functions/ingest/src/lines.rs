//! Cutting a byte stream into numbered lines, as it arrives: the plan reads a file of up to
//! 2 GiB this way, holding one line at a time (and whatever part of the next one came with
//! the last piece).

/// The UTF-8 byte-order mark.
pub const BOM: &[u8] = b"\xEF\xBB\xBF";

/// One line: its 1-based number, the byte range it takes in the file (its line end
/// included) and its content (without `\n` or `\r\n`; on line 1 without a byte-order mark).
#[derive(Debug, PartialEq, Eq)]
pub struct Line<'a> {
    pub number: u64,
    pub start: u64,
    pub end: u64,
    pub bytes: &'a [u8],
}

/// Splits pieces of a file into [`Line`]s.
#[derive(Debug)]
pub struct Splitter {
    buf: Vec<u8>,
    /// The file offset of `buf[0]`.
    offset: u64,
    /// The number of the next line.
    next: u64,
    /// Whether line 1 began with a byte-order mark (it is skipped).
    pub bom: bool,
}

impl Splitter {
    /// A splitter whose first line is line `first_line`, at file offset `offset`.
    pub fn new(offset: u64, first_line: u64) -> Self {
        Splitter {
            buf: Vec::with_capacity(1 << 16),
            offset,
            next: first_line,
            bom: false,
        }
    }

    /// Bytes held for a line not yet complete.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// Feeds the next piece of the file; `each` is called for every line it completes.
    pub fn push<E>(&mut self, piece: &[u8], mut each: impl FnMut(Line<'_>) -> Result<(), E>) -> Result<(), E> {
        let search_from = self.buf.len();
        self.buf.extend_from_slice(piece);
        let mut consumed = 0;
        let mut from = search_from;
        while let Some(i) = self.buf[from..].iter().position(|&b| b == b'\n') {
            let end = from + i + 1;
            let line = self.line(consumed, end);
            each(line)?;
            consumed = end;
            from = end;
        }
        if consumed > 0 {
            self.buf.drain(..consumed);
            self.offset += consumed as u64;
        }
        Ok(())
    }

    /// Ends the file: the last line, when it has no line end.
    pub fn finish<E>(mut self, mut each: impl FnMut(Line<'_>) -> Result<(), E>) -> Result<(), E> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let end = self.buf.len();
        let line = self.line(0, end);
        each(line)
    }

    fn line(&mut self, from: usize, to: usize) -> Line<'_> {
        let number = self.next;
        self.next += 1;
        let mut bytes = &self.buf[from..to];
        bytes = bytes.strip_suffix(b"\n").unwrap_or(bytes);
        bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
        if number == 1
            && self.offset + from as u64 == 0
            && let Some(rest) = bytes.strip_prefix(BOM)
        {
            self.bom = true;
            bytes = rest;
        }
        Line {
            number,
            start: self.offset + from as u64,
            end: self.offset + to as u64,
            bytes,
        }
    }
}

/// A line as [`split_all`] returns it: number, start, end, content.
pub type OwnedLine = (u64, u64, u64, Vec<u8>);

/// Every line of `bytes` (a whole file, or a chunk starting at `offset` with line
/// `first_line`).
pub fn split_all(bytes: &[u8], offset: u64, first_line: u64) -> (Vec<OwnedLine>, bool) {
    let mut out = Vec::new();
    let mut s = Splitter::new(offset, first_line);
    let mut take = |l: Line<'_>| {
        out.push((l.number, l.start, l.end, l.bytes.to_vec()));
        Ok::<(), ()>(())
    };
    let _ = s.push(bytes, &mut take);
    let bom = s.bom;
    let _ = s.finish(&mut take);
    (out, bom)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_across_pieces_keep_their_numbers_and_ranges() {
        let file = b"\xEF\xBB\xBFab\r\ncd\n\nlast";
        for cut in 0..file.len() {
            let mut s = Splitter::new(0, 1);
            let mut got = Vec::new();
            let mut take = |l: Line<'_>| {
                got.push((l.number, l.start, l.end, l.bytes.to_vec()));
                Ok::<(), ()>(())
            };
            s.push(&file[..cut], &mut take).unwrap();
            s.push(&file[cut..], &mut take).unwrap();
            assert!(s.bom);
            s.finish(&mut take).unwrap();
            assert_eq!(
                got,
                vec![
                    (1, 0, 7, b"ab".to_vec()),
                    (2, 7, 10, b"cd".to_vec()),
                    (3, 10, 11, b"".to_vec()),
                    (4, 11, 15, b"last".to_vec()),
                ],
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn a_chunk_continues_the_numbering_and_ignores_a_bom_past_the_start() {
        let (lines, bom) = split_all(b"\xEF\xBB\xBFx\ny\n", 100, 41);
        assert!(!bom);
        assert_eq!(lines[0], (41, 100, 105, b"\xEF\xBB\xBFx".to_vec()));
        assert_eq!(lines[1], (42, 105, 107, b"y".to_vec()));
    }
}
