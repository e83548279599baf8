//! Tasks: the process list (`init_task.tasks`), threads of a group, the current task, and
//! the fields of a process.
//!
//! Kernel history that matters here:
//! - Only thread-group leaders are on `init_task.tasks` (`copy_process` links `p->tasks`
//!   only for a new group), so the `tasks` walk lists processes; threads are found per group.
//! - Threads: `task->thread_group` (a headless circular list through the group's tasks)
//!   until 6.7, which removed it; `signal->thread_head` + `task->thread_node` since 3.14
//!   (commit 0c740d0a). The head list is preferred when described.
//! - The current task: x86_64 keeps it in the per-CPU variable `current_task` (moved into
//!   `pcpu_hot` in 6.2), read at `gs_base + offset`; the per-CPU offset is zero-based and
//!   not relocated by KASLR. i386 per-CPU symbols are ordinary link-time addresses, added to
//!   `__per_cpu_offset[cpu]`, and are relocated.
//! - `PF_KTHREAD` (0x00200000) marks kernel threads since 2.6.27; before, and when
//!   `task.flags_offset` is unknown, a NULL `mm` is the sign.

use super::list::{ListIter, collect, container_of};
use super::{Linux, MAX_LIST, at, need};
use crate::osi::{Incomplete, Listing, OsiError, Process, Thread};

/// `PF_KTHREAD` in `task->flags`.
pub const PF_KTHREAD: u32 = 0x0020_0000;

/// Largest command line read (`mm->arg_end - mm->arg_start`).
pub const MAX_ARGV_BYTES: u64 = 32 * 1024;

/// The current task of the vCPU: the pointer at `per_cpu_base + task.current_task_addr`.
pub fn current_task(linux: &Linux<'_>) -> Result<u64, OsiError> {
    let base = linux
        .ctx
        .per_cpu_base
        .ok_or(OsiError::MissingContext("the per-CPU base (gs_base)"))?;
    let offset = need(
        linux.info.task.current_task_addr,
        "task.current_task_addr",
        "find the current task",
    )?;
    // Zero-based per-CPU offsets (x86_64) are not relocated; real addresses (i386) are.
    let offset = if offset >= linux.ctx.page_offset {
        linux.slid(offset)
    } else {
        offset
    };
    let task = linux.read_ptr(base.wrapping_add(offset))?;
    if task == 0 {
        return Err(OsiError::Corrupt {
            what: "NULL current task",
            at: base.wrapping_add(offset),
        });
    }
    Ok(task)
}

/// The per-CPU base of `cpu` from the kernel's table: `__per_cpu_offset[cpu]` (what i386
/// callers put in [`super::KernelContext::per_cpu_base`]).
pub fn per_cpu_base_from_table(linux: &Linux<'_>, cpu: u32) -> Result<u64, OsiError> {
    let table = need(
        linux.info.task.per_cpu_offsets_addr,
        "task.per_cpu_offsets_addr",
        "find a CPU's per-CPU area",
    )?;
    let slot = linux
        .slid(table)
        .wrapping_add(u64::from(cpu) * linux.ptr_size());
    Ok(linux.read_ptr(slot)?)
}

/// `task->group_leader`, or `task` itself when the offset is unknown or the link NULL.
pub fn group_leader(linux: &Linux<'_>, task: u64) -> Result<u64, OsiError> {
    match linux.info.task.group_leader_offset {
        Some(off) => match linux.read_ptr_at(task, off)? {
            0 => Ok(task),
            leader => Ok(leader),
        },
        None => Ok(task),
    }
}

/// `{ task->tgid, task->pid }`.
pub fn thread(linux: &Linux<'_>, task: u64) -> Result<Thread, OsiError> {
    Ok(Thread {
        pid: linux.read_u32_at(task, linux.info.task.tgid_offset)?,
        tid: linux.read_u32_at(task, linux.info.task.pid_offset)?,
    })
}

/// The process `pid`, found on `init_task.tasks` reading only each task's pid until it
/// matches: a new child is looked up at every `clone` return, and reading every process
/// in full for it was most of what process events cost in a fork-heavy guest. `None`
/// when no process has that pid, or the list breaks off before it.
pub fn find_process(linux: &Linux<'_>, pid: u32) -> Result<Option<Process>, OsiError> {
    let (_, tasks) = task_list(linux)?;
    for task in tasks {
        let Ok(task) = task else { break };
        if linux.read_u32_at(task, linux.info.task.tgid_offset)? == pid {
            return process(linux, task).map(Some);
        }
    }
    Ok(None)
}

