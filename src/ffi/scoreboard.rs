//! A QEMU scoreboard of one `u64` per vCPU: memory QEMU's generated code reads and writes
//! inline, without a callback. `icount` counts in one, `gate` keeps flags in another.

use qemu_plugin_sys as sys;

/// A scoreboard QEMU owns for the plugin's lifetime; the pointer is kept as an integer so
/// that the value can live in a `static`.
#[derive(Debug, Clone, Copy)]
pub struct PerVcpu(usize);

impl PerVcpu {
    /// Allocates one, zeroed; QEMU grows it (zeroed) with the vCPUs. `None` if QEMU
    /// returned nothing.
    pub fn new() -> Option<PerVcpu> {
        // SAFETY: allocates a scoreboard of one u64 per vCPU.
        let score = unsafe { sys::qemu_plugin_scoreboard_new(std::mem::size_of::<u64>()) };
        (!score.is_null()).then_some(PerVcpu(score as usize))
    }

    /// The operand QEMU's inline operations and conditions take.
    pub fn entry(self) -> sys::qemu_plugin_u64 {
        sys::qemu_plugin_u64 {
            score: self.0 as *mut sys::qemu_plugin_scoreboard,
            offset: 0,
        }
    }

    /// `vcpu`'s value.
    pub fn get(self, vcpu: u32) -> u64 {
        // SAFETY: reads the live scoreboard's entry of an existing vCPU.
        unsafe { sys::qemu_plugin_u64_get(self.entry(), vcpu) }
    }

    /// Sets `vcpu`'s value.
    pub fn set(self, vcpu: u32, value: u64) {
        // SAFETY: writes the live scoreboard's entry of an existing vCPU.
        unsafe { sys::qemu_plugin_u64_set(self.entry(), vcpu, value) }
    }
}
