//! The Linux walkers (processes, threads, modules, mappings, files, the fit check) over
//! hostile guest memory: the input is the memory, placed at the checked-in amd64 6.1
//! group's `init_task`, either alone (other addresses fault) or repeated over the whole
//! address space (every wild pointer reads something: cycles, huge counts).
#![no_main]
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use vmi::config::{KernelInfo, KeyFile};
use vmi::linux::{KernelContext, Linux};
use vmi::mem::{Fault, GuestMemory};
use vmi::osi::{Introspect, ProcessHandle};

static INFO: LazyLock<KernelInfo> = LazyLock::new(|| {
    let text = include_str!("../../kernelinfo/amd64-6.1.conf");
    let file = KeyFile::parse(text, std::path::Path::new("amd64-6.1.conf")).unwrap();
    let group = file.groups().remove(0);
    KernelInfo::from_keyfile(&file, &group).unwrap()
});

struct Mem<'a> {
    base: u64,
    bytes: &'a [u8],
    wrap: bool,
}

impl GuestMemory for Mem<'_> {
    fn read(&self, va: u64, buf: &mut [u8]) -> Result<(), Fault> {
        let fault = Fault { va, len: buf.len() };
        if self.bytes.is_empty() {
            return Err(fault);
        }
        let len = self.bytes.len() as u64;
        for (i, b) in buf.iter_mut().enumerate() {
            let at = va.wrapping_add(i as u64).wrapping_sub(self.base);
            *b = match (self.wrap, at < len) {
                (_, true) => self.bytes[at as usize],
                (true, false) => self.bytes[(at % len) as usize],
                (false, false) => return Err(fault),
            };
        }
        Ok(())
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, bytes)) = data.split_first() else { return };
    let info = &*INFO;
    let mem = Mem {
        base: info.task.init_addr,
        bytes,
        wrap: mode & 1 == 1,
    };
    let linux = Linux::new(&mem, info, KernelContext::x86_64(0xffff_8880_0000_0000));
    let _ = vmi::linux::validate::check(&linux);
    let _ = linux.current_process();
    let _ = linux.modules();
    if let Ok(list) = linux.processes() {
        for p in list.items.iter().take(4) {
            let h = ProcessHandle(p.task);
            let _ = linux.threads(h);
            let _ = linux.mappings(h);
            let _ = linux.fds(h);
        }
    }
});
