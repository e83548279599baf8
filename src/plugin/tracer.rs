//! System call tracing: entries seen at the user-mode system call instruction, returns
//! at the instruction the thread resumes at, matched per thread, written as one combined
//! `syscall` record when the call completes (returned, or known never to return).
//!
//! Return probes are placed at translation time: every return address a call announced
//! goes into a set, and a block that starts at one of them gets one callback. Everything
//! else runs uninstrumented.
//!
//! Most calls return before their thread is switched out (`getppid`, `close`, a read of
//! a cached file). When context switches are followed, such a call waits in its vCPU's
//! one in-flight slot and is paired there, without the shared [`Matcher`]; a context
//! switch, or another call of the same thread (a signal handler's, a restart), moves it
//! into the matcher, which then decides as it always did. A thread known to have nothing
//! in the matcher (since the matcher last changed) enters without taking its lock.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::arch::regs::Reg;
use crate::args::SyscallFilter;
use crate::cpu::Vcpu;
use crate::mem::{GuestMemory, NoMemory};
use crate::syscalls::{
    Abi, Args, Completed, Done, Effects, Matcher, Outcome, RawCall, Regs, SyscallInfo,
    SyscallRecord, ThreadInfo, When, decode_args, page_offset,
};
use parking_lot::{Mutex, RwLock};
use rustc_hash::{FxHashMap, FxHashSet};

use super::placement::{Shifts, remaps};
use super::threads::{ThreadCache, instance_id};

/// Slots of [`KNOWN_RETURNS`].
const KNOWN_SLOTS: usize = 16;

thread_local! {
    /// Return addresses this thread found among a tracer's, by a hash of the address:
    /// (tracer id, address). A loop's calls come back to a few places (one per libc
    /// wrapper), and the set only grows, so this spares the shared lock on most calls.
    static KNOWN_RETURNS: [std::cell::Cell<(u64, u64)>; KNOWN_SLOTS] =
        const { [const { std::cell::Cell::new((u64::MAX, 0)) }; KNOWN_SLOTS] };
}

thread_local! {
    /// The last thread this vCPU thread found with no call in a tracer's matcher:
    /// (tracer id, [`Tracer::changes`] then, key). Valid until the matcher changes.
    static QUIET: std::cell::Cell<Option<(u64, u64, ThreadKey)>> =
        const { std::cell::Cell::new(None) };
}

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

/// A call on the vCPU it entered on, while its thread has not been switched out.
#[derive(Debug)]
struct InFlight {
    key: ThreadKey,
    call: RawCall,
    pending: Pending,
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

impl Finished {
    /// Whether the caller was not known when the call entered: the kernel could not be
    /// read then (the run's first calls, before the kernel is found).
    pub fn caller_unknown(&self) -> bool {
        self.thread == ThreadInfo::default()
    }

    /// Names the caller of a call that entered unidentified (see [`Finished::caller_unknown`]).
    pub fn identify(&mut self, thread: ThreadInfo) {
        self.thread = thread;
        if let Some(record) = self.record.as_mut() {
            record.thread = thread;
        }
    }
}

/// Pending calls and the set of return addresses to probe.
#[derive(Debug)]
pub struct Tracer {
    /// Calls whose records someone wants: their arguments are decoded at entry.
    records: SyscallFilter,
    /// Calls someone wants at entry only.
    entry_filter: SyscallFilter,
    matcher: Mutex<Matcher<ThreadKey, Pending>>,
    return_pcs: RwLock<FxHashSet<u64>>,
    entries: AtomicU64,
    /// Under KPTI: the stack key each thread (`task_struct`) last entered a call with.
    stack_keys: Mutex<FxHashMap<u64, ThreadKey>>,
    threads: ThreadCache,
    /// Per vCPU, the call in flight there (see the module documentation).
    in_flight: Box<[Mutex<Option<InFlight>>]>,
    /// Where call instructions run, remembered while address spaces stay put.
    shifts: Shifts,
    /// Counts changes of the matcher (made with its lock held), for [`QUIET`].
    changes: AtomicU64,
    /// Tells tracers apart in [`KNOWN_RETURNS`].
    id: u64,
    /// Calls pending under a [`ThreadKey::Stack`] key. The first calls of a run enter
    /// before the kernel is found (or before its context switches are followed) and are
    /// keyed by stack, but return when the task is known: only while some are pending
    /// does a return point that finds nothing for the task look for the stack key too.
    stack_keyed: AtomicUsize,
}

/// Who is running on `cpu`, with the key that finds its pending call again.
pub struct Who {
    /// The key.
    pub key: ThreadKey,
    /// pid, tid, comm (zero and empty when the kernel cannot be read).
    pub thread: ThreadInfo,
    /// The thread's `task_struct`, when known.
    pub task: Option<u64>,
    /// The thread stays on this vCPU until a context switch is reported
    /// ([`Tracer::switched_out`]): its call may wait in the vCPU's in-flight slot.
    pub pinned: bool,
}

impl Tracer {
    /// A tracer making records of the calls `records` selects and following those
    /// `entries` selects too, for a machine with `vcpus` vCPUs.
    pub fn new(records: SyscallFilter, entries: SyscallFilter, vcpus: usize) -> Tracer {
        Tracer {
            records,
            entry_filter: entries,
            matcher: Mutex::new(Matcher::new()),
            return_pcs: RwLock::new(FxHashSet::default()),
            entries: AtomicU64::new(0),
            stack_keys: Mutex::new(FxHashMap::default()),
            threads: ThreadCache::default(),
            in_flight: (0..vcpus).map(|_| Mutex::new(None)).collect(),
            shifts: Shifts::new(vcpus),
            changes: AtomicU64::new(0),
            id: instance_id(),
            stack_keyed: AtomicUsize::new(0),
        }
    }

