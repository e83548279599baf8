//! Guest virtual memory through `qemu_plugin_read_memory_vaddr`.
//!
//! QEMU resizes the `GByteArray` it is given with `g_byte_array_set_size`, which uses
//! GLib's private bookkeeping behind the public struct, so the array must be a real one
//! from `g_byte_array_sized_new` (the `qemu-plugin` crate's wrapper builds a fake one on
//! the stack; see the foundation issue). One array per vCPU thread is kept and reused.

use std::cell::RefCell;

use super::api;

use crate::arch::regs::{Reg, Registers};
use crate::cpu::Vcpu;
use crate::mem::{Fault, GuestMemory};

/// An owned GLib byte array, freed on drop.
pub(super) struct ByteArray(pub(super) *mut glib_sys::GByteArray);

impl ByteArray {
    pub(super) fn new() -> ByteArray {
        // SAFETY: plain allocation; GLib aborts on out-of-memory rather than returning NULL.
        ByteArray(unsafe { glib_sys::g_byte_array_sized_new(256) })
    }
}

impl Drop for ByteArray {
    fn drop(&mut self) {
        // SAFETY: the array came from `g_byte_array_sized_new` and is freed once, with
        // its data.
        unsafe {
            glib_sys::g_byte_array_free(self.0, glib_sys::GTRUE);
        }
    }
}

thread_local! {
    /// vCPU threads are long-lived, so one reusable array per thread costs one allocation.
    static SCRATCH: RefCell<ByteArray> = RefCell::new(ByteArray::new());
}

/// The vCPU whose callback is running: its registers and its view of guest memory.
/// Only constructed inside a vCPU callback: QEMU reads through the current vCPU.
pub struct QemuCpu {
    vcpu: u32,
}

impl QemuCpu {
    /// The vCPU `vcpu`, inside one of its callbacks.
    pub fn current(vcpu: u32) -> QemuCpu {
        QemuCpu { vcpu }
    }
}

impl Vcpu for QemuCpu {
    fn index(&self) -> u32 {
        self.vcpu
    }

    fn icount(&self) -> Option<u64> {
        super::icount::read(self.vcpu)
    }

    fn skip_returns(&self, skip: bool) {
        super::gate::set(self.vcpu, skip)
    }
}

impl Registers for QemuCpu {
    fn reg(&self, reg: Reg) -> Option<u64> {
        super::registers::read(reg)
    }

    fn regs(&self, regs: &[Reg], out: &mut [u64]) {
        super::registers::read_many(regs, out)
    }
}

impl GuestMemory for QemuCpu {
    fn read(&self, va: u64, buf: &mut [u8]) -> Result<(), Fault> {
        let fault = Fault { va, len: buf.len() };
        if buf.is_empty() {
            return Ok(());
        }
        SCRATCH.with(|scratch| {
            let array = scratch.borrow();
            // SAFETY: `array.0` is a live GByteArray owned by this thread; QEMU resizes it
            // to `buf.len()` with GLib's own function and fills it.
            let ok = unsafe { api::qemu_plugin_read_memory_vaddr(va, array.0, buf.len()) };
            if !ok {
                return Err(fault);
            }
            // SAFETY: after a successful read the array holds at least `len` valid bytes
            // at `data`; they are copied out before the array is used again.
            unsafe {
                let array = &*array.0;
                if (array.len as usize) < buf.len() || array.data.is_null() {
                    return Err(fault);
                }
                buf.copy_from_slice(std::slice::from_raw_parts(array.data, buf.len()));
            }
            Ok(())
        })
    }
}

/// Bytes of a guest page in host memory: the page a block being translated starts in.
/// QEMU hands out a host pointer to the block's first instruction; reading next to it in
/// the same page needs no page-table walk, where [`QemuCpu`]'s reads walk the guest's
/// tables for every call (measured: about a third of the plugin's translation-time work).
pub struct TranslatedPage {
    cpu: QemuCpu,
    /// Guest virtual address of the page's first byte.
    page: u64,
    /// Where that byte is in host memory.
    host: *const u8,
}

/// Bytes of a target page: x86 translates 4 KiB pages, and a guest RAM page is contiguous
/// in host memory.
const PAGE: u64 = 4096;

impl TranslatedPage {
    /// The page of the instruction at guest `va`, found at host `haddr` (QEMU's
    /// `qemu_plugin_insn_haddr`; null for code outside RAM, which falls back to `cpu`).
    pub fn new(cpu: QemuCpu, va: u64, haddr: *const u8) -> TranslatedPage {
        let offset = va % PAGE;
        TranslatedPage {
            cpu,
            page: va - offset,
            host: if haddr.is_null() {
                haddr
            } else {
                haddr.wrapping_sub(offset as usize)
            },
        }
    }
}

impl Vcpu for TranslatedPage {
    fn index(&self) -> u32 {
        self.cpu.index()
    }
}

impl Registers for TranslatedPage {
    fn reg(&self, reg: Reg) -> Option<u64> {
        self.cpu.reg(reg)
    }

    fn regs(&self, regs: &[Reg], out: &mut [u64]) {
        self.cpu.regs(regs, out)
    }
}

impl GuestMemory for TranslatedPage {
    fn read(&self, va: u64, buf: &mut [u8]) -> Result<(), Fault> {
        let inside = va
            .checked_sub(self.page)
            .is_some_and(|at| at.saturating_add(buf.len() as u64) <= PAGE);
        if self.host.is_null() || !inside {
            return self.cpu.read(va, buf);
        }
        // SAFETY: `host` is where QEMU keeps the guest page being translated (RAM, not
        // null), valid for the whole translation callback; the range lies inside that page.
        // Another vCPU may write the page meanwhile: bytes are copied, never referenced.
        unsafe {
            let from = self.host.add((va - self.page) as usize);
            for (i, b) in buf.iter_mut().enumerate() {
                *b = from.add(i).read_volatile();
            }
        }
        Ok(())
    }
}
