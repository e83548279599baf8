//! The system call path: from the instruction to the record and the events.
//!
//! A call is seen at its instruction ([`Plugin::on_syscall_insn`]), followed into the
//! kernel there or, under KPTI, at the kernel's dispatch function
//! ([`Plugin::on_kernel_dispatch`]), and completed at the block it returns to
//! ([`Plugin::on_return_point`]); [`Plugin::emit`] writes what completed and the process
//! events it causes. Context switches ([`Plugin::on_task_switch`]) say which task runs.

use parking_lot::Mutex;
use std::sync::atomic::Ordering;

use crate::arch::Arch;
use crate::arch::insn::SyscallInsn;
use crate::arch::regs::Reg;
use crate::cpu::Vcpu;
use crate::events::{Caller, Lifecycle};
use crate::linux::{self, Linux};
use crate::osi::Introspect;
use crate::syscalls::{Abi, Effects, Profile, RawCall, Regs, SyscallRecord, ThreadInfo};

use super::kernel::{self, KernelView};
use super::placement::{running_address, running_shift};
use super::snapshot::Reason;
use super::tracer::{self, ThreadKey};
use super::{Plugin, lifecycle};

/// A system call seen at its user-mode instruction, waiting for the kernel's dispatch
/// function, where the kernel can be read even under KPTI.
#[derive(Debug, Clone, Copy)]
struct Deferred {
    /// Read at the instruction, with its address as translated.
    call: RawCall,
    /// How far the instruction runs from where it was translated, when found at the
    /// instruction (a dispatch function, in kernel mode, cannot find it).
    shift: Option<u64>,
    /// The thread's key by address space and user stack, when the return point will
    /// need it (under KPTI); made at the instruction, where the user stack is current.
    stack: Option<ThreadKey>,
}

/// A vCPU at a kernel-mode point of an arm64 guest, whose reads of user memory fail (QEMU
/// applies PAN to EL1's reads) and are made instead through the current address space's
/// tables walked in the kernel's direct map ([`Linux::with_user_memory`]).
struct UserThroughKernel<'a> {
    cpu: &'a dyn Vcpu,
    plugin: &'a Plugin,
}

impl crate::mem::GuestMemory for UserThroughKernel<'_> {
    fn read(&self, va: u64, buf: &mut [u8]) -> Result<(), crate::mem::Fault> {
        match self.cpu.read(va, buf) {
            Err(fault) if self.plugin.arch.is_user_address(va) => {
                let asid = self.plugin.asid(self.cpu);
                self.plugin
                    .linux(self.cpu, true)
                    .and_then(|linux| linux.with_user_memory(asid, |m| m.read(va, buf)))
                    .unwrap_or(Err(fault))
            }
            other => other,
        }
    }

    fn read_in(&self, root: u64, va: u64, buf: &mut [u8]) -> Result<(), crate::mem::Fault> {
        self.cpu.read_in(root, va, buf)
    }

    fn mapped_now(&self, va: u64) -> bool {
        self.cpu.mapped_now(va)
    }
}

impl crate::arch::regs::Registers for UserThroughKernel<'_> {
    fn reg(&self, reg: Reg) -> Option<u64> {
        self.cpu.reg(reg)
    }

    fn regs(&self, regs: &[Reg], out: &mut [u64]) {
        self.cpu.regs(regs, out)
    }
}

impl Vcpu for UserThroughKernel<'_> {
    fn index(&self) -> u32 {
        self.cpu.index()
    }

    fn icount(&self) -> Option<u64> {
        self.cpu.icount()
    }

    fn skip_returns(&self, skip: bool) {
        self.cpu.skip_returns(skip)
    }
}

/// Where a call is followed into the kernel, which decides what can be read there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum At {
    /// The user-mode instruction, with the kernel mapped (no KPTI).
    User,
    /// The kernel's dispatch function: under KPTI, the first place the kernel is mapped.
    Dispatch,
    /// The user-mode instruction under KPTI, for a thread known from its earlier calls and
    /// followed across context switches: nothing is read from the kernel.
    UserKnown,
}

