//! Pairing system call entries with their returns, per thread.
//!
//! PANDA's syscalls2 keys pending calls by (return address, address space): two threads
//! of one process blocked in the same libc wrapper share both, and their returns get
//! swapped or lost. Here the caller supplies the thread's identity `K` (the `task_struct`
//! address, or `(asid, tid)`), and a return counts only if that thread has a call pending
//! whose [`RawCall::return_pc`] is where it now is.
//!
//! Each thread has a small stack of pending calls, because a signal handler can run
//! while a call is pending (the kernel delivers the signal on the way out of the call and
//! the thread resumes in the handler, not at the return address); the handler's own calls
//! nest above it, and after `rt_sigreturn` the interrupted call returns where it would
//! have.
//!
//! Cases:
//! - `exit`, `exit_group`, `rt_sigreturn`, `sigreturn` never come back: they complete at
//!   entry with [`Outcome::NoReturn`];
//! - `execve`/`execveat` stay pending: a failed one returns normally; a successful one
//!   never returns, and completes with [`Outcome::Exec`] when the thread makes its next
//!   call (or [`Matcher::exec_succeeded`] is told); calls below it are abandoned;
//! - a thread that enters the same system call instruction again while a call from there
//!   is on top of its stack (the kernel restarted an interrupted call) completes the old
//!   one with [`Outcome::Abandoned`]; a call from elsewhere nests above (signal handler);
//! - a return completes the topmost pending call that returns there, and abandons the
//!   ones above it (a handler left with `longjmp`, a return that was missed);
//! - a return with nothing pending (the child side of `fork`/`clone`) is ignored.

use std::hash::Hash;

use rustc_hash::FxHashMap;

use super::RawCall;

/// How a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It returned this value.
    Returned(i64),
    /// It never returns by design (`exit`, `exit_group`, `rt_sigreturn`, `sigreturn`).
    NoReturn,
    /// An `execve`/`execveat` that succeeded: the thread now runs a new program.
    Exec,
    /// No return was seen before the thread made another call or was forgotten.
    Abandoned,
    /// The run ended first: a call blocked at power-off, or the power-off call itself.
    Unfinished,
}

/// A call whose fate is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completed<K, P> {
    /// The thread that made it.
    pub thread: K,
    /// The call at entry.
    pub call: RawCall,
    /// What the caller stored with it at entry (decoded arguments, say).
    pub payload: P,
    /// How it ended.
    pub outcome: Outcome,
}

/// What one step of the matcher completes: most often nothing. A plain `Vec`, which
/// allocates nothing while empty: a completed call with its decoded arguments is a few
/// hundred bytes, and an inline buffer for two of them was copied whole at every step,
/// empty or not (a quarter of a traced call's own cost).
pub type Done<K, P> = Vec<Completed<K, P>>;

/// Pending calls by thread. `P` is any payload the caller keeps with a call.
#[derive(Debug)]
pub struct Matcher<K, P = ()> {
    pending: FxHashMap<K, Vec<(RawCall, P)>>,
    /// How many pending calls return to each page offset: a return point with none at
    /// its offset can be passed without finding out where it runs or which thread is
    /// there.
    at_pc: FxHashMap<u64, usize>,
    /// Emptied stacks, kept for the next thread that enters a call: most threads have
    /// one call pending at a time, and would otherwise allocate a stack per call.
    spare: Vec<Vec<(RawCall, P)>>,
    count: usize,
    limit: usize,
}

/// `pc`'s offset in its 4 KiB page.
pub fn page_offset(pc: u64) -> u64 {
    pc & 0xfff
}

impl<K: Hash + Eq + Clone, P> Default for Matcher<K, P> {
    fn default() -> Self {
        Matcher::new()
    }
}

/// Deepest nesting of pending calls kept for one thread (signal handlers within handlers).
const MAX_DEPTH: usize = 16;

impl<K: Hash + Eq + Clone, P> Matcher<K, P> {
    /// At most this many calls are remembered as pending by default.
    pub const DEFAULT_LIMIT: usize = 1 << 16;

    /// An empty matcher.
    pub fn new() -> Self {
        Matcher::with_limit(Self::DEFAULT_LIMIT)
    }

