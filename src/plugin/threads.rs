//! Who a `task_struct` is — pid, tid, comm — remembered between system calls, so that a
//! call costs one kernel read (the current task pointer) instead of four.
//!
//! An entry is right until its task changes name or its `task_struct` is freed and
//! reused. Both are seen as system calls, and the entry is dropped at their entry:
//!
//! | call                               | why                                   | drops        |
//! |------------------------------------|---------------------------------------|--------------|
//! | `execve`, `execveat`               | a new image renames the task          | the caller   |
//! | `prctl`                            | `PR_SET_NAME` renames it              | the caller   |
//! | `exit`, `exit_group`               | the task is going away                | the caller   |
//! | `clone`, `clone3`, `fork`, `vfork` | the new task may reuse a freed struct | every entry  |
//!
//! Not seen, so not covered: a name written to `/proc/<pid>/comm`, and a user process
//! the kernel starts itself (a usermode helper) in the struct of a process that was
//! killed (no `exit` call) since the last `clone` anywhere; such a process shows the old
//! pid and name until the next `clone`.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use rustc_hash::FxHashMap;

use crate::syscalls::{Effects, ThreadInfo};

/// Entries kept at most; past that the cache starts afresh (dead tasks' entries would
/// otherwise pile up in a long fork-heavy run).
const MAX_ENTRIES: usize = 4096;

/// What a call does to the cache at its entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Invalidates {
    Nothing,
    Caller,
    Everything,
}

/// A new task may share or copy anything; an exec, a rename or an exit changes only
/// what is known of the caller.
fn invalidates(effects: Effects) -> Invalidates {
    let caller = Effects::EXEC.with(Effects::RENAME).with(Effects::EXITS);
    if effects.any(Effects::SPAWN) {
        Invalidates::Everything
    } else if effects.any(caller) {
        Invalidates::Caller
    } else {
        Invalidates::Nothing
    }
}

/// Whether a call with `effects` leaves what is known of its caller (and of every other
/// thread) as it is.
pub(super) fn keeps_threads(effects: Effects) -> bool {
    invalidates(effects) == Invalidates::Nothing
}

/// The last answer [`ThreadCache::get`] gave on this thread: which cache, at which
/// [`ThreadCache::changes`], for which task, and what.
type Last = (u64, u64, u64, ThreadInfo);

thread_local! {
    /// Most calls come from the thread that made the previous call on the same vCPU, so
    /// the last answer, while the cache has not changed, saves the shared lock and the
    /// lookup (a tenth of a traced call's own cost).
    static LAST: Cell<Option<Last>> = const { Cell::new(None) };
}

/// A number no other caller gets: tells instances apart in thread-local memos such as
/// [`LAST`] (tests make several instances on one thread).
pub(super) fn instance_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Thread identities by `task_struct` address. Shared by all vCPUs.
#[derive(Debug)]
pub struct ThreadCache {
    map: Mutex<FxHashMap<u64, ThreadInfo>>,
    /// Counts changes to `map`, made after each one: an answer remembered under an
    /// older count may be stale.
    changes: AtomicU64,
    id: u64,
}

impl Default for ThreadCache {
    fn default() -> Self {
        ThreadCache {
            map: Mutex::default(),
            changes: AtomicU64::new(0),
            id: instance_id(),
        }
    }
}

impl ThreadCache {
    /// What is known of `task`.
    pub fn get(&self, task: u64) -> Option<ThreadInfo> {
        // Read before the lookup: a change made during it counts as newer.
        let changes = self.changes.load(Ordering::Acquire);
        if let Some((id, at, t, info)) = LAST.get()
            && (id, at, t) == (self.id, changes, task)
        {
            return Some(info);
        }
        let info = self.map.lock().get(&task).copied();
        if let Some(info) = info {
            LAST.set(Some((self.id, changes, task, info)));
        }
        info
    }

    /// Whether `task` is known.
    pub fn contains(&self, task: u64) -> bool {
        self.get(task).is_some()
    }

    /// Remembers what was read of `task`.
    pub fn insert(&self, task: u64, info: ThreadInfo) {
        self.change(|map| {
            if map.len() >= MAX_ENTRIES {
                map.clear();
            }
            map.insert(task, info);
        });
    }

    /// `task` enters a system call with `effects`: forgets what the call may make wrong.
    pub fn entering(&self, task: u64, effects: Effects) {
        match invalidates(effects) {
            Invalidates::Nothing => {}
            Invalidates::Caller => self.change(|map| {
                map.remove(&task);
            }),
            Invalidates::Everything => self.change(FxHashMap::clear),
        }
    }

    /// Changes the map, then counts the change.
    fn change(&self, f: impl FnOnce(&mut FxHashMap<u64, ThreadInfo>)) {
        let mut map = self.map.lock();
        f(&mut map);
        self.changes.fetch_add(1, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(tid: u32, comm: &str) -> ThreadInfo {
        ThreadInfo {
            pid: tid,
            tid,
            comm: comm.into(),
        }
    }

    #[test]
    fn renaming_and_new_tasks_drop_entries() {
        let cache = ThreadCache::default();
        cache.insert(0x1000, info(1, "init"));
        cache.insert(0x2000, info(2, "sh"));
        cache.entering(0x1000, Effects::of_name("getppid"));
        assert_eq!(cache.get(0x1000), Some(info(1, "init")));
        cache.entering(0x1000, Effects::of_name("execve"));
        assert_eq!(cache.get(0x1000), None, "exec renames the caller");
        assert_eq!(cache.get(0x2000), Some(info(2, "sh")), "others stay");
        cache.entering(0x2000, Effects::of_name("prctl"));
        assert_eq!(cache.get(0x2000), None);
        cache.insert(0x2000, info(2, "sh"));
        cache.insert(0x3000, info(3, "x"));
        cache.entering(0x2000, Effects::of_name("clone"));
        assert_eq!(
            cache.get(0x3000),
            None,
            "a new task may reuse any freed struct"
        );
    }

    #[test]
    fn stays_bounded() {
        let cache = ThreadCache::default();
        for t in 0..(MAX_ENTRIES as u64 + 10) {
            cache.insert(t, info(t as u32, "t"));
        }
        assert!(cache.map.lock().len() <= MAX_ENTRIES);
        assert!(cache.get(MAX_ENTRIES as u64 + 9).is_some());
    }

    #[test]
    fn a_remembered_answer_goes_with_any_change() {
        let (a, b) = (ThreadCache::default(), ThreadCache::default());
        a.insert(0x1000, info(1, "init"));
        b.insert(0x1000, info(2, "sh"));
        // Asked in turn on one thread, each cache answers for itself.
        assert_eq!(a.get(0x1000), Some(info(1, "init")));
        assert_eq!(b.get(0x1000), Some(info(2, "sh")));
        assert_eq!(a.get(0x1000), Some(info(1, "init")));
        a.entering(0x1000, Effects::of_name("prctl"));
        assert_eq!(a.get(0x1000), None, "dropped after it was remembered");
        a.insert(0x1000, info(1, "renamed"));
        assert_eq!(a.get(0x1000), Some(info(1, "renamed")));
        a.entering(0x2000, Effects::of_name("clone"));
        assert!(!a.contains(0x1000));
    }
}
