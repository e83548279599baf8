//! Process and thread lifecycle events with `osi_pse` semantics: each emitted once, at
//! the first point where what it reports is accurate.
//!
//! The [`Tracker`] is pure and deterministic: the plugin feeds it what happened (a
//! completed system call, with the extra facts the provider read for it) and it answers
//! with the events to emit, in order. Linux's lifecycle, as seen from system calls:
//!
//! - `fork`/`vfork`/`clone`/`clone3` returning a child id in the parent: the child exists
//!   in the task list with its pid, parent, comm and address space → `process_start`
//!   (or `thread_start` with `CLONE_THREAD`). A child that runs before its parent returns
//!   is started when it is first seen, and the parent's return then adds nothing.
//! - `execve`/`execveat` that succeeded: the new image is only readable once the thread
//!   makes its first call in it (the call then completes as an exec) → `process_exec`
//!   with the new comm, argv and program.
//! - `exit_group`, or `exit` of a group's last thread → `process_end` with the exit code
//!   (`thread_end` for threads); a process killed by a signal ends when its parent reaps
//!   it (`wait4`/`waitid` returning its pid) → `process_end` with the signal.
//! - processes that existed before the plugin could read the kernel are started once,
//!   marked `already_running`.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::osi::Process;

/// `CLONE_THREAD`: the child joins the caller's thread group.
pub const CLONE_THREAD: u64 = 0x0001_0000;

/// One lifecycle event, as a record of the event log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A process exists and can be read.
    ProcessStart {
        /// Process id.
        pid: u32,
        /// Its main thread (= pid).
        tid: u32,
        /// Parent's pid.
        ppid: u32,
        /// Command name.
        comm: String,
        /// Page-table root, `0x...`; absent for kernel threads.
        #[serde(skip_serializing_if = "Option::is_none")]
        asid: Option<String>,
        /// Kernel thread.
        kernel_thread: bool,
        /// It existed before the plugin could see it start.
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        already_running: bool,
    },
    /// A process runs a new program.
    ProcessExec {
        /// Process id.
        pid: u32,
        /// The thread that called exec.
        tid: u32,
        /// Parent's pid.
        ppid: u32,
        /// The new command name.
        comm: String,
        /// The new command line, when readable.
        argv: Option<Vec<String>>,
        /// The program (`/proc/<pid>/exe`), or the path given to exec.
        path: Option<String>,
    },
    /// A process is gone.
    ProcessEnd {
        /// Process id.
        pid: u32,
        /// The thread that ended it (or the pid when reaped).
        tid: u32,
        /// Parent's pid.
        ppid: u32,
        /// Command name.
        comm: String,
        /// Exit status (0..255), when it exited.
        #[serde(skip_serializing_if = "Option::is_none")]
        exit_code: Option<i32>,
        /// The signal that killed it, when it was killed.
        #[serde(skip_serializing_if = "Option::is_none")]
        signal: Option<i32>,
        /// It ended without a system call the plugin saw (a kernel thread, or a process
        /// reaped by no one watched): noticed missing from a complete snapshot.
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        noticed_at_snapshot: bool,
    },
    /// A thread joined a process.
    ThreadStart {
        /// Process id.
        pid: u32,
        /// Thread id.
        tid: u32,
        /// Parent's pid (of the process).
        ppid: u32,
        /// Command name.
        comm: String,
        /// It existed before the plugin could see it start.
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        already_running: bool,
    },
    /// A thread is gone.
    ThreadEnd {
        /// Process id.
        pid: u32,
        /// Thread id.
        tid: u32,
        /// Parent's pid (of the process).
        ppid: u32,
        /// Command name.
        comm: String,
    },
}

/// Every field a process or thread event may be written with, besides `type`: what
/// `vmi report` knows (a unit test holds it to the variants above).
pub const EVENT_FIELDS: &[&str] = &[
    "pid",
    "tid",
    "ppid",
    "comm",
    "asid",
    "kernel_thread",
    "already_running",
    "argv",
    "path",
    "exit_code",
    "signal",
    "noticed_at_snapshot",
];

/// Who made a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// Process id.
    pub pid: u32,
    /// Thread id.
    pub tid: u32,
    /// Command name.
    pub comm: String,
}

