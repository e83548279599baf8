//! What a system call does besides computing its result, as far as a tracer's bookkeeping
//! depends on it: whether it replaces the image, changes mappings, makes or ends tasks,
//! reaps children, renames its caller, or resumes other code instead of returning.
//!
//! These are facts of the Linux ABI, named here once. The generated tables compute each
//! call's set from its name at compile time ([`Effects::of_name`]), so code that runs on
//! every call tests a bit instead of comparing names.

/// A set of effects (see the constants).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Effects(u16);

impl Effects {
    /// No effect the bookkeeping cares about (most calls).
    pub const NONE: Effects = Effects(0);
    /// Replaces the caller's program when it succeeds: `execve`, `execveat`.
    pub const EXEC: Effects = Effects(1);
    /// Changes the caller's mappings: `mmap`, `munmap`, `mremap`, `shmat`, ... (on i386
    /// also `mmap_pgoff`, `old_mmap`, and `ipc`, which multiplexes `shmat`).
    pub const MAPS: Effects = Effects(1 << 1);
    /// Makes a task: `clone`, `clone3`, `fork`, `vfork`.
    pub const SPAWN: Effects = Effects(1 << 2);
    /// Ends the calling thread: `exit`.
    pub const EXIT_THREAD: Effects = Effects(1 << 3);
    /// Ends the calling process: `exit_group`.
    pub const EXIT_GROUP: Effects = Effects(1 << 4);
    /// Resumes the code a signal interrupted instead of returning: `rt_sigreturn`,
    /// `sigreturn`.
    pub const SIGRETURN: Effects = Effects(1 << 5);
    /// May reap a child: `wait4`, `waitpid`, `waitid`.
    pub const REAP: Effects = Effects(1 << 6);
    /// May rename the caller (`PR_SET_NAME`): `prctl`.
    pub const RENAME: Effects = Effects(1 << 7);
    /// May restart or power off the machine: `reboot`.
    pub const POWER: Effects = Effects(1 << 8);
    /// Ends the calling thread, alone or with its process: `exit`, `exit_group`.
    pub const EXITS: Effects = Effects::EXIT_THREAD.with(Effects::EXIT_GROUP);

    /// Which call names have which effects, in either table.
    const BY_NAME: [(&'static str, Effects); 24] = [
        ("execve", Effects::EXEC),
        ("execveat", Effects::EXEC),
        ("mmap", Effects::MAPS),
        ("mmap_pgoff", Effects::MAPS),
        ("old_mmap", Effects::MAPS),
        ("ipc", Effects::MAPS),
        ("munmap", Effects::MAPS),
        ("mremap", Effects::MAPS),
        ("remap_file_pages", Effects::MAPS),
        ("shmat", Effects::MAPS),
        ("shmdt", Effects::MAPS),
        ("clone", Effects::SPAWN),
        ("clone3", Effects::SPAWN),
        ("fork", Effects::SPAWN),
        ("vfork", Effects::SPAWN),
        ("exit", Effects::EXIT_THREAD),
        ("exit_group", Effects::EXIT_GROUP),
        ("rt_sigreturn", Effects::SIGRETURN),
        ("sigreturn", Effects::SIGRETURN),
        ("wait4", Effects::REAP),
        ("waitpid", Effects::REAP),
        ("waitid", Effects::REAP),
        ("prctl", Effects::RENAME),
        ("reboot", Effects::POWER),
    ];

    /// The effects of the call named `name` (`NONE` for a name not listed). A `const fn`,
    /// so that the generated tables hold the result.
    pub const fn of_name(name: &str) -> Effects {
        let mut i = 0;
        while i < Self::BY_NAME.len() {
            if same(name, Self::BY_NAME[i].0) {
                return Self::BY_NAME[i].1;
            }
            i += 1;
        }
        Effects::NONE
    }

    /// Both sets.
    pub const fn with(self, other: Effects) -> Effects {
        Effects(self.0 | other.0)
    }

    /// Whether the two sets share an effect.
    pub const fn any(self, other: Effects) -> bool {
        self.0 & other.0 != 0
    }

    /// Whether a thread never comes back from the call to the instruction after it: it
    /// ends, or it resumes interrupted code. (A successful exec does not come back
    /// either, but a failed one does.)
    pub const fn never_returns(self) -> bool {
        self.any(Effects::EXITS.with(Effects::SIGRETURN))
    }
}

/// `a == b`, in a `const fn`.
const fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syscalls::Profile;

    #[test]
    fn names_map_to_their_effects() {
        assert_eq!(Effects::of_name("execveat"), Effects::EXEC);
        assert_eq!(Effects::of_name("mmap_pgoff"), Effects::MAPS);
        assert_eq!(Effects::of_name("reboot"), Effects::POWER);
        assert_eq!(Effects::of_name("read"), Effects::NONE);
        assert_eq!(Effects::of_name("exit_grou"), Effects::NONE);
        assert!(Effects::of_name("rt_sigreturn").never_returns());
        assert!(!Effects::of_name("execve").never_returns());
    }

    #[test]
    fn every_listed_name_is_a_call_of_some_table() {
        for (name, effects) in Effects::BY_NAME {
            let info = Profile::ALL.iter().find_map(|p| p.by_name(name));
            assert!(info.is_some(), "{name} is in no table");
            assert_eq!(info.map(|i| i.effects), Some(effects), "{name}");
        }
    }
}
