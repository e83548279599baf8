//! The JSON Lines event log as an [`Analysis`]: the first user of the plugin API, and
//! what the default `libvmi.so` runs. It writes what it is handed, in the order it is
//! handed it; `docs/event-log.md` describes the records.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::api::{Analysis, Build, Built, Ctx, Interest, PluginArgs};
use crate::args::{ArgsError, Options, SyscallFilter};
use crate::error::Error;
use crate::events::Event;
use crate::output::records::{self, KernelReady, RunEnd, RunStart, SnapshotRecord};
use crate::output::{JsonlSink, Record};
use crate::syscalls::{RawCall, SyscallRecord};

/// Writes the run to `out=` (see [`Options`]: `syscalls=` and `events=` choose what).
#[derive(Debug)]
pub struct EventLog {
    sink: JsonlSink<SyscallRecord>,
    syscalls: SyscallFilter,
    events: bool,
    /// Records carry their vCPU and instruction count (`icount=on`).
    positions: bool,
    syscall_records: AtomicU64,
    event_records: AtomicU64,
    snapshots: AtomicU64,
}

/// Whether `a` and `b` name one existing file.
fn same_file(a: &std::path::Path, b: &std::path::Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

impl EventLog {
    /// Creates (truncates) the log `options.out` names; refuses to overwrite the
    /// kernelinfo file under another name (a link, `./`).
    pub fn create(options: &Options) -> Result<EventLog, Error> {
        if let Some(conf) = &options.conf
            && same_file(conf, &options.out)
        {
            return Err(ArgsError::OutIsConf(options.out.display().to_string()).into());
        }
        Ok(EventLog {
            sink: JsonlSink::create(&options.out)?,
            syscalls: options.syscalls.clone(),
            events: options.events,
            positions: options.icount,
            syscall_records: AtomicU64::new(0),
            event_records: AtomicU64::new(0),
            snapshots: AtomicU64::new(0),
        })
    }

    /// Writes a record made in `ctx`, with its position when `icount=on`.
    fn write_at<T: serde::Serialize + Send + 'static>(&self, ctx: &Ctx<'_>, record: T) {
        match (self.positions, ctx.vcpu(), ctx.icount()) {
            (true, Some(vcpu), Some(icount)) => self.sink.write(records::Positioned {
                record,
                vcpu,
                icount,
            }),
            _ => self.sink.write(record),
        }
    }
}

impl Analysis for EventLog {
    fn name(&self) -> &str {
        "event log"
    }

    fn interest(&self) -> Interest {
        Interest {
            returns: self.syscalls.clone(),
            process_events: self.events,
            ..Interest::default()
        }
    }

    fn run_start(&self, run: &RunStart) {
        self.sink.write(Record::RunStart(run.clone()));
    }

    fn kernel_ready(&self, ctx: &Ctx<'_>, ready: &KernelReady) {
        self.write_at(ctx, Record::KernelReady(ready.clone()));
    }

    fn syscall_return(&self, ctx: &Ctx<'_>, _call: &RawCall, record: &SyscallRecord) {
        self.syscall_records.fetch_add(1, Ordering::Relaxed);
        // The frequent record waits packed; a positioned one, or one written when the
        // run ended (no vCPU), goes boxed.
        match ctx.vcpu() {
            Some(_) if self.positions => self.write_at(ctx, record.clone()),
            Some(_) => self.sink.write_frequent(record),
            None => self.sink.write(record.clone()),
        }
    }

    fn process_event(&self, ctx: &Ctx<'_>, event: &Event) {
        self.event_records.fetch_add(1, Ordering::Relaxed);
        self.write_at(ctx, event.clone());
    }

    fn snapshot(&self, ctx: &Ctx<'_>, snapshot: &SnapshotRecord) {
        self.snapshots.fetch_add(1, Ordering::Relaxed);
        self.write_at(ctx, Record::Snapshot(snapshot.clone()));
    }

    fn run_end(&self, end: &RunEnd) {
        let end = RunEnd {
            snapshots: self.snapshots.load(Ordering::Relaxed),
            syscall_records: self.syscall_records.load(Ordering::Relaxed),
            event_records: self.event_records.load(Ordering::Relaxed),
            dropped_records: self.sink.dropped(),
            ..end.clone()
        };
        self.sink.write(Record::RunEnd(end));
        self.sink.close();
    }
}

/// The default plugin, `libvmi.so`: the event log alone.
#[derive(Debug)]
pub struct LogPlugin;

impl Build for LogPlugin {
    fn build(args: &PluginArgs) -> Built {
        let log = EventLog::create(&args.options).map_err(|e| e.to_string())?;
        Ok(vec![Box::new(log)])
    }
}
