//! Guest virtual memory through `qemu_plugin_read_memory_vaddr`.
//!
//! QEMU resizes the `GByteArray` it is given with `g_byte_array_set_size`, which uses
//! GLib's private bookkeeping behind the public struct, so the array must be a real one
//! from `g_byte_array_sized_new` (the `qemu-plugin` crate's wrapper builds a fake one on
//! the stack; see the foundation issue). One array per vCPU thread is kept and reused.

use std::cell::RefCell;

use qemu_plugin_sys as sys;

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
            // to `buf.len()` with GLib's own function and fills it. The public prefix of
            // the struct (data, len) is what both bindings describe.
            let ok = unsafe {
                sys::qemu_plugin_read_memory_vaddr(va, array.0.cast::<sys::GByteArray>(), buf.len())
            };
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