    /// An empty matcher remembering at most `limit` pending calls; past that, the
    /// pending calls of an arbitrary thread are dropped as [`Outcome::Abandoned`]
    /// (threads that died in a call without the caller calling [`Matcher::forget`]).
    pub fn with_limit(limit: usize) -> Self {
        Matcher {
            pending: FxHashMap::default(),
            at_pc: FxHashMap::default(),
            spare: Vec::new(),
            count: 0,
            limit: limit.max(1),
        }
    }

    /// Counts `calls` as pending at their return addresses' page offsets.
    fn index(at_pc: &mut FxHashMap<u64, usize>, calls: &[(RawCall, P)]) {
        for (c, _) in calls {
            *at_pc.entry(page_offset(c.return_pc)).or_default() += 1;
        }
    }

    /// Counts `calls` as no longer pending.
    fn unindex(at_pc: &mut FxHashMap<u64, usize>, calls: &[(RawCall, P)]) {
        for (c, _) in calls {
            let at = page_offset(c.return_pc);
            if let Some(n) = at_pc.get_mut(&at) {
                *n -= 1;
                if *n == 0 {
                    at_pc.remove(&at);
                }
            }
        }
    }

    /// Keeps an emptied stack's allocation for reuse.
    fn recycle(&mut self, stack: Vec<(RawCall, P)>) {
        if self.spare.len() < 64 && stack.capacity() <= MAX_DEPTH {
            self.spare.push(stack);
        }
    }

    /// Whether any thread may have a call pending that returns to `pc`: one returns to
    /// an address at `pc`'s offset in its page. The offset is all a return point knows
    /// before it asks QEMU where it runs (see `plugin::placement`), and it rules
    /// out most return points that have nothing pending.
    pub fn may_return_at(&self, pc: u64) -> bool {
        self.at_pc.contains_key(&page_offset(pc))
    }

    /// Whether `thread` has any call pending.
    pub fn has_pending(&self, thread: &K) -> bool {
        self.pending.contains_key(thread)
    }

    fn completed(thread: &K, (call, payload): (RawCall, P), outcome: Outcome) -> Completed<K, P> {
        Completed {
            thread: thread.clone(),
            call,
            payload,
            outcome,
        }
    }

    /// A thread enters a call. Returns what this completes, oldest first: calls of the
    /// same thread that are now known to be over, and the new call itself if it never
    /// returns.
    pub fn enter(&mut self, thread: K, call: RawCall, payload: P) -> Done<K, P> {
        let mut done = Done::new();
        let mut stack = match self.pending.remove(&thread) {
            Some(stack) => stack,
            None => self.spare.pop().unwrap_or_default(),
        };
        let before = stack.len();
        Self::unindex(&mut self.at_pc, &stack);
        match stack.last() {
            // The thread runs a new program: nothing below the exec survives it.
            Some((top, _)) if call_info(top).is_some_and(|i| i.is_exec()) => {
                let exec = stack.pop().expect("top exists");
                done.extend(
                    stack
                        .drain(..)
                        .map(|e| Self::completed(&thread, e, Outcome::Abandoned)),
                );
                done.push(Self::completed(&thread, exec, Outcome::Exec));
            }
            // The same instruction again: the kernel restarted an interrupted call.
            Some((top, _)) if top.pc == call.pc => {
                let old = stack.pop().expect("top exists");
                done.push(Self::completed(&thread, old, Outcome::Abandoned));
            }
            _ => {}
        }
        if stack.len() >= MAX_DEPTH {
            let oldest = stack.remove(0);
            done.push(Self::completed(&thread, oldest, Outcome::Abandoned));
        }
        if call_info(&call).is_some_and(|i| i.never_returns()) {
            done.push(Self::completed(&thread, (call, payload), Outcome::NoReturn));
        } else {
            stack.push((call, payload));
        }
        // `before` calls of this thread were counted; `stack` holds what is left of them
        // and the new call.
        self.count = self.count - before + stack.len();
        Self::index(&mut self.at_pc, &stack);
        if stack.is_empty() {
            self.recycle(stack);
        } else {
            self.pending.insert(thread.clone(), stack);
        }
        if self.count > self.limit
            && let Some(k) = self.pending.keys().find(|k| **k != thread).cloned()
            && let Some(dropped) = self.pending.remove(&k)
        {
            self.count -= dropped.len();
            Self::unindex(&mut self.at_pc, &dropped);
            done.extend(
                dropped
                    .into_iter()
                    .map(|e| Self::completed(&k, e, Outcome::Abandoned)),
            );
        }
        done
    }

