//! Pairing system call entries with their returns, per thread.
//!
//! PANDA's syscalls2 keys pending calls by (return address, address space): two threads
//! of one process blocked in the same libc wrapper share both, and their returns get
//! swapped or lost. Here the caller supplies the thread's identity `K` (the `task_struct`
//! address, or `(asid, tid)`), and a return counts only if that thread has a call pending
//! whose [`RawCall::return_pc`] is where it now is.
//!
//! Cases:
//! - `exit`, `exit_group`, `rt_sigreturn`, `sigreturn` never come back: they complete at
//!   entry with [`Outcome::NoReturn`];
//! - `execve`/`execveat` stay pending: a failed one returns normally; a successful one
//!   never returns, and completes with [`Outcome::Exec`] when the thread makes its next
//!   call (or [`Matcher::exec_succeeded`] is told);
//! - a thread that enters a new call while one is pending (a signal handler ran, the
//!   call was restarted, a return was missed) completes the old one with
//!   [`Outcome::Abandoned`];
//! - a return with nothing pending (the child side of `fork`/`clone`) is ignored.

use std::collections::HashMap;
use std::hash::Hash;

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

/// Pending calls by thread. `P` is any payload the caller keeps with a call.
#[derive(Debug)]
pub struct Matcher<K, P = ()> {
    pending: HashMap<K, (RawCall, P)>,
    limit: usize,
}

impl<K: Hash + Eq + Clone, P> Default for Matcher<K, P> {
    fn default() -> Self {
        Matcher::new()
    }
}

impl<K: Hash + Eq + Clone, P> Matcher<K, P> {
    /// At most this many threads with a pending call are remembered by default.
    pub const DEFAULT_LIMIT: usize = 1 << 16;

    /// An empty matcher.
    pub fn new() -> Self {
        Matcher::with_limit(Self::DEFAULT_LIMIT)
    }

    /// An empty matcher remembering at most `limit` pending calls; past that, an
    /// arbitrary pending call is dropped as [`Outcome::Abandoned`] (threads that died in
    /// a call without the caller calling [`Matcher::forget`]).
    pub fn with_limit(limit: usize) -> Self {
        Matcher {
            pending: HashMap::new(),
            limit: limit.max(1),
        }
    }

    /// A thread enters a call. Returns what this completes: an older pending call of the
    /// same thread, and the new call itself if it never returns.
    pub fn enter(&mut self, thread: K, call: RawCall, payload: P) -> Vec<Completed<K, P>> {
        let mut done = Vec::new();
        if let Some((old, p)) = self.pending.remove(&thread) {
            let exec = call_info(&old).is_some_and(|i| i.is_exec());
            done.push(Completed {
                thread: thread.clone(),
                call: old,
                payload: p,
                outcome: if exec {
                    Outcome::Exec
                } else {
                    Outcome::Abandoned
                },
            });
        }
        if call_info(&call).is_some_and(|i| i.never_returns()) {
            done.push(Completed {
                thread,
                call,
                payload,
                outcome: Outcome::NoReturn,
            });
            return done;
        }
        if self.pending.len() >= self.limit
            && let Some(k) = self.pending.keys().next().cloned()
            && let Some((c, p)) = self.pending.remove(&k)
        {
            done.push(Completed {
                thread: k,
                call: c,
                payload: p,
                outcome: Outcome::Abandoned,
            });
        }
        self.pending.insert(thread, (call, payload));
        done
    }

    /// A thread is at `pc` with result `value`: completes its pending call if `pc` is
    /// where that call returns to.
    pub fn ret(&mut self, thread: &K, pc: u64, value: i64) -> Option<Completed<K, P>> {
        if self.pending.get(thread)?.0.return_pc != pc {
            return None;
        }
        let (call, payload) = self.pending.remove(thread)?;
        Some(Completed {
            thread: thread.clone(),
            call,
            payload,
            outcome: Outcome::Returned(value),
        })
    }

    /// The pending call of a thread, if any.
    pub fn pending(&self, thread: &K) -> Option<&RawCall> {
        self.pending.get(thread).map(|(c, _)| c)
    }

    /// Where any thread with a pending call resumes (to place return probes).
    pub fn return_pcs(&self) -> impl Iterator<Item = u64> + '_ {
        self.pending.values().map(|(c, _)| c.return_pc)
    }

    /// The thread now runs a new program (the caller saw the exec happen): completes a
    /// pending `execve`/`execveat` as [`Outcome::Exec`].
    pub fn exec_succeeded(&mut self, thread: &K) -> Option<Completed<K, P>> {
        if !call_info(&self.pending.get(thread)?.0).is_some_and(|i| i.is_exec()) {
            return None;
        }
        let (call, payload) = self.pending.remove(thread)?;
        Some(Completed {
            thread: thread.clone(),
            call,
            payload,
            outcome: Outcome::Exec,
        })
    }

    /// The thread is gone: completes its pending call as [`Outcome::Abandoned`].
    pub fn forget(&mut self, thread: &K) -> Option<Completed<K, P>> {
        let (call, payload) = self.pending.remove(thread)?;
        Some(Completed {
            thread: thread.clone(),
            call,
            payload,
            outcome: Outcome::Abandoned,
        })
    }

    /// How many calls are pending.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether no call is pending.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}

fn call_info(call: &RawCall) -> Option<&'static super::SyscallInfo> {
    call.profile().lookup(call.nr)
}
