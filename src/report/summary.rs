//! The one-pass aggregation of an event log into a [`Summary`]: the process tree over the
//! whole run, per-process system call statistics, files, programs and modules.
//!
//! Memory is bounded by what is summarised (processes, distinct syscall names, distinct
//! files up to [`Limits::files_per_process`] and [`Limits::files_total`] over all
//! processes), never by the log's length: the recent calls kept for the HTML view are
//! capped per process and over all ([`Limits::recent_per_process`],
//! [`Limits::recent_total`]), the call density (HTML only) is a fixed number of buckets
//! whose width doubles as the run goes on, and an ended process drops what only a running
//! one needs.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use serde::Serialize;
use serde_json::{Map, Value};

use super::errno;
use super::record::{self, Module, ProcessEvent, ProcessKind, Record, Snapshot, Syscall};

/// How much is kept.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Limits {
    /// Syscall names listed per process (`top_syscalls`).
    pub top_syscalls: usize,
    /// Distinct `(path, syscall)` pairs kept per process; more are only counted.
    pub files_per_process: usize,
    /// Execs kept per process.
    pub execs_per_process: usize,
    /// Most recent calls kept per process for the HTML view (0: none).
    pub recent_per_process: usize,
    /// Buckets of the per-process call density.
    pub density_buckets: usize,
    /// Distinct failed `(path, errno)` pairs kept over the whole log.
    pub failed_files: usize,
    /// `(path, syscall)` pairs kept over all processes: a fork-heavy log of tens of
    /// thousands of processes must not keep every one's files.
    pub files_total: usize,
    /// Recent calls kept over all processes (for the HTML view).
    pub recent_total: usize,
    /// Warnings kept (all are counted).
    pub warnings: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            top_syscalls: 8,
            files_per_process: 200,
            execs_per_process: 64,
            recent_per_process: 0,
            density_buckets: 200,
            failed_files: 1000,
            files_total: 200_000,
            recent_total: 100_000,
            warnings: 100,
        }
    }
}

/// Calls of one name.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct NameCount {
    /// Syscall name.
    pub name: String,
    /// Calls.
    pub count: u64,
    /// Calls that returned an error.
    pub failed: u64,
}

/// An error and how often it happened.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ErrnoCount {
    /// The errno number.
    pub errno: i64,
    /// Its name, `ENOENT`.
    pub name: String,
    /// Times.
    pub count: u64,
}

/// A path a process opened (or tried to), with one syscall.
#[derive(Debug, Clone, Serialize)]
pub struct FileUse {
    /// The path as passed to the call.
    pub path: String,
    /// The path was cut by the plugin.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
    /// `openat`, `open`, `openat2`, `creat`, `execve`, `execveat`.
    pub syscall: String,
    /// Calls.
    pub count: u64,
    /// Calls that succeeded.
    pub ok: u64,
    /// Calls without a result (`no_return`, `abandoned`, `unfinished`).
    pub unknown: u64,
    /// Failures by errno.
    pub errors: Vec<ErrnoCount>,
    /// Position of the first call.
    pub first: u64,
}

/// One program a process ran.
#[derive(Debug, Clone, Serialize)]
pub struct Exec {
    /// Position.
    pub position: u64,
    /// Path of the program.
    pub path: Option<String>,
    /// Its arguments.
    pub argv: Option<Vec<String>>,
    /// `process_exec` (an event) or `execve`/`execveat` (a successful call, used when the
    /// log has no process events).
    pub source: String,
}

/// One call kept for the HTML view.
#[derive(Debug, Clone, Serialize)]
pub struct RecentCall {
    /// Position.
    pub position: u64,
    /// Thread id.
    pub tid: u32,
    /// Name.
    pub name: String,
    /// Arguments, rendered on one line and cut at [`MAX_ARGS_TEXT`] characters.
    pub args: String,
    /// Result.
    pub ret: Option<i64>,
    /// `ENOENT` when `ret` is an error.
    pub errno: Option<String>,
    /// Why there is no result.
    pub outcome: Option<String>,
}

/// Longest argument text kept per recent call, in characters.
pub const MAX_ARGS_TEXT: usize = 300;

