//! System call tracing: entries seen at the user-mode system call instruction, returns
//! at the instruction the thread resumes at, matched per thread, written as one combined
//! `syscall` record when the call completes (returned, or known never to return).
//!
//! Return probes are placed at translation time: every return address a call announced
//! goes into a set, and a block that starts at one of them gets one callback. Everything
//! else runs uninstrumented.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::{Mutex, RwLock};

use crate::arch::Arch;
use crate::arch::regs::{Reg, Registers};
use crate::arch::x86::SyscallInsn;
use crate::args::SyscallFilter;
use crate::cpu::Vcpu;
use crate::linux::{Linux, task};
use crate::syscalls::{
    Abi, Args, Completed, Matcher, RawCall, Regs, SyscallRecord, ThreadInfo, When, decode_args,
};

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
    arch: Arch,
    filter: SyscallFilter,
    matcher: Mutex<Matcher<ThreadKey, Pending>>,
    return_pcs: RwLock<HashSet<u64>>,
    entries: AtomicU64,
    /// Under KPTI: the stack key each thread (`task_struct`) last entered a call with.
    stack_keys: Mutex<HashMap<u64, ThreadKey>>,
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
    pub fn new(arch: Arch, filter: SyscallFilter) -> Tracer {
        Tracer {
            arch,
            filter,
            matcher: Mutex::new(Matcher::new()),
            return_pcs: RwLock::new(HashSet::new()),
            entries: AtomicU64::new(0),
            stack_keys: Mutex::new(HashMap::new()),
        }
    }

    /// Whether any call can become a record (`syscalls=` other than `none`).
    pub fn logs_anything(&self) -> bool {
        self.filter != SyscallFilter::None
    }

    /// Whether a block starting at `va` is a return point to probe.
    pub fn is_return_pc(&self, va: u64) -> bool {
        self.return_pcs.read().contains(&va)
    }

    /// The registers `abi` takes the number and arguments from (and the stack pointer),
    /// read one by one: each read goes through QEMU's register interface, so only these.
    pub fn regs(abi: Abi, cpu: &dyn Registers) -> Regs {
        let r = |reg| cpu.reg(reg).unwrap_or(0);
        let mut regs = Regs {
            rax: r(Reg::Rax),
            rdx: r(Reg::Rdx),
            rsi: r(Reg::Rsi),
            rdi: r(Reg::Rdi),
            rsp: r(Reg::Rsp),
            ..Regs::default()
        };
        match abi {
            Abi::X64Syscall => {
                regs.r10 = r(Reg::R10);
                regs.r8 = r(Reg::R8);
                regs.r9 = r(Reg::R9);
            }
            Abi::I386Int80 | Abi::I386Sysenter | Abi::I386Syscall => {
                regs.rbx = r(Reg::Rbx);
                regs.rcx = r(Reg::Rcx);
                regs.rbp = r(Reg::Rbp);
            }
        }
        regs
    }

    /// The convention of a system call instruction on `cpu`: 32-bit code on a 64-bit
    /// kernel runs with the compatibility code segment (`__USER32_CS` = 0x23).
    pub fn abi(&self, kind: SyscallInsn, cpu: &dyn Registers) -> Option<Abi> {
        let code64 = match self.arch {
            Arch::I386 => false,
            Arch::X86_64 => cpu.reg(Reg::Cs).is_none_or(|cs| cs & 0xffff != 0x23),
        };
        Abi::detect(kind, code64)
    }

    /// The key of the thread at a return point: only the `task_struct` address is read
    /// (pid and comm were kept with the call at entry).
    pub fn key_at_return(&self, keyed: Option<&Linux<'_>>, asid: u64, sp: u64) -> ThreadKey {
        match keyed.and_then(|l| task::current_task(l).ok()) {
            Some(t) => ThreadKey::Task(t),
            None => ThreadKey::Stack(asid, sp),
        }
    }

    /// Who runs now. `info` reads the kernel for pid, tid and comm (`None` while it
    /// cannot be read); `keyed` is the same provider when the thread may be keyed by its
    /// `task_struct`, `None` to key it by address space and user stack (`asid`, `sp`),
    /// which is what a user-mode return point under KPTI can compute too.
    pub fn who(
        &self,
        keyed: Option<&Linux<'_>>,
        info: Option<&Linux<'_>>,
        asid: u64,
        sp: u64,
    ) -> Who {
        let found = info.and_then(|l| {
            let t = task::current_task(l).ok()?;
            let th = task::thread(l, t).ok()?;
            let comm = task::comm(l, t).unwrap_or_default();
            Some((t, th, comm))
        });
        let (thread, task) = match found {
            Some((t, th, comm)) => (
                ThreadInfo {
                    pid: th.pid,
                    tid: th.tid,
                    comm,
                },
                Some(t),
            ),
            None => (ThreadInfo::default(), None),
        };
        let key = match (keyed, task) {
            (Some(_), Some(t)) => ThreadKey::Task(t),
            _ => ThreadKey::Stack(asid, sp),
        };
        Who { key, thread, task }
    }

    /// A call enters the kernel. Returns the calls this completes (an older call of
    /// the same thread that never returned, or this one if it never returns).
    pub fn enter(&self, cpu: &dyn Vcpu, who: Who, call: RawCall) -> Vec<Finished> {
        let info = call.profile().lookup(call.nr);
        let args = self
            .filter
            .logs(info.map(|i| i.name))
            .then(|| decode_args(info, &call, cpu, When::Enter));
        // Most calls come back through a known return point: check under the read lock.
        if !self.is_return_pc(call.return_pc) {
            self.return_pcs.write().insert(call.return_pc);
        }
        let mut matcher = self.matcher.lock();
        let mut done = Vec::new();
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

    /// `cpu` is at a return point; completes the thread's pending call if it returns here
    /// (and any nested calls above it that never returned).
    pub fn ret(&self, cpu: &dyn Vcpu, key: ThreadKey, pc: u64) -> Vec<Finished> {
        let mut matcher = self.matcher.lock();
        let Some(abi) = matcher.pending_at(&key, pc).map(|c| c.abi) else {
            return Vec::new();
        };
        let Some(rax) = cpu.reg(Reg::Rax) else {
            return Vec::new();
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
