//! Hands the engine's callbacks to every analysis that asked for them, each guarded: a
//! panicking analysis is switched off and named, the others and the guest go on.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};

use super::{Analysis, Ctx, Interest};
use crate::args::SyscallFilter;
use crate::events::Event;
use crate::output::records::{KernelReady, RunEnd, RunStart, SnapshotRecord};
use crate::syscalls::{RawCall, SyscallRecord, ThreadInfo};

/// One analysis with what it asked for.
struct Consumer {
    analysis: Box<dyn Analysis>,
    interest: Interest,
    /// Set when one of its callbacks panicked.
    off: AtomicBool,
}

/// Every analysis of the run, in the order they were added, and the union of what they
/// want: what the engine follows.
pub struct Consumers {
    list: Vec<Consumer>,
    union: Interest,
}

impl std::fmt::Debug for Consumers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.list.iter().map(|c| c.analysis.name()).collect();
        f.debug_struct("Consumers")
            .field("analyses", &names)
            .field("union", &self.union)
            .finish()
    }
}

/// The calls either filter selects.
fn either(a: &SyscallFilter, b: &SyscallFilter) -> SyscallFilter {
    match (a, b) {
        (SyscallFilter::All, _) | (_, SyscallFilter::All) => SyscallFilter::All,
        (SyscallFilter::None, x) | (x, SyscallFilter::None) => x.clone(),
        (SyscallFilter::Names(x), SyscallFilter::Names(y)) => {
            let mut names = x.clone();
            names.extend(y.iter().filter(|n| !x.contains(n)).cloned());
            SyscallFilter::Names(names)
        }
    }
}

impl Consumers {
    /// The analyses of a run; each one's interest is asked once, here.
    pub fn new(analyses: Vec<Box<dyn Analysis>>) -> Consumers {
        let mut union = Interest::default();
        let list = analyses
            .into_iter()
            .map(|analysis| {
                let interest = analysis.interest();
                union = Interest {
                    returns: either(&union.returns, &interest.returns),
                    entries: either(&union.entries, &interest.entries),
                    process_events: union.process_events || interest.process_events,
                    task_changes: union.task_changes || interest.task_changes,
                };
                Consumer {
                    analysis,
                    interest,
                    off: AtomicBool::new(false),
                }
            })
            .collect();
        Consumers { list, union }
    }

    /// What at least one analysis wants.
    pub fn union(&self) -> &Interest {
        &self.union
    }

    /// Runs `f` on every analysis `wants` selects that is still on.
    #[inline]
    fn each(&self, what: &str, wants: impl Fn(&Interest) -> bool, f: impl Fn(&dyn Analysis)) {
        for c in &self.list {
            if wants(&c.interest) && !c.off.load(Ordering::Relaxed) {
                let a = &*c.analysis;
                if catch_unwind(AssertUnwindSafe(|| f(a))).is_err() {
                    c.off.store(true, Ordering::Relaxed);
                    log::error!(
                        "analysis '{}' panicked in {what}: it is switched off, the guest runs on",
                        a.name()
                    );
                }
            }
        }
    }

    /// See [`Analysis::run_start`].
    pub fn run_start(&self, run: &RunStart) {
        self.each("run_start", |_| true, |a| a.run_start(run));
    }

    /// See [`Analysis::kernel_ready`].
    pub fn kernel_ready(&self, ctx: &Ctx<'_>, ready: &KernelReady) {
        self.each("kernel_ready", |_| true, |a| a.kernel_ready(ctx, ready));
    }

    /// Whether some analysis wants the entry of calls named `name`.
    #[inline]
    pub fn wants_entry(&self, name: Option<&str>) -> bool {
        self.union.entries.logs(name)
    }

    /// See [`Analysis::syscall_enter`].
    pub fn syscall_enter(&self, ctx: &Ctx<'_>, call: &RawCall, thread: &ThreadInfo) {
        let name = call.name();
        self.each(
            "syscall_enter",
            |i| i.entries.logs(name),
            |a| a.syscall_enter(ctx, call, thread),
        );
    }

    /// See [`Analysis::syscall_return`].
    pub fn syscall_return(&self, ctx: &Ctx<'_>, call: &RawCall, record: &SyscallRecord) {
        self.each(
            "syscall_return",
            |i| i.returns.logs(record.name),
            |a| a.syscall_return(ctx, call, record),
        );
    }

    /// See [`Analysis::process_event`].
    pub fn process_event(&self, ctx: &Ctx<'_>, event: &Event) {
        self.each(
            "process_event",
            |i| i.process_events,
            |a| a.process_event(ctx, event),
        );
    }

    /// See [`Analysis::task_change`].
    pub fn task_change(&self, ctx: &Ctx<'_>, old: u64, new: u64) {
        self.each(
            "task_change",
            |i| i.task_changes,
            |a| a.task_change(ctx, old, new),
        );
    }

    /// See [`Analysis::snapshot`].
    pub fn snapshot(&self, ctx: &Ctx<'_>, snapshot: &SnapshotRecord) {
        self.each("snapshot", |_| true, |a| a.snapshot(ctx, snapshot));
    }

    /// See [`Analysis::run_end`].
    pub fn run_end(&self, end: &RunEnd) {
        self.each("run_end", |_| true, |a| a.run_end(end));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Wants(Interest);
    impl Analysis for Wants {
        fn name(&self) -> &str {
            "wants"
        }
        fn interest(&self) -> Interest {
            self.0.clone()
        }
    }

    #[test]
    fn the_union_is_what_anyone_wants() {
        let names = |n: &[&str]| SyscallFilter::Names(n.iter().map(|s| s.to_string()).collect());
        let c = Consumers::new(vec![
            Box::new(Wants(Interest {
                returns: names(&["openat"]),
                ..Interest::default()
            })),
            Box::new(Wants(Interest {
                returns: names(&["openat", "read"]),
                entries: names(&["execve"]),
                process_events: true,
                ..Interest::default()
            })),
        ]);
        assert_eq!(c.union().returns, names(&["openat", "read"]));
        assert_eq!(c.union().entries, names(&["execve"]));
        assert!(c.union().process_events && !c.union().task_changes);
        assert!(c.wants_entry(Some("execve")) && !c.wants_entry(Some("openat")));
        let none = Consumers::new(vec![]);
        assert_eq!(none.union(), &Interest::default());
        assert_eq!(
            either(&SyscallFilter::All, &names(&["read"])),
            SyscallFilter::All
        );
    }

    struct Panics(std::sync::Arc<std::sync::atomic::AtomicU32>);
    impl Analysis for Panics {
        fn name(&self) -> &str {
            "panics"
        }
        fn run_end(&self, _: &RunEnd) {
            self.0.fetch_add(1, Ordering::Relaxed);
            panic!("on purpose");
        }
    }

    #[test]
    fn a_panicking_analysis_is_switched_off() {
        let calls = std::sync::Arc::default();
        let c = Consumers::new(vec![Box::new(Panics(std::sync::Arc::clone(&calls)))]);
        let end = RunEnd::default();
        c.run_end(&end);
        c.run_end(&end);
        let Consumer { analysis, off, .. } = &c.list[0];
        assert!(off.load(Ordering::Relaxed), "{:?}", analysis.name());
        // Switched off after its first panic: not called again.
        assert_eq!(calls.load(Ordering::Relaxed), 1);
    }
}
