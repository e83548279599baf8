//! A QEMU scoreboard of one `u64` per vCPU: memory QEMU's generated code reads and writes
//! inline, without a callback. `icount` counts in one, `gate` keeps flags in another.

use super::api;

/// A scoreboard QEMU owns for the plugin's lifetime; the pointer is kept as an integer so
/// that the value can live in a `static`.
#[derive(Debug, Clone, Copy)]
pub struct PerVcpu(usize);

impl PerVcpu {
    /// Allocates one, zeroed; QEMU grows it (zeroed) with the vCPUs. `None` if QEMU
    /// returned nothing.
    pub fn new() -> Option<PerVcpu> {
        // SAFETY: allocates a scoreboard of one u64 per vCPU.
        let score = unsafe { api::qemu_plugin_scoreboard_new(std::mem::size_of::<u64>()) };
        (!score.is_null()).then_some(PerVcpu(score as usize))
    }

    /// The operand QEMU's inline operations and conditions take.
    pub fn entry(self) -> api::qemu_plugin_u64 {
        api::qemu_plugin_u64 {
            score: self.0 as *mut api::qemu_plugin_scoreboard,
            offset: 0,
        }
    }

    /// `vcpu`'s value; `None` for an index QEMU has no entry for.
    pub fn get(self, vcpu: u32) -> Option<u64> {
        // SAFETY: reads the live scoreboard's entry of an existing vCPU.
        exists(vcpu).then(|| unsafe { api::qemu_plugin_u64_get(self.entry(), vcpu) })
    }

    /// Sets `vcpu`'s value; an index QEMU has no entry for is left alone.
    pub fn set(self, vcpu: u32, value: u64) {
        if exists(vcpu) {
            // SAFETY: writes the live scoreboard's entry of an existing vCPU.
            unsafe { api::qemu_plugin_u64_set(self.entry(), vcpu, value) }
        }
    }
}

/// Whether QEMU has a scoreboard entry for `vcpu`: QEMU aborts on any other index (see
/// [`super::vcpus`] for where a callback can be handed one).
fn exists(vcpu: u32) -> bool {
    // SAFETY: a plain query of QEMU's vCPU count, valid in any vCPU callback.
    i64::from(vcpu) < i64::from(unsafe { api::qemu_plugin_num_vcpus() })
}
