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

use parking_lot::Mutex;
use rustc_hash::FxHashMap;

use crate::syscalls::ThreadInfo;

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

fn invalidates(name: &str) -> Invalidates {
    match name {
        "execve" | "execveat" | "prctl" | "exit" | "exit_group" => Invalidates::Caller,
        "clone" | "clone3" | "fork" | "vfork" => Invalidates::Everything,
        _ => Invalidates::Nothing,
    }
}

/// Thread identities by `task_struct` address. Shared by all vCPUs.
#[derive(Debug, Default)]
pub struct ThreadCache {
    map: Mutex<FxHashMap<u64, ThreadInfo>>,
}

impl ThreadCache {
    /// What is known of `task`.
    pub fn get(&self, task: u64) -> Option<ThreadInfo> {
        self.map.lock().get(&task).cloned()
    }

    /// Whether `task` is known.
    pub fn contains(&self, task: u64) -> bool {
        self.map.lock().contains_key(&task)
    }

    /// Remembers what was read of `task`.
    pub fn insert(&self, task: u64, info: ThreadInfo) {
        let mut map = self.map.lock();
        if map.len() >= MAX_ENTRIES {
            map.clear();
        }
        map.insert(task, info);
    }

    /// `task` enters the system call `name`: forgets what the call may make wrong.
    pub fn entering(&self, task: u64, name: &str) {
        match invalidates(name) {
            Invalidates::Nothing => {}
            Invalidates::Caller => {
                self.map.lock().remove(&task);
            }
            Invalidates::Everything => self.map.lock().clear(),
        }
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
        cache.entering(0x1000, "getppid");
        assert_eq!(cache.get(0x1000), Some(info(1, "init")));
        cache.entering(0x1000, "execve");
        assert_eq!(cache.get(0x1000), None, "exec renames the caller");
        assert_eq!(cache.get(0x2000), Some(info(2, "sh")), "others stay");
        cache.entering(0x2000, "prctl");
        assert_eq!(cache.get(0x2000), None);
        cache.insert(0x2000, info(2, "sh"));
        cache.insert(0x3000, info(3, "x"));
        cache.entering(0x2000, "clone");
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
}
