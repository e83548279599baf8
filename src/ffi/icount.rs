//! `icount=on`: a per-vCPU count of executed instructions, kept by QEMU itself with an
//! inline add on every instruction (no callback), read when a record is made. Under
//! record/replay it is the same at the same guest event in every replay.

use once_cell::sync::OnceCell;
use qemu_plugin_sys as sys;

/// The scoreboard entry; a pointer QEMU owns for the plugin's lifetime, kept as an integer.
static COUNTER: OnceCell<(usize, usize)> = OnceCell::new();

fn entry() -> Option<sys::qemu_plugin_u64> {
    let &(score, offset) = COUNTER.get()?;
    Some(sys::qemu_plugin_u64 {
        score: score as *mut sys::qemu_plugin_scoreboard,
        offset,
    })
}

/// Allocates the per-vCPU counters (at install).
pub fn enable() {
    // SAFETY: allocates a scoreboard of one u64 per vCPU; QEMU grows it with the vCPUs.
    let score = unsafe { sys::qemu_plugin_scoreboard_new(std::mem::size_of::<u64>()) };
    if !score.is_null() {
        let _ = COUNTER.set((score as usize, 0));
    }
}

/// Adds one to the vCPU's count each time `insn` executes (at translation).
///
/// # Safety
/// `insn` must be an instruction handle of the block being translated.
pub unsafe fn count(insn: *mut sys::qemu_plugin_insn) {
    if let Some(entry) = entry() {
        // SAFETY: `insn` is valid during translation; `entry` names a live scoreboard.
        unsafe {
            sys::qemu_plugin_register_vcpu_insn_exec_inline_per_vcpu(
                insn,
                sys::qemu_plugin_op::QEMU_PLUGIN_INLINE_ADD_U64,
                entry,
                1,
            );
        }
    }
}

/// Instructions `vcpu` executed so far, when counting.
pub fn read(vcpu: u32) -> Option<u64> {
    let entry = entry()?;
    // SAFETY: reads the live scoreboard's entry of an existing vCPU.
    Some(unsafe { sys::qemu_plugin_u64_get(entry, vcpu) })
}
