//! A file monitor built on vmi: every file each process opens, with the result, one line
//! each (`pid<TAB>comm<TAB>call<TAB>path<TAB>result`) in the file `out=` names.
//!
//! ```text
//! qemu-system-x86_64 ... -plugin target/release/libfilemon.so,conf=kernel.conf,out=opens.tsv
//! ```

use std::fs::File;
use std::io::{BufWriter, Write};
use std::sync::Mutex;

use vmi::api::{Analysis, Build, Built, Ctx, Interest, PluginArgs};
use vmi::args::SyscallFilter;
use vmi::syscalls::{DecodedArg, RawCall, SyscallRecord};

/// The calls that open a file by name.
const OPENS: [&str; 4] = ["open", "openat", "openat2", "creat"];

struct FileMonitor {
    out: Mutex<BufWriter<File>>,
}

impl Analysis for FileMonitor {
    fn name(&self) -> &str {
        "file monitor"
    }

    fn interest(&self) -> Interest {
        // Only these calls are followed and decoded: the others run at full speed.
        Interest {
            returns: SyscallFilter::Names(OPENS.iter().map(|s| s.to_string()).collect()),
            ..Interest::default()
        }
    }

    fn syscall_return(&self, _ctx: &Ctx<'_>, _call: &RawCall, record: &SyscallRecord) {
        // The path was read at entry, before the call could change the caller's memory.
        let path = match record.args.get("filename") {
            Some(DecodedArg::Str { text, .. }) => text,
            _ => "?".to_string(),
        };
        let result = match (record.ret, record.outcome) {
            (Some(ret), _) => ret.to_string(),
            (None, outcome) => outcome.unwrap_or("?").to_string(),
        };
        let t = &record.thread;
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(
            out,
            "{}\t{}\t{}\t{path}\t{result}",
            t.pid,
            &*t.comm,
            record.name.unwrap_or("?")
        );
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
        Ok(vec![Box::new(FileMonitor {
            out: Mutex::new(BufWriter::new(file)),
        })])
    }
}

vmi::export_plugin!(Plugin);
