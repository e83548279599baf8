//! Register reads through `qemu_plugin_read_register`.
//!
//! QEMU hands out register handles per vCPU from `qemu_plugin_get_registers`, which
//! must run in the vCPU's context; x86 vCPUs of one machine share one register layout,
//! so the handles found on the first vCPU serve all of them.

use std::cell::RefCell;
use std::ffi::CStr;

use super::api;
use once_cell::sync::OnceCell;

use crate::arch::Arch;
use crate::arch::regs::Reg;

use super::memory::ByteArray;

/// Register handles by [`Reg::index`]; a handle is an opaque token, kept as an integer.
static HANDLES: OnceCell<[Option<usize>; Reg::ALL.len()]> = OnceCell::new();

thread_local! {
    static SCRATCH: RefCell<ByteArray> = RefCell::new(ByteArray::new());
}

/// Finds the handles of the registers the plugin reads. Call from a vCPU-init callback.
pub fn discover(arch: Arch) {
    if HANDLES.get().is_some() {
        return;
    }
    let mut handles = [None; Reg::ALL.len()];
    // SAFETY: called in vCPU context (vCPU init); QEMU returns a GArray of register
    // descriptors that we own and free, with static name strings. Each element starts
    // with the fields `qemu_plugin_reg_descriptor` declares; API 7 made the element
    // longer, so the array's own element size is the stride.
    unsafe {
        let list = api::qemu_plugin_get_registers();
        if list.is_null() {
            log::warn!("QEMU lists no registers: system call decoding is unavailable");
            return;
        }
        let stride = glib_sys::g_array_get_element_size(list) as usize;
        let mut names = Vec::new();
        if stride >= std::mem::size_of::<api::qemu_plugin_reg_descriptor>() {
            for i in 0..(*list).len as usize {
                let d = &*(*list)
                    .data
                    .add(i * stride)
                    .cast::<api::qemu_plugin_reg_descriptor>();
                let name = CStr::from_ptr(d.name).to_string_lossy();
                names.push(name.to_string());
                if let Some(reg) = Reg::ALL.iter().find(|r| r.qemu_name(arch) == Some(&*name)) {
                    handles[reg.index()] = Some(d.handle as usize);
                }
            }
        }
        glib_sys::g_array_free(list, glib_sys::GTRUE);
        log::debug!("QEMU's registers ({}): {}", names.len(), names.join(" "));
    }
    for reg in Reg::ALL {
        if reg.qemu_name(arch).is_some() && handles[reg.index()].is_none() {
            log::debug!("QEMU does not expose register {reg:?}");
        }
    }
    let _ = HANDLES.set(handles);
}

/// Bytes the scratch array may hold before it is emptied. QEMU appends each register
/// read at the array's end; emptying it costs a glib call that shrinks the array, so it
/// is done once in a while, not per read.
const SCRATCH_ROOM: u32 = 4096;

/// Reads `reg` of the current vCPU. Only valid inside a callback registered with
/// register-read access.
pub fn read(reg: Reg) -> Option<u64> {
    let handle = HANDLES.get()?[reg.index()]?;
    SCRATCH.with(|scratch| append_read(&scratch.borrow(), handle))
}

/// Reads `regs` of the current vCPU into `out` (0 where unreadable) with one access to
/// the thread's scratch array.
pub fn read_many(regs: &[Reg], out: &mut [u64]) {
    let handles = HANDLES.get();
    if regs.is_empty() {
        return;
    }
    SCRATCH.with(|scratch| {
        let array = scratch.borrow();
        for (reg, value) in regs.iter().zip(out.iter_mut()) {
            *value = handles
                .and_then(|h| h[reg.index()])
                .and_then(|handle| append_read(&array, handle))
                .unwrap_or(0);
        }
    })
}

/// Has QEMU append the register `handle` to `array` and decodes what it appended.
fn append_read(array: &ByteArray, handle: usize) -> Option<u64> {
    // SAFETY: `array.0` is a live GByteArray owned by this thread; QEMU appends the
    // register's bytes (target order: little-endian on x86); `handle` came from
    // `qemu_plugin_get_registers`. What was read is measured by how much the array grew,
    // which means the same under every API version (the return value changed type).
    unsafe {
        if (*array.0).len > SCRATCH_ROOM {
            glib_sys::g_byte_array_set_size(array.0, 0);
        }
        let start = (*array.0).len as usize;
        let handle = handle as *mut api::qemu_plugin_register;
        let ok = if api::version() >= 6 {
            api::read_register_v6(handle, array.0)
        } else {
            api::read_register_v4(handle, array.0) > 0
        };
        let a = &*array.0;
        let size = (a.len as usize).saturating_sub(start);
        if !ok || size == 0 || size > 8 || a.data.is_null() {
            return None;
        }
        // Fixed-size reads: a variable-length copy is a call to memmove.
        let at = a.data.add(start);
        Some(match size {
            8 => u64::from_le(at.cast::<u64>().read_unaligned()),
            4 => u64::from(u32::from_le(at.cast::<u32>().read_unaligned())),
            _ => {
                let mut bytes = [0u8; 8];
                bytes[..size].copy_from_slice(std::slice::from_raw_parts(at, size));
                u64::from_le_bytes(bytes)
            }
        })
    }
}
