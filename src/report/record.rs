//! Typed, lenient views of the event log's records (`docs/event-log.md`).
//!
//! A record is parsed from its JSON object by taking fields out of it: a missing optional
//! field is `None`, a missing or mistyped required one (a syscall without `pid`) makes the
//! record unusable, and fields this reader does not know are reported back so that the
//! caller can warn about them once.

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value};

/// A JSON object whose members keep their order. serde_json's `Map` sorts its keys (the
/// crate does not enable `preserve_order`), and a call's arguments read best in prototype
/// order, as the plugin wrote them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Ordered(pub Vec<(String, Value)>);

impl Ordered {
    /// The member called `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Adds a member at the end.
    pub fn push(&mut self, key: &str, value: Value) {
        self.0.push((key.to_string(), value));
    }
}

impl Serialize for Ordered {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

impl<'de> Deserialize<'de> for Ordered {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Ordered, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Ordered;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Ordered, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = a.next_entry::<String, Value>()? {
                    out.push((k, v));
                }
                Ok(Ordered(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// `"args"`: an object (a syscall's arguments, kept in order) or anything else (the
/// `run_start` record's argument list).
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum ArgsField {
    Object(Ordered),
    Other(Value),
}

/// One line's top-level object, with a syscall's `"args"` kept in order.
struct LineObject {
    fields: Map<String, Value>,
    args: Option<Ordered>,
}

impl<'de> Deserialize<'de> for LineObject {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<LineObject, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = LineObject;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<LineObject, A::Error> {
                let mut fields = Map::new();
                let mut args = None;
                while let Some(k) = a.next_key::<String>()? {
                    if k == "args" {
                        match a.next_value::<ArgsField>()? {
                            ArgsField::Object(o) => {
                                args = Some(o);
                                fields.insert(k, Value::Null);
                            }
                            ArgsField::Other(v) => {
                                fields.insert(k, v);
                            }
                        }
                    } else {
                        let v = a.next_value::<Value>()?;
                        fields.insert(k, v);
                    }
                }
                Ok(LineObject { fields, args })
            }
        }
        d.deserialize_map(V)
    }
}

/// Parses one line of the log: `Err` when it is not a JSON object (the message says
/// where), else the record or why it is unusable.
pub fn parse_line(bytes: &[u8]) -> Result<Result<Parsed, String>, serde_json::Error> {
    let line: LineObject = serde_json::from_slice(bytes)?;
    Ok(parse_object(line.fields, line.args))
}

/// The kinds of process event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessKind {
    /// `process_start`: a new thread group (fork/clone without `CLONE_THREAD`).
    ProcessStart,
    /// `process_exec`: the process replaced its program.
    ProcessExec,
    /// `process_end`: the thread group exited.
    ProcessEnd,
    /// `thread_start`: a new thread in an existing process.
    ThreadStart,
    /// `thread_end`: one thread exited.
    ThreadEnd,
}

impl ProcessKind {
    /// The record type for this kind.
    pub fn type_name(self) -> &'static str {
        match self {
            ProcessKind::ProcessStart => "process_start",
            ProcessKind::ProcessExec => "process_exec",
            ProcessKind::ProcessEnd => "process_end",
            ProcessKind::ThreadStart => "thread_start",
            ProcessKind::ThreadEnd => "thread_end",
        }
    }
}

/// A `process_*` or `thread_*` record.
#[derive(Debug, Clone)]
pub struct ProcessEvent {
    /// Which event.
    pub kind: ProcessKind,
    /// Process id (`tgid`).
    pub pid: u32,
    /// Thread id; the process id when absent.
    pub tid: u32,
    /// Parent's process id.
    pub ppid: Option<u32>,
    /// `comm` at the time of the event.
    pub comm: Option<String>,
    /// The new program's arguments (exec).
    pub argv: Option<Vec<String>>,
    /// The new program's path (exec).
    pub path: Option<String>,
    /// Exit code (end).
    pub exit_code: Option<i64>,
    /// The signal that killed it (end).
    pub signal: Option<i64>,
    /// The process existed before the plugin could see it (start).
    pub already_running: bool,
}

