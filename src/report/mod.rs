//! `vmi report`: reads an event log once, line by line, and summarises the run.
//!
//! ```text
//! log.jsonl ──reader──▶ record ──▶ summary::Aggregator ──▶ Summary ──▶ text | JSON | HTML
//!                              └──▶ perfetto::TraceWriter (streams the trace as it reads)
//! ```
//!
//! Each record's position on the timeline is its `icount` (guest instructions executed so
//! far) when it has one; a record without one takes the previous record's `icount`, or its
//! line number while no record has had one. Broken input never stops the report: garbage
//! lines, an incomplete last line (QEMU killed while writing), unknown record types and
//! unknown fields are warnings on stderr, counted in the summary.

pub mod errno;
pub mod html;
pub mod perfetto;
pub mod reader;
pub mod record;
pub mod summary;
pub mod text;

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use reader::{Line, Warnings};
use summary::{Aggregator, Limits, Summary};

/// Usage of `vmi report`.
pub const USAGE: &str = "\
usage: vmi report <log.jsonl> [--json] [--perfetto <trace.json>] [--html <report.html>]
                  [--top <n>] [--keep <n>] [--all]

  --json             print the summary as one JSON document instead of text
  --perfetto <file>  write a Chrome/Perfetto trace (open it in https://ui.perfetto.dev)
  --html <file>      write a self-contained HTML timeline
  --top <n>          syscalls listed per process (default 8)
  --keep <n>         most recent calls kept per process for --html (default 200)
  --all              list kernel threads and processes without activity in the text";

/// Why `vmi report` could not run.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// Bad command line.
    #[error("{0}\n\n{USAGE}")]
    Usage(String),
    /// The log cannot be opened or read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The log.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// Nothing in the file is a record of an event log.
    #[error("{path} is not an event log: none of its {lines} lines is a vmi record")]
    NotALog {
        /// The file.
        path: PathBuf,
        /// Its lines.
        lines: u64,
    },
    /// More than one run in one file (logs appended to each other).
    #[error(
        "{path} holds more than one run (a second run_start at line {line}): split it at each run_start line and report each run"
    )]
    SeveralRuns {
        /// The file.
        path: PathBuf,
        /// Line of the second `run_start`.
        line: u64,
    },
    /// An output file cannot be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The output.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
}

impl ReportError {
    /// The process exit code for this error: 2 for usage errors, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            ReportError::Usage(_) => 2,
            _ => 1,
        }
    }
}

/// What `vmi report` was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// The event log.
    pub log: PathBuf,
    /// JSON instead of text on stdout.
    pub json: bool,
    /// Where to write the Perfetto trace.
    pub perfetto: Option<PathBuf>,
    /// Where to write the HTML report.
    pub html: Option<PathBuf>,
    /// Syscalls listed per process.
    pub top: usize,
    /// Recent calls kept per process for the HTML view.
    pub keep: usize,
    /// Show every process in the text, kernel threads included.
    pub all: bool,
}

impl Options {
    /// Parses the arguments after `report`.
    pub fn parse(args: &[String]) -> Result<Options, ReportError> {
        let usage = |m: String| ReportError::Usage(m);
        let mut log = None;
        let mut o = Options {
            log: PathBuf::new(),
            json: false,
            perfetto: None,
            html: None,
            top: 8,
            keep: 200,
            all: false,
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let mut value = |name: &str| {
                it.next()
                    .cloned()
                    .ok_or_else(|| usage(format!("{name} needs a value")))
            };
            let number = |name: &str, v: String| {
                v.parse::<usize>()
                    .map_err(|_| usage(format!("{name}: '{v}' is not a number")))
            };
            match a.as_str() {
                "--json" => o.json = true,
                "--all" => o.all = true,
                "--perfetto" => o.perfetto = Some(value("--perfetto")?.into()),
                "--html" => o.html = Some(value("--html")?.into()),
                "--top" => o.top = number("--top", value("--top")?)?,
                "--keep" => o.keep = number("--keep", value("--keep")?)?,
                s if s.starts_with('-') && s != "-" => {
                    return Err(usage(format!("unknown option '{s}'")));
                }
                s if log.is_none() => log = Some(PathBuf::from(s)),
                s => return Err(usage(format!("unexpected argument '{s}'"))),
            }
        }
        o.log = log.ok_or_else(|| usage("no event log given".to_string()))?;
        Ok(o)
    }
}

