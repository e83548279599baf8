//! The HTML report (to do).
use std::io::{self, Write};

use super::summary::Summary;

/// Writes the report.
pub fn write(_s: &Summary, _out: &mut dyn Write) -> io::Result<()> {
    Err(io::Error::other("--html is not implemented yet"))
}
