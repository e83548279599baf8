//! The OS-agnostic view of a guest (PANDA's `osi` layer): plain owned data types and the
//! [`Introspect`] trait that an OS provider (for now [`crate::linux`]) implements.
//!
//! Why owned data: a provider reads guest memory only while a vCPU callback runs, and the
//! results outlive it (they are compared between callbacks and logged), so nothing here
//! borrows guest memory.
//!
//! Why [`Listing`]: the guest changes under us (we read without its locks) and its
//! structures may be corrupt or half-written. A walk that meets a fault, a cycle or its
//! bound stops there and still returns what it read, flagged [`Listing::incomplete`], so
//! that callers can use a partial process list instead of nothing, and know it is partial.

use serde::Serialize;

/// A process (a thread group), identified in the guest by its leader's `task_struct`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Process {
    /// Process id (`task->tgid`).
    pub pid: u32,
    /// Parent's process id (`task->real_parent->tgid`); 0 if unknown.
    pub ppid: u32,
    /// Command name (`task->comm`), lossily decoded.
    pub comm: String,
    /// Guest address of the leader's `task_struct`: the handle for further queries.
    pub task: u64,
    /// Physical address of the page-table root (`__pa(task->mm->pgd)`); `None` for kernel
    /// threads, which have no `mm`.
    pub asid: Option<u64>,
    /// Start time, ns since boot (`task->start_time`), if the kernelinfo has its offset.
    pub start_time: Option<u64>,
    /// Real user id (`task->real_cred->uid`).
    pub uid: Option<u32>,
    /// Real group id.
    pub gid: Option<u32>,
    /// Effective user id.
    pub euid: Option<u32>,
    /// Effective group id.
    pub egid: Option<u32>,
    /// A kernel thread (`PF_KTHREAD`, or no `mm` when the flags are not described).
    pub kernel_thread: bool,
    /// Command line (`mm->arg_start..arg_end`, user memory); `None` when it cannot be read
    /// safely (another address space is live, or the pages are not present).
    pub argv: Option<Vec<String>>,
    /// `mm->brk` (0 without `mm`).
    pub brk: u64,
    /// `mm->start_brk` (0 without `mm`).
    pub start_brk: u64,
    /// Thread ids of the group, leader first; may be partial (see [`Introspect::threads`]).
    pub threads: Vec<u32>,
    /// The program it runs (`mm->exe_file`, as `/proc/<pid>/exe`); `None` for kernel
    /// threads or when the kernelinfo lacks `mm.exe_file_offset`.
    pub exe: Option<String>,
}

/// A thread: a `task_struct`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Thread {
    /// Process id (`task->tgid`).
    pub pid: u32,
    /// Thread id (`task->pid`).
    pub tid: u32,
}

/// A loaded kernel module, as `/proc/modules` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Module {
    /// `module->name`.
    pub name: String,
    /// Load address (core text base).
    pub base: u64,
    /// Size in bytes, as `/proc/modules` computes it.
    pub size: u64,
}

/// A virtual memory area of a process, as one line of `/proc/<pid>/maps`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mapping {
    /// First address (`vma->vm_start`).
    pub start: u64,
    /// One past the last address (`vma->vm_end`).
    pub end: u64,
    /// `vma->vm_flags` (`VM_READ` = 1, `VM_WRITE` = 2, `VM_EXEC` = 4, `VM_SHARED` = 8).
    pub flags: u64,
    /// Offset in the file, bytes (`vma->vm_pgoff << 12`).
    pub offset: u64,
    /// Path of the mapped file; `None` for anonymous memory or an unreadable path.
    pub path: Option<String>,
}

/// An open file descriptor of a process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileDescriptor {
    /// The descriptor number.
    pub fd: u32,
    /// Path of the open file; `None` if it cannot be reconstructed.
    pub path: Option<String>,
    /// Current position (`file->f_pos`).
    pub position: u64,
}

/// Identifies a process to a provider: the guest address of its leader's `task_struct`
/// ([`Process::task`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct ProcessHandle(pub u64);

/// Why a walk stopped before its natural end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Incomplete {
    /// Guest memory could not be read.
    #[error("cannot read {len} bytes of guest memory at {va:#x}")]
    Fault {
        /// First byte asked for.
        va: u64,
        /// Bytes asked for.
        len: usize,
    },
    /// The walk came back to an element it had already visited (not the list head).
    #[error("cycle: element {at:#x} seen twice")]
    Cycle {
        /// The element seen twice.
        at: u64,
    },
    /// The walk reached its bound.
    #[error("stopped after {max} elements")]
    Limit {
        /// The bound.
        max: usize,
    },
    /// A structure holds a value that cannot be right (NULL link, bad node type, ...).
    #[error("corrupt {what} at {at:#x}")]
    Corrupt {
        /// What was being read.
        what: &'static str,
        /// Where.
        at: u64,
    },
}