impl At {
    fn in_kernel(self) -> bool {
        self == At::Dispatch
    }

    /// In which mode the kernel can be read here; `None`: it cannot.
    fn kernel_mode(self) -> Option<bool> {
        (self != At::UserKnown).then_some(self.in_kernel())
    }
}

/// The call each vCPU is making, between its instruction and the dispatch function. Per
/// vCPU, not per host thread: one host thread may run several vCPUs in turn
/// (`-accel tcg,thread=single`, record/replay), and switch between them in between.
#[derive(Debug)]
pub(super) struct DeferredCalls(Box<[Mutex<Option<Deferred>>]>);

impl DeferredCalls {
    /// Room for `vcpus` vCPUs.
    pub(super) fn new(vcpus: usize) -> DeferredCalls {
        DeferredCalls((0..vcpus).map(|_| Mutex::new(None)).collect())
    }

    fn set(&self, vcpu: u32, d: Deferred) {
        if let Some(slot) = self.0.get(vcpu as usize) {
            *slot.lock() = Some(d);
        }
    }

    fn take(&self, vcpu: u32) -> Option<Deferred> {
        self.0.get(vcpu as usize)?.lock().take()
    }
}

impl Plugin {
    /// Whether the kernel must be read at the dispatch functions (KPTI) rather than at
    /// the user-mode instruction.
    fn deferred_to_kernel(&self, cpu: &dyn Vcpu) -> bool {
        self.kernel().and_then(|k| k.readable_from_user(cpu)) == Some(false)
    }

    /// The system call instruction at `pc` (of convention `abi`, if it is a Linux system
    /// call) is about to execute on `cpu`.
    pub fn on_syscall_insn(&self, kind: SyscallInsn, abi: Option<Abi>, cpu: &dyn Vcpu, pc: u64) {
        self.syscall_insns[kind.index()].fetch_add(1, Ordering::Relaxed);
        if let Some(probe) = &self.probe {
            probe.read(cpu);
        }
        if self.views.iter().any(KernelView::needs_slide) {
            kernel::await_entry(kind);
        }
        self.choose_group(cpu);
        if self.kernel().is_none() && !self.tracer().follows_any() {
            // Loaded without introspection and without logging: counting is all.
            return;
        }
        let Some(abi) = abi else {
            return;
        };
        // A 32-bit program on arm64: QEMU's aarch64 registers are not its own (they are
        // synced at exceptions only), so the call is read where the kernel saved them, at
        // its compat dispatch function; nothing is logged where there is none to hook.
        let compat = self.arch == Arch::Aarch64 && abi.profile() == Profile::LinuxArm;
        if compat
            && self
                .kernel()
                .is_none_or(|k| k.info().vmi.do_el0_svc_compat_addr.is_none())
        {
            return;
        }
        let call = self.tracer().read_call(abi, cpu, pc);
        if compat {
            // Its code is never shared with another address (32-bit programs on arm64 are
            // rare), and the pc register QEMU shows is not the 32-bit code's: no shift.
            self.deferred.set(
                cpu.index(),
                Deferred {
                    call,
                    stack: None,
                    shift: Some(0),
                },
            );
            cpu.skip_returns(false);
            return;
        }
        if !self.deferred_to_kernel(cpu) {
            let d = Deferred {
                call,
                stack: None,
                shift: None,
            };
            self.enter(cpu, d, At::User);
            return;
        }
        // KPTI. With context switches followed the task is known here without reading
        // the kernel, and threads are keyed by it; a thread known from its earlier calls
        // is followed at once, others (and reboot, which snapshots) wait for the dispatch
        // function. Without, the key is made of address space and stack, here.
        let follows = self.follows_switches();
        let known = follows
            && self
                .switched_task(cpu)
                .is_some_and(|t| self.tracer().knows(t));
        let stack = (!follows).then(|| self.stack_key(cpu));
        let d = Deferred {
            call,
            stack,
            shift: Some(
                self.tracer()
                    .shifts()
                    .of(cpu, follows, pc, || running_shift(cpu, pc)),
            ),
        };
        // An analysis that wants this call at entry may ask the kernel there: it waits
        // for the dispatch function too.
        if known
            && !call.effects().any(Effects::POWER)
            && !self.consumers().wants_entry(call.name())
        {
            self.enter(cpu, d, At::UserKnown);
        } else {
            cpu.skip_returns(false);
            self.deferred.set(cpu.index(), d);
        }
    }