/// One process over the run. A pid seen again after its process ended is a new process.
#[derive(Debug, Clone, Serialize)]
pub struct Process {
    /// Index in [`Summary::processes`].
    pub id: usize,
    /// Process id.
    pub pid: u32,
    /// Parent's process id, when known.
    pub ppid: Option<u32>,
    /// Index of the parent process, when it is in the log.
    pub parent: Option<usize>,
    /// Indices of the children, by start.
    pub children: Vec<usize>,
    /// Depth in the tree (roots are 0).
    pub depth: usize,
    /// Last `comm` seen.
    pub comm: Option<String>,
    /// Every `comm` seen, in order (at most 8).
    pub comms: Vec<String>,
    /// Path of the last program executed.
    pub path: Option<String>,
    /// Arguments of the last program executed (or from a snapshot).
    pub argv: Option<Vec<String>>,
    /// Position of `process_start`; `None` when the process existed before the log saw it.
    pub start: Option<u64>,
    /// The plugin said it was running before it could see it.
    pub already_running: bool,
    /// Where the process was first seen: `process_start`, `snapshot`, `syscall`, ...
    pub seen_from: String,
    /// First position at which the process appears.
    pub first_seen: u64,
    /// Last position at which the process appears.
    pub last_seen: u64,
    /// Position of `process_end`.
    pub end: Option<u64>,
    /// Exit code from `process_end`.
    pub exit_code: Option<i64>,
    /// The signal that killed it, from `process_end`.
    pub signal: Option<i64>,
    /// A kernel thread (from a snapshot).
    pub kernel_thread: bool,
    /// Distinct thread ids seen.
    pub threads: usize,
    /// `thread_end` events seen.
    pub threads_ended: u64,
    /// System calls.
    pub syscalls: u64,
    /// System calls that returned an error.
    pub failed_syscalls: u64,
    /// The most frequent syscalls, most frequent first.
    pub top_syscalls: Vec<NameCount>,
    /// Files opened or executed, in order of first use.
    pub files: Vec<FileUse>,
    /// `(path, syscall)` pairs not kept ([`Limits::files_per_process`]).
    pub files_dropped: u64,
    /// Programs executed.
    pub execs: Vec<Exec>,
    /// Execs not kept ([`Limits::execs_per_process`]).
    pub execs_dropped: u64,
    /// Calls per density bucket (see [`Summary::density`]); kept (and written) only for
    /// the HTML view, when [`Limits::recent_per_process`] is not 0.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub density: Vec<u32>,
    /// The last calls, oldest first ([`Limits::recent_per_process`],
    /// [`Limits::recent_total`]); written only when kept.
    #[serde(skip_serializing_if = "VecDeque::is_empty")]
    pub recent: VecDeque<RecentCall>,
    #[serde(skip)]
    names: HashMap<String, (u64, u64)>,
    #[serde(skip)]
    file_index: HashMap<(String, String), usize>,
    #[serde(skip)]
    tids: HashSet<u32>,
    #[serde(skip)]
    execve_calls: Vec<Exec>,
}

/// A program and how often it was executed.
#[derive(Debug, Clone, Serialize)]
pub struct Program {
    /// Path.
    pub path: String,
    /// Times.
    pub count: u64,
    /// Arguments of the first time.
    pub argv: Option<Vec<String>>,
    /// Process ids that ran it (at most 16).
    pub pids: Vec<u32>,
}

/// A failed open or exec of one path with one errno, over the whole log.
#[derive(Debug, Clone, Serialize)]
pub struct FileFailure {
    /// Path.
    pub path: String,
    /// Syscall.
    pub syscall: String,
    /// The errno number.
    pub errno: i64,
    /// Its name.
    pub name: String,
    /// Times.
    pub count: u64,
    /// Process ids (at most 16).
    pub pids: Vec<u32>,
}

/// A kernel module seen in a snapshot.
#[derive(Debug, Clone, Serialize)]
pub struct ModuleInfo {
    /// Name.
    pub name: String,
    /// Load address.
    pub base: Option<String>,
    /// Size in bytes.
    pub size: Option<u64>,
    /// Position of the first record that shows it.
    pub first_seen: u64,
    /// The record type that showed it (`snapshot`).
    pub source: String,
}