/// A completed system call, reduced to what the lifecycle needs, with the facts the
/// provider read for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lifecycle {
    /// `fork`/`vfork`/`clone`/`clone3` returned `child` in the parent; `flags` are the
    /// clone flags (0 for fork/vfork); `process` is the child as the provider reads it.
    Cloned {
        /// The new task's id.
        child: u32,
        /// Clone flags.
        flags: u64,
        /// The child process, when it could be read.
        process: Option<Process>,
    },
    /// The caller's exec succeeded; `process` is the caller's process now.
    Execed {
        /// The process after exec.
        process: Option<Process>,
        /// The path given to exec (fallback when the program's path is unknown).
        filename: Option<String>,
    },
    /// `exit_group(code)`.
    ExitGroup(i32),
    /// `exit(code)` of one thread.
    Exit(i32),
    /// `wait4`/`waitid` reaped `child` with wait status `status` (when readable).
    Reaped {
        /// The reaped process id.
        child: u32,
        /// The raw wait status.
        status: Option<i32>,
    },
}

#[derive(Debug, Clone)]
struct Live {
    ppid: u32,
    comm: String,
    threads: BTreeSet<u32>,
}

/// The lifecycle state: which processes and threads are alive.
#[derive(Debug, Default)]
pub struct Tracker {
    live: BTreeMap<u32, Live>,
    /// Children started when first seen, before their parent returned from `clone`: the
    /// parent's return must not start them again (they may even have ended by then).
    early: BTreeSet<u32>,
    ready: bool,
}

impl Tracker {
    /// An empty tracker, waiting for the first process list.
    pub fn new() -> Tracker {
        Tracker::default()
    }

    /// Whether the first process list has been seen.
    pub fn is_ready(&self) -> bool {
        self.ready
    }

    /// The first readable process list: everything in it was already running.
    pub fn already_running(&mut self, processes: &[Process]) -> Vec<Event> {
        self.ready = true;
        let mut events = Vec::new();
        for p in processes.iter().filter(|p| p.pid != 0) {
            if self.live.contains_key(&p.pid) {
                continue;
            }
            events.extend(self.start(p, true));
        }
        events
    }

    /// `caller` makes a call: make sure its process and thread are known (a child that
    /// runs before its parent returns from `clone`); `lookup` reads its process.
    pub fn seen(
        &mut self,
        caller: &Caller,
        lookup: impl FnOnce() -> Option<Process>,
    ) -> Vec<Event> {
        if !self.ready || caller.pid == 0 {
            return Vec::new();
        }
        if let Some(live) = self.live.get_mut(&caller.pid) {
            if live.threads.insert(caller.tid) {
                return vec![Event::ThreadStart {
                    pid: caller.pid,
                    tid: caller.tid,
                    ppid: live.ppid,
                    comm: live.comm.clone(),
                    already_running: false,
                }];
            }
            return Vec::new();
        }
        match lookup() {
            Some(p) => {
                self.early.insert(p.pid);
                self.start(&p, false)
            }
            None => Vec::new(),
        }
    }

    fn start(&mut self, p: &Process, already_running: bool) -> Vec<Event> {
        let mut threads: BTreeSet<u32> = p.threads.iter().copied().collect();
        threads.insert(p.pid);
        let mut events = vec![Event::ProcessStart {
            pid: p.pid,
            tid: p.pid,
            ppid: p.ppid,
            comm: p.comm.clone(),
            asid: p.asid.map(|a| format!("{a:#x}")),
            kernel_thread: p.kernel_thread,
            already_running,
        }];
        for &tid in threads.iter().filter(|&&t| t != p.pid) {
            events.push(Event::ThreadStart {
                pid: p.pid,
                tid,
                ppid: p.ppid,
                comm: p.comm.clone(),
                already_running,
            });
        }
        self.live.insert(
            p.pid,
            Live {
                ppid: p.ppid,
                comm: p.comm.clone(),
                threads,
            },
        );
        events
    }