/// Reads a whole log from `input` (named `name` in messages), feeding the trace writer if
/// one is given. Only I/O errors fail; everything wrong with the content is a warning.
pub fn analyse<W: Write>(
    input: impl BufRead,
    name: &str,
    limits: Limits,
    warnings: &mut Warnings,
    mut trace: Option<&mut perfetto::TraceWriter<W>>,
) -> Result<Summary, AnalyseError> {
    let mut input = input;
    let mut agg = Aggregator::new(limits);
    let mut buf = Vec::new();
    let mut line_no = 0u64;
    let mut records = 0u64;
    let mut types: BTreeMap<String, u64> = BTreeMap::new();
    let mut warned_fields: HashSet<(String, String)> = HashSet::new();
    let mut last_icount: Option<u64> = None;
    let mut truncated_last_line = false;
    let mut run_started = false;
    while let Some(kind) =
        reader::read_line(&mut input, &mut buf, reader::MAX_LINE).map_err(AnalyseError::Read)?
    {
        line_no += 1;
        if let Line::TooLong { len } = kind {
            warnings.warn(format!(
                "line {line_no}: {len} bytes, longer than the {} MiB limit, skipped",
                reader::MAX_LINE >> 20
            ));
            continue;
        }
        if buf.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let parsed = match record::parse_line(&buf) {
            Ok(Ok(p)) => p,
            Ok(Err(why)) => {
                warnings.warn(format!("line {line_no}: unusable record: {why}, skipped"));
                continue;
            }
            Err(e) if kind == Line::Unterminated => {
                truncated_last_line = true;
                warnings.warn(format!(
                    "line {line_no}: the last line is incomplete (QEMU killed while writing?), ignored: {e}"
                ));
                continue;
            }
            Err(e) => {
                warnings.warn(format!("line {line_no}: not a JSON object ({e}), skipped"));
                continue;
            }
        };
        let ty = parsed.type_name.clone();
        if matches!(parsed.record, record::Record::RunStart(_)) {
            if run_started {
                return Err(AnalyseError::SeveralRuns { line: line_no });
            }
            run_started = true;
        }
        let count = types.entry(ty.clone()).or_default();
        *count += 1;
        if let record::Record::Unknown(t) = &parsed.record {
            if *count == 1 {
                warnings.warn(format!(
                    "line {line_no}: unknown record type '{t}', ignored (all are counted)"
                ));
            }
            continue;
        }
        for f in &parsed.unknown_fields {
            if warned_fields.insert((ty.clone(), f.clone())) {
                warnings.warn(format!(
                    "line {line_no}: unknown field '{f}' in '{ty}' records, ignored"
                ));
            }
        }
        records += 1;
        let pos = match parsed.icount {
            Some(i) => {
                last_icount = Some(i);
                i
            }
            None => last_icount.unwrap_or(line_no),
        };
        if let Some(t) = trace.as_deref_mut() {
            t.add(&parsed.record, pos).map_err(AnalyseError::Write)?;
        }
        agg.add(&parsed.record, pos);
    }
    let mut s = agg.finish(name.to_string(), line_no, records);
    s.record_types = types;
    s.truncated_last_line = truncated_last_line;
    s.position_unit = if last_icount.is_some() {
        "icount"
    } else {
        "line"
    }
    .to_string();
    s.warnings = summary::WarningSummary {
        count: warnings.count(),
        first: warnings.kept().to_vec(),
    };
    Ok(s)
}

/// An I/O error of [`analyse`]: on the log, or on the trace being written.
#[derive(Debug, thiserror::Error)]
pub enum AnalyseError {
    /// Reading the log.
    #[error("{0}")]
    Read(io::Error),
    /// Writing the trace.
    #[error("{0}")]
    Write(io::Error),
    /// A second `run_start`, at this line.
    #[error("a second run_start at line {line}")]
    SeveralRuns {
        /// Its line.
        line: u64,
    },
}