/// System calls over the whole log.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SyscallTotals {
    /// Calls.
    pub total: u64,
    /// Calls that returned an error.
    pub failed: u64,
    /// Calls without a result, by `outcome`.
    pub without_result: BTreeMap<String, u64>,
    /// Calls whose caller the plugin could not name (pid 0, tid 0: no kernelinfo, or
    /// made before the kernel was found under KPTI): counted here, not given to the idle
    /// task.
    pub unattributed: u64,
    /// The most frequent names.
    pub top: Vec<NameCount>,
    /// Errors by errno, most frequent first.
    pub errors: Vec<ErrnoCount>,
}

/// Geometry of the density buckets: bucket `i` covers positions
/// `origin + i*width .. origin + (i+1)*width`.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Density {
    /// First position of bucket 0.
    pub origin: u64,
    /// Positions per bucket.
    pub width: u64,
    /// Buckets.
    pub buckets: usize,
}

/// Warnings while reading.
#[derive(Debug, Clone, Default, Serialize)]
pub struct WarningSummary {
    /// All warnings.
    pub count: u64,
    /// The first ones.
    pub first: Vec<String>,
}

/// Everything the report shows.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// The log file.
    pub log: String,
    /// Lines read.
    pub lines: u64,
    /// Records understood.
    pub records: u64,
    /// Records per type, including unknown types.
    pub record_types: BTreeMap<String, u64>,
    /// `icount` when records carry it, else `line` (positions are line numbers).
    pub position_unit: String,
    /// First position.
    pub first_position: Option<u64>,
    /// Last position.
    pub last_position: Option<u64>,
    /// The `run_start` record's fields.
    pub run_start: Option<Map<String, Value>>,
    /// The `run_end` record's fields; `None` when the run did not end normally.
    pub run_end: Option<Map<String, Value>>,
    /// The `kernel_ready` record's fields.
    pub kernel_ready: Option<Map<String, Value>>,
    /// The last line had no newline and could not be read (QEMU was killed).
    pub truncated_last_line: bool,
    /// `snapshot` records.
    pub snapshots: u64,
    /// Processes, in tree order (parents before children, depth-first).
    pub processes: Vec<Process>,
    /// Indices of the processes without a known parent, by start.
    pub roots: Vec<usize>,
    /// System calls over the whole log.
    pub syscalls: SyscallTotals,
    /// Programs executed, most frequent first.
    pub programs: Vec<Program>,
    /// Failed opens and execs, most frequent first.
    pub failed_files: Vec<FileFailure>,
    /// Failed `(path, errno)` pairs not kept ([`Limits::failed_files`]).
    pub failed_files_dropped: u64,
    /// Kernel modules, in order of first appearance.
    pub modules: Vec<ModuleInfo>,
    /// Geometry of each process's `density`.
    pub density: Density,
    /// What was capped.
    pub limits: Limits,
    /// Warnings.
    pub warnings: WarningSummary,
}

impl Summary {
    /// The process with index `id`.
    pub fn process(&self, id: usize) -> &Process {
        &self.processes[id]
    }
}

/// Syscalls whose path argument is worth listing, and the argument's name.
fn path_arg(name: &str) -> Option<&'static str> {
    Some(match name {
        "open" | "openat" | "openat2" | "execve" | "execveat" => "filename",
        "creat" => "pathname",
        _ => return None,
    })
}

fn is_exec(name: &str) -> bool {
    name == "execve" || name == "execveat"
}

fn push_comm(p: &mut Process, comm: &str) {
    if p.comm.as_deref() != Some(comm) {
        p.comm = Some(comm.to_string());
        if p.comms.len() < 8 && !p.comms.iter().any(|c| c == comm) {
            p.comms.push(comm.to_string());
        }
    }
}

