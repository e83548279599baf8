//! A process recorder built on vmi: for each program a process starts (exec), its
//! executable and the libraries it mapped, read from its mappings when it exits. One line
//! each (`pid<TAB>comm<TAB>exe<TAB>lib lib ...`) in the file `out=` names.
//!
//! It uses the process events (which program each process runs) and the queries (the
//! process's mappings, at its `exit_group`: by then the dynamic loader has mapped
//! everything, and the address space is still whole).

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::sync::Mutex;

use vmi::api::{Analysis, Build, Built, Ctx, Interest, PluginArgs};
use vmi::args::SyscallFilter;
use vmi::events::Event;
use vmi::osi::ProcessHandle;
use vmi::syscalls::{RawCall, ThreadInfo};

struct ProcessRecorder {
    /// pid → the program it runs, since its exec.
    programs: Mutex<HashMap<u32, String>>,
    out: Mutex<BufWriter<File>>,
}

impl ProcessRecorder {
    /// The line of the process running in `ctx`: its executable and its libraries.
    fn describe(&self, ctx: &Ctx<'_>, exe: &str) -> Result<String, vmi::api::QueryError> {
        let process = ctx.current_process()?;
        let maps = ctx.mappings(ProcessHandle(process.task))?;
        let mut libs: Vec<String> = Vec::new();
        for path in maps.items.into_iter().filter_map(|m| m.path) {
            if path != exe && !libs.contains(&path) {
                libs.push(path);
            }
        }
        Ok(format!(
            "{}\t{}\t{exe}\t{}",
            process.pid,
            process.comm,
            libs.join(" ")
        ))
    }
}

impl Analysis for ProcessRecorder {
    fn name(&self) -> &str {
        "process recorder"
    }

    fn interest(&self) -> Interest {
        Interest {
            process_events: true,
            entries: SyscallFilter::Names(vec!["exit_group".into()]),
            ..Interest::default()
        }
    }

    fn process_event(&self, _ctx: &Ctx<'_>, event: &Event) {
        if let Event::ProcessExec {
            pid,
            path: Some(path),
            ..
        } = event
        {
            self.programs
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(*pid, path.clone());
        }
    }

    fn syscall_enter(&self, ctx: &Ctx<'_>, _call: &RawCall, thread: &ThreadInfo) {
        let exe = self
            .programs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&thread.pid);
        let Some(exe) = exe else { return };
        let line = self.describe(ctx, &exe).unwrap_or_else(|e| {
            format!(
                "{}\t{}\t{exe}\t(unreadable: {e})",
                thread.pid, &*thread.comm
            )
        });
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(out, "{line}");
    }

    fn run_end(&self, _: &vmi::output::records::RunEnd) {
        let _ = self.out.lock().unwrap_or_else(|e| e.into_inner()).flush();
    }
}

struct Plugin;

impl Build for Plugin {
    fn build(args: &PluginArgs) -> Built {
        let path = &args.options.out;
        let file = File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(vec![Box::new(ProcessRecorder {
            programs: Mutex::new(HashMap::new()),
            out: Mutex::new(BufWriter::new(file)),
        })])
    }
}

vmi::export_plugin!(Plugin);
