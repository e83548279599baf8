//! The HTML report: one self-contained file (inline CSS and JavaScript, no network) with a
//! timeline lane per process beside the process tree; clicking a process shows its files,
//! programs and its most recent system calls.
//!
//! The page is `report.html` with the summary embedded as JSON; all rendering is done by
//! the page's script from that data, with DOM text nodes (never `innerHTML`), so strings
//! from the guest cannot inject markup.

use std::io::{self, Write};

use serde_json::{Value, json};

use super::summary::Summary;

const TEMPLATE: &str = include_str!("report.html");
const SLOT: &str = "/*VMI_DATA*/";

/// The data the page renders: the summary, plus per process its call density and the
/// recent calls kept.
fn data(s: &Summary) -> io::Result<Value> {
    let mut v = serde_json::to_value(s).map_err(io::Error::from)?;
    if let Some(list) = v.get_mut("processes").and_then(Value::as_array_mut) {
        for (p, js) in s.processes.iter().zip(list.iter_mut()) {
            if let Some(o) = js.as_object_mut() {
                o.insert("density".into(), json!(p.density));
                o.insert("recent".into(), json!(p.recent));
            }
        }
    }
    Ok(v)
}

/// Writes the page for `s`.
pub fn write(s: &Summary, out: &mut dyn Write) -> io::Result<()> {
    let json = serde_json::to_string(&data(s)?).map_err(io::Error::from)?;
    // Inside <script>, "</script>" or "<!--" in a string would end or confuse the
    // element: `<` only occurs inside JSON strings, where `\u003c` means the same.
    let json = json.replace('<', "\\u003c");
    let (head, tail) = TEMPLATE
        .split_once(SLOT)
        .expect("report.html has the data slot");
    out.write_all(head.as_bytes())?;
    out.write_all(json.as_bytes())?;
    out.write_all(tail.as_bytes())
}
