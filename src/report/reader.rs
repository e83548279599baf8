//! Reading the event log one line at a time in bounded memory, and the warnings that
//! reading and interpreting it produce.

use std::io::{self, BufRead};

/// Longest line kept, in bytes. The plugin's longest records (an `execve` with 64
/// arguments of 4 KiB each, a snapshot of a big process tree) stay well below it; the
/// rest of a longer line is skipped with a warning.
pub const MAX_LINE: usize = 16 << 20;

/// One line as read.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// A line ended by `\n` (which is not included).
    Complete,
    /// The last line of the file, without `\n`: QEMU was killed while writing it, or the
    /// file was copied while still being written.
    Unterminated,
    /// A line longer than the limit: only its first bytes are in the buffer.
    TooLong {
        /// Its length in bytes.
        len: usize,
    },
}

/// Reads the next line into `buf` (cleared first), keeping at most `max` bytes of it.
/// `Ok(None)` at end of input.
pub fn read_line(r: &mut impl BufRead, buf: &mut Vec<u8>, max: usize) -> io::Result<Option<Line>> {
    buf.clear();
    let mut len = 0usize;
    loop {
        let chunk = match r.fill_buf() {
            Ok(c) => c,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if chunk.is_empty() {
            return Ok(match len {
                0 => None,
                _ if len > max => Some(Line::TooLong { len }),
                _ => Some(Line::Unterminated),
            });
        }
        let (part, used, done) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (&chunk[..i], i + 1, true),
            None => (chunk, chunk.len(), false),
        };
        let room = max.saturating_sub(buf.len());
        buf.extend_from_slice(&part[..part.len().min(room)]);
        len += part.len();
        r.consume(used);
        if done {
            return Ok(Some(if len > max {
                Line::TooLong { len }
            } else {
                Line::Complete
            }));
        }
    }
}

/// Warnings are printed to stderr as they happen, up to a limit; all are counted.
#[derive(Debug)]
pub struct Warnings {
    count: u64,
    kept: Vec<String>,
    limit: usize,
    to_stderr: bool,
}

impl Warnings {
    /// Keeps (and, if `to_stderr`, prints) the first `limit` warnings.
    pub fn new(limit: usize, to_stderr: bool) -> Warnings {
        Warnings {
            count: 0,
            kept: Vec::new(),
            limit,
            to_stderr,
        }
    }

    /// Records one warning.
    pub fn warn(&mut self, msg: String) {
        self.count += 1;
        if self.kept.len() < self.limit {
            if self.to_stderr {
                eprintln!("vmi report: warning: {msg}");
            }
            self.kept.push(msg);
        } else if self.to_stderr && self.count == self.limit as u64 + 1 {
            eprintln!("vmi report: warning: further warnings are only counted");
        }
    }

    /// All warnings, including those not kept.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The first warnings, in order.
    pub fn kept(&self) -> &[String] {
        &self.kept
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8], max: usize) -> Vec<(String, Line)> {
        let mut r = io::BufReader::with_capacity(4, input);
        let mut buf = Vec::new();
        let mut out = Vec::new();
        while let Some(l) = read_line(&mut r, &mut buf, max).unwrap() {
            out.push((String::from_utf8(buf.clone()).unwrap(), l));
        }
        out
    }

    #[test]
    fn splits_lines_and_flags_the_unterminated_last_one() {
        let got = lines(b"{\"a\":1}\n\nabcdefgh\n{\"b\"", 100);
        assert_eq!(
            got,
            vec![
                ("{\"a\":1}".into(), Line::Complete),
                ("".into(), Line::Complete),
                ("abcdefgh".into(), Line::Complete),
                ("{\"b\"".into(), Line::Unterminated),
            ]
        );
    }

    #[test]
    fn long_lines_are_cut_and_the_next_line_is_intact() {
        let got = lines(b"0123456789\nok\n0123456789", 5);
        assert_eq!(
            got,
            vec![
                ("01234".into(), Line::TooLong { len: 10 }),
                ("ok".into(), Line::Complete),
                ("01234".into(), Line::TooLong { len: 10 }),
            ]
        );
    }
}