    /// A thread is at `pc` with result `value`: completes the topmost pending call of that
    /// thread that returns to `pc` (last in the result), abandoning any above it (first).
    /// Empty when the thread has no call returning here.
    pub fn ret(&mut self, thread: &K, pc: u64, value: i64) -> Done<K, P> {
        let Some(stack) = self.pending.get_mut(thread) else {
            return Done::new();
        };
        let Some(at) = stack.iter().rposition(|(c, _)| c.return_pc == pc) else {
            return Done::new();
        };
        let above: Vec<_> = stack.drain(at + 1..).collect();
        let returned = stack.pop().expect("position exists");
        if stack.is_empty()
            && let Some(stack) = self.pending.remove(thread)
        {
            self.recycle(stack);
        }
        Self::unindex(&mut self.at_pc, &above);
        Self::unindex(&mut self.at_pc, std::slice::from_ref(&returned));
        self.count = self.count.saturating_sub(above.len() + 1);
        let mut done: Done<K, P> = above
            .into_iter()
            .rev()
            .map(|e| Self::completed(thread, e, Outcome::Abandoned))
            .collect();
        done.push(Self::completed(thread, returned, Outcome::Returned(value)));
        done
    }

    /// The innermost pending call of a thread, if any.
    pub fn pending(&self, thread: &K) -> Option<&RawCall> {
        self.pending.get(thread)?.last().map(|(c, _)| c)
    }

    /// The pending call of a thread that returns to `pc`, if any.
    pub fn pending_at(&self, thread: &K, pc: u64) -> Option<&RawCall> {
        self.pending
            .get(thread)?
            .iter()
            .rev()
            .map(|(c, _)| c)
            .find(|c| c.return_pc == pc)
    }

    /// Where any thread with a pending call resumes (to place return probes).
    pub fn return_pcs(&self) -> impl Iterator<Item = u64> + '_ {
        self.pending.values().flatten().map(|(c, _)| c.return_pc)
    }

    /// The thread now runs a new program (the caller saw the exec happen): completes a
    /// pending `execve`/`execveat` as [`Outcome::Exec`], abandoning anything below it.
    pub fn exec_succeeded(&mut self, thread: &K) -> Done<K, P> {
        let is_exec = self
            .pending(thread)
            .is_some_and(|c| call_info(c).is_some_and(|i| i.is_exec()));
        if !is_exec {
            return Done::new();
        }
        let mut stack = self.pending.remove(thread).unwrap_or_default();
        self.count = self.count.saturating_sub(stack.len());
        Self::unindex(&mut self.at_pc, &stack);
        let exec = stack.pop().expect("exec on top");
        let mut done: Done<K, P> = stack
            .into_iter()
            .map(|e| Self::completed(thread, e, Outcome::Abandoned))
            .collect();
        done.push(Self::completed(thread, exec, Outcome::Exec));
        done
    }

    /// The thread is gone: completes its pending calls as [`Outcome::Abandoned`].
    pub fn forget(&mut self, thread: &K) -> Done<K, P> {
        let stack = self.pending.remove(thread).unwrap_or_default();
        self.count = self.count.saturating_sub(stack.len());
        Self::unindex(&mut self.at_pc, &stack);
        stack
            .into_iter()
            .map(|e| Self::completed(thread, e, Outcome::Abandoned))
            .collect()
    }

    /// Every thread with a call pending whose payload `gone` picks (a reaped process's
    /// threads): its calls as [`Outcome::Abandoned`], each thread's oldest first.
    pub fn forget_where(&mut self, gone: impl Fn(&P) -> bool) -> Done<K, P> {
        let threads: Vec<K> = self
            .pending
            .iter()
            .filter(|(_, stack)| stack.iter().any(|(_, p)| gone(p)))
            .map(|(k, _)| k.clone())
            .collect();
        threads.iter().flat_map(|k| self.forget(k)).collect()
    }

    /// The run ends: every pending call as [`Outcome::Unfinished`], each thread's oldest
    /// first.
    pub fn drain(&mut self) -> Done<K, P> {
        self.at_pc.clear();
        self.count = 0;
        let mut done = Done::new();
        for (thread, stack) in self.pending.drain() {
            done.extend(
                stack
                    .into_iter()
                    .map(|e| Self::completed(&thread, e, Outcome::Unfinished)),
            );
        }
        done
    }

    /// How many calls are pending.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether no call is pending.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

fn call_info(call: &RawCall) -> Option<&'static super::SyscallInfo> {
    call.info()
}