    /// Where call instructions run (see [`Shifts`]).
    pub fn shifts(&self) -> &Shifts {
        &self.shifts
    }

    /// Whether any call is wanted, at entry or as a record.
    pub fn follows_any(&self) -> bool {
        self.records != SyscallFilter::None || self.entry_filter != SyscallFilter::None
    }

    /// Whether pid, tid and comm of `task` are known from an earlier call.
    pub fn knows(&self, task: u64) -> bool {
        self.threads.contains(task)
    }

    /// pid, tid and comm of `task`, if known from an earlier call.
    pub fn known(&self, task: u64) -> Option<ThreadInfo> {
        self.threads.get(task)
    }

    /// Whether a block starting at `va` is a return point to probe.
    pub fn is_return_pc(&self, va: u64) -> bool {
        self.return_pcs.read().contains(&va)
    }

    /// The call at the instruction at `pc`: the number first, then only the registers its
    /// prototype's arguments are in (every read is a trip through QEMU's register
    /// interface, and most calls take fewer than six arguments), and none for a call
    /// whose arguments nobody looks at (not logged, no process event).
    pub fn read_call(&self, abi: Abi, cpu: &dyn Vcpu, pc: u64) -> RawCall {
        let nr = cpu.reg(abi.nr_register()).unwrap_or(0);
        let mut regs = Regs {
            rip: pc,
            ..Regs::default()
        };
        regs.set(abi.nr_register(), nr);
        let nargs = self.args_wanted(abi, nr);
        let wanted = abi.arg_registers(nargs);
        let mut values = [0u64; 8];
        cpu.regs(wanted, &mut values);
        for (reg, value) in wanted.iter().zip(values) {
            regs.set(*reg, value);
        }
        abi.entry_with(&regs, cpu, nargs)
    }

    /// The call of convention `abi` at `pc` whose registers are `saved` (read elsewhere
    /// than from the vCPU: arm64's 32-bit callers, from the kernel's `pt_regs`).
    pub fn call_from(&self, abi: Abi, saved: &Regs, pc: u64, cpu: &dyn Vcpu) -> RawCall {
        let regs = Regs { rip: pc, ..*saved };
        let nr = match abi.nr_register() {
            Reg::X7 => regs.x[7],
            Reg::X8 => regs.x[8],
            _ => regs.rax,
        };
        abi.entry_with(&regs, cpu, self.args_wanted(abi, nr))
    }

    /// How many arguments of call `nr` are read: all of them where it is logged, drives a
    /// process event or is wanted at entry; none otherwise.
    fn args_wanted(&self, abi: Abi, nr: u64) -> usize {
        let info = abi.info(nr);
        if self.follows(info) || self.wanted_at_entry(info) {
            abi.arg_count(nr)
        } else {
            0
        }
    }

    /// Whether a call `info` describes (`None`: a number the table does not know) is logged
    /// or may drive a process event: only then are its arguments read and is it
    /// followed to its return.
    fn follows(&self, info: Option<&SyscallInfo>) -> bool {
        self.records.logs(info.map(|i| i.name))
            || info.is_none_or(|i| super::lifecycle::is_lifecycle_call(i.effects))
    }

    /// Whether someone wants the call at entry: its arguments are read, and it is not
    /// passed by, but it is not followed to its return for that.
    fn wanted_at_entry(&self, info: Option<&SyscallInfo>) -> bool {
        self.entry_filter.logs(info.map(|i| i.name))
    }

    /// Whether following `call`, entered by `task` on `cpu`, would change nothing (beyond
    /// handing it to whoever wants it at entry): it is
    /// not logged and drives no process event, changes neither an address space nor what
    /// is known of a thread, and its thread is known, has no call pending and none in
    /// flight. Most calls of an events-only or filtered run are such calls; they need no
    /// more than their number.
    pub fn passes_by(&self, cpu: &dyn Vcpu, task: u64, call: &RawCall) -> bool {
        let Some(info) = call.info() else {
            return false;
        };
        !self.follows(Some(info))
            && !remaps(info.effects)
            && super::threads::keeps_threads(info.effects)
            && self.nothing_pending(&ThreadKey::Task(task))
            // A call keyed by stack may be this thread's too.
            && self.stack_keyed.load(Ordering::Relaxed) == 0
            && self.threads.contains(task)
            && self
                .in_flight
                .get(cpu.index() as usize)
                .is_some_and(|slot| slot.lock().is_none())
    }

