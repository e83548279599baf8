//! The Linux walkers (processes, threads, modules, mappings, files, the fit check) over
//! hostile guest memory: the input is the memory, placed at the checked-in amd64 6.1
//! group's `init_task`, either alone (other addresses fault) or repeated over the whole
//! address space (every wild pointer reads something: cycles, huge counts).
//!
//! Each query reads through its own [`Budgeted`] memory of [`QUERY_BUDGET`] bytes, far less
//! than the walkers' own bounds (4 MiB per listing of files or mappings): over repeated
//! memory nearly every walk runs into a bound, and at the walkers' own size one input took
//! a tenth of a second, most of it the same reads again. A query that meets this budget
//! sees a fault, as it would at an unmapped page.
#![cfg_attr(feature = "libfuzzer", no_main)]
use std::sync::LazyLock;

use vmi::config::{KernelInfo, KeyFile};
use vmi::linux::{KernelContext, Linux};
use vmi::mem::{Budgeted, Fault, GuestMemory};
use vmi::osi::{Introspect, ProcessHandle};
use vmi_fuzz::fuzz_target;

/// Guest bytes one query may read.
const QUERY_BUDGET: usize = 64 << 10;

static INFO: LazyLock<KernelInfo> = LazyLock::new(|| {
    let text = include_str!("../../kernelinfo/amd64-6.1.conf");
    let file = KeyFile::parse(text, std::path::Path::new("amd64-6.1.conf"))
        .expect("the checked-in amd64-6.1.conf parses");
    let group = file.groups().remove(0);
    KernelInfo::from_keyfile(&file, &group).expect("the checked-in amd64-6.1 group loads")
});

struct Mem<'a> {
    base: u64,
    bytes: &'a [u8],
    wrap: bool,
}

impl GuestMemory for Mem<'_> {
    fn read(&self, va: u64, buf: &mut [u8]) -> Result<(), Fault> {
        let fault = Fault { va, len: buf.len() };
        let len = self.bytes.len() as u64;
        if len == 0 {
            return Err(fault);
        }
        let at = va.wrapping_sub(self.base);
        if !self.wrap {
            let end = at.checked_add(buf.len() as u64).filter(|&e| e <= len);
            return match end {
                Some(end) => {
                    buf.copy_from_slice(&self.bytes[at as usize..end as usize]);
                    Ok(())
                }
                None => Err(fault),
            };
        }
        // Repeated over the address space: copy whole runs of the input at a time.
        let mut pos = (at % len) as usize;
        let mut done = 0;
        while done < buf.len() {
            let n = (self.bytes.len() - pos).min(buf.len() - done);
            buf[done..done + n].copy_from_slice(&self.bytes[pos..pos + n]);
            done += n;
            pos = 0;
        }
        Ok(())
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, bytes)) = data.split_first() else {
        return;
    };
    let info = &*INFO;
    let mem = Mem {
        base: info.task.init_addr,
        bytes,
        wrap: mode & 1 == 1,
    };
    let ctx = KernelContext::x86_64(0xffff_8880_0000_0000);
    // One query, through memory of its own budget.
    let query = |f: &dyn Fn(&Linux<'_>)| {
        let budget = Budgeted::new(&mem, QUERY_BUDGET);
        f(&Linux::new(&budget, info, ctx));
    };
    query(&|l| {
        let _ = vmi::linux::validate::check(l);
    });
    query(&|l| {
        let _ = l.current_process();
    });
    query(&|l| {
        let _ = l.modules();
    });
    let budget = Budgeted::new(&mem, QUERY_BUDGET);
    let processes = Linux::new(&budget, info, ctx).processes();
    if let Ok(list) = processes {
        for p in list.items.iter().take(4) {
            let h = ProcessHandle(p.task);
            query(&|l| {
                let _ = l.threads(h);
            });
            query(&|l| {
                let _ = l.mappings(h);
            });
            query(&|l| {
                let _ = l.fds(h);
            });
        }
    }
});
