//! Without `conf=`: the running kernel's kernelinfo, built from its own memory
//! ([`crate::generate::memory`]) at the first kernel block QEMU translates, so that
//! introspection needs no argument on a kernel with BTF.
//!
//! The first kernel block runs early in boot, before the scheduler first switches tasks:
//! the kernel found then is followed exactly as one given with `conf=` (its `__switch_to`
//! is instrumented when first translated). The group found is written beside the log, so
//! that later runs and replays can pass it as `conf=`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Instant;

use parking_lot::Mutex;

use super::kernel::KernelView;
use crate::arch::Arch;
use crate::generate::memory::{self, FromMemoryError, Target};
use crate::mem::GuestMemory;

/// Kernel blocks from which the search is tried while the kernel is not readable from
/// them (page tables without the kernel's data), before giving up.
const ATTEMPTS: u32 = 256;

/// The search for the kernel's description in its memory; one per run without `conf=`.
#[derive(Debug)]
pub(super) struct Discovery {
    /// Where the group found is written: `<out>.kernelinfo.conf`.
    file: PathBuf,
    /// Held while one vCPU searches; the others go on.
    busy: Mutex<()>,
    attempts_left: AtomicU32,
    /// Found, or given up (said once).
    finished: AtomicBool,
    /// Whether the file was written.
    written: AtomicBool,
}

/// What the search needs to know of the guest's architecture.
fn target(arch: Arch) -> Target {
    // Debian (and the kernel's defaults) link x86 kernels 16 MiB above the start of the
    // kernel map (`CONFIG_PHYSICAL_START`).
    match arch {
        Arch::X86_64 => Target {
            bits: 64,
            machine: "x86_64",
            link_text: &[0xffff_ffff_8100_0000],
        },
        Arch::I386 => Target {
            bits: 32,
            machine: "i686",
            link_text: &[0xc100_0000],
        },
        // KIMAGE_VADDR with 48-bit virtual addresses: above a 128 MiB module area
        // (through 6.4), a 2 GiB one (6.5 on).
        Arch::Aarch64 => Target {
            bits: 64,
            machine: "aarch64",
            link_text: &[0xffff_8000_0800_0000, 0xffff_8000_8000_0000],
        },
        // 32-bit ARM: PAGE_OFFSET (3G/1G) plus TEXT_OFFSET, 0x8000 or, with some
        // platforms built in (Debian's armmp-lpae), 0x208000. No KASLR.
        Arch::Arm => Target {
            bits: 32,
            machine: "armv7l",
            link_text: &[0xc000_8000, 0xc020_8000],
        },
    }
}

impl Discovery {
    /// A search whose result is written beside the log `out`.
    pub(super) fn new(out: &Path) -> Discovery {
        let mut file = out.as_os_str().to_owned();
        file.push(".kernelinfo.conf");
        Discovery {
            file: PathBuf::from(file),
            busy: Mutex::new(()),
            attempts_left: AtomicU32::new(ATTEMPTS),
            finished: AtomicBool::new(false),
            written: AtomicBool::new(false),
        }
    }

    /// Whether the search still runs.
    pub(super) fn pending(&self) -> bool {
        !self.finished.load(Ordering::Relaxed)
    }

    /// The name of the file the group was written to (beside the log), once written.
    pub(super) fn file_name(&self) -> Option<String> {
        if !self.written.load(Ordering::Relaxed) {
            return None;
        }
        Some(self.file.file_name()?.to_string_lossy().into_owned())
    }

