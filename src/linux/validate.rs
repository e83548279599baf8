//! Whether a kernelinfo group fits the running kernel, checked before anything is reported
//! from it. A group with plausible but wrong offsets reads garbage that looks like data:
//! processes the guest never had, comms of random bytes. What every Linux kernel satisfies
//! tells them apart, the way drgn tests what is there rather than a version number.

use super::Linux;
use super::task::{self, current_task};
use crate::osi::{OsiError, Process};

/// The largest pid Linux hands out (`PID_MAX_LIMIT` on 64-bit, 4M).
const PID_MAX_LIMIT: u32 = 4 * 1024 * 1024;

/// A check the running kernel failed under the group: what was read, and what any Linux
/// kernel has there instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Misfit {
    /// The walk could not read what it needed.
    #[error("{0}")]
    Unreadable(String),
    /// `init_task` is not the idle task.
    #[error("init_task has pid {pid} and comm {comm:?}, where Linux has 0 and \"swapper\"")]
    InitTask {
        /// The pid read.
        pid: u32,
        /// The comm read.
        comm: String,
    },
    /// The task list does not come back to `init_task`.
    #[error("the task list from init_task does not come back to it ({0})")]
    TaskList(String),
    /// A pid no kernel hands out, or twice.
    #[error("the task list holds pid {0}, which Linux never gives a process (or gives twice)")]
    Pid(u32),
    /// No init process.
    #[error("no process has pid 1 (init)")]
    NoInit,
    /// A command name that is not text.
    #[error("process {pid} has comm {comm:?}, which is not a command name")]
    Comm {
        /// The pid.
        pid: u32,
        /// The comm read.
        comm: String,
    },
    /// A parent that is not on the list.
    #[error("process {pid}'s parent {ppid} is not on the task list")]
    Parent {
        /// The pid.
        pid: u32,
        /// Its parent's pid as read.
        ppid: u32,
    },
    /// The running task is not one of the processes.
    #[error("the running task (pid {0}) is not on the task list")]
    Current(u32),
    /// The running process's page tables are not the ones the vCPU uses.
    #[error("the running process's page tables are at {ours:#x}, the vCPU's (CR3) at {cr3:#x}")]
    PageTables {
        /// `__pa(mm->pgd)` as read.
        ours: u64,
        /// The vCPU's.
        cr3: u64,
    },
}

impl From<OsiError> for Misfit {
    fn from(e: OsiError) -> Misfit {
        Misfit::Unreadable(e.to_string())
    }
}

/// Checks the kernel `linux` reads, on a vCPU that runs a user process's system call (or
/// any task, without the page-table check when the address space is not known).
pub fn check(linux: &Linux<'_>) -> Result<(), Misfit> {
    let list = task::processes(linux)?;
    if let Some(why) = &list.incomplete {
        return Err(Misfit::TaskList(why.to_string()));
    }
    let procs = &list.items;
    let init = &procs[0];
    if init.pid != 0 || !init.comm.starts_with("swapper") {
        return Err(Misfit::InitTask {
            pid: init.pid,
            comm: init.comm.clone(),
        });
    }
    let mut pids: Vec<u32> = procs[1..].iter().map(|p| p.pid).collect();
    pids.sort_unstable();
    if let Some(bad) = pids
        .windows(2)
        .find(|w| w[0] == w[1])
        .map(|w| w[0])
        .or_else(|| pids.iter().copied().find(|&p| p == 0 || p > PID_MAX_LIMIT))
    {
        return Err(Misfit::Pid(bad));
    }
    if pids.binary_search(&1).is_err() {
        return Err(Misfit::NoInit);
    }
    for p in procs {
        if !is_command_name(p) {
            return Err(Misfit::Comm {
                pid: p.pid,
                comm: p.comm.clone(),
            });
        }
        if p.pid != 0 && p.ppid != 0 && pids.binary_search(&p.ppid).is_err() {
            return Err(Misfit::Parent {
                pid: p.pid,
                ppid: p.ppid,
            });
        }
    }
    let current = task::thread(linux, current_task(linux)?)?;
    let running = procs.iter().find(|p| p.pid == current.pid);
    let Some(running) = running else {
        return Err(Misfit::Current(current.pid));
    };
    if let (Some(ours), Some(cr3)) = (running.asid, linux.context().current_asid)
        && !crate::mem::paging::same_address_space(ours, cr3)
    {
        return Err(Misfit::PageTables { ours, cr3 });
    }
    Ok(())
}

/// Whether `p.comm` reads as a command name: not empty (but for the idle task, which is
/// named), and no control characters.
fn is_command_name(p: &Process) -> bool {
    !p.comm.is_empty() && !p.comm.chars().any(|c| c.is_control() || c == '\u{fffd}')
}
