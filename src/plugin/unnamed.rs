//! Calls that completed before their caller could be named. Under KPTI the run's first
//! calls enter before the kernel is found, and return in user mode, where the kernel's
//! memory is not mapped: neither end can read who made them. Such a call waits here, by
//! address space, until its process makes a call whose caller is known; that caller names
//! it, and it is written then.

use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;

use super::tracer::Finished;
use crate::mem::paging::KPTI_USER_BIT;

/// The calls waiting to be named, with their address spaces.
#[derive(Debug, Default)]
pub struct Unnamed {
    /// Whether any call waits: the check every followed call makes.
    waiting: AtomicBool,
    calls: Mutex<Vec<(u64, Finished)>>,
}

impl Unnamed {
    /// Keeps `done`, made in address space `asid` (user- or kernel-mode root), until a
    /// call of the same address space names it.
    pub fn hold(&self, asid: u64, done: Finished) {
        self.calls.lock().push((asid & !KPTI_USER_BIT, done));
        self.waiting.store(true, Ordering::Release);
    }

    /// The calls waiting in the address space `asid` gives (asked only if any waits),
    /// in the order they completed.
    pub fn take(&self, asid: impl FnOnce() -> u64) -> Vec<Finished> {
        if !self.waiting.load(Ordering::Acquire) {
            return Vec::new();
        }
        let key = asid() & !KPTI_USER_BIT;
        let mut calls = self.calls.lock();
        let (mine, others): (Vec<_>, Vec<_>) = calls.drain(..).partition(|(k, _)| *k == key);
        *calls = others;
        self.waiting.store(!calls.is_empty(), Ordering::Release);
        mine.into_iter().map(|(_, done)| done).collect()
    }

    /// Every call still waiting (the run ends: they stay unnamed).
    pub fn drain(&self) -> Vec<Finished> {
        self.waiting.store(false, Ordering::Release);
        self.calls.lock().drain(..).map(|(_, done)| done).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::tracer::ThreadKey;
    use crate::syscalls::{Abi, Completed, Outcome, RawCall, ThreadInfo};

    fn finished(nr: u64) -> Finished {
        let call = RawCall {
            abi: Abi::I386Int80,
            nr,
            args: [0; 6],
            pc: 0x1000,
            return_pc: 0x1002,
            sp: 0,
            arg6_fault: false,
        };
        Finished {
            done: Completed {
                thread: ThreadKey::Task(0),
                call,
                payload: (),
                outcome: Outcome::Returned(0),
            },
            thread: ThreadInfo::default(),
            record: None,
        }
    }

    #[test]
    fn a_call_waits_for_its_address_space_from_either_mode() {
        let unnamed = Unnamed::default();
        let mut asked = 0;
        assert!(
            unnamed
                .take(|| {
                    asked += 1;
                    0
                })
                .is_empty()
        );
        assert_eq!(asked, 0, "nothing waits: the address space is not read");
        unnamed.hold(0x5000 | KPTI_USER_BIT, finished(45));
        unnamed.hold(0x9000, finished(46));
        assert!(unnamed.take(|| 0x7000).is_empty());
        let named = unnamed.take(|| 0x5000);
        assert_eq!(named.len(), 1);
        assert_eq!(named[0].done.call.nr, 45);
        assert_eq!(unnamed.drain().len(), 1);
        assert!(unnamed.take(|| 0x9000).is_empty());
    }
}
