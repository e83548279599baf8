//! `icount=on`: a per-vCPU count of executed instructions, kept by QEMU itself with an
//! inline add on every instruction (no callback), read when a record is made. Under
//! record/replay it is the same at the same guest event in every replay.

use super::api;
use once_cell::sync::OnceCell;

use super::scoreboard::PerVcpu;
use super::vcpus;

static COUNTER: OnceCell<PerVcpu> = OnceCell::new();

/// Allocates the per-vCPU counters (at install).
pub fn enable() {
    if let Some(board) = PerVcpu::new() {
        let _ = COUNTER.set(board);
    }
}

/// Adds one to the vCPU's count each time `insn` executes (at translation).
///
/// # Safety
/// `insn` must be an instruction handle of the block being translated.
pub unsafe fn count(insn: *mut api::qemu_plugin_insn) {
    if let Some(board) = COUNTER.get().filter(|_| vcpus::per_vcpu_ops_reliable()) {
        // SAFETY: `insn` is valid during translation; `entry` names a live scoreboard.
        unsafe {
            api::qemu_plugin_register_vcpu_insn_exec_inline_per_vcpu(
                insn,
                api::INLINE_ADD_U64,
                board.entry(),
                1,
            );
        }
    }
}

/// Instructions `vcpu` executed so far, when counting.
pub fn read(vcpu: u32) -> Option<u64> {
    COUNTER
        .get()
        .filter(|_| vcpus::per_vcpu_ops_reliable())?
        .get(vcpu)
}
