//! The HTML report: one self-contained file (inline CSS and JavaScript, no network) with a
//! timeline lane per process beside the process tree; clicking a process shows its files,
//! programs and its most recent system calls.
//!
//! The page is `report.html` with the summary embedded as JSON; all rendering is done by
//! the page's script from that data, with DOM text nodes (never `innerHTML`), so strings
//! from the guest cannot inject markup.

use std::io::{self, Write};

use super::summary::Summary;

const TEMPLATE: &str = include_str!("report.html");
const SLOT: &str = "/*VMI_DATA*/";

/// Writes the page for `s`: the summary (with each process's call density and recent
/// calls, which the aggregation keeps only for this view) streamed into the template's
/// data slot, never held as one string.
pub fn write(s: &Summary, out: &mut dyn Write) -> io::Result<()> {
    let (head, tail) = TEMPLATE
        .split_once(SLOT)
        .expect("report.html has the data slot");
    out.write_all(head.as_bytes())?;
    serde_json::to_writer(EscapeLt(&mut *out), s).map_err(io::Error::from)?;
    out.write_all(tail.as_bytes())
}

/// Inside `<script>`, "</script>" or "<!--" in a string would end or confuse the element:
/// `<` only occurs inside JSON strings, where `\u003c` means the same.
struct EscapeLt<W>(W);

impl<W: Write> Write for EscapeLt<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut rest = buf;
        while let Some(at) = rest.iter().position(|&b| b == b'<') {
            self.0.write_all(&rest[..at])?;
            self.0.write_all(b"\\u003c")?;
            rest = &rest[at + 1..];
        }
        self.0.write_all(rest)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}
