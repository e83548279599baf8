//! Return points that call back only when a return may need them. A per-vCPU flag in a
//! QEMU scoreboard says "skip": QEMU tests it inline before each return-point callback
//! (a conditional callback, plugin API v3 and later) and makes no call while it is set.
//! The plugin sets it when the thread on the vCPU has nothing in flight, and clears it at
//! any call it follows and at every context switch (see [`crate::cpu::Vcpu::skip_returns`]).

use std::cell::Cell;
use std::ffi::c_void;

use once_cell::sync::OnceCell;
use qemu_plugin_sys as sys;

/// The scoreboard; a pointer QEMU owns for the plugin's lifetime, kept as an integer.
static SKIP: OnceCell<usize> = OnceCell::new();

fn entry() -> Option<sys::qemu_plugin_u64> {
    let &score = SKIP.get()?;
    Some(sys::qemu_plugin_u64 {
        score: score as *mut sys::qemu_plugin_scoreboard,
        offset: 0,
    })
}

/// Allocates the flags (at install): zero, so every return point calls back until the
/// plugin knows better.
pub fn enable() {
    // SAFETY: allocates a scoreboard of one u64 per vCPU; QEMU grows it with the vCPUs
    // and zeroes new entries.
    let score = unsafe { sys::qemu_plugin_scoreboard_new(std::mem::size_of::<u64>()) };
    if !score.is_null() {
        let _ = SKIP.set(score as usize);
    }
}

thread_local! {
    /// The last flag this thread wrote, and for which vCPU: a vCPU's flag is written only
    /// by the thread that runs it, so an equal write can be left out (most calls change
    /// nothing).
    static LAST: Cell<Option<(u32, bool)>> = const { Cell::new(None) };
}

/// Sets or clears `vcpu`'s flag.
pub fn set(vcpu: u32, skip: bool) {
    let Some(entry) = entry() else { return };
    if LAST.with(|last| last.replace(Some((vcpu, skip)))) == Some((vcpu, skip)) {
        return;
    }
    // SAFETY: writes the live scoreboard's entry of an existing vCPU, from a callback of
    // that vCPU (on the thread that runs it and tests the flag).
    unsafe { sys::qemu_plugin_u64_set(entry, vcpu, u64::from(skip)) }
}

/// Registers `cb` with `word` at the return point `insn`: called when its vCPU's flag is
/// clear, or always if the flags could not be allocated.
///
/// # Safety
/// `insn` must be an instruction handle of the block being translated.
pub unsafe fn register_return(
    insn: *mut sys::qemu_plugin_insn,
    cb: sys::qemu_plugin_vcpu_udata_cb_t,
    word: u64,
) {
    let flags = sys::qemu_plugin_cb_flags::QEMU_PLUGIN_CB_R_REGS;
    let data = word as usize as *mut c_void;
    // SAFETY: `insn` is valid during translation; `entry` names a live scoreboard.
    unsafe {
        match entry() {
            Some(entry) => sys::qemu_plugin_register_vcpu_insn_exec_cond_cb(
                insn,
                cb,
                flags,
                sys::qemu_plugin_cond::QEMU_PLUGIN_COND_EQ,
                entry,
                0,
                data,
            ),
            None => sys::qemu_plugin_register_vcpu_insn_exec_cb(insn, cb, flags, data),
        }
    }
}
