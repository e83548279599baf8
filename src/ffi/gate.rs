//! Registering the instruction callbacks, where return points call back only when a
//! return may need them. A per-vCPU flag in a QEMU scoreboard says "skip": QEMU tests it
//! inline before each return-point callback (a conditional callback, plugin API v3 and
//! later) and makes no call while it is set. The plugin sets it when the thread on the
//! vCPU has nothing in flight, and clears it at any call it follows and at every context
//! switch (see [`crate::cpu::Vcpu::skip_returns`]).

use std::cell::Cell;
use std::ffi::c_void;

use super::api;
use once_cell::sync::OnceCell;

use super::scoreboard::PerVcpu;
use super::vcpus;

static SKIP: OnceCell<PerVcpu> = OnceCell::new();

/// Allocates the flags (at install): zero, so every return point calls back until the
/// plugin knows better.
pub fn enable() {
    if let Some(board) = PerVcpu::new() {
        let _ = SKIP.set(board);
    }
}

thread_local! {
    /// The last flag this thread wrote, and for which vCPU: a vCPU's flag is written only
    /// by the thread that runs it, so an equal write can be left out (most calls change
    /// nothing).
    static LAST: Cell<Option<(u32, bool)>> = const { Cell::new(None) };
}

/// Sets or clears `vcpu`'s flag, from a callback of that vCPU (on the thread that runs
/// it and tests the flag).
pub fn set(vcpu: u32, skip: bool) {
    let Some(board) = SKIP.get() else { return };
    if LAST.with(|last| last.replace(Some((vcpu, skip)))) != Some((vcpu, skip)) {
        board.set(vcpu, u64::from(skip));
    }
}

/// Registers `cb` with `word` as its user data at `insn`. A `gated` instruction (a
/// return point) calls back only while its vCPU's flag is clear; the others, and all of
/// them if the flags could not be allocated, always.
///
/// # Safety
/// `insn` must be an instruction handle of the block being translated.
pub unsafe fn register(
    insn: *mut api::qemu_plugin_insn,
    cb: api::VcpuUdataCb,
    word: u64,
    gated: bool,
) {
    let flags = api::CB_R_REGS;
    let data = word as usize as *mut c_void;
    // SAFETY: `insn` is valid during translation; the scoreboard is live.
    unsafe {
        match SKIP
            .get()
            .filter(|_| gated && vcpus::per_vcpu_ops_reliable())
        {
            Some(board) => api::qemu_plugin_register_vcpu_insn_exec_cond_cb(
                insn,
                cb,
                flags,
                api::COND_EQ,
                board.entry(),
                0,
                data,
            ),
            None => api::qemu_plugin_register_vcpu_insn_exec_cb(insn, cb, flags, data),
        }
    }
}
