//! System call tracing: entries seen at the user-mode system call instruction, returns
//! at the instruction the thread resumes at, matched per thread, written as one combined
//! `syscall` record when the call completes (returned, or known never to return).
//!
//! Return probes are placed at translation time: every return address a call announced
//! goes into a set, and a block that starts at one of them gets one callback. Everything
//! else runs uninstrumented.

use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::{Mutex, RwLock};
use rustc_hash::{FxHashMap, FxHashSet};
use smallvec::SmallVec;

use crate::arch::regs::Reg;
use crate::args::SyscallFilter;
use crate::cpu::Vcpu;
use crate::syscalls::{
    Abi, Args, Completed, Matcher, RawCall, Regs, SyscallRecord, ThreadInfo, When, decode_args,
};

use super::threads::ThreadCache;

/// Identifies a thread across its entry and return. The kernel's `task_struct` address
/// when the kernel is readable; otherwise the address space and user stack pointer, which
/// differ between any two threads blocked at the same time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ThreadKey {
    /// `task_struct` address of the thread.
    Task(u64),
    /// (page-table root, user stack pointer).
    Stack(u64, u64),
}

/// What is kept with a pending call.
#[derive(Debug)]
struct Pending {
    thread: ThreadInfo,
    args: Option<Args>,
    seq: u64,
}

/// The calls one callback finishes: one or none, almost always.
pub type FinishedCalls = SmallVec<[Finished; 2]>;

/// A finished call, ready to become a record (and to drive process events).
#[derive(Debug)]
pub struct Finished {
    /// The call and how it ended.
    pub done: Completed<ThreadKey, ()>,
    /// Who made it.
    pub thread: ThreadInfo,
    /// The record, if the filter logs this call.
    pub record: Option<SyscallRecord>,
}

/// Pending calls and the set of return addresses to probe.
#[derive(Debug)]
pub struct Tracer {
    filter: SyscallFilter,
    matcher: Mutex<Matcher<ThreadKey, Pending>>,
    return_pcs: RwLock<FxHashSet<u64>>,
    entries: AtomicU64,
    /// Under KPTI: the stack key each thread (`task_struct`) last entered a call with.
    stack_keys: Mutex<FxHashMap<u64, ThreadKey>>,
    threads: ThreadCache,
}

/// Who is running on `cpu`, with the key that finds its pending call again.
pub struct Who {
    /// The key.
    pub key: ThreadKey,
    /// pid, tid, comm (zero and empty when the kernel cannot be read).
    pub thread: ThreadInfo,
    /// The thread's `task_struct`, when known.
    pub task: Option<u64>,
}

impl Tracer {
    /// A tracer logging what `filter` selects.
    pub fn new(filter: SyscallFilter) -> Tracer {
        Tracer {
            filter,
            matcher: Mutex::new(Matcher::new()),
            return_pcs: RwLock::new(FxHashSet::default()),
            entries: AtomicU64::new(0),
            stack_keys: Mutex::new(FxHashMap::default()),
            threads: ThreadCache::default(),
        }
    }

    /// Whether any call can become a record (`syscalls=` other than `none`).
    pub fn logs_anything(&self) -> bool {
        self.filter != SyscallFilter::None
    }

    /// Whether pid, tid and comm of `task` are known from an earlier call.
    pub fn knows(&self, task: u64) -> bool {
        self.threads.contains(task)
    }

    /// Whether a block starting at `va` is a return point to probe.
    pub fn is_return_pc(&self, va: u64) -> bool {
        self.return_pcs.read().contains(&va)
    }

    /// The call at the instruction at `pc`: the number first, then only the registers its
    /// prototype's arguments are in (every read is a trip through QEMU's register
    /// interface, and most calls take fewer than six arguments).
    pub fn read_call(abi: Abi, cpu: &dyn Vcpu, pc: u64) -> RawCall {
        let r = |reg| cpu.reg(reg).unwrap_or(0);
        let mut regs = Regs {
            rax: r(Reg::Rax),
            rip: pc,
            ..Regs::default()
        };
        let nargs = abi.arg_count(regs.rax);
        for reg in abi.arg_registers(nargs) {
            regs.set(reg, r(reg));
        }
        abi.entry_with(&regs, cpu, nargs)
    }