    /// Whether the kernel the guest runs has its context switches followed.
    fn follows_switches(&self) -> bool {
        self.kernel().is_some_and(KernelView::follows_switches)
    }

    /// The task the last context switch on `cpu` went to, when switches are followed.
    fn switched_task(&self, cpu: &dyn Vcpu) -> Option<u64> {
        let slot = self.current.get(cpu.index() as usize)?;
        Some(slot.load(Ordering::Relaxed)).filter(|&t| t != 0 && self.follows_switches())
    }

    /// The key of the thread on `cpu` by address space and user stack (in user mode).
    fn stack_key(&self, cpu: &dyn Vcpu) -> ThreadKey {
        ThreadKey::Stack(self.asid(cpu), cpu.reg(Reg::Rsp).unwrap_or(0))
    }

    /// A block that may be `__switch_to` of `views[view]` runs (`slide`: under which
    /// slide): if it is, its second argument is the task this vCPU runs from now on.
    pub fn on_task_switch(&self, cpu: &dyn Vcpu, view: u16, slide: u16) {
        if self.chosen.get() != Some(&usize::from(view)) {
            return;
        }
        // This block was instrumented as a candidate under `slide`, so under the real
        // slide switches are followed.
        if !self.kernel().is_some_and(|k| k.is_switch(slide)) {
            return;
        }
        let next = match self.arch {
            Arch::X86_64 => Reg::Rsi,
            Arch::I386 => Reg::Rdx,
            Arch::Aarch64 => Reg::X1,
            // 32-bit ARM's __switch_to(prev, prev_thread_info, next_thread_info): the
            // thread_info is the task's first member (THREAD_INFO_IN_TASK).
            Arch::Arm => Reg::X2,
        };
        if let (Some(slot), Some(task)) = (self.current.get(cpu.index() as usize), cpu.reg(next)) {
            let old = slot.swap(task, Ordering::Relaxed);
            self.task_switches.fetch_add(1, Ordering::Relaxed);
            if self.consumers().union().task_changes {
                self.consumers()
                    .task_change(&self.ctx(Some(cpu), Some(true)), old, task);
            }
            // The thread switched in may have a call to return from.
            cpu.skip_returns(false);
            // The thread switched out may be blocked in a call: it may return elsewhere.
            // (Kernel mode, but nothing completed here needs the kernel: only calls of
            // threads past the matcher's limit are dropped.)
            self.tracer()
                .switched_out(cpu, &mut |done| self.emit(done, cpu, None));
        }
    }

    /// The `task_struct` running on `cpu`: the one the last context switch went to, when
    /// switches are followed, else read from the kernel (and remembered until the next
    /// switch).
    fn current_task(&self, cpu: &dyn Vcpu, in_kernel: bool) -> Option<u64> {
        if let Some(task) = self.switched_task(cpu) {
            return Some(task);
        }
        let task = self.kernel()?.current_task(cpu, in_kernel)?;
        if self.follows_switches()
            && let Some(slot) = self.current.get(cpu.index() as usize)
        {
            slot.store(task, Ordering::Relaxed);
        }
        Some(task)
    }

