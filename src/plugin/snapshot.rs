//! Snapshots: the whole process tree and the kernel modules at one instant, as one
//! `snapshot` record of the event log.

use crate::linux::Linux;
use crate::osi::{Incomplete, Introspect, ProcessHandle};
use crate::output::records::{
    SnapshotFd, SnapshotMapping, SnapshotModule, SnapshotProcess, SnapshotRecord, hex,
};

/// Why a snapshot was taken (the record's `reason`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// A process executed the program named by `snapshot=`.
    Exec(String),
    /// The guest asked to reboot or power off.
    Reboot,
}

impl Reason {
    fn label(&self) -> String {
        match self {
            Reason::Exec(name) => format!("exec:{name}"),
            Reason::Reboot => "reboot".to_string(),
        }
    }
}

/// Guest bytes one snapshot may read, over all its walks: each process's listings are
/// bounded ([`crate::linux::path::READ_BUDGET`]), but a hostile guest can offer tens of
/// thousands of processes, and the snapshot runs inside one vCPU callback.
pub const SNAPSHOT_BUDGET: usize = 128 << 20;

/// Reads processes (with threads, mappings and open files) and modules through `linux`,
/// at most [`SNAPSHOT_BUDGET`] bytes. Walks that stop early still give what they read, and
/// say why in `incomplete`.
pub fn take(linux: &Linux<'_>, reason: &Reason) -> SnapshotRecord {
    take_within(linux, reason, SNAPSHOT_BUDGET)
}

/// [`take`], reading at most `limit` bytes.
fn take_within(linux: &Linux<'_>, reason: &Reason, limit: usize) -> SnapshotRecord {
    let current = linux.current_thread().ok();
    let budget = crate::mem::Budgeted::new(linux.memory(), limit);
    let linux = &Linux::new(&budget, linux.info(), *linux.context());
    let mut incomplete = Vec::new();
    let mut note = |what: &str, why: String| incomplete.push(format!("{what}: {why}"));
    let mut processes = Vec::new();
    match linux.processes() {
        Ok(listing) => {
            if let Some(why) = &listing.incomplete {
                note("processes", why.to_string());
            }
            for p in listing.items {
                let handle = ProcessHandle(p.task);
                let (maps, fds) = if p.kernel_thread {
                    (Vec::new(), Vec::new())
                } else {
                    let maps = match linux.mappings(handle) {
                        Ok(l) => {
                            flag(&mut note, p.pid, "mappings", &l.incomplete);
                            l.items
                                .into_iter()
                                .map(|m| SnapshotMapping {
                                    start: hex(m.start),
                                    end: hex(m.end),
                                    flags: m.flags,
                                    offset: m.offset,
                                    path: m.path,
                                })
                                .collect()
                        }
                        Err(e) => {
                            note(&format!("mappings of {}", p.pid), e.to_string());
                            Vec::new()
                        }
                    };
                    let fds = match linux.fds(handle) {
                        Ok(l) => {
                            flag(&mut note, p.pid, "fds", &l.incomplete);
                            l.items
                                .into_iter()
                                .map(|f| SnapshotFd {
                                    fd: f.fd,
                                    path: f.path,
                                    position: f.position,
                                })
                                .collect()
                        }
                        Err(e) => {
                            note(&format!("fds of {}", p.pid), e.to_string());
                            Vec::new()
                        }
                    };
                    (maps, fds)
                };
                processes.push(SnapshotProcess {
                    pid: p.pid,
                    ppid: p.ppid,
                    comm: p.comm,
                    task: hex(p.task),
                    asid: p.asid.map(hex),
                    threads: p.threads,
                    kernel_thread: p.kernel_thread,
                    start_time: p.start_time,
                    uid: p.uid,
                    gid: p.gid,
                    euid: p.euid,
                    egid: p.egid,
                    argv: p.argv,
                    exe: p.exe,
                    brk: hex(p.brk),
                    start_brk: hex(p.start_brk),
                    maps,
                    fds,
                });
            }
        }
        Err(e) => note("processes", e.to_string()),
    }
    let modules = match linux.modules() {
        Ok(l) => {
            if let Some(why) = &l.incomplete {
                note("modules", why.to_string());
            }
            l.items
                .into_iter()
                .map(|m| SnapshotModule {
                    name: m.name,
                    base: hex(m.base),
                    size: m.size,
                })
                .collect()
        }
        Err(e) => {
            note("modules", e.to_string());
            Vec::new()
        }
    };
    if budget.exhausted() {
        incomplete.push(format!(
            "snapshot: stopped at its limit of {} KiB of guest memory read",
            limit >> 10
        ));
    }
    SnapshotRecord {
        reason: reason.label(),
        current,
        processes,
        modules,
        incomplete,
    }
}

fn flag(
    note: &mut impl FnMut(&str, String),
    pid: u32,
    what: &str,
    incomplete: &Option<Incomplete>,
) {
    if let Some(why) = incomplete {
        note(&format!("{what} of {pid}"), why.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linux::testmem::{Builder, INIT_TASK, ctx};

    #[test]
    fn a_snapshot_stops_at_its_budget() {
        let mut b = Builder::new();
        for pid in 1..=40 {
            b.process(pid, "p", INIT_TASK, 0);
        }
        let linux = Linux::new(&b.mem, &b.info, ctx());
        let full = take(&linux, &Reason::Reboot);
        assert!(full.incomplete.is_empty(), "{:?}", full.incomplete);
        assert_eq!(full.processes.len(), 41);
        let cut = take_within(&linux, &Reason::Reboot, 1024);
        assert!(
            cut.incomplete
                .iter()
                .any(|i| i == "snapshot: stopped at its limit of 1 KiB of guest memory read"),
            "{:?}",
            cut.incomplete
        );
        assert!(cut.processes.len() < full.processes.len());
        assert_eq!(cut.current, full.current);
    }
}
