//! The trace in Chrome's trace-event JSON format, which Perfetto (<https://ui.perfetto.dev>)
//! and `chrome://tracing` open: one process track per guest process, one thread track per
//! guest thread, each system call a complete slice (`"ph":"X"`) with its arguments and
//! result, each process event an instant (`"ph":"i"`), modules loaded global instants.
//!
//! The trace's clock is the log's position: 1 µs on the trace is one guest instruction
//! (`icount`), or one log line when the log has no `icount`. A `syscall` record has one
//! position, written when the call completed, so a call is drawn as a slice of one unit
//! starting there, not with its real duration.
//!
//! The trace is written while the log is read, so memory does not grow with the log. To
//! keep each thread's track well-formed (timestamps never go back, slices never overlap)
//! an event whose position is behind its track's is moved forward to the track's end and
//! marked `"position_clamped": true`.

use std::collections::HashMap;
use std::io::{self, Write};

use serde::Serialize;
use serde_json::{Map, Value, json};

use super::errno;
use super::record::{Ordered, ProcessKind, Record};
use super::summary::Summary;

/// Duration of a syscall slice, in positions (µs on the trace).
const SLICE: u64 = 1;

/// The track of global events (modules): pid 0, tid 0.
const GLOBAL: (u32, u32) = (0, 0);

/// A complete slice; a struct rather than `json!` so that the arguments keep their order.
#[derive(Serialize)]
struct Slice<'a> {
    ph: &'static str,
    cat: &'static str,
    name: String,
    pid: u32,
    tid: u32,
    ts: u64,
    dur: u64,
    args: &'a Ordered,
}

/// Writes a trace while the log is read; [`TraceWriter::finish`] closes the document.
#[derive(Debug)]
pub struct TraceWriter<W: Write> {
    out: W,
    first: bool,
    /// Name last given to each process track.
    processes: HashMap<u32, String>,
    /// Name last given to each thread track, and where the track ends.
    threads: HashMap<(u32, u32), (String, u64)>,
}

impl<W: Write> TraceWriter<W> {
    /// Starts a trace on `out`.
    pub fn new(mut out: W) -> io::Result<Self> {
        out.write_all(b"{\"displayTimeUnit\":\"ns\",\"traceEvents\":[\n")?;
        Ok(TraceWriter {
            out,
            first: true,
            processes: HashMap::new(),
            threads: HashMap::new(),
        })
    }

    fn emit(&mut self, event: &impl Serialize) -> io::Result<()> {
        if !self.first {
            self.out.write_all(b",\n")?;
        }
        self.first = false;
        serde_json::to_writer(&mut self.out, event).map_err(io::Error::from)
    }

    /// Names the process and thread tracks (again, when the name changed) and returns
    /// the position the thread's track has reached.
    fn track(&mut self, pid: u32, tid: u32, comm: Option<&str>) -> io::Result<u64> {
        let fallback = if (pid, tid) == GLOBAL {
            "kernel".to_string()
        } else {
            format!("pid {pid}")
        };
        let comm = comm.map_or(fallback, str::to_string);
        if tid == pid || !self.processes.contains_key(&pid) {
            let pname = format!("{comm} ({pid})");
            if self.processes.get(&pid) != Some(&pname) {
                self.emit(&json!({"ph":"M","name":"process_name","pid":pid,"tid":pid,
                    "args":{"name":pname}}))?;
                self.processes.insert(pid, pname);
            }
        }
        let tname = format!("{comm} ({tid})");
        let (known, end) = match self.threads.get(&(pid, tid)) {
            Some((n, end)) => (*n == tname, *end),
            None => (false, 0),
        };
        if !known {
            self.emit(&json!({"ph":"M","name":"thread_name","pid":pid,"tid":tid,
                "args":{"name":tname}}))?;
            self.threads.insert((pid, tid), (tname, end));
        }
        Ok(end)
    }

    fn set_end(&mut self, pid: u32, tid: u32, end: u64) {
        if let Some(t) = self.threads.get_mut(&(pid, tid)) {
            t.1 = end;
        }
    }

    /// Adds one record at position `pos`.
    pub fn add(&mut self, record: &Record, pos: u64) -> io::Result<()> {
        match record {
            Record::Syscall(c) => {
                let end = self.track(c.pid, c.tid, c.comm.as_deref())?;
                let ts = pos.max(end);
                let mut args: Ordered = c.args.clone();
                args.push("ret", json!(c.ret));
                if let Some(e) = c.ret.and_then(errno::of_ret) {
                    args.push("errno", json!(errno::name(e)));
                }
                if let Some(o) = &c.outcome {
                    args.push("outcome", json!(o));
                }
                if let Some(nr) = c.nr {
                    args.push("nr", json!(nr));
                }
                args.push("position", json!(pos));
                if ts != pos {
                    args.push("position_clamped", json!(true));
                }
                self.emit(&Slice {
                    ph: "X",
                    cat: "syscall",
                    name: c.display_name(),
                    pid: c.pid,
                    tid: c.tid,
                    ts,
                    dur: SLICE,
                    args: &args,
                })?;
                self.set_end(c.pid, c.tid, ts + SLICE);
            }
            Record::Process(e) => {
                // An exec renames the tracks; an end keeps the name the process had.
                let end = self.track(e.pid, e.tid, e.comm.as_deref())?;
                let ts = pos.max(end);
                let mut args = Map::new();
                let mut put = |k: &str, v: Value| {
                    if !v.is_null() {
                        args.insert(k.to_string(), v);
                    }
                };
                put("ppid", json!(e.ppid));
                put("comm", json!(e.comm));
                put("path", json!(e.path));
                put("argv", json!(e.argv));
                put("exit_code", json!(e.exit_code));
                put("signal", json!(e.signal));
                if e.already_running {
                    put("already_running", json!(true));
                }
                put("position", json!(pos));
                if ts != pos {
                    put("position_clamped", json!(true));
                }
                let name = match (e.kind, &e.path) {
                    (ProcessKind::ProcessExec, Some(p)) => format!("exec {p}"),
                    (ProcessKind::ProcessEnd, _) => match (e.exit_code, e.signal) {
                        (Some(c), _) => format!("process_end ({c})"),
                        (None, Some(s)) => format!("process_end (signal {s})"),
                        (None, None) => "process_end".to_string(),
                    },
                    (k, _) => k.type_name().to_string(),
                };
                // Thread-scoped: on the track of the thread that did it, whose order
                // this writer keeps.
                self.emit(&json!({"ph":"i","s":"t","cat":"process","name":name,
                    "pid":e.pid,"tid":e.tid,"ts":ts,"args":args}))?;
                self.set_end(e.pid, e.tid, ts);
            }
            _ => {}
        }
        Ok(())
    }

    /// Closes the document, recording what the clock means, and returns the writer.
    pub fn finish(mut self, summary: &Summary) -> io::Result<W> {
        let other = json!({
            "source": "vmi report",
            "log": summary.log,
            "position_unit": summary.position_unit,
            "clock": "1 us on the trace = 1 position (guest instruction, or log line)",
        });
        self.out.write_all(b"\n],\"otherData\":")?;
        serde_json::to_writer(&mut self.out, &other).map_err(io::Error::from)?;
        self.out.write_all(b"}\n")?;
        Ok(self.out)
    }
}