impl From<crate::mem::Fault> for Incomplete {
    fn from(f: crate::mem::Fault) -> Self {
        Incomplete::Fault {
            va: f.va,
            len: f.len,
        }
    }
}

/// The result of a walk: the items read, and why the walk stopped early if it did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Listing<T> {
    /// Items in guest order.
    pub items: Vec<T>,
    /// `None` when the walk reached its natural end; otherwise `items` is a prefix.
    pub incomplete: Option<Incomplete>,
}

impl<T> Listing<T> {
    /// A complete listing.
    pub fn complete(items: Vec<T>) -> Self {
        Listing {
            items,
            incomplete: None,
        }
    }

    /// Reads something for each item with `f`; a guest-memory fault ends the listing there,
    /// flagged, as a fault in the walk itself would (other errors are errors).
    pub fn try_map<U>(
        self,
        mut f: impl FnMut(T) -> Result<U, OsiError>,
    ) -> Result<Listing<U>, OsiError> {
        let mut items = Vec::with_capacity(self.items.len());
        for item in self.items {
            match f(item) {
                Ok(u) => items.push(u),
                Err(OsiError::Fault(fault)) => {
                    return Ok(Listing {
                        items,
                        incomplete: Some(fault.into()),
                    });
                }
                Err(e) => return Err(e),
            }
        }
        Ok(Listing {
            items,
            incomplete: self.incomplete,
        })
    }

    /// Whether the walk reached its natural end.
    pub fn is_complete(&self) -> bool {
        self.incomplete.is_none()
    }

    /// Maps the items, keeping the completeness flag.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Listing<U> {
        Listing {
            items: self.items.into_iter().map(f).collect(),
            incomplete: self.incomplete,
        }
    }
}

/// Why a query has no answer at all (a partial answer is a [`Listing`] instead).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OsiError {
    /// Reading the starting point of the query failed.
    #[error(transparent)]
    Fault(#[from] crate::mem::Fault),
    /// The kernel description lacks what this query needs.
    #[error("kernelinfo lacks '{key}', needed to {what}")]
    MissingKey {
        /// The key (as in `docs/kernelinfo.md`).
        key: &'static str,
        /// What it is needed for.
        what: &'static str,
    },
    /// The caller did not supply run-time context this query needs.
    #[error("{0} is not known")]
    MissingContext(&'static str),
    /// The guest holds a value that cannot be right.
    #[error("corrupt {what} at {at:#x}")]
    Corrupt {
        /// What was being read.
        what: &'static str,
        /// Where.
        at: u64,
    },
}

/// Operating-system introspection: what PANDA's `osi` API offers, as one trait.
///
/// An implementation reads guest memory, so it is valid only while the vCPU it reads
/// through is stopped in a callback. Methods returning [`Listing`] walk guest lists and may
/// return a flagged prefix; the others fail with [`OsiError`] when their one object cannot
/// be read.
pub trait Introspect {
    /// All processes (thread-group leaders), starting with the idle task (pid 0).
    fn processes(&self) -> Result<Listing<Process>, OsiError>;
    /// The process the vCPU is running (or, in the kernel, running for).
    fn current_process(&self) -> Result<Process, OsiError>;
    /// The thread the vCPU is running.
    fn current_thread(&self) -> Result<Thread, OsiError>;
    /// One process by handle.
    fn process(&self, handle: ProcessHandle) -> Result<Process, OsiError>;
    /// The threads of a process, leader first.
    fn threads(&self, handle: ProcessHandle) -> Result<Listing<Thread>, OsiError>;
    /// Loaded kernel modules, in the kernel's list order (newest first).
    fn modules(&self) -> Result<Listing<Module>, OsiError>;
    /// Memory mappings of a process, by address; empty for kernel threads.
    fn mappings(&self, handle: ProcessHandle) -> Result<Listing<Mapping>, OsiError>;
    /// Open file descriptors of a process, by number.
    fn fds(&self, handle: ProcessHandle) -> Result<Listing<FileDescriptor>, OsiError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_serializes_with_its_flag() {
        let l = Listing {
            items: vec![Thread { pid: 1, tid: 2 }],
            incomplete: Some(Incomplete::Cycle { at: 0x10 }),
        };
        assert!(!l.is_complete());
        let json = serde_json::to_string(&l).unwrap();
        assert_eq!(
            json,
            r#"{"items":[{"pid":1,"tid":2}],"incomplete":{"kind":"cycle","at":16}}"#
        );
        let m = Listing::complete(vec![1, 2]).map(|x| x * 2);
        assert_eq!(m.items, vec![2, 4]);
        assert!(m.is_complete());
    }
}