/// A `syscall` record.
#[derive(Debug, Clone)]
pub struct Syscall {
    /// Process id.
    pub pid: u32,
    /// Thread id.
    pub tid: u32,
    /// `comm` of the calling thread.
    pub comm: Option<String>,
    /// Number.
    pub nr: Option<u64>,
    /// Name; `None` for numbers the plugin's table does not know.
    pub name: Option<String>,
    /// Decoded arguments as written, in order.
    pub args: Ordered,
    /// Result, if a return was seen.
    pub ret: Option<i64>,
    /// Why there is no result (`no_return`, `exec`, `abandoned`, `unfinished`).
    pub outcome: Option<String>,
}

impl Syscall {
    /// Name for display: the name, or `syscall_<nr>`.
    pub fn display_name(&self) -> String {
        match (&self.name, self.nr) {
            (Some(n), _) => n.clone(),
            (None, Some(nr)) => format!("syscall_{nr}"),
            (None, None) => "syscall_?".to_string(),
        }
    }
}

/// One process of a `snapshot` record.
#[derive(Debug, Clone)]
pub struct SnapshotProcess {
    /// `tgid`.
    pub pid: u32,
    /// Parent's `tgid`.
    pub ppid: Option<u32>,
    /// `comm`.
    pub comm: Option<String>,
    /// Thread ids.
    pub threads: Vec<u32>,
    /// Kernel thread.
    pub kernel_thread: bool,
    /// Command line.
    pub argv: Option<Vec<String>>,
}

/// One module of a `snapshot` record.
#[derive(Debug, Clone)]
pub struct Module {
    /// Name.
    pub name: String,
    /// Load address, as written (`"0x..."`).
    pub base: Option<String>,
    /// Size in bytes.
    pub size: Option<u64>,
}

/// A `snapshot` record.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Why it was taken.
    pub reason: Option<String>,
    /// Processes.
    pub processes: Vec<SnapshotProcess>,
    /// Modules.
    pub modules: Vec<Module>,
}

/// One record of the log, as far as the report needs it.
#[derive(Debug, Clone)]
pub enum Record {
    /// `run_start`: fields kept as written.
    RunStart(Map<String, Value>),
    /// `run_end`: fields kept as written.
    RunEnd(Map<String, Value>),
    /// `kernel_ready`: fields kept as written.
    KernelReady(Map<String, Value>),
    /// `snapshot`.
    Snapshot(Snapshot),
    /// `syscall`.
    Syscall(Syscall),
    /// `process_*`, `thread_*`.
    Process(ProcessEvent),
    /// A type this reader does not know.
    Unknown(String),
}

/// A parsed line: the record, its `icount` if it has one, and the fields it had that this
/// reader does not know.
#[derive(Debug)]
pub struct Parsed {
    /// The record.
    pub record: Record,
    /// Its `"type"`.
    pub type_name: String,
    /// Its `icount`.
    pub icount: Option<u64>,
    /// Unknown top-level fields, for a warning.
    pub unknown_fields: Vec<String>,
}

fn unknown(m: &Map<String, Value>, known: &[&str]) -> Vec<String> {
    m.keys()
        .filter(|k| !known.contains(&k.as_str()))
        .cloned()
        .collect()
}

fn u32_of(v: Option<&Value>) -> Option<u32> {
    v.and_then(Value::as_u64)
        .and_then(|n| u32::try_from(n).ok())
}

fn str_of(v: Option<Value>) -> Option<String> {
    match v {
        Some(Value::String(s)) => Some(s),
        _ => None,
    }
}

fn strs_of(v: Option<Value>) -> Option<Vec<String>> {
    match v {
        Some(Value::Array(a)) => Some(
            a.into_iter()
                .map(|x| match x {
                    Value::String(s) => s,
                    other => other.to_string(),
                })
                .collect(),
        ),
        _ => None,
    }
}

/// The text of a string argument: `"..."` or `{"str":"...","truncated":true}` (then
/// `truncated` is set). `None` for NULL, faults and other shapes.
pub fn arg_str(v: &Value) -> Option<(&str, bool)> {
    match v {
        Value::String(s) => Some((s, false)),
        Value::Object(o) => o.get("str").and_then(Value::as_str).map(|s| {
            (
                s,
                o.get("truncated").and_then(Value::as_bool).unwrap_or(false),
            )
        }),
        _ => None,
    }
}

/// The items of a string-array argument: `[...]` or `{"strs":[...],"truncated":true}`.
pub fn arg_strs(v: &Value) -> Option<Vec<String>> {
    let a = match v {
        Value::Array(a) => a,
        Value::Object(o) => o.get("strs")?.as_array()?,
        _ => return None,
    };
    Some(
        a.iter()
            .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_string))
            .collect(),
    )
}