/// `init_task`, and the tasks on its `tasks` list in list order: one per process (the
/// thread-group leaders).
fn task_list<'l>(
    linux: &'l Linux<'_>,
) -> Result<(u64, impl Iterator<Item = Result<u64, Incomplete>> + 'l), OsiError> {
    let tasks_off = need(
        linux.info.task.tasks_offset,
        "task.tasks_offset",
        "walk the task list",
    )?;
    let init = linux.slid(linux.info.task.init_addr);
    let tasks = ListIter::new(linux, at(init, tasks_off), MAX_LIST)
        .map(move |node| node.map(|n| container_of(n, tasks_off)));
    Ok((init, tasks))
}

/// All processes: `init_task` (pid 0), then every task on `init_task.tasks`.
pub fn processes(linux: &Linux<'_>) -> Result<Listing<Process>, OsiError> {
    let (init, tasks) = task_list(linux)?;
    let mut items = vec![process(linux, init)?];
    let (tasks, mut incomplete) = collect(tasks);
    for task in tasks {
        match process(linux, task) {
            Ok(p) => items.push(p),
            Err(OsiError::Fault(f)) => {
                incomplete = Some(f.into());
                break;
            }
            Err(OsiError::Corrupt { what, at }) => {
                incomplete = Some(Incomplete::Corrupt { what, at });
                break;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(Listing { items, incomplete })
}

/// The task addresses of `task`'s thread group, leader first for `thread_group`.
fn thread_tasks(linux: &Linux<'_>, task: u64) -> Result<Listing<u64>, OsiError> {
    let t = &linux.info.task;
    if let (Some(signal_off), Some(node_off), Some(head_off)) = (
        t.signal_offset,
        t.thread_node_offset,
        linux.info.signal.thread_head_offset,
    ) {
        let signal = linux.read_ptr_at(task, signal_off)?;
        if signal == 0 {
            return Ok(Listing::complete(vec![task]));
        }
        let (nodes, incomplete) = collect(ListIter::new(linux, at(signal, head_off), MAX_LIST));
        let items = nodes
            .into_iter()
            .map(|n| container_of(n, node_off))
            .collect();
        return Ok(Listing { items, incomplete });
    }
    let group_off = need(
        t.thread_group_offset,
        "task.thread_group_offset",
        "list threads",
    )?;
    // A headless ring: start at the task's own node, which the walk treats as the head.
    let (nodes, incomplete) = collect(ListIter::new(linux, at(task, group_off), MAX_LIST));
    let mut items = vec![task];
    items.extend(nodes.into_iter().map(|n| container_of(n, group_off)));
    Ok(Listing { items, incomplete })
}

/// The threads of `task`'s group.
pub fn threads(linux: &Linux<'_>, task: u64) -> Result<Listing<Thread>, OsiError> {
    thread_tasks(linux, task)?.try_map(|t| thread(linux, t))
}

/// Reads `len` bytes at `va` page by page; `None` on any fault.
fn read_bytes(linux: &Linux<'_>, va: u64, len: u64) -> Option<Vec<u8>> {
    read_pages(va, len, |at, buf| linux.mem.read(at, buf))
}

/// `len` bytes at `va`, read page by page with `read` (so that a range ending just
/// before an unmapped page is read whole).
fn read_pages(
    va: u64,
    len: u64,
    mut read: impl FnMut(u64, &mut [u8]) -> Result<(), crate::mem::Fault>,
) -> Option<Vec<u8>> {
    let len = usize::try_from(len).ok()?;
    let mut out = vec![0u8; len];
    let mut done = 0usize;
    while done < len {
        let cur = va.wrapping_add(done as u64);
        let chunk = ((0x1000 - (cur & 0xfff)) as usize).min(len - done);
        read(cur, &mut out[done..done + chunk]).ok()?;
        done += chunk;
    }
    Some(out)
}

/// Splits a NUL-separated argument block into strings.
pub fn split_argv(block: &[u8]) -> Vec<String> {
    let block = block.strip_suffix(&[0]).unwrap_or(block);
    if block.is_empty() {
        return Vec::new();
    }
    block
        .split(|&b| b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

/// The command line of the process with `mm` and page tables `asid`: read through the
/// live address space if it is that process's, else through its own page tables where
/// the memory allows that ([`crate::mem::GuestMemory::read_in`]).
fn argv(linux: &Linux<'_>, mm: u64, asid: Option<u64>) -> Option<Vec<String>> {
    let asid = asid?;
    let live = linux
        .ctx
        .current_asid
        .is_some_and(|live| crate::mem::paging::same_address_space(asid, live));
    let end_off = linux.info.mm.arg_end_offset?;
    let start = linux.read_ptr_at(mm, linux.info.mm.arg_start_offset).ok()?;
    let end = linux.read_ptr_at(mm, end_off).ok()?;
    let len = end.checked_sub(start)?.min(MAX_ARGV_BYTES);
    let block = if live {
        read_bytes(linux, start, len)
            .or_else(|| read_through_direct_map(linux, asid, start, len))?
    } else {
        // Nothing to read says nothing about whether it could be read.
        (len > 0).then_some(())?;
        read_pages(start, len, |at, buf| linux.mem.read_in(asid, at, buf))
            .or_else(|| read_through_direct_map(linux, asid, start, len))?
    };
    Some(split_argv(&block))
}

/// User memory of the address space at `asid` read by walking its tables through the
/// kernel's direct map, where the context says how ([`super::KernelContext::user_paging`]).
fn read_through_direct_map(linux: &Linux<'_>, asid: u64, va: u64, len: u64) -> Option<Vec<u8>> {
    linux
        .with_user_memory(asid, |space| {
            read_pages(va, len, |at, buf| space.read(at, buf))
        })
        .flatten()
}

/// `task->comm`, up to its NUL.
pub fn comm(linux: &Linux<'_>, task: u64) -> Result<String, OsiError> {
    let size = linux.info.task.comm_size.min(256) as usize;
    let (bytes, _) = linux
        .mem
        .read_cstr(at(task, linux.info.task.comm_offset), size)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// The process whose leader's `task_struct` is at `task`.
pub fn process(linux: &Linux<'_>, task: u64) -> Result<Process, OsiError> {
    let t = &linux.info.task;
    let pid = linux.read_u32_at(task, t.tgid_offset)?;
    let comm = comm(linux, task)?;
    let ppid = t
        .real_parent_offset
        .or(t.parent_offset)
        .and_then(|off| linux.read_ptr_at(task, off).ok())
        .filter(|&p| p != 0)
        .and_then(|parent| linux.read_u32_at(parent, t.tgid_offset).ok())
        .unwrap_or(0);
    let start_time = t
        .start_time_offset
        .and_then(|off| linux.mem.read_u64(at(task, off)).ok());
    let cred = t
        .real_cred_offset
        .or(t.cred_offset)
        .and_then(|off| linux.read_ptr_at(task, off).ok())
        .filter(|&c| c != 0);
    let c = &linux.info.cred;
    let id = |off: Option<i64>| {
        let (cred, off) = (cred?, off?);
        linux.read_u32_at(cred, off).ok()
    };
    let mm = linux.read_ptr_at(task, t.mm_offset)?;
    let kernel_thread = match t.flags_offset {
        Some(off) => linux.read_u32_at(task, off)? & PF_KTHREAD != 0,
        None => mm == 0,
    };
    let m = &linux.info.mm;
    let (mut asid, mut brk, mut start_brk, mut args, mut exe) = (None, 0, 0, None, None);
    if mm != 0 {
        exe = m
            .exe_file_offset
            .and_then(|off| linux.read_ptr_at(mm, off).ok())
            .filter(|&f| f != 0)
            .and_then(|file| super::path::file_path(linux, file).ok());
        asid = linux
            .read_ptr_at(mm, m.pgd_offset)
            .ok()
            .map(|pgd| pgd.wrapping_sub(linux.ctx.page_offset));
        brk = linux.read_ptr_at(mm, m.brk_offset).unwrap_or(0);
        start_brk = linux.read_ptr_at(mm, m.start_brk_offset).unwrap_or(0);
        args = argv(linux, mm, asid);
    }
    let threads = threads(linux, task)
        .map(|l| l.items.iter().map(|th| th.tid).collect())
        .unwrap_or_default();
    Ok(Process {
        pid,
        ppid,
        comm,
        task,
        asid,
        start_time,
        uid: id(c.uid_offset),
        gid: id(c.gid_offset),
        euid: id(c.euid_offset),
        egid: id(c.egid_offset),
        kernel_thread,
        argv: args,
        brk,
        start_brk,
        threads,
        exe,
    })
}