    /// A kernel dispatch function runs: finish the call its thread's instruction began.
    pub fn on_kernel_dispatch(&self, cpu: &dyn Vcpu) {
        if let Some(mut deferred) = self.deferred.take(cpu.index()) {
            if self.arch == Arch::Aarch64 && deferred.call.profile() == Profile::LinuxArm {
                // do_el0_svc_compat(regs): the 32-bit program's r0..r7 as the kernel saved
                // them (struct pt_regs starts with regs[31]).
                let Some(saved) = self.compat_registers(cpu) else {
                    return;
                };
                deferred.call =
                    self.tracer()
                        .call_from(deferred.call.abi, &saved, deferred.call.pc, cpu);
            }
            // arm64: QEMU applies PAN to reads from EL1, so the caller's memory (a path,
            // a buffer) is read through its page tables in the direct map; 32-bit ARM
            // reads it so where QEMU does not.
            if matches!(self.arch, Arch::Aarch64 | Arch::Arm) {
                let user = UserThroughKernel { cpu, plugin: self };
                self.enter(&user, deferred, At::Dispatch);
                return;
            }
            self.enter(cpu, deferred, At::Dispatch);
        }
    }

    /// At `do_el0_svc_compat`: r0..r7 of the 32-bit caller, from the `pt_regs` in x0.
    fn compat_registers(&self, cpu: &dyn Vcpu) -> Option<Regs> {
        let frame = cpu.reg(Reg::X0)?;
        let mut bytes = [0u8; 64];
        cpu.read(frame, &mut bytes).ok()?;
        let mut regs = Regs::default();
        // r0..r5 (the arguments) and r7 (the number); r6 is no argument.
        let wanted = [
            (0, Reg::X0),
            (1, Reg::X1),
            (2, Reg::X2),
            (3, Reg::X3),
            (4, Reg::X4),
            (5, Reg::X5),
            (7, Reg::X7),
        ];
        for (i, reg) in wanted {
            let word: [u8; 8] = bytes[i * 8..i * 8 + 8].try_into().ok()?;
            // AArch32 registers are 32 bits wide.
            regs.set(reg, u64::from_le_bytes(word) & 0xffff_ffff);
        }
        Some(regs)
    }

    /// Follows a call as it enters the kernel: snapshot requests, the caller's lifecycle,
    /// decoding, and whatever this call completes. The kernel is read for the current
    /// task only; the rest of the provider is set up when something needs it.
    fn enter(&self, cpu: &dyn Vcpu, d: Deferred, at: At) {
        let in_kernel = at.in_kernel();
        let readable = at.kernel_mode().is_some();
        // Where the kernel cannot be read, it is not touched at all.
        let linux = || readable.then(|| self.linux(cpu, in_kernel)).flatten();
        if d.call.effects().any(Effects::POWER)
            && let Some(linux) = linux()
        {
            self.snapshot(cpu, in_kernel, &linux, &Reason::Reboot);
        }
        if readable && let (Some(kernel), Some(followed)) = (self.kernel(), self.switched_task(cpu))
        {
            kernel.confirm_switch(cpu, in_kernel, followed);
        }
        // Most calls of an events-only or filtered run end here. Their returns then need
        // no callback either: once each context switch is sure to be seen, return points
        // are skipped until this thread makes a followed call or another thread runs.
        // A call wanted only at entry is such a call too once handed over: its return is
        // skipped as well.
        let passes = self
            .switched_task(cpu)
            .is_some_and(|task| self.tracer().passes_by(cpu, task, &d.call));
        cpu.skip_returns(passes && self.kernel().is_some_and(KernelView::switches_settled));
        let wanted_at_entry = self.consumers().wants_entry(d.call.name());
        if passes && !wanted_at_entry {
            return;
        }
        let task = self.current_task(cpu, in_kernel);
        // Identities are remembered only once process events can be told of new threads.
        let keep = self.events().is_none() || self.kernel_ready.load(Ordering::Relaxed);
        let (who, fresh) = self.tracer().who(
            task,
            // Under KPTI, unless context switches are followed, the return point (user
            // mode) cannot know the task: the instruction then made a key by address space
            // and stack, which the return point makes too.
            d.stack.is_none(),
            keep,
            self.follows_switches(),
            |t| thread_info(&linux()?, t),
            || d.stack.unwrap_or_else(|| self.stack_key(cpu)),
        );
        if who.thread != ThreadInfo::default() {
            for mut held in self.unnamed.take(|| self.asid(cpu)) {
                held.identify(who.thread);
                self.emit(held, cpu, None);
            }
        }
        let kernel_mode = at.kernel_mode();
        if fresh {
            self.first_seen(cpu, kernel_mode, &who.thread, &linux);
        }
        let shift = || d.shift.unwrap_or_else(|| running_shift(cpu, d.call.pc));
        if wanted_at_entry {
            // With the address it runs at: its translation may be shared with another
            // address space that maps the same code elsewhere.
            let by = self.tracer().shifts().of(cpu, who.pinned, d.call.pc, shift);
            let call = d.call.shifted(by);
            self.consumers()
                .syscall_enter(&self.ctx(Some(cpu), kernel_mode), &call, &who.thread);
        }
        self.tracer().enter(cpu, who, d.call, &shift, &mut |done| {
            self.emit(done, cpu, kernel_mode)
        });
    }