    /// Who runs now, and the key that finds its pending call again; the flag says the
    /// thread was not known yet. `task` is the current `task_struct` when the kernel can
    /// be read; `keyed` says the key may be it (otherwise `stack` makes the key: address
    /// space and user stack, which a user-mode return point under KPTI can compute too).
    /// `read` reads pid, tid and comm of a task not seen before; what it reads is kept
    /// for the next calls when `keep` says so.
    pub fn who(
        &self,
        task: Option<u64>,
        keyed: bool,
        keep: bool,
        read: impl FnOnce(u64) -> Option<ThreadInfo>,
        stack: impl FnOnce() -> ThreadKey,
    ) -> (Who, bool) {
        let (thread, fresh) = match task {
            Some(t) => match self.threads.get(t) {
                Some(known) => (known, false),
                None => match read(t) {
                    Some(info) => {
                        if keep {
                            self.threads.insert(t, info.clone());
                        }
                        (info, true)
                    }
                    None => (ThreadInfo::default(), false),
                },
            },
            None => (ThreadInfo::default(), false),
        };
        let key = match task {
            Some(t) if keyed => ThreadKey::Task(t),
            _ => stack(),
        };
        (Who { key, thread, task }, fresh)
    }

    /// A call enters the kernel. Returns the calls this completes (an older call of
    /// the same thread that never returned, or this one if it never returns).
    pub fn enter(&self, cpu: &dyn Vcpu, who: Who, call: RawCall) -> FinishedCalls {
        let info = call.info();
        let name = call.name();
        let args = self
            .filter
            .logs(name)
            .then(|| decode_args(info, &call, cpu, When::Enter));
        if let (Some(task), Some(name)) = (who.task, name) {
            self.threads.entering(task, name);
        }
        // Most calls come back through a known return point: check under the read lock.
        if !self.is_return_pc(call.return_pc) {
            self.return_pcs.write().insert(call.return_pc);
        }
        let mut matcher = self.matcher.lock();
        let mut done = crate::syscalls::Done::new();
        // A thread keyed by its stack (KPTI) gets a new key when exec replaces its address
        // space and stack: its old key's pending execve succeeded.
        if let (Some(task), ThreadKey::Stack(..)) = (who.task, who.key) {
            let mut keys = self.stack_keys.lock();
            if let Some(old) = keys.insert(task, who.key)
                && old != who.key
            {
                done.extend(matcher.exec_succeeded(&old));
            }
            if info.is_some_and(|i| i.name == "exit" || i.name == "exit_group") {
                keys.remove(&task);
            }
        }
        // A call that is not logged and means nothing to process events is left out,
        // unless the thread has calls pending (its arrival may complete one: an exec).
        let matters = args.is_some() || name.is_none_or(super::lifecycle::is_lifecycle_call);
        if !matters && !matcher.has_pending(&who.key) {
            return done.into_iter().map(|d| finish(d, cpu)).collect();
        }
        done.extend(matcher.enter(
            who.key,
            call,
            Pending {
                thread: who.thread,
                args,
                seq: self.entries.fetch_add(1, Ordering::Relaxed),
            },
        ));
        drop(matcher);
        done.into_iter().map(|d| finish(d, cpu)).collect()
    }

    /// `cpu` is at a return point `pc`; completes the pending call of the thread there if
    /// it returns here (and any nested calls above it that never returned). `key` finds
    /// out which thread is there, only when some call is pending at `pc` at all.
    pub fn ret(&self, cpu: &dyn Vcpu, pc: u64, key: impl FnOnce() -> ThreadKey) -> FinishedCalls {
        let mut matcher = self.matcher.lock();
        if !matcher.returns_at(pc) {
            return FinishedCalls::new();
        }
        let key = key();
        let Some(abi) = matcher.pending_at(&key, pc).map(|c| c.abi) else {
            return FinishedCalls::new();
        };
        let Some(rax) = cpu.reg(Reg::Rax) else {
            return FinishedCalls::new();
        };
        let value = abi.return_value(&Regs {
            rax,
            ..Regs::default()
        });
        let done = matcher.ret(&key, pc, value);
        drop(matcher);
        done.into_iter().map(|d| finish(d, cpu)).collect()
    }
}

fn finish(done: Completed<ThreadKey, Pending>, mem: &dyn Vcpu) -> Finished {
    let Completed {
        thread: key,
        call,
        payload,
        outcome,
    } = done;
    let done = Completed {
        thread: key,
        call,
        payload: (),
        outcome,
    };
    let record = payload.args.map(|args| SyscallRecord {
        seq: Some(payload.seq),
        ..SyscallRecord::new(payload.thread.clone(), &done, args, mem)
    });
    Finished {
        done,
        thread: payload.thread,
        record,
    }
}