    /// Searches from kernel text address `va`, reading `mem`: the kernel's view once
    /// found. Gives up with one line when the kernel cannot be described (no BTF, no
    /// kallsyms) or stays unreadable.
    #[cold]
    #[inline(never)]
    pub(super) fn attempt(&self, arch: Arch, va: u64, mem: &dyn GuestMemory) -> Option<KernelView> {
        let _busy = self.busy.try_lock()?;
        if !self.pending() {
            return None;
        }
        let target = target(arch);
        let started = Instant::now();
        let found = match memory::from_memory(mem, va, target) {
            Ok(found) => found,
            Err(FromMemoryError::Unreadable { from, read }) => {
                log::debug!("kernel search from {from:#x}: only {read} bytes readable");
                if self.attempts_left.fetch_sub(1, Ordering::Relaxed) == 1 {
                    self.give_up(&format!(
                        "the kernel's memory stayed unreadable from the {ATTEMPTS} places tried"
                    ));
                }
                return None;
            }
            Err(e @ FromMemoryError::NoBtf { .. }) => {
                self.give_up(&format!(
                    "{e}: make a kernelinfo from the kernel's debug information with 'vmi kernelinfo --dwarf <the -dbg package's vmlinux> --symbols <the same vmlinux> <kernel image>' and pass it as conf="
                ));
                return None;
            }
            Err(e @ FromMemoryError::NoDataSymbols { .. }) => {
                self.give_up(&format!(
                    "{e}: the kernel's addresses must come from its System.map or -dbg vmlinux ('vmi kernelinfo <image> --symbols <System.map>', x86 images)"
                ));
                return None;
            }
            Err(e) => {
                self.give_up(&format!(
                    "{e}: make a kernelinfo with 'vmi kernelinfo <kernel image>' and pass it as conf="
                ));
                return None;
            }
        };
        self.finished.store(true, Ordering::Relaxed);
        let took = started.elapsed();
        let group = found.generated.group.clone();
        let text = format!(
            "# generated by vmi {} from the guest kernel's memory\n{}",
            crate::VERSION,
            found.generated.to_keyfile()
        );
        match std::fs::write(&self.file, text) {
            Ok(()) => self.written.store(true, Ordering::Relaxed),
            Err(e) => log::warn!(
                "cannot write the kernelinfo found to {}: {e}; introspection goes on",
                self.file.display()
            ),
        }
        log::info!(
            "kernelinfo [{group}] built from the guest's memory in {} ms: {} symbols, {} bytes of BTF, {} bytes read from {va:#x}, KASLR slide {:#x}; written to {}",
            took.as_millis(),
            found.symbols,
            found.btf_len,
            found.read,
            found.slide,
            self.file.display()
        );
        Some(KernelView::found(
            found.generated.info,
            group,
            arch,
            found.slide,
        ))
    }

    /// Ends the search, saying why in one line.
    fn give_up(&self, why: &str) {
        if !self.finished.swap(true, Ordering::Relaxed) {
            log::warn!(
                "no conf= and the guest kernel cannot be described from its memory: {why}; introspection is off (system calls are logged with number and name)"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mem::{Fault, NoMemory};

    /// Kernel text that reads as `nop`s for 2 MiB: readable, but no kernel in it.
    struct Nops;

    impl GuestMemory for Nops {
        fn read(&self, va: u64, buf: &mut [u8]) -> Result<(), Fault> {
            let base = 0xffff_ffff_8100_0000u64;
            if va < base || va + buf.len() as u64 > base + (2 << 20) {
                return Err(Fault { va, len: buf.len() });
            }
            buf.fill(0x90);
            Ok(())
        }
    }

    fn discovery() -> Discovery {
        Discovery::new(&std::env::temp_dir().join("vmi-discovery-test.jsonl"))
    }

    #[test]
    fn unreadable_kernels_are_retried_then_given_up() {
        let d = discovery();
        for _ in 0..ATTEMPTS - 1 {
            assert!(
                d.attempt(Arch::X86_64, 0xffff_ffff_8100_0000, &NoMemory)
                    .is_none()
            );
            assert!(d.pending(), "still trying");
        }
        assert!(
            d.attempt(Arch::X86_64, 0xffff_ffff_8100_0000, &NoMemory)
                .is_none()
        );
        assert!(!d.pending(), "given up after {ATTEMPTS} places");
        assert_eq!(d.file_name(), None);
    }

    #[test]
    fn a_readable_kernel_without_tables_ends_the_search_at_once() {
        let d = discovery();
        assert!(
            d.attempt(Arch::X86_64, 0xffff_ffff_8100_1000, &Nops)
                .is_none()
        );
        assert!(!d.pending());
        assert_eq!(d.file_name(), None, "nothing written");
    }
}