    /// A thread seen for the first time may be a process that started unseen (a child
    /// running before its parent returns from clone). Rare: kept out of the path every
    /// call takes, whose instruction-cache footprint is most of what a call costs.
    #[cold]
    #[inline(never)]
    fn first_seen<'a>(
        &'a self,
        cpu: &dyn Vcpu,
        kernel_mode: Option<bool>,
        thread: &ThreadInfo,
        linux: &dyn Fn() -> Option<Linux<'a>>,
    ) {
        if let Some(events) = self.events()
            && let Some(linux) = linux()
        {
            let caller = caller(thread);
            self.track(cpu, kernel_mode, events, |t| {
                t.seen(&caller, || linux.current_process().ok())
            });
        }
    }

    /// A system call may return at the start of this block, translated at `pc`.
    pub fn on_return_point(&self, cpu: &dyn Vcpu, pc: u64) {
        self.return_callbacks.fetch_add(1, Ordering::Relaxed);
        let readable = !self.deferred_to_kernel(cpu);
        let key = || match self.returning_task(cpu, readable) {
            Some(t) => ThreadKey::Task(t),
            None => self.stack_key(cpu),
        };
        let kernel_mode = readable.then_some(false);
        self.tracer().ret(
            cpu,
            pc,
            || {
                // 32-bit code on arm64: QEMU's pc register is not its own; its code is
                // not shared at another address (see on_syscall_insn).
                if self.arch == Arch::Aarch64 && pc <= u64::from(u32::MAX) {
                    pc
                } else {
                    running_address(cpu, pc)
                }
            },
            key,
            || self.stack_key(cpu),
            &mut |done| {
                if done.caller_unknown() {
                    self.emit_unnamed(done, cpu, kernel_mode);
                } else {
                    self.emit(done, cpu, kernel_mode)
                }
            },
        );
    }

    /// A call that entered before the kernel was found (the run's first, under KASLR)
    /// returns in its own thread, which can be named now, or (KPTI) by the next call of
    /// its process, if the call means nothing to process events. Only the first calls
    /// of a run come here. `kernel_mode` is the return point's (`None`: the kernel
    /// cannot be read there).
    #[cold]
    #[inline(never)]
    fn emit_unnamed(&self, mut done: tracer::Finished, cpu: &dyn Vcpu, kernel_mode: Option<bool>) {
        let readable = kernel_mode.is_some();
        match self.returning_thread(cpu, readable) {
            Some(thread) => done.identify(thread),
            None if !readable && !lifecycle::is_lifecycle_call(done.done.call.effects()) => {
                self.unnamed.hold(self.asid(cpu), done);
                return;
            }
            None => {}
        }
        self.emit(done, cpu, kernel_mode)
    }

    /// The task running at a return point: read from the kernel when it is `readable`
    /// here (user mode), else known only from the context switches followed.
    fn returning_task(&self, cpu: &dyn Vcpu, readable: bool) -> Option<u64> {
        if readable {
            self.current_task(cpu, false)
        } else {
            self.switched_task(cpu)
        }
    }

    /// pid, tid and comm of the thread running at a return point: known from its earlier
    /// calls, or read when the kernel is `readable` here.
    fn returning_thread(&self, cpu: &dyn Vcpu, readable: bool) -> Option<ThreadInfo> {
        let task = self.returning_task(cpu, readable)?;
        self.tracer().known(task).or_else(|| {
            let linux = readable.then(|| self.linux(cpu, false)).flatten()?;
            thread_info(&linux, task)
        })
    }

    /// Hands a completed call's record to the analyses that want it and counts it.
    /// `cpu` is the vCPU it was made on; `None` once the guest has stopped (nothing can
    /// be read, no position).
    /// `kernel_mode` says whether the kernel can be read there (see [`Plugin::emit`]).
    pub(super) fn deliver_call(
        &self,
        call: &RawCall,
        record: &SyscallRecord,
        cpu: Option<&dyn Vcpu>,
        kernel_mode: Option<bool>,
    ) {
        self.syscall_records.fetch_add(1, Ordering::Relaxed);
        self.consumers()
            .syscall_return(&self.ctx(cpu, kernel_mode), call, record);
    }

    /// Logs a completed call, then the lifecycle events it causes.
    /// `kernel_mode` says whether the kernel can be read here and in which mode the vCPU
    /// is (`None`: it cannot, a user-mode return under KPTI).
    fn emit(&self, mut done: tracer::Finished, cpu: &dyn Vcpu, kernel_mode: Option<bool>) {
        if let Some(record) = done.record.take() {
            self.deliver_call(&done.done.call, &record, Some(cpu), kernel_mode);
        }
        let exec = done.done.outcome == crate::syscalls::Outcome::Exec;
        if exec || lifecycle::is_lifecycle_call(done.done.call.effects()) {
            self.follow_lifecycle(done, cpu, kernel_mode, exec);
        }
    }

    /// What a call that starts, changes or ends a process means to process events and
    /// snapshots. Few calls are such calls: the others skip this code altogether.
    #[cold]
    #[inline(never)]
    fn follow_lifecycle(
        &self,
        done: tracer::Finished,
        cpu: &dyn Vcpu,
        kernel_mode: Option<bool>,
        exec: bool,
    ) {
        let effects = done.done.call.effects();
        let needs_kernel = exec || (self.events().is_some() && lifecycle::reads_kernel(effects));
        let linux = kernel_mode
            .filter(|_| needs_kernel)
            .and_then(|in_kernel| self.linux(cpu, in_kernel));
        let linux = linux.as_ref();
        if exec
            && let Some(linux) = linux
            && let Some(reason) = self.exec_snapshot_reason(linux)
        {
            self.snapshot(cpu, kernel_mode == Some(true), linux, &reason);
        }
        let what = (self.events().is_some() || lifecycle::may_reap(effects))
            .then(|| lifecycle::of(&done, cpu, linux))
            .flatten();
        let reaped = match what {
            Some(Lifecycle::Reaped { child, .. }) => Some(child),
            _ => None,
        };
        if let (Some(events), Some(what)) = (self.events(), what) {
            let caller = caller(&done.thread);
            self.track(cpu, kernel_mode, events, |t| t.call(&caller, what));
        }
        // A reaped process makes no more calls: what its threads left pending (blocked
        // when it was killed) is over, and is written now rather than at the end.
        if let Some(pid) = reaped {
            self.tracer()
                .process_gone(pid, &mut |gone| self.emit(gone, cpu, None));
        }
    }
}

/// pid, tid and comm of `task`, read from the kernel.
fn thread_info(linux: &Linux<'_>, task: u64) -> Option<ThreadInfo> {
    let th = linux::task::thread(linux, task).ok()?;
    Some(ThreadInfo {
        pid: th.pid,
        tid: th.tid,
        comm: linux::task::comm(linux, task).unwrap_or_default().into(),
    })
}

/// The process events' view of the thread that made a call.
fn caller(thread: &ThreadInfo) -> Caller {
    Caller {
        pid: thread.pid,
        tid: thread.tid,
        comm: thread.comm.to_string(),
    }
}
