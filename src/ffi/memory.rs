//! Guest virtual memory through `qemu_plugin_read_memory_vaddr`.
//!
//! QEMU resizes the `GByteArray` it is given with `g_byte_array_set_size`, which uses
//! GLib's private bookkeeping behind the public struct, so the array must be a real one
//! from `g_byte_array_sized_new` (the `qemu-plugin` crate's wrapper builds a fake one on
//! the stack; see the foundation issue). One array per vCPU thread is kept and reused.

use std::cell::{Cell, RefCell};

use super::api;

use crate::arch::Arch;
use crate::arch::regs::{Reg, Registers};
use crate::cpu::Vcpu;
use crate::mem::paging::{AddressSpace, Paging};
use crate::mem::{Fault, GuestMemory, PhysicalMemory};

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
    arch: Arch,
}

impl QemuCpu {
    /// The vCPU `vcpu` of an `arch` machine, inside one of its callbacks.
    pub fn current(vcpu: u32, arch: Arch) -> QemuCpu {
        QemuCpu { vcpu, arch }
    }

    /// Reads `va` in the kernel through the kernel-mode page tables that KPTI pairs with
    /// the user-mode ones in use now, walked in software over physical memory (plugin API
    /// 5 and later). `None` where that does not apply: no physical reads, not a kernel
    /// address, or the current tables are not a KPTI user half.
    fn read_kernel_under_kpti(&self, va: u64, buf: &mut [u8]) -> Option<Result<(), Fault>> {
        api::optional().read_memory_hwaddr?;
        if !self.arch.is_kernel_address(va) {
            return None;
        }
        let cr3 = self.reg(Reg::Cr3)?;
        let paging = Paging::x86(self.arch, self.reg(Reg::Cr4)?)?;
        let user_root = paging.root(cr3);
        let kernel_root = match KPTI_ROOTS.get() {
            Some((user, kernel)) if user == user_root => kernel,
            _ => {
                let kernel = paging.kpti_kernel_root(self, user_root)?;
                KPTI_ROOTS.set(Some((user_root, kernel)));
                kernel
            }
        };
        let space = AddressSpace {
            phys: self,
            paging,
            root: kernel_root,
        };
        Some(space.read(va, buf))
    }
}

thread_local! {
    /// The last KPTI pair of table roots (user, kernel) this vCPU thread checked: a
    /// process's pair does not change, and checking costs two physical reads.
    static KPTI_ROOTS: Cell<Option<(u64, u64)>> = const { Cell::new(None) };
}

impl PhysicalMemory for QemuCpu {
    fn read_physical(&self, pa: u64, buf: &mut [u8]) -> Result<(), Fault> {
        let fault = Fault {
            va: pa,
            len: buf.len(),
        };
        let Some(read) = api::optional().read_memory_hwaddr else {
            return Err(fault);
        };
        if buf.is_empty() {
            return Ok(());
        }
        SCRATCH.with(|scratch| {
            let array = scratch.borrow();
            // SAFETY: as for `qemu_plugin_read_memory_vaddr` below; 0 is
            // QEMU_PLUGIN_HWADDR_OPERATION_OK.
            let ok = unsafe { read(pa, array.0, buf.len()) } == 0;
            copy_out(ok, &array, buf).ok_or(fault)
        })
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
    fn read_in(&self, root: u64, va: u64, buf: &mut [u8]) -> Result<(), Fault> {
        let fault = Fault { va, len: buf.len() };
        if api::optional().read_memory_hwaddr.is_none() {
            return Err(fault);
        }
        let paging = match self.arch {
            Arch::Aarch64 => Paging::arm64(self.reg(Reg::TcrEl1).ok_or(fault)?),
            Arch::Arm => Paging::arm(self.reg(Reg::Ttbcr).ok_or(fault)?),
            _ => Paging::x86(self.arch, self.reg(Reg::Cr4).ok_or(fault)?),
        }
        .ok_or(fault)?;
        let space = AddressSpace {
            phys: self,
            paging,
            root: paging.root(root),
        };
        space.read(va, buf)
    }

    fn mapped_now(&self, va: u64) -> bool {
        SCRATCH.with(|scratch| {
            let array = scratch.borrow();
            // SAFETY: as in `read`.
            unsafe { api::qemu_plugin_read_memory_vaddr(va, array.0, 1) }
        })
    }

    fn read(&self, va: u64, buf: &mut [u8]) -> Result<(), Fault> {
        let fault = Fault { va, len: buf.len() };
        if buf.is_empty() {
            return Ok(());
        }
        SCRATCH
            .with(|scratch| {
                let array = scratch.borrow();
                // SAFETY: `array.0` is a live GByteArray owned by this thread; QEMU resizes it
                // to `buf.len()` with GLib's own function and fills it.
                let ok = unsafe { api::qemu_plugin_read_memory_vaddr(va, array.0, buf.len()) };
                copy_out(ok, &array, buf)
            })
            .map_or_else(
                || self.read_kernel_under_kpti(va, buf).unwrap_or(Err(fault)),
                Ok,
            )
    }
}

/// Copies what a successful read left in `array` into `buf`; `None` if the read failed
/// or left too little.
fn copy_out(ok: bool, array: &ByteArray, buf: &mut [u8]) -> Option<()> {
    if !ok {
        return None;
    }
    // SAFETY: after a successful read the array holds at least `len` valid bytes at
    // `data`; they are copied out before the array is used again.
    unsafe {
        let array = &*array.0;
        if (array.len as usize) < buf.len() || array.data.is_null() {
            return None;
        }
        buf.copy_from_slice(std::slice::from_raw_parts(array.data, buf.len()));
    }
    Some(())
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
    fn read_in(&self, root: u64, va: u64, buf: &mut [u8]) -> Result<(), Fault> {
        self.cpu.read_in(root, va, buf)
    }

    fn mapped_now(&self, va: u64) -> bool {
        self.cpu.mapped_now(va)
    }

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