/// A short, one-line rendering of an argument value for display.
pub fn arg_display(v: &Value) -> String {
    if let Some((s, cut)) = arg_str(v) {
        return format!("{s:?}{}", if cut { "…" } else { "" });
    }
    match v {
        Value::Object(o) if o.get("fault").and_then(Value::as_bool) == Some(true) => format!(
            "<fault {}>",
            o.get("ptr").and_then(Value::as_str).unwrap_or("?")
        ),
        Value::Object(o) if o.contains_key("len") => {
            let len = o.get("len").map_or_else(String::new, Value::to_string);
            match o.get("data").and_then(Value::as_str) {
                Some(d) => format!("{d:?}[{len}]"),
                None => format!(
                    "{}[{len}]",
                    o.get("ptr").and_then(Value::as_str).unwrap_or("?")
                ),
            }
        }
        Value::Null => "NULL".to_string(),
        other => match arg_strs(other) {
            Some(items) => format!("{items:?}"),
            None => other.to_string(),
        },
    }
}

/// Parses one record from a JSON value. `Err` says why the record cannot be used.
pub fn parse(value: Value) -> Result<Parsed, String> {
    let Value::Object(mut m) = value else {
        return Err("not a JSON object".to_string());
    };
    let args = match m.get("args") {
        Some(Value::Object(_)) => match m.remove("args") {
            Some(Value::Object(a)) => {
                m.insert("args".into(), Value::Null);
                Some(Ordered(a.into_iter().collect()))
            }
            _ => None,
        },
        _ => None,
    };
    parse_object(m, args)
}

fn parse_object(mut m: Map<String, Value>, args: Option<Ordered>) -> Result<Parsed, String> {
    let ty = match m.remove("type") {
        Some(Value::String(t)) => t,
        Some(_) => return Err("\"type\" is not a string".to_string()),
        None => return Err("no \"type\"".to_string()),
    };
    // The position a record carries with icount=on (`output::records::Positioned`).
    let [vcpu_key, icount_key] = crate::output::records::POSITION_FIELDS;
    let icount = match m.remove(icount_key) {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.as_u64().ok_or("\"icount\" is not a number")?),
    };
    if let Some(v) = m.remove(vcpu_key).filter(|v| !v.is_null())
        && v.as_u64().and_then(|n| u32::try_from(n).ok()).is_none()
    {
        return Err("\"vcpu\" is not a vCPU number".to_string());
    }
    // The writer's own definitions of its records: one list per record type, kept by
    // the types that write them.
    use crate::output::records::{KernelReady, RunEnd, RunStart, SnapshotRecord, fields_of};
    let known: &[&str] = match ty.as_str() {
        "syscall" => crate::syscalls::decode::SYSCALL_FIELDS,
        "process_start" | "process_exec" | "process_end" | "thread_start" | "thread_end" => {
            crate::events::EVENT_FIELDS
        }
        "snapshot" => fields_of::<SnapshotRecord>(),
        "run_start" => fields_of::<RunStart>(),
        "run_end" => fields_of::<RunEnd>(),
        "kernel_ready" => fields_of::<KernelReady>(),
        _ => &[],
    };
    let unknown_fields = if known.is_empty() {
        Vec::new()
    } else {
        unknown(&m, known)
    };
    let record = match ty.as_str() {
        "syscall" => Record::Syscall(syscall(m, args)?),
        "process_start" => Record::Process(process(ProcessKind::ProcessStart, m)?),
        "process_exec" => Record::Process(process(ProcessKind::ProcessExec, m)?),
        "process_end" => Record::Process(process(ProcessKind::ProcessEnd, m)?),
        "thread_start" => Record::Process(process(ProcessKind::ThreadStart, m)?),
        "thread_end" => Record::Process(process(ProcessKind::ThreadEnd, m)?),
        "snapshot" => Record::Snapshot(snapshot(m)),
        "run_start" => Record::RunStart(m),
        "run_end" => Record::RunEnd(m),
        "kernel_ready" => Record::KernelReady(m),
        _ => Record::Unknown(ty.clone()),
    };
    Ok(Parsed {
        record,
        type_name: ty,
        icount,
        unknown_fields,
    })
}