fn create(path: &Path) -> Result<BufWriter<File>, ReportError> {
    File::create(path)
        .map(BufWriter::new)
        .map_err(|source| ReportError::Write {
            path: path.to_path_buf(),
            source,
        })
}

/// Runs `vmi report` with `opts`, printing the summary on `out` and warnings on stderr.
/// A closed `out` (`vmi report log | head`) is not an error.
pub fn run(opts: &Options, out: &mut dyn Write) -> Result<(), ReportError> {
    let read_err = |source| ReportError::Read {
        path: opts.log.clone(),
        source,
    };
    let input = BufReader::with_capacity(1 << 16, File::open(&opts.log).map_err(read_err)?);
    let limits = Limits {
        top_syscalls: opts.top,
        recent_per_process: if opts.html.is_some() { opts.keep } else { 0 },
        ..Limits::default()
    };
    let mut warnings = Warnings::new(limits.warnings, true);
    let name = opts.log.display().to_string();
    let mut trace =
        match &opts.perfetto {
            Some(p) => Some(perfetto::TraceWriter::new(create(p)?).map_err(|source| {
                ReportError::Write {
                    path: p.clone(),
                    source,
                }
            })?),
            None => None,
        };
    let summary = match analyse(input, &name, limits, &mut warnings, trace.as_mut()) {
        Ok(s) => s,
        Err(AnalyseError::Read(e)) => return Err(read_err(e)),
        Err(AnalyseError::Write(source)) => {
            return Err(ReportError::Write {
                path: opts.perfetto.clone().unwrap_or_default(),
                source,
            });
        }
        Err(AnalyseError::SeveralRuns { line }) => {
            return Err(ReportError::SeveralRuns {
                path: opts.log.clone(),
                line,
            });
        }
    };
    if summary.records == 0 && summary.lines > 0 {
        return Err(ReportError::NotALog {
            path: opts.log.clone(),
            lines: summary.lines,
        });
    }
    if let (Some(t), Some(p)) = (trace, &opts.perfetto) {
        t.finish(&summary)
            .and_then(|mut w| w.flush())
            .map_err(|source| ReportError::Write {
                path: p.clone(),
                source,
            })?;
        eprintln!(
            "vmi report: wrote {} (open it in https://ui.perfetto.dev)",
            p.display()
        );
    }
    if let Some(p) = &opts.html {
        let mut w = create(p)?;
        html::write(&summary, &mut w)
            .and_then(|()| w.flush())
            .map_err(|source| ReportError::Write {
                path: p.clone(),
                source,
            })?;
        eprintln!("vmi report: wrote {}", p.display());
    }
    let printed = if opts.json {
        serde_json::to_writer_pretty(&mut *out, &summary)
            .map_err(io::Error::from)
            .and_then(|()| writeln!(out))
    } else {
        text::write(&summary, opts.all, out)
    };
    match printed.and_then(|()| out.flush()) {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(ReportError::Write {
            path: PathBuf::from("<stdout>"),
            source: e,
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn options_parse() {
        let o = Options::parse(&args(
            "log.jsonl --json --perfetto t.json --html r.html --top 3",
        ))
        .unwrap();
        assert_eq!(o.log, PathBuf::from("log.jsonl"));
        assert!(o.json);
        assert_eq!(o.perfetto, Some(PathBuf::from("t.json")));
        assert_eq!(o.html, Some(PathBuf::from("r.html")));
        assert_eq!(o.top, 3);
        assert!(matches!(
            Options::parse(&args("")),
            Err(ReportError::Usage(_))
        ));
        assert!(matches!(
            Options::parse(&args("a b")),
            Err(ReportError::Usage(_))
        ));
        assert!(matches!(
            Options::parse(&args("a --top x")),
            Err(ReportError::Usage(_))
        ));
        assert!(matches!(
            Options::parse(&args("a --html")),
            Err(ReportError::Usage(_))
        ));
        assert!(matches!(
            Options::parse(&args("a --bogus")),
            Err(ReportError::Usage(_))
        ));
    }
}