    /// A call of `caller` completed with lifecycle meaning `what`.
    pub fn call(&mut self, caller: &Caller, what: Lifecycle) -> Vec<Event> {
        if !self.ready {
            return Vec::new();
        }
        match what {
            Lifecycle::Cloned {
                child,
                flags,
                process,
            } => {
                if flags & CLONE_THREAD != 0 {
                    let Some(live) = self.live.get_mut(&caller.pid) else {
                        return Vec::new();
                    };
                    if !live.threads.insert(child) {
                        return Vec::new();
                    }
                    return vec![Event::ThreadStart {
                        pid: caller.pid,
                        tid: child,
                        ppid: live.ppid,
                        comm: live.comm.clone(),
                        already_running: false,
                    }];
                }
                if self.early.remove(&child) || self.live.contains_key(&child) {
                    return Vec::new();
                }
                let process = process.unwrap_or_else(|| Process {
                    // The child could not be read: it is a copy of the caller.
                    pid: child,
                    ppid: caller.pid,
                    comm: caller.comm.clone(),
                    task: 0,
                    asid: None,
                    start_time: None,
                    uid: None,
                    gid: None,
                    euid: None,
                    egid: None,
                    kernel_thread: false,
                    argv: None,
                    brk: 0,
                    start_brk: 0,
                    threads: vec![child],
                    exe: None,
                });
                self.start(&process, false)
            }
            Lifecycle::Execed { process, filename } => {
                let ppid = self.live.get(&caller.pid).map_or(0, |l| l.ppid);
                let (comm, argv, path) = match process {
                    Some(p) => (p.comm, p.argv, p.exe.or(filename)),
                    None => (caller.comm.clone(), None, filename),
                };
                // Exec leaves only the calling thread; its id becomes the pid.
                let mut events = Vec::new();
                if let Some(live) = self.live.get_mut(&caller.pid) {
                    live.comm = comm.clone();
                    for tid in std::mem::take(&mut live.threads) {
                        if tid != caller.pid && tid != caller.tid {
                            events.push(Event::ThreadEnd {
                                pid: caller.pid,
                                tid,
                                ppid,
                                comm: comm.clone(),
                            });
                        }
                    }
                    live.threads.insert(caller.pid);
                }
                events.push(Event::ProcessExec {
                    pid: caller.pid,
                    tid: caller.tid,
                    ppid,
                    comm,
                    argv,
                    path,
                });
                events
            }
            Lifecycle::ExitGroup(code) => self.end(caller.pid, caller.tid, Some(code & 0xff), None),
            Lifecycle::Exit(code) => {
                let Some(live) = self.live.get_mut(&caller.pid) else {
                    return Vec::new();
                };
                if live.threads.len() > 1 {
                    live.threads.remove(&caller.tid);
                    return vec![Event::ThreadEnd {
                        pid: caller.pid,
                        tid: caller.tid,
                        ppid: live.ppid,
                        comm: live.comm.clone(),
                    }];
                }
                self.end(caller.pid, caller.tid, Some(code & 0xff), None)
            }
            Lifecycle::Reaped { child, status } => {
                // Only a process that did not exit by itself is still alive here.
                let (code, signal) = match status {
                    Some(s) if s & 0x7f == 0 => (Some((s >> 8) & 0xff), None),
                    Some(s) if s & 0x7f != 0x7f => (None, Some(s & 0x7f)),
                    _ => (None, None),
                };
                self.end(child, child, code, signal)
            }
        }
    }

    fn end(
        &mut self,
        pid: u32,
        tid: u32,
        exit_code: Option<i32>,
        signal: Option<i32>,
    ) -> Vec<Event> {
        let Some(live) = self.live.remove(&pid) else {
            return Vec::new();
        };
        let mut events: Vec<Event> = live
            .threads
            .iter()
            .filter(|&&t| t != pid)
            .map(|&t| Event::ThreadEnd {
                pid,
                tid: t,
                ppid: live.ppid,
                comm: live.comm.clone(),
            })
            .collect();
        events.push(Event::ProcessEnd {
            pid,
            tid,
            ppid: live.ppid,
            comm: live.comm,
            exit_code,
            signal,
            noticed_at_snapshot: false,
        });
        events
    }

    /// A complete process list (a snapshot): processes believed alive but absent ended
    /// unseen (kernel threads make no system calls to end with).
    pub fn reconcile(&mut self, alive: &[u32]) -> Vec<Event> {
        if !self.ready {
            return Vec::new();
        }
        let alive: BTreeSet<u32> = alive.iter().copied().collect();
        let gone: Vec<u32> = self
            .live
            .keys()
            .filter(|p| !alive.contains(p))
            .copied()
            .collect();
        let mut events = Vec::new();
        for pid in gone {
            for mut e in self.end(pid, pid, None, None) {
                if let Event::ProcessEnd {
                    noticed_at_snapshot,
                    ..
                } = &mut e
                {
                    *noticed_at_snapshot = true;
                }
                events.push(e);
            }
        }
        events
    }
}

#[cfg(test)]
mod tests;
