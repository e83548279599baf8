//! The smallest plugin on vmi, with the typed hooks generated per system call: counts the
//! `openat` calls of the run at their entry, and those whose path is absolute, and writes
//! both to the file `out=` names when QEMU exits. Only `openat` is looked at, and only at
//! entry: no call is decoded or followed to its return for it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use vmi::api::{Analysis, Build, Built, PluginArgs};
use vmi::output::records::RunEnd;
use vmi::syscalls::SyscallHooks;

#[derive(Default)]
struct Counts {
    calls: AtomicU64,
    absolute: AtomicU64,
}

/// Writes the counts at the end of the run.
struct Report {
    counts: Arc<Counts>,
    out: std::path::PathBuf,
}

impl Analysis for Report {
    fn name(&self) -> &str {
        "openat counter"
    }

    fn run_end(&self, _: &RunEnd) {
        let calls = self.counts.calls.load(Ordering::Relaxed);
        let absolute = self.counts.absolute.load(Ordering::Relaxed);
        let _ = std::fs::write(&self.out, format!("openat {calls} absolute {absolute}\n"));
    }
}

struct Plugin;

impl Build for Plugin {
    fn build(args: &PluginArgs) -> Built {
        let counts = Arc::new(Counts::default());
        let mut hooks = SyscallHooks::new();
        let c = Arc::clone(&counts);
        hooks.on_openat_enter(move |ctx, _dfd, filename, _flags, _mode| {
            c.calls.fetch_add(1, Ordering::Relaxed);
            // The caller's memory, as it is at entry.
            let mut first = [0u8; 1];
            if ctx.mem.read(filename, &mut first).is_ok() && first[0] == b'/' {
                c.absolute.fetch_add(1, Ordering::Relaxed);
            }
        });
        let report = Report {
            counts,
            out: args.options.out.clone(),
        };
        Ok(vec![Box::new(hooks), Box::new(report)])
    }
}

vmi::export_plugin!(Plugin);