fn syscall(mut m: Map<String, Value>, args: Option<Ordered>) -> Result<Syscall, String> {
    let pid = u32_of(m.get("pid")).ok_or("syscall without a numeric \"pid\"")?;
    let tid = u32_of(m.get("tid")).unwrap_or(pid);
    let ret = match m.get("ret") {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.as_i64().ok_or("syscall \"ret\" is not an integer")?),
    };
    Ok(Syscall {
        pid,
        tid,
        nr: m.get("nr").and_then(Value::as_u64),
        comm: str_of(m.remove("comm")),
        name: str_of(m.remove("name")),
        args: args.unwrap_or_default(),
        ret,
        outcome: str_of(m.remove("outcome")),
    })
}

fn process(kind: ProcessKind, mut m: Map<String, Value>) -> Result<ProcessEvent, String> {
    let pid = u32_of(m.get("pid"))
        .ok_or_else(|| format!("{} without a numeric \"pid\"", kind.type_name()))?;
    Ok(ProcessEvent {
        kind,
        pid,
        tid: u32_of(m.get("tid")).unwrap_or(pid),
        ppid: u32_of(m.get("ppid")),
        exit_code: m.get("exit_code").and_then(Value::as_i64),
        signal: m.get("signal").and_then(Value::as_i64),
        already_running: m
            .get("already_running")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        comm: str_of(m.remove("comm")),
        argv: strs_of(m.remove("argv")),
        path: str_of(m.remove("path")),
    })
}

fn module(mut m: Map<String, Value>) -> Option<Module> {
    Some(Module {
        name: str_of(m.remove("name"))?,
        size: m.get("size").and_then(Value::as_u64),
        base: str_of(m.remove("base")),
    })
}

fn snapshot(mut m: Map<String, Value>) -> Snapshot {
    let processes = match m.remove("processes") {
        Some(Value::Array(a)) => a
            .into_iter()
            .filter_map(|p| {
                let Value::Object(mut p) = p else { return None };
                Some(SnapshotProcess {
                    pid: u32_of(p.get("pid"))?,
                    ppid: u32_of(p.get("ppid")),
                    threads: p
                        .get("threads")
                        .and_then(Value::as_array)
                        .map(|t| t.iter().filter_map(|x| u32_of(Some(x))).collect())
                        .unwrap_or_default(),
                    kernel_thread: p
                        .get("kernel_thread")
                        .and_then(Value::as_bool)
                        .unwrap_or(false),
                    comm: str_of(p.remove("comm")),
                    argv: strs_of(p.remove("argv")),
                })
            })
            .collect(),
        _ => Vec::new(),
    };
    let modules = match m.remove("modules") {
        Some(Value::Array(a)) => a
            .into_iter()
            .filter_map(|x| match x {
                Value::Object(o) => module(o),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    Snapshot {
        reason: str_of(m.remove("reason")),
        processes,
        modules,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syscall_arguments_keep_their_order() {
        let line = br#"{"type":"syscall","pid":1,"tid":2,"comm":"c","nr":257,"name":"openat","args":{"dfd":-100,"filename":{"str":"/a","truncated":true},"flags":0,"mode":0},"ret":-2,"icount":7}"#;
        let p = parse_line(line).unwrap().unwrap();
        assert_eq!(p.icount, Some(7));
        assert!(p.unknown_fields.is_empty());
        let Record::Syscall(c) = p.record else {
            panic!("{:?}", p.record)
        };
        let names: Vec<&str> = c.args.0.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["dfd", "filename", "flags", "mode"]);
        assert_eq!(arg_str(c.args.get("filename").unwrap()), Some(("/a", true)));
        assert_eq!(c.ret, Some(-2));
        assert_eq!(
            serde_json::to_string(&c.args).unwrap(),
            r#"{"dfd":-100,"filename":{"str":"/a","truncated":true},"flags":0,"mode":0}"#
        );
    }

    #[test]
    fn run_start_args_are_a_list_and_other_shapes_are_errors() {
        let p = parse_line(br#"{"type":"run_start","args":["a=b"],"new":1}"#)
            .unwrap()
            .unwrap();
        let Record::RunStart(m) = p.record else {
            panic!()
        };
        assert_eq!(m["args"], serde_json::json!(["a=b"]));
        assert_eq!(p.unknown_fields, ["new"]);
        assert!(parse_line(b"[1,2]").is_err());
        assert!(
            parse_line(br#"{"type":"syscall","tid":1}"#)
                .unwrap()
                .is_err()
        );
        assert!(
            parse_line(br#"{"type":"syscall","pid":1,"icount":"x"}"#)
                .unwrap()
                .is_err()
        );
    }
}
