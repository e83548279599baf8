//! The library examples of README.md ("Using it as a Rust library"), compiled and run,
//! so that the README cannot drift from the API. Keep the two in sync.

mod common;

use std::sync::{Arc, Mutex};

use common::trial;

use vmi::arch::insn::SyscallInsn;
use vmi::config::KernelInfo;
use vmi::linux::{KernelContext, Linux};
use vmi::mem::{Fault, GuestMemory};
use vmi::osi::Introspect;
use vmi::syscalls::{Abi, HookCtx, Regs, SyscallHooks};

fn main() {
    common::run(vec![
        trial("readme_syscall_hooks", &[], readme_syscall_hooks),
        trial("readme_introspect", &[], readme_introspect),
        trial(
            "readme_shows_these_examples",
            &[],
            readme_shows_these_examples,
        ),
    ]);
}

/// Guest memory from anything that can read it: here one flat range of virtual addresses.
struct Flat {
    base: u64,
    bytes: Vec<u8>,
}

impl GuestMemory for Flat {
    fn read(&self, va: u64, buf: &mut [u8]) -> Result<(), Fault> {
        let fault = Fault { va, len: buf.len() };
        let at = va.checked_sub(self.base).ok_or(fault)? as usize;
        let src = self.bytes.get(at..at + buf.len()).ok_or(fault)?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

fn readme_syscall_hooks() {
    let mut mem = Flat {
        base: 0x1000,
        bytes: vec![0; 0x100],
    };
    mem.bytes[..12].copy_from_slice(b"/etc/passwd\0");

    // --- README: begin hooks
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut hooks = SyscallHooks::new();
    let log = seen.clone();
    hooks
        .on_openat_enter(move |c, dfd, filename, flags, _mode| {
            let path = c.read_str(filename);
            log.lock()
                .unwrap()
                .push(format!("openat({dfd}, {path:?}, {flags:#x})"));
        })
        .on_read_return(|c, fd, _buf, count| println!("read({fd}, {count}) = {:?}", c.ret));

    // Wherever the caller sees a system call instruction execute:
    let regs = Regs {
        rax: 257,              // openat on x86_64
        rdi: (-100i64) as u64, // AT_FDCWD
        rsi: 0x1000,           // "/etc/passwd" in guest memory
        ..Regs::default()
    };
    let abi = Abi::detect(SyscallInsn::Syscall, true).expect("64-bit syscall");
    let call = abi.entry(&regs, &mem);
    hooks.enter(&HookCtx::new(&call, None, None, &mem));
    // --- README: end hooks

    assert_eq!(
        *seen.lock().unwrap(),
        ["openat(-100, Some(\"/etc/passwd\"), 0x0)"]
    );
}

fn readme_introspect() {
    let conf = concat!(env!("CARGO_MANIFEST_DIR"), "/kernelinfo/amd64-6.1.conf");
    let keyfile = vmi::config::KeyFile::load(std::path::Path::new(conf)).unwrap();
    let group = keyfile.groups()[0].clone();
    // Empty memory: the walk fails cleanly instead of producing anything.
    let mem = Flat {
        base: 0,
        bytes: Vec::new(),
    };

    // --- README: begin introspect
    let info = KernelInfo::load(std::path::Path::new(conf), &group).unwrap();
    let linux = Linux::new(&mem, &info, KernelContext::x86_64(0xffff_8880_0000_0000));
    match linux.processes() {
        Ok(list) => {
            for p in &list.items {
                println!("{:>6} {:>6} {}", p.pid, p.ppid, p.comm);
            }
        }
        Err(e) => eprintln!("cannot list processes: {e}"),
    }
    // --- README: end introspect

    assert!(linux.processes().is_err());
}

/// The README shows the blocks between the markers above verbatim.
fn readme_shows_these_examples() {
    let readme = include_str!("../README.md");
    let me = include_str!("docs.rs");
    for name in ["hooks", "introspect"] {
        let begin = format!("// --- README: begin {name}\n");
        let end = format!("    // --- README: end {name}");
        let start = me.find(&begin).unwrap() + begin.len();
        let stop = me[start..].find(&end).unwrap() + start;
        let block: String = me[start..stop]
            .lines()
            .map(|l| l.strip_prefix("    ").unwrap_or(l))
            .collect::<Vec<_>>()
            .join("\n");
        assert!(
            readme.contains(block.trim_end()),
            "README.md lacks the {name} example of tests/docs.rs:\n{block}"
        );
    }
}
