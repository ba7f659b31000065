//! The customers file's plan, line by line, without I/O: which lines are applied, which are
//! rejected and why, which shards they touch, and how the file is cut into chunks for the
//! map. It keeps the ids seen (for duplicates) and the rejections, never the records.

use std::collections::{BTreeSet, HashMap};

use domain::QuietWindow;

use crate::lines::Line;
use crate::records::{Problem, Rejection, check_customer_line};

/// Rejections a report lists (the count is always exact).
pub const MAX_LISTED: usize = 1000;

/// Rejected lines: every number (for the chunks' skip lists), the first [`MAX_LISTED`]
/// with their field and reason, and the count.
#[derive(Debug, Default)]
pub struct Rejections {
    pub listed: Vec<Rejection>,
    pub count: u64,
    pub lines: Vec<u64>,
}

impl Rejections {
    pub fn add(&mut self, r: Rejection) {
        self.count += 1;
        self.lines.push(r.line);
        if self.listed.len() < MAX_LISTED {
            self.listed.push(r);
        }
    }

    /// How many were counted but not listed.
    pub fn truncated(&self) -> u64 {
        self.count - self.listed.len() as u64
    }

    /// The listed ones in line order, and every line number sorted.
    pub fn sort(&mut self) {
        self.listed.sort_by_key(|r| r.line);
        self.lines.sort_unstable();
    }
}

/// A chunk's byte range and lines, before its skip list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Range {
    pub start: u64,
    pub end: u64,
    pub first_line: u64,
    pub lines: u64,
}

/// How the file is cut: a chunk closes after `max_lines` lines or `max_bytes` bytes.
#[derive(Copy, Clone, Debug)]
pub struct Cut {
    pub max_lines: u64,
    pub max_bytes: u64,
}

impl Default for Cut {
    fn default() -> Self {
        Cut {
            max_lines: 5_000,
            max_bytes: 4 << 20,
        }
    }
}

/// What is wrong with the file as a whole.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileProblem(pub String);

/// The plan of a customers file, fed one [`Line`] at a time.
pub struct CustomerPlanner<'a> {
    quiet: QuietWindow,
    /// The shard each stored customer is filed under (customer id → shard).
    stored: &'a HashMap<Box<str>, u32>,
    cut: Cut,
    /// The last good line of each id, and its shard.
    seen: HashMap<Box<str>, (u64, u32)>,
    pub rejections: Rejections,
    /// Non-blank lines.
    pub records: u64,
    pub chunks: Vec<Range>,
    current: Option<Range>,
}

impl<'a> CustomerPlanner<'a> {
    pub fn new(quiet: QuietWindow, stored: &'a HashMap<Box<str>, u32>, cut: Cut) -> Self {
        CustomerPlanner {
            quiet,
            stored,
            cut,
            seen: HashMap::new(),
            rejections: Rejections::default(),
            records: 0,
            chunks: Vec::new(),
            current: None,
        }
    }

    /// Takes the next line. A line that is not UTF-8 fails the whole file.
    pub fn line(&mut self, line: &Line<'_>) -> Result<(), FileProblem> {
        if std::str::from_utf8(line.bytes).is_err() {
            return Err(FileProblem(format!(
                "is not UTF-8 (first bad byte on line {})",
                line.number
            )));
        }
        self.advance_chunk(line);
        if line.bytes.trim_ascii().is_empty() {
            return Ok(());
        }
        self.records += 1;
        match self.check(line.bytes) {
            Ok((id, shard)) => {
                if let Some((earlier, _)) = self.seen.insert(id.into_boxed_str(), (line.number, shard)) {
                    self.rejections.add(
                        Problem::new(
                            "customer_id",
                            format!("appears again at line {}; that line is applied", line.number),
                        )
                        .at(earlier),
                    );
                }
            }
            Err(p) => self.rejections.add(p.at(line.number)),
        }
        Ok(())
    }

    fn check(&self, bytes: &[u8]) -> Result<(String, u32), Problem> {
        let c = check_customer_line(bytes, self.quiet)?;
        if let Some(&stored) = self.stored.get(c.customer_id.as_str())
            && stored != c.shard
        {
            return Err(Problem::new(
                "shard",
                "the customer is filed under another shard; shards are assigned once",
            ));
        }
        Ok((c.customer_id.as_str().to_owned(), c.shard))
    }

    fn advance_chunk(&mut self, line: &Line<'_>) {
        let cur = self.current.get_or_insert(Range {
            start: line.start,
            end: line.start,
            first_line: line.number,
            lines: 0,
        });
        cur.end = line.end;
        cur.lines += 1;
        if cur.lines >= self.cut.max_lines || cur.end - cur.start >= self.cut.max_bytes {
            self.chunks.extend(self.current.take());
        }
    }

