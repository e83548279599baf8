//! The typed system call hooks ([`SyscallHooks`], generated per call) as an analysis: a
//! plugin registers `on_openat_enter` and the like, and the engine follows only those
//! calls.

use super::{Analysis, Ctx, Interest};
use crate::mem::NoMemory;
use crate::syscalls::{HookCtx, RawCall, SyscallHooks, SyscallRecord, ThreadInfo};

impl Analysis for SyscallHooks {
    fn name(&self) -> &str {
        "syscall hooks"
    }

    fn interest(&self) -> Interest {
        Interest {
            entries: self.entry_filter(),
            returns: self.return_filter(),
            ..Interest::default()
        }
    }

    fn syscall_enter(&self, ctx: &Ctx<'_>, call: &RawCall, thread: &ThreadInfo) {
        let mem = ctx.memory().unwrap_or(&NoMemory);
        self.enter(&HookCtx::new(call, None, Some(thread), mem));
    }

    fn syscall_return(&self, ctx: &Ctx<'_>, call: &RawCall, record: &SyscallRecord) {
        // Only calls that returned have a result for the typed return hooks.
        if let Some(ret) = record.ret {
            let mem = ctx.memory().unwrap_or(&NoMemory);
            self.ret(&HookCtx::new(call, Some(ret), Some(&record.thread), mem));
        }
    }
}