    /// Who runs now, and the key that finds its pending call again; the flag says the
    /// thread was not known yet. `task` is the current `task_struct` when the kernel can
    /// be read; `keyed` says the key may be it (otherwise `stack` makes the key: address
    /// space and user stack, which a user-mode return point under KPTI can compute too).
    /// `read` reads pid, tid and comm of a task not seen before; what it reads is kept
    /// for the next calls when `keep` says so. `switches` says that context switches are
    /// followed, so that a thread keyed by its task is [`Who::pinned`].
    pub fn who(
        &self,
        task: Option<u64>,
        keyed: bool,
        keep: bool,
        switches: bool,
        read: impl FnOnce(u64) -> Option<ThreadInfo>,
        stack: impl FnOnce() -> ThreadKey,
    ) -> (Who, bool) {
        let (thread, fresh) = match task {
            Some(t) => match self.threads.get(t) {
                Some(known) => (known, false),
                None => match read(t) {
                    Some(info) => {
                        if keep {
                            self.threads.insert(t, info);
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
        let pinned = switches && matches!(key, ThreadKey::Task(_));
        (
            Who {
                key,
                thread,
                task,
                pinned,
            },
            fresh,
        )
    }

    /// A call enters the kernel. Hands `out` the calls this completes (an older call of
    /// the same thread that never returned, or this one if it never returns). `call`
    /// has its instruction's address as translated; `shift` says how far from there it
    /// runs (see `plugin::placement`), asked only if the call is followed, and for a
    /// pinned thread once per address space ([`Shifts`]).
    pub fn enter(
        &self,
        cpu: &dyn Vcpu,
        who: Who,
        call: RawCall,
        shift: &dyn Fn() -> u64,
        out: &mut dyn FnMut(Finished),
    ) {
        let info = call.info();
        let name = call.name();
        let args = self
            .records
            .logs(name)
            .then(|| decode_args(info, &call, cpu, When::Enter));
        if let (Some(task), Some(info)) = (who.task, info) {
            self.threads.entering(task, info.effects);
        }
        let matters = self.follows(info);
        // An ordinary call of a thread with nothing else pending waits in the slot.
        let ordinary = info.is_some_and(|i| !i.never_returns() && !i.is_exec());
        let mut slot = self.in_flight.get(cpu.index() as usize).map(|s| s.lock());
        // Whatever was in flight here is not any more: its thread makes another call, or
        // (not pinned) a thread whose switches are not followed runs.
        let spilled = slot.as_mut().and_then(|s| s.take());
        // Most calls come from a thread that has nothing pending, one after the other:
        // they need neither the matcher nor its lock unless they wait in it. (A thread
        // keyed by its stack may have exec'd: see below.)
        let quiet = spilled.is_none()
            && matches!(who.key, ThreadKey::Task(_))
            && self.nothing_pending(&who.key);
        let mut matcher = (!quiet).then(|| self.matcher.lock());
        let mut done = Done::new();
        if let Some(matcher) = matcher.as_mut() {
            if let Some(f) = spilled {
                done.extend(matcher.enter(f.key, f.call, f.pending));
            }
            if let (Some(task), ThreadKey::Stack(..)) = (who.task, who.key) {
                self.restacked(matcher, task, who.key, info, &mut done);
            }
        }
        // A call that is not logged and means nothing to process events is left out,
        // unless the thread has calls pending (its arrival may complete one: an exec).
        let waiting = matcher.as_ref().is_some_and(|m| m.has_pending(&who.key));
        if matters || waiting {
            let (call, pending) = self.awaited(cpu, &who, call, shift, args);
            match slot.as_mut().filter(|_| who.pinned && ordinary && !waiting) {
                Some(slot) => {
                    **slot = Some(InFlight {
                        key: who.key,
                        call,
                        pending,
                    })
                }
                None => {
                    if matches!(who.key, ThreadKey::Stack(..)) {
                        self.stack_keyed.fetch_add(1, Ordering::Relaxed);
                    }
                    let matcher = matcher.get_or_insert_with(|| self.matcher.lock());
                    done.extend(matcher.enter(who.key, call, pending));
                }
            }
        }
        if let Some(matcher) = &matcher {
            self.changed(matcher, Some(&who.key));
        }
        drop(matcher);
        drop(slot);
        // After the shift of this call was found: its own instruction ran in the old
        // address space.
        if info.is_some_and(|i| remaps(i.effects)) {
            self.shifts.remapped();
        }
        self.hand_over(done, cpu, out);
    }

    /// A thread keyed by its stack (KPTI, switches not followed) gets a new key when exec
    /// replaces its address space and stack: its old key's pending execve succeeded.
    /// Out of the path of threads keyed by their task, which is every call's path once
    /// switches are followed.
    #[cold]
    #[inline(never)]
    fn restacked(
        &self,
        matcher: &mut Matcher<ThreadKey, Pending>,
        task: u64,
        key: ThreadKey,
        info: Option<&SyscallInfo>,
        done: &mut Done<ThreadKey, Pending>,
    ) {
        let mut keys = self.stack_keys.lock();
        if let Some(old) = keys.insert(task, key)
            && old != key
        {
            done.extend(matcher.exec_succeeded(&old));
        }
        if info.is_some_and(|i| i.effects.any(Effects::EXITS)) {
            keys.remove(&task);
        }
    }

    /// `call` made ready to wait for its return: placed where it runs, its return point
    /// probed, numbered in entry order.
    fn awaited(
        &self,
        cpu: &dyn Vcpu,
        who: &Who,
        call: RawCall,
        shift: &dyn Fn() -> u64,
        args: Option<Args>,
    ) -> (RawCall, Pending) {
        let call = call.shifted(self.shifts.of(cpu, who.pinned, call.pc, shift));
        self.note_return_pc(call.return_pc);
        let pending = Pending {
            thread: who.thread,
            args,
            seq: self.entries.fetch_add(1, Ordering::Relaxed),
        };
        (call, pending)
    }

    /// Whether `key` had no call in the matcher when this vCPU thread last looked, and the
    /// matcher has not changed since.
    fn nothing_pending(&self, key: &ThreadKey) -> bool {
        let now = self.changes.load(Ordering::Acquire);
        QUIET.with(|q| q.get() == Some((self.id, now, *key)))
    }

    /// Counts a change of `matcher` (locked by the caller); remembers whether `key` has
    /// nothing pending in it now.
    fn changed(&self, matcher: &Matcher<ThreadKey, Pending>, key: Option<&ThreadKey>) {
        let now = self.changes.fetch_add(1, Ordering::AcqRel) + 1;
        if let Some(key) = key.filter(|k| !matcher.has_pending(k)) {
            QUIET.with(|q| q.set(Some((self.id, now, *key))));
        }
    }

    /// Makes `pc` a return point to probe. Most calls come back through a known one:
    /// checked under the read lock, if this thread did not just find it.
    fn note_return_pc(&self, pc: u64) {
        let way = (pc ^ (pc >> 4) ^ (pc >> 8)) as usize % KNOWN_SLOTS;
        KNOWN_RETURNS.with(|known| {
            if known[way].get() != (self.id, pc) {
                if !self.is_return_pc(pc) {
                    self.return_pcs.write().insert(pc);
                }
                known[way].set((self.id, pc));
            }
        });
    }

    /// Hands `out` each call of `done`, made ready to record (reading `mem` for the
    /// output buffers of calls that returned).
    fn hand_over(
        &self,
        done: Done<ThreadKey, Pending>,
        mem: &dyn GuestMemory,
        out: &mut dyn FnMut(Finished),
    ) {
        for d in done {
            if matches!(d.thread, ThreadKey::Stack(..)) {
                self.stack_keyed.fetch_sub(1, Ordering::Relaxed);
            }
            out(finish(d, mem));
        }
    }

    /// The call waiting in `cpu`'s in-flight slot, taken out of it.
    fn take_in_flight(&self, cpu: &dyn Vcpu) -> Option<InFlight> {
        self.in_flight.get(cpu.index() as usize)?.lock().take()
    }

    /// The thread in flight on `cpu` is switched out: its call, if it has one, waits in
    /// the matcher from now on (it may return on another vCPU, or after other calls).
    pub fn switched_out(&self, cpu: &dyn Vcpu, out: &mut dyn FnMut(Finished)) {
        self.shifts.moved(cpu.index());
        let Some(f) = self.take_in_flight(cpu) else {
            return;
        };
        let mut matcher = self.matcher.lock();
        let done = matcher.enter(f.key, f.call, f.pending);
        self.changed(&matcher, None);
        drop(matcher);
        self.hand_over(done, cpu, out);
    }

    /// Process `pid` was reaped: the calls its threads still had pending never return
    /// (they were blocked when a signal killed it, or when another thread ended it).
    /// Hands them to `out` as abandoned. Outside their threads: nothing is read.
    pub fn process_gone(&self, pid: u32, out: &mut dyn FnMut(Finished)) {
        let mut matcher = self.matcher.lock();
        let done = matcher.forget_where(|p| p.thread.pid == pid);
        if done.is_empty() {
            return;
        }
        self.changed(&matcher, None);
        drop(matcher);
        self.hand_over(done, &NoMemory, out);
    }

    /// The run ends: hands `out` every call still pending (blocked, or the power-off call
    /// itself) as [`Outcome::Unfinished`], in the order they entered, as `strace` shows
    /// them `<unfinished ...>`. Outside any vCPU: nothing is read.
    pub fn unfinished(&self, out: &mut dyn FnMut(Finished)) {
        let mut matcher = self.matcher.lock();
        let mut done = matcher.drain();
        self.changed(&matcher, None);
        drop(matcher);
        for slot in &self.in_flight {
            if let Some(f) = slot.lock().take() {
                done.push(Completed {
                    thread: f.key,
                    call: f.call,
                    payload: f.pending,
                    outcome: Outcome::Unfinished,
                });
            }
        }
        done.sort_by_key(|d| d.payload.seq);
        self.hand_over(done, &NoMemory, out);
    }

    /// `cpu` is at a return point, translated at `translated`; `locate` says where it
    /// runs now (see `plugin::placement`), asked only when a call may return there
    /// (one returns at the same offset in its page), and at most once. Completes the
    /// pending call of the thread there if it returns here (and any nested calls above
    /// it that never returned). `key` finds out which thread is there, under the same
    /// conditions; `stack` makes its key by address space and stack, for a call that
    /// entered before its task could be known.
    pub fn ret(
        &self,
        cpu: &dyn Vcpu,
        translated: u64,
        locate: impl Fn() -> u64,
        key: impl Fn() -> ThreadKey,
        stack: impl FnOnce() -> ThreadKey,
        out: &mut dyn FnMut(Finished),
    ) {
        let known = std::cell::OnceCell::new();
        let key = || *known.get_or_init(&key);
        let located = std::cell::OnceCell::new();
        let pc = || *located.get_or_init(&locate);
        let offset = page_offset(translated);
        let value = |abi: Abi| {
            let mut regs = Regs::default();
            regs.set(abi.result_register(), cpu.reg(abi.result_register())?);
            Some(abi.return_value(&regs))
        };
        if let Some(slot) = self.in_flight.get(cpu.index() as usize) {
            let mut slot = slot.lock();
            // Since the call entered, this thread has not been switched out and no call
            // entered on this vCPU (either would have moved it to the matcher): it ran
            // kernel code, and user code only in a signal handler that made no call. So
            // its first return point at the right offset in its page is its return,
            // wherever that page is: `rip` need not be read.
            let here = slot
                .as_ref()
                .filter(|f| page_offset(f.call.return_pc) == offset && f.key == key());
            if let Some(abi) = here.map(|f| f.call.abi) {
                // Like the matcher's path: without the result the call stays pending.
                let Some(value) = value(abi) else {
                    return;
                };
                let Some(f) = slot.take() else {
                    return;
                };
                drop(slot);
                let done = Completed {
                    thread: f.key,
                    call: f.call,
                    payload: f.pending,
                    outcome: Outcome::Returned(value),
                };
                out(finish(done, cpu));
                return;
            }
        }
        let mut matcher = self.matcher.lock();
        if !matcher.may_return_at(translated) {
            return;
        }
        let pc = pc();
        let mut key = key();
        let mut found = matcher.pending_at(&key, pc).map(|c| c.abi);
        if found.is_none()
            && matches!(key, ThreadKey::Task(_))
            && self.stack_keyed.load(Ordering::Relaxed) > 0
        {
            key = stack();
            found = matcher.pending_at(&key, pc).map(|c| c.abi);
        }
        let Some(abi) = found else {
            return;
        };
        let Some(value) = value(abi) else {
            return;
        };
        let done = matcher.ret(&key, pc, value);
        self.changed(&matcher, Some(&key));
        drop(matcher);
        self.hand_over(done, cpu, out);
    }
}

/// `done` made ready to record; `mem` is read for the output buffers of a call that
/// returned.
fn finish(done: Completed<ThreadKey, Pending>, mem: &dyn GuestMemory) -> Finished {
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
        ..SyscallRecord::new(payload.thread, &done, args, mem)
    });
    Finished {
        done,
        thread: payload.thread,
        record,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::regs::Reg;
    use crate::cpu::fake::FakeCpu as Cpu;

    const GETPPID: u64 = 110;

    fn call(nr: u64, pc: u64) -> RawCall {
        RawCall {
            abi: Abi::X64Syscall,
            nr,
            args: [0; 6],
            pc,
            return_pc: pc + 2,
            sp: 0,
            arg6_fault: false,
        }
    }

    fn who(task: u64, pinned: bool) -> Who {
        Who {
            key: if pinned {
                ThreadKey::Task(task)
            } else {
                ThreadKey::Stack(1, task)
            },
            thread: ThreadInfo {
                pid: task as u32,
                tid: task as u32,
                comm: "t".into(),
            },
            task: Some(task),
            pinned,
        }
    }

    /// (tid, pc of the call, outcome) of each finished call, in order.
    type Log = Vec<(u32, u64, Outcome)>;

    /// A tracer logging everything on one vCPU, that vCPU, and an empty log.
    fn one_vcpu() -> (Tracer, Cpu, Log) {
        (
            Tracer::new(SyscallFilter::All, SyscallFilter::None, 1),
            Cpu::new(0),
            Log::new(),
        )
    }

    /// Where finished calls go: into `log`.
    fn into(log: &mut Log) -> impl FnMut(Finished) + '_ {
        |f| log.push((f.thread.tid, f.done.call.pc, f.done.outcome))
    }

    fn enter(t: &Tracer, cpu: &Cpu, task: u64, pinned: bool, c: RawCall, log: &mut Log) {
        t.enter(cpu, who(task, pinned), c, &|| 0, &mut into(log));
    }

    fn ret(t: &Tracer, cpu: &Cpu, key: ThreadKey, pc: u64, value: u64, log: &mut Log) {
        cpu.set(Reg::Rax, value);
        t.ret(cpu, pc, || pc, || key, || key, &mut into(log));
    }

    #[test]
    fn the_end_of_the_run_writes_pending_calls_in_entry_order() {
        let t = Tracer::new(SyscallFilter::All, SyscallFilter::None, 2);
        let (cpu0, cpu1) = (Cpu::new(0), Cpu::new(1));
        let mut log = Log::new();
        // A blocked call in the matcher, one in each vCPU's slot (the power-off call).
        enter(&t, &cpu0, 7, true, call(GETPPID, 0x100), &mut log);
        t.switched_out(&cpu0, &mut |_| panic!("nothing completes"));
        enter(&t, &cpu1, 8, true, call(GETPPID, 0x200), &mut log);
        enter(&t, &cpu0, 9, true, call(GETPPID, 0x300), &mut log);
        assert!(log.is_empty());
        t.unfinished(&mut into(&mut log));
        assert_eq!(
            log,
            [
                (7, 0x100, Outcome::Unfinished),
                (8, 0x200, Outcome::Unfinished),
                (9, 0x300, Outcome::Unfinished)
            ]
        );
        t.unfinished(&mut |_| panic!("written once"));
    }

    /// The call entered at 0x100 returns at 0x102, where the task (7) is known: found
    /// by its `stack` key.
    fn returns_as_task_7(t: &Tracer, cpu: &Cpu, stack: ThreadKey, out: &mut dyn FnMut(Finished)) {
        t.ret(cpu, 0x102, || 0x102, || ThreadKey::Task(7), || stack, out);
    }

    /// The run's first call, entered before the kernel was found, has no caller; it is
    /// named at its return, record included.
    #[test]
    fn a_call_entered_unnamed_is_named_at_its_return() {
        let (t, cpu, _) = one_vcpu();
        let stack = ThreadKey::Stack(1, 7);
        let unknown = Who {
            key: stack,
            thread: ThreadInfo::default(),
            task: None,
            pinned: false,
        };
        t.enter(&cpu, unknown, call(GETPPID, 0x100), &|| 0, &mut |_| {
            panic!("nothing completes")
        });
        cpu.set(Reg::Rax, 1);
        let mut done = Vec::new();
        returns_as_task_7(&t, &cpu, stack, &mut |f| done.push(f));
        let [mut f] = <[Finished; 1]>::try_from(done).expect("one call returns");
        assert!(f.caller_unknown());
        let init = ThreadInfo {
            pid: 1,
            tid: 1,
            comm: "init".into(),
        };
        f.identify(init);
        assert!(!f.caller_unknown());
        assert_eq!(f.thread, init);
        assert_eq!(f.record.map(|r| r.thread), Some(init));
    }

    #[test]
    fn a_call_entered_before_its_task_was_known_returns_by_its_stack() {
        let (t, cpu, mut log) = one_vcpu();
        let stack = ThreadKey::Stack(1, 7);
        // The run's first call: no kernel yet, so keyed by stack.
        enter(&t, &cpu, 7, false, call(GETPPID, 0x100), &mut log);
        cpu.set(Reg::Rax, 1);
        // It returns once the task is known: found by the stack key.
        returns_as_task_7(&t, &cpu, stack, &mut into(&mut log));
        assert_eq!(log, [(7, 0x100, Outcome::Returned(1))]);
        // With nothing pending by stack any more, the stack key is not made.
        enter(&t, &cpu, 8, false, call(GETPPID, 0x100), &mut log);
        ret(&t, &cpu, ThreadKey::Stack(1, 8), 0x102, 2, &mut log);
        enter(&t, &cpu, 9, true, call(GETPPID, 0x200), &mut log);
        t.switched_out(&cpu, &mut into(&mut log));
        t.ret(
            &cpu,
            0x202,
            || 0x202,
            || ThreadKey::Task(10),
            || panic!("not needed"),
            &mut |_| panic!("not the caller"),
        );
        assert_eq!(log.len(), 2);
    }

    #[test]
    fn calls_pair_where_their_code_runs() {
        let (t, cpu, mut log) = one_vcpu();
        // Entered through a block translated 0x7000 bytes away from where it runs...
        t.enter(
            &cpu,
            who(7, true),
            call(GETPPID, 0x100),
            &|| 0x7000,
            &mut into(&mut log),
        );
        cpu.set(Reg::Rax, 1);
        // ...returning through a block translated where the call was.
        t.ret(
            &cpu,
            0x102,
            || 0x7102,
            || ThreadKey::Task(7),
            || ThreadKey::Task(7),
            &mut into(&mut log),
        );
        assert_eq!(log, [(7, 0x7100, Outcome::Returned(1))]);
        // A return point at another offset in its page is passed without asking where
        // it runs or who is there.
        t.enter(
            &cpu,
            who(7, true),
            call(GETPPID, 0x100),
            &|| 0,
            &mut into(&mut log),
        );
        t.switched_out(&cpu, &mut into(&mut log));
        t.ret(
            &cpu,
            0x204,
            || panic!("not located"),
            || panic!("no key"),
            || panic!("no key"),
            &mut into(&mut log),
        );
        // A call nobody follows is not located either.
        let quiet = Tracer::new(SyscallFilter::None, SyscallFilter::None, 1);
        quiet.enter(
            &cpu,
            who(7, true),
            call(GETPPID, 0x100),
            &|| panic!("not located"),
            &mut into(&mut log),
        );
        assert_eq!(log.len(), 1);
    }

    #[test]
    fn a_call_in_flight_returns_on_its_vcpu() {
        let t = Tracer::new(SyscallFilter::All, SyscallFilter::None, 2);
        let cpu = Cpu::new(0);
        let mut log = Log::new();
        enter(&t, &cpu, 7, true, call(GETPPID, 0x100), &mut log);
        assert!(t.matcher.lock().is_empty(), "waits in the slot");
        // Another thread at the same return point is not the caller.
        ret(&t, &cpu, ThreadKey::Task(8), 0x102, 1, &mut log);
        assert!(log.is_empty());
        ret(&t, &cpu, ThreadKey::Task(7), 0x102, 1, &mut log);
        assert_eq!(log, [(7, 0x100, Outcome::Returned(1))]);
    }

    #[test]
    fn a_result_that_cannot_be_read_leaves_the_call_pending() {
        let (t, cpu, mut log) = one_vcpu();
        enter(&t, &cpu, 7, true, call(GETPPID, 0x100), &mut log);
        t.ret(
            &cpu,
            0x102,
            || 0x102,
            || ThreadKey::Task(7),
            || ThreadKey::Task(7),
            &mut |_| panic!("no result, no completion"),
        );
        ret(&t, &cpu, ThreadKey::Task(7), 0x102, 1, &mut log);
        assert_eq!(log, [(7, 0x100, Outcome::Returned(1))]);
    }

    #[test]
    fn a_switched_out_call_returns_anywhere() {
        let t = Tracer::new(SyscallFilter::All, SyscallFilter::None, 2);
        let (cpu0, cpu1) = (Cpu::new(0), Cpu::new(1));
        let mut log = Log::new();
        enter(&t, &cpu0, 7, true, call(0, 0x100), &mut log);
        t.switched_out(&cpu0, &mut |_| panic!("nothing completes"));
        assert_eq!(t.matcher.lock().len(), 1);
        // Another thread runs on cpu0 and makes a call from the same place.
        enter(&t, &cpu0, 8, true, call(0, 0x100), &mut log);
        ret(&t, &cpu1, ThreadKey::Task(7), 0x102, 5, &mut log);
        ret(&t, &cpu0, ThreadKey::Task(8), 0x102, 6, &mut log);
        assert_eq!(
            log,
            [
                (7, 0x100, Outcome::Returned(5)),
                (8, 0x100, Outcome::Returned(6))
            ]
        );
    }

    #[test]
    fn nesting_and_restarts_leave_the_slot_for_the_matcher() {
        let (t, cpu, mut log) = one_vcpu();
        let key = ThreadKey::Task(7);
        // A signal handler's call while a call is pending: both return, innermost first.
        enter(&t, &cpu, 7, true, call(0, 0x100), &mut log);
        enter(&t, &cpu, 7, true, call(GETPPID, 0x200), &mut log);
        ret(&t, &cpu, key, 0x202, 1, &mut log);
        ret(&t, &cpu, key, 0x102, 2, &mut log);
        // The kernel restarts an interrupted call: the first attempt is abandoned.
        enter(&t, &cpu, 7, true, call(0, 0x300), &mut log);
        enter(&t, &cpu, 7, true, call(0, 0x300), &mut log);
        ret(&t, &cpu, key, 0x302, 3, &mut log);
        assert_eq!(
            log,
            [
                (7, 0x200, Outcome::Returned(1)),
                (7, 0x100, Outcome::Returned(2)),
                (7, 0x300, Outcome::Abandoned),
                (7, 0x300, Outcome::Returned(3)),
            ]
        );
        assert!(t.matcher.lock().is_empty());
    }

    #[test]
    fn only_calls_that_change_nothing_pass_by() {
        let t = Tracer::new(SyscallFilter::None, SyscallFilter::None, 1);
        let (cpu, mut log) = (Cpu::new(0), Log::new());
        t.threads.insert(7, who(7, true).thread);
        // Until its first call is followed, the thread's matcher state is not known here.
        assert!(!t.passes_by(&cpu, 7, &call(GETPPID, 0x100)));
        enter(&t, &cpu, 7, true, call(GETPPID, 0x100), &mut log);
        assert!(t.passes_by(&cpu, 7, &call(GETPPID, 0x100)));
        // A call keyed by address space and stack may be any thread's, this one's too.
        enter(&t, &cpu, 9, false, call(59, 0x300), &mut log);
        enter(&t, &cpu, 7, true, call(GETPPID, 0x100), &mut log);
        assert!(!t.passes_by(&cpu, 7, &call(GETPPID, 0x100)));
        // Its next call completes the exec and waits for its return in the matcher.
        enter(&t, &cpu, 9, false, call(GETPPID, 0x500), &mut log);
        ret(&t, &cpu, ThreadKey::Stack(1, 9), 0x502, 1, &mut log);
        enter(&t, &cpu, 7, true, call(GETPPID, 0x100), &mut log);
        assert!(t.passes_by(&cpu, 7, &call(GETPPID, 0x100)));
        assert!(
            !t.passes_by(&cpu, 8, &call(GETPPID, 0x100)),
            "unknown thread"
        );
        assert!(!t.passes_by(&cpu, 7, &call(9, 0x100)), "mmap moves code");
        assert!(
            !t.passes_by(&cpu, 7, &call(59, 0x100)),
            "execve is a process event"
        );
        assert!(
            !t.passes_by(&cpu, 7, &call(999, 0x100)),
            "a number the table lacks"
        );
        // A pending execve completes at the thread's next call, whatever it is.
        enter(&t, &cpu, 7, true, call(59, 0x200), &mut log);
        assert!(!t.passes_by(&cpu, 7, &call(GETPPID, 0x100)));
        // A logged call is always followed.
        let all = Tracer::new(SyscallFilter::All, SyscallFilter::None, 1);
        all.threads.insert(7, who(7, true).thread);
        enter(&all, &cpu, 7, true, call(GETPPID, 0x100), &mut log);
        ret(&all, &cpu, ThreadKey::Task(7), 0x102, 1, &mut log);
        assert!(!all.passes_by(&cpu, 7, &call(GETPPID, 0x100)));
    }

    #[test]
    fn unpinned_threads_and_special_calls_use_the_matcher() {
        let (t, cpu, mut log) = one_vcpu();
        enter(&t, &cpu, 7, false, call(GETPPID, 0x100), &mut log);
        assert_eq!(
            t.matcher.lock().len(),
            1,
            "a stack-keyed thread may migrate"
        );
        ret(&t, &cpu, ThreadKey::Stack(1, 7), 0x102, 1, &mut log);
        // execve stays pending until the thread's next call: it is matched there.
        enter(&t, &cpu, 8, true, call(59, 0x400), &mut log);
        assert_eq!(t.matcher.lock().len(), 1);
        enter(&t, &cpu, 8, true, call(GETPPID, 0x500), &mut log);
        assert_eq!(
            log,
            [(7, 0x100, Outcome::Returned(1)), (8, 0x400, Outcome::Exec)]
        );
    }

    #[test]
    fn a_thread_whose_call_waits_in_the_matcher_is_not_taken_for_quiet() {
        let (t, cpu, mut log) = one_vcpu();
        let key = ThreadKey::Task(7);
        // Quiet: calls go straight to the slot and return from it.
        enter(&t, &cpu, 7, true, call(GETPPID, 0x100), &mut log);
        ret(&t, &cpu, key, 0x102, 1, &mut log);
        enter(&t, &cpu, 7, true, call(0, 0x200), &mut log);
        // Switched out while blocked: the call waits in the matcher, and the thread's
        // next call (a signal handler's) nests above it rather than waiting in the slot.
        t.switched_out(&cpu, &mut |_| panic!("nothing completes"));
        enter(&t, &cpu, 7, true, call(GETPPID, 0x300), &mut log);
        assert_eq!(t.matcher.lock().len(), 2);
        ret(&t, &cpu, key, 0x302, 2, &mut log);
        ret(&t, &cpu, key, 0x202, 3, &mut log);
        // Quiet again once both returned.
        enter(&t, &cpu, 7, true, call(GETPPID, 0x100), &mut log);
        assert!(t.matcher.lock().is_empty(), "waits in the slot");
        ret(&t, &cpu, key, 0x102, 4, &mut log);
        assert_eq!(
            log,
            [
                (7, 0x100, Outcome::Returned(1)),
                (7, 0x300, Outcome::Returned(2)),
                (7, 0x200, Outcome::Returned(3)),
                (7, 0x100, Outcome::Returned(4)),
            ]
        );
    }

    #[test]
    fn a_pinned_threads_shift_is_asked_once_per_address_space() {
        let (t, cpu, mut log) = one_vcpu();
        let asked = std::cell::Cell::new(0);
        let shift = || {
            asked.set(asked.get() + 1);
            0x1000
        };
        let key = ThreadKey::Task(7);
        // A call from 0x100 (translated), running 0x1000 further, and its return.
        let round_trip = |nr: u64, log: &mut Log| {
            t.enter(&cpu, who(7, true), call(nr, 0x100), &shift, &mut into(log));
            ret(&t, &cpu, key, 0x1102, 1, log);
        };
        for _ in 0..3 {
            round_trip(GETPPID, &mut log);
        }
        assert_eq!(asked.get(), 1);
        t.switched_out(&cpu, &mut |_| panic!("nothing in flight"));
        round_trip(GETPPID, &mut log);
        assert_eq!(asked.get(), 2, "a context switch: asked again");
        // mmap (its own shift still remembered) changes where code may run: the next
        // call asks again.
        round_trip(9, &mut log);
        assert_eq!(asked.get(), 2);
        round_trip(GETPPID, &mut log);
        assert_eq!(asked.get(), 3);
        assert_eq!(log.len(), 6, "every call returned where it ran: {log:?}");
    }

    #[test]
    fn a_reaped_processs_blocked_calls_are_abandoned_then() {
        let (t, cpu, mut log) = one_vcpu();
        // Tasks 7 and 8 block and are switched out; 7's process is killed and reaped.
        enter(&t, &cpu, 7, true, call(0, 0x100), &mut log);
        t.switched_out(&cpu, &mut |_| panic!("nothing completes"));
        enter(&t, &cpu, 8, true, call(0, 0x200), &mut log);
        t.switched_out(&cpu, &mut |_| panic!("nothing completes"));
        t.process_gone(7, &mut into(&mut log));
        assert_eq!(log, [(7, 0x100, Outcome::Abandoned)]);
        t.process_gone(7, &mut |_| panic!("nothing left of 7"));
        ret(&t, &cpu, ThreadKey::Task(8), 0x202, 1, &mut log);
        assert_eq!(log[1], (8, 0x200, Outcome::Returned(1)));
    }
}