    /// Ends the file: the last chunk closed, the rejections sorted, the shards touched (those
    /// of the lines applied).
    pub fn finish(mut self) -> Planned {
        self.chunks.extend(self.current.take());
        self.rejections.sort();
        let shards: BTreeSet<u32> = self.seen.values().map(|&(_, s)| s).collect();
        Planned {
            records: self.records,
            accepted: self.seen.len() as u64,
            rejections: self.rejections,
            chunks: self.chunks,
            shards,
        }
    }
}

/// A finished plan.
#[derive(Debug)]
pub struct Planned {
    /// Non-blank lines.
    pub records: u64,
    /// Lines to apply (`records - rejections.count`).
    pub accepted: u64,
    pub rejections: Rejections,
    pub chunks: Vec<Range>,
    pub shards: BTreeSet<u32>,
}

impl Planned {
    /// The skip list of each chunk: the rejected lines within it.
    pub fn skips(&self) -> Vec<Vec<u64>> {
        let lines = &self.rejections.lines;
        self.chunks
            .iter()
            .map(|c| {
                let from = lines.partition_point(|&l| l < c.first_line);
                let to = lines.partition_point(|&l| l < c.first_line + c.lines);
                lines[from..to].to_vec()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lines::Splitter;
    use crate::records::tests::line as record;

    fn plan(text: &str, stored: &HashMap<Box<str>, u32>, cut: Cut) -> Result<Planned, FileProblem> {
        let mut p = CustomerPlanner::new(QuietWindow::default_korea(), stored, cut);
        let mut s = Splitter::new(0, 1);
        s.push(text.as_bytes(), |l| p.line(&l))?;
        s.finish(|l| p.line(&l))?;
        Ok(p.finish())
    }

    #[test]
    fn duplicates_bad_lines_and_shard_moves_are_rejected_by_line() {
        let mut bad = record("C3", 0);
        bad["send_day"] = 0.into();
        let text = [
            record("C1", 0).to_string(),
            record("C2", 1).to_string(),
            String::new(),
            bad.to_string(),
            record("C1", 0).to_string(),
            record("C9", 2).to_string(),
        ]
        .join("\n");
        let stored = HashMap::from([("C9".into(), 5u32)]);
        let p = plan(&text, &stored, Cut::default()).unwrap();
        assert_eq!((p.records, p.accepted, p.rejections.count), (5, 2, 3));
        let got: Vec<(u64, &str)> = p.rejections.listed.iter().map(|r| (r.line, r.field.as_str())).collect();
        assert_eq!(got, [(1, "customer_id"), (4, "send_day"), (6, "shard")]);
        assert!(p.rejections.listed[0].reason.contains("line 5"));
        assert_eq!(p.shards.into_iter().collect::<Vec<_>>(), [0, 1]);
    }

    #[test]
    fn chunks_start_on_lines_and_carry_their_skips() {
        let mut lines: Vec<String> = (0..10).map(|i| record(&format!("C{i}"), 0).to_string()).collect();
        lines[6] = "{broken".into();
        let text = lines.join("\n") + "\n";
        let p = plan(
            &text,
            &HashMap::new(),
            Cut {
                max_lines: 4,
                max_bytes: 1 << 20,
            },
        )
        .unwrap();
        let firsts: Vec<u64> = p.chunks.iter().map(|c| c.first_line).collect();
        assert_eq!(firsts, [1, 5, 9]);
        assert_eq!(p.chunks.last().unwrap().end, text.len() as u64);
        for w in p.chunks.windows(2) {
            assert_eq!(w[0].end, w[1].start);
            assert_eq!(text.as_bytes()[w[1].start as usize - 1], b'\n');
        }
        assert_eq!(p.skips(), vec![vec![], vec![7], vec![]]);
    }

    #[test]
    fn a_line_that_is_not_utf8_fails_the_file_naming_the_line() {
        let text = format!("{}\n", record("C1", 0));
        let mut bytes = text.into_bytes();
        bytes.extend_from_slice(b"{\"customer_id\": \"C\xff\"}\n");
        let stored = HashMap::new();
        let mut p = CustomerPlanner::new(QuietWindow::default_korea(), &stored, Cut::default());
        let mut s = Splitter::new(0, 1);
        let e = s.push(&bytes, |l| p.line(&l)).unwrap_err();
        assert_eq!(e.0, "is not UTF-8 (first bad byte on line 2)");
    }
}