fn cut(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// Builds a [`Summary`] one record at a time.
#[derive(Debug)]
pub struct Aggregator {
    limits: Limits,
    procs: Vec<Process>,
    /// pid → index of its current (latest) process.
    by_pid: HashMap<u32, usize>,
    density: Option<Density>,
    totals: HashMap<String, (u64, u64)>,
    errors: HashMap<i64, u64>,
    without_result: BTreeMap<String, u64>,
    unattributed: u64,
    syscalls: u64,
    failed: u64,
    failures: HashMap<(String, String, i64), (u64, Vec<u32>)>,
    failures_dropped: u64,
    /// `(path, syscall)` pairs kept so far ([`Limits::files_total`]).
    files_kept: usize,
    /// Recent calls kept so far ([`Limits::recent_total`]).
    recent_kept: usize,
    programs: HashMap<String, Program>,
    modules: Vec<ModuleInfo>,
    module_names: HashSet<String>,
    saw_process_exec: bool,
    run_start: Option<Map<String, Value>>,
    run_end: Option<Map<String, Value>>,
    kernel_ready: Option<Map<String, Value>>,
    snapshots: u64,
    first: Option<u64>,
    last: Option<u64>,
}

impl Aggregator {
    /// An empty aggregation.
    pub fn new(limits: Limits) -> Aggregator {
        Aggregator {
            limits,
            procs: Vec::new(),
            by_pid: HashMap::new(),
            density: None,
            totals: HashMap::new(),
            errors: HashMap::new(),
            without_result: BTreeMap::new(),
            unattributed: 0,
            syscalls: 0,
            failed: 0,
            failures: HashMap::new(),
            failures_dropped: 0,
            files_kept: 0,
            recent_kept: 0,
            programs: HashMap::new(),
            modules: Vec::new(),
            module_names: HashSet::new(),
            saw_process_exec: false,
            run_start: None,
            run_end: None,
            kernel_ready: None,
            snapshots: 0,
            first: None,
            last: None,
        }
    }

    /// Adds one record at position `pos`.
    pub fn add(&mut self, record: &Record, pos: u64) {
        match record {
            Record::RunStart(m) => self.run_start = Some(m.clone()),
            Record::RunEnd(m) => self.run_end = Some(m.clone()),
            Record::KernelReady(m) => self.kernel_ready = Some(m.clone()),
            // Not on the timeline.
            Record::Unknown(_) => {}
            _ => self.add_timed(record, pos),
        }
    }

    fn add_timed(&mut self, record: &Record, pos: u64) {
        self.first.get_or_insert(pos);
        self.last = Some(self.last.map_or(pos, |l| l.max(pos)));
        if self.density.is_none() {
            self.density = Some(Density {
                origin: pos,
                width: 1,
                buckets: self.limits.density_buckets.max(1),
            });
        }
        match record {
            Record::Snapshot(s) => self.snapshot(s, pos),
            Record::Syscall(c) => self.syscall(c, pos),
            Record::Process(e) => self.process_event(e, pos),
            _ => {}
        }
    }

    fn new_process(&mut self, pid: u32, ppid: Option<u32>, pos: u64, from: &str) -> usize {
        let id = self.procs.len();
        let parent = ppid.and_then(|pp| self.by_pid.get(&pp).copied());
        self.procs.push(Process {
            id,
            pid,
            ppid,
            parent,
            children: Vec::new(),
            depth: 0,
            comm: None,
            comms: Vec::new(),
            path: None,
            argv: None,
            start: None,
            already_running: false,
            seen_from: from.to_string(),
            first_seen: pos,
            last_seen: pos,
            end: None,
            exit_code: None,
            signal: None,
            kernel_thread: false,
            threads: 0,
            threads_ended: 0,
            syscalls: 0,
            failed_syscalls: 0,
            top_syscalls: Vec::new(),
            files: Vec::new(),
            files_dropped: 0,
            execs: Vec::new(),
            execs_dropped: 0,
            density: Vec::new(),
            recent: VecDeque::new(),
            names: HashMap::new(),
            file_index: HashMap::new(),
            tids: HashSet::new(),
            execve_calls: Vec::new(),
        });
        self.by_pid.insert(pid, id);
        id
    }

    /// The current process of `pid`, created if unknown (or if the known one has ended:
    /// the pid was reused).
    fn process_of(&mut self, pid: u32, pos: u64, from: &str) -> usize {
        match self.by_pid.get(&pid) {
            Some(&id) if self.procs[id].end.is_none() => {
                let p = &mut self.procs[id];
                p.last_seen = p.last_seen.max(pos);
                id
            }
            _ => self.new_process(pid, None, pos, from),
        }
    }

    fn add_tid(&mut self, id: usize, tid: u32) {
        let p = &mut self.procs[id];
        if p.tids.insert(tid) {
            p.threads = p.tids.len();
        }
    }

    fn process_event(&mut self, e: &ProcessEvent, pos: u64) {
        let id = match e.kind {
            ProcessKind::ProcessStart => {
                // The process may already be known from a snapshot (which can list a
                // process the plugin reports as running, or one forked just before).
                // Otherwise a start for a pid whose process is still open means its end
                // was missed, and this is a new process.
                let known = self.by_pid.get(&e.pid).copied().filter(|&id| {
                    let p = &self.procs[id];
                    p.end.is_none() && p.start.is_none() && p.seen_from == "snapshot"
                        || p.end.is_none() && e.already_running && p.start.is_none()
                });
                let id = match known {
                    Some(id) => id,
                    None => self.new_process(e.pid, e.ppid, pos, "process_start"),
                };
                let p = &mut self.procs[id];
                if e.already_running {
                    p.already_running = true;
                } else {
                    p.already_running = false;
                    p.start = Some(pos);
                }
                id
            }
            _ => self.process_of(e.pid, pos, e.kind.type_name()),
        };
        self.add_tid(id, e.tid);
        let limit = self.limits.execs_per_process;
        let p = &mut self.procs[id];
        if p.ppid.is_none() {
            p.ppid = e.ppid;
        }
        if let Some(c) = &e.comm {
            push_comm(p, c);
        }
        match e.kind {
            ProcessKind::ProcessStart | ProcessKind::ThreadStart | ProcessKind::ThreadEnd => {
                if e.argv.is_some() && p.argv.is_none() {
                    p.argv = e.argv.clone();
                }
                if e.kind == ProcessKind::ThreadEnd {
                    p.threads_ended += 1;
                }
            }
            ProcessKind::ProcessExec => {
                self.saw_process_exec = true;
                p.path = e.path.clone().or_else(|| p.path.clone());
                p.argv = e.argv.clone().or_else(|| p.argv.clone());
                if p.execs.len() < limit {
                    p.execs.push(Exec {
                        position: pos,
                        path: e.path.clone(),
                        argv: e.argv.clone(),
                        source: "process_exec".to_string(),
                    });
                } else {
                    p.execs_dropped += 1;
                }
                let key = e
                    .path
                    .clone()
                    .or_else(|| e.argv.as_ref().and_then(|a| a.first().cloned()))
                    .or_else(|| e.comm.clone())
                    .unwrap_or_else(|| "?".to_string());
                let pid = e.pid;
                let prog = self.programs.entry(key.clone()).or_insert_with(|| Program {
                    path: key,
                    count: 0,
                    argv: e.argv.clone(),
                    pids: Vec::new(),
                });
                prog.count += 1;
                if prog.pids.len() < 16 && !prog.pids.contains(&pid) {
                    prog.pids.push(pid);
                }
            }
            ProcessKind::ProcessEnd => {
                p.end = Some(pos);
                p.exit_code = e.exit_code;
                p.signal = e.signal;
                // What only a running process needs goes: a fork-heavy log ends tens of
                // thousands of them.
                p.file_index = HashMap::new();
                p.tids = HashSet::new();
            }
        }
    }

    fn snapshot(&mut self, s: &Snapshot, pos: u64) {
        self.snapshots += 1;
        for sp in &s.processes {
            let id = match self.by_pid.get(&sp.pid) {
                Some(&id) if self.procs[id].end.is_none() => id,
                _ => {
                    let id = self.new_process(sp.pid, sp.ppid, pos, "snapshot");
                    self.procs[id].already_running = true;
                    id
                }
            };
            for &t in &sp.threads {
                self.add_tid(id, t);
            }
            let p = &mut self.procs[id];
            p.last_seen = p.last_seen.max(pos);
            p.kernel_thread |= sp.kernel_thread;
            if p.ppid.is_none() {
                p.ppid = sp.ppid;
            }
            if p.comm.is_none()
                && let Some(c) = &sp.comm
            {
                push_comm(p, c);
            }
            if p.argv.is_none() {
                p.argv = sp.argv.clone().filter(|a| !a.is_empty());
            }
        }
        for m in &s.modules {
            self.module(m, pos, "snapshot");
        }
    }

    fn module(&mut self, m: &Module, pos: u64, source: &str) {
        if self.module_names.insert(m.name.clone()) {
            self.modules.push(ModuleInfo {
                name: m.name.clone(),
                base: m.base.clone(),
                size: m.size,
                first_seen: pos,
                source: source.to_string(),
            });
        }
    }

    fn bucket(&mut self, pos: u64) -> usize {
        let d = self.density.as_mut().expect("set by add");
        let off = pos.saturating_sub(d.origin);
        let mut merges = 0;
        while off / d.width >= d.buckets as u64 {
            d.width = d.width.saturating_mul(2);
            merges += 1;
        }
        let idx = (off / d.width) as usize;
        for _ in 0..merges {
            for p in &mut self.procs {
                let n = p.density.len();
                for i in 0..n {
                    let v = if 2 * i < n {
                        p.density[2 * i]
                            .saturating_add(p.density.get(2 * i + 1).copied().unwrap_or(0))
                    } else {
                        0
                    };
                    p.density[i] = v;
                }
            }
        }
        idx
    }

    fn syscall(&mut self, c: &Syscall, pos: u64) {
        let name = c.display_name();
        let err = c.ret.and_then(errno::of_ret);
        self.syscalls += 1;
        if err.is_some() {
            self.failed += 1;
        }
        if let Some(e) = err {
            *self.errors.entry(e).or_default() += 1;
        }
        if c.ret.is_none() {
            let o = c.outcome.clone().unwrap_or_else(|| "unknown".to_string());
            *self.without_result.entry(o).or_default() += 1;
        }
        let t = self.totals.entry(name.clone()).or_default();
        t.0 += 1;
        t.1 += u64::from(err.is_some());
        if c.pid == 0 && c.tid == 0 {
            self.unattributed += 1;
            return;
        }
        let id = match self.by_pid.get(&c.pid) {
            // Calls a killed process left blocked are written after its `process_end`:
            // they are that process's, not a new one's.
            Some(&id) if c.outcome.as_deref() == Some("abandoned") => id,
            _ => self.process_of(c.pid, pos, "syscall"),
        };
        self.add_tid(id, c.tid);
        let bucket = self.bucket(pos);

        let limits = self.limits;
        let buckets = self.density.map_or(1, |d| d.buckets);
        let p = &mut self.procs[id];
        if let Some(comm) = &c.comm {
            push_comm(p, comm);
        }
        p.syscalls += 1;
        p.failed_syscalls += u64::from(err.is_some());
        let n = p.names.entry(name.clone()).or_default();
        n.0 += 1;
        n.1 += u64::from(err.is_some());
        if limits.recent_per_process > 0 {
            if p.density.is_empty() {
                p.density = vec![0; buckets];
            }
            p.density[bucket] = p.density[bucket].saturating_add(1);
        }

        // A full ring makes room for the new call; an empty or growing one takes from the
        // budget of all processes while it lasts.
        let room = limits.recent_per_process > 0
            && (p.recent.len() == limits.recent_per_process
                || self.recent_kept < limits.recent_total);
        if room {
            if p.recent.len() == limits.recent_per_process {
                p.recent.pop_front();
            } else {
                self.recent_kept += 1;
            }
            let args = c
                .args
                .0
                .iter()
                .map(|(k, v)| format!("{k}={}", record::arg_display(v)))
                .collect::<Vec<_>>()
                .join(", ");
            p.recent.push_back(RecentCall {
                position: pos,
                tid: c.tid,
                name: name.clone(),
                args: cut(&args, MAX_ARGS_TEXT),
                ret: c.ret,
                errno: err.map(errno::name),
                outcome: c.outcome.clone(),
            });
        }

        let Some(arg) = c.name.as_deref().and_then(path_arg) else {
            return;
        };
        let Some((path, truncated)) = c.args.get(arg).and_then(record::arg_str) else {
            return;
        };
        let exec_ok = is_exec(&name) && (c.ret == Some(0) || c.outcome.as_deref() == Some("exec"));
        if exec_ok {
            if p.execve_calls.len() < limits.execs_per_process {
                p.execve_calls.push(Exec {
                    position: pos,
                    path: Some(path.to_string()),
                    argv: c.args.get("argv").and_then(record::arg_strs),
                    source: name.clone(),
                });
            } else {
                p.execs_dropped += 1;
            }
        }
        let key = (path.to_string(), name.clone());
        // An ended process's index is gone (a call written after its end: an abandoned
        // one); its few files are searched instead.
        let known = match p.end {
            Some(_) => p
                .files
                .iter()
                .position(|f| f.path == key.0 && f.syscall == key.1),
            None => p.file_index.get(&key).copied(),
        };
        let fi = match known {
            Some(i) => Some(i),
            None if p.files.len() < limits.files_per_process
                && self.files_kept < limits.files_total =>
            {
                self.files_kept += 1;
                p.files.push(FileUse {
                    path: path.to_string(),
                    truncated,
                    syscall: name.clone(),
                    count: 0,
                    ok: 0,
                    unknown: 0,
                    errors: Vec::new(),
                    first: pos,
                });
                p.file_index.insert(key, p.files.len() - 1);
                Some(p.files.len() - 1)
            }
            None => {
                p.files_dropped += 1;
                None
            }
        };
        if let Some(fi) = fi {
            let f = &mut p.files[fi];
            f.count += 1;
            match (c.ret, err) {
                (_, Some(e)) => match f.errors.iter_mut().find(|x| x.errno == e) {
                    Some(x) => x.count += 1,
                    None => f.errors.push(ErrnoCount {
                        errno: e,
                        name: errno::name(e),
                        count: 1,
                    }),
                },
                (Some(_), None) => f.ok += 1,
                (None, None) if exec_ok => f.ok += 1,
                (None, None) => f.unknown += 1,
            }
        }
        if let Some(e) = err {
            let pid = c.pid;
            let key = (path.to_string(), name, e);
            if let Some(v) = self.failures.get_mut(&key) {
                v.0 += 1;
                if v.1.len() < 16 && !v.1.contains(&pid) {
                    v.1.push(pid);
                }
            } else if self.failures.len() < limits.failed_files {
                self.failures.insert(key, (1, vec![pid]));
            } else {
                self.failures_dropped += 1;
            }
        }
    }

    /// The summary of everything added.
    pub fn finish(mut self, log: String, lines: u64, records: u64) -> Summary {
        let top = self.limits.top_syscalls;
        let sorted = |m: &HashMap<String, (u64, u64)>, n: usize| {
            let mut v: Vec<NameCount> = m
                .iter()
                .map(|(k, &(count, failed))| NameCount {
                    name: k.clone(),
                    count,
                    failed,
                })
                .collect();
            v.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.name.cmp(&b.name)));
            v.truncate(n);
            v
        };

        // Without process events, successful execve calls are the record of programs run.
        let use_execve = !self.saw_process_exec;
        for p in &mut self.procs {
            p.top_syscalls = sorted(&p.names, top);
            if use_execve && !p.execve_calls.is_empty() {
                p.execs = std::mem::take(&mut p.execve_calls);
                let last = p.execs.last().expect("not empty");
                p.path = last.path.clone();
                p.argv = last.argv.clone().or_else(|| p.argv.clone());
                for e in &p.execs {
                    let key = e.path.clone().unwrap_or_default();
                    let prog = self.programs.entry(key.clone()).or_insert_with(|| Program {
                        path: key,
                        count: 0,
                        argv: e.argv.clone(),
                        pids: Vec::new(),
                    });
                    prog.count += 1;
                    if prog.pids.len() < 16 && !prog.pids.contains(&p.pid) {
                        prog.pids.push(p.pid);
                    }
                }
            }
        }

        // Parents learned after a process was created (from a snapshot): the latest
        // process of that pid that was seen no later than the child.
        let n = self.procs.len();
        let mut latest: HashMap<u32, Vec<usize>> = HashMap::new();
        for p in &self.procs {
            latest.entry(p.pid).or_default().push(p.id);
        }
        for i in 0..n {
            if self.procs[i].parent.is_some() {
                continue;
            }
            let Some(pp) = self.procs[i].ppid else {
                continue;
            };
            let seen = self.procs[i].first_seen;
            if let Some(cands) = latest.get(&pp) {
                let pick = cands
                    .iter()
                    .rev()
                    .find(|&&c| self.procs[c].first_seen <= seen)
                    .or(cands.first())
                    .copied();
                self.procs[i].parent = pick.filter(|&c| c != i);
            }
        }
        let key = |p: &Process| (p.start.unwrap_or(p.first_seen), p.pid);
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by_key(|&i| key(&self.procs[i]));
        let mut children: Vec<Vec<usize>> = vec![Vec::new(); n];
        for &i in &order {
            if let Some(pa) = self.procs[i].parent {
                children[pa].push(i);
            }
        }
        // Depth-first from the roots; anything left (a parent cycle) becomes a root.
        let mut visited = vec![false; n];
        let mut tree: Vec<(usize, usize)> = Vec::with_capacity(n);
        let mut roots = Vec::new();
        let mut stack: Vec<(usize, usize)> = Vec::new();
        let starts: Vec<usize> = order
            .iter()
            .copied()
            .filter(|&i| self.procs[i].parent.is_none())
            .chain(order.iter().copied())
            .collect();
        for r in starts {
            if visited[r] {
                continue;
            }
            roots.push(r);
            stack.push((r, 0));
            while let Some((i, d)) = stack.pop() {
                if visited[i] {
                    continue;
                }
                visited[i] = true;
                tree.push((i, d));
                for &c in children[i].iter().rev() {
                    if !visited[c] {
                        stack.push((c, d + 1));
                    }
                }
            }
        }
        let mut is_root = vec![false; n];
        for &r in &roots {
            is_root[r] = true;
        }
        // Renumber in tree order.
        let mut new_id = vec![0usize; n];
        for (k, &(i, _)) in tree.iter().enumerate() {
            new_id[i] = k;
        }
        let mut old: Vec<Option<Process>> = self.procs.into_iter().map(Some).collect();
        let mut processes = Vec::with_capacity(n);
        for &(i, d) in &tree {
            let mut p = old[i].take().expect("each process once");
            p.id = new_id[i];
            p.depth = d;
            p.parent = p.parent.map(|x| new_id[x]).filter(|_| !is_root[i]);
            p.children = children[i]
                .iter()
                .filter(|&&c| !is_root[c])
                .map(|&c| new_id[c])
                .collect();
            processes.push(p);
        }
        let roots: Vec<usize> = roots.iter().map(|&r| new_id[r]).collect();

        let mut errors: Vec<ErrnoCount> = self
            .errors
            .iter()
            .map(|(&e, &count)| ErrnoCount {
                errno: e,
                name: errno::name(e),
                count,
            })
            .collect();
        errors.sort_by(|a, b| b.count.cmp(&a.count).then(a.errno.cmp(&b.errno)));
        let mut programs: Vec<Program> = self.programs.into_values().collect();
        programs.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.path.cmp(&b.path)));
        let mut failed_files: Vec<FileFailure> = self
            .failures
            .into_iter()
            .map(|((path, syscall, e), (count, pids))| FileFailure {
                path,
                syscall,
                errno: e,
                name: errno::name(e),
                count,
                pids,
            })
            .collect();
        failed_files.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then_with(|| a.path.cmp(&b.path))
                .then(a.errno.cmp(&b.errno))
        });

        Summary {
            log,
            lines,
            records,
            record_types: BTreeMap::new(),
            position_unit: "line".to_string(),
            first_position: self.first,
            last_position: self.last,
            run_start: self.run_start,
            run_end: self.run_end,
            kernel_ready: self.kernel_ready,
            truncated_last_line: false,
            snapshots: self.snapshots,
            processes,
            roots,
            syscalls: SyscallTotals {
                total: self.syscalls,
                failed: self.failed,
                without_result: self.without_result,
                unattributed: self.unattributed,
                top: sorted(&self.totals, 15),
                errors,
            },
            programs,
            failed_files,
            failed_files_dropped: self.failures_dropped,
            modules: self.modules,
            density: self.density.unwrap_or(Density {
                origin: 0,
                width: 1,
                buckets: 0,
            }),
            limits: self.limits,
            warnings: WarningSummary::default(),
        }
    }
}
