//! A QEMU scoreboard of one `u64` per vCPU: memory QEMU's generated code reads and writes
//! inline, without a callback. `icount` counts in one, `gate` keeps flags in another.

use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::ThreadId;

use parking_lot::Mutex;

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

/// Whether QEMU has a scoreboard entry for `vcpu`. QEMU aborts on any other index, and
/// callbacks can be handed one: with one host thread running several vCPUs
/// (`-accel tcg,thread=single -smp 2`, and so record/replay of an SMP guest), QEMU 10.0
/// and 11.1 pass some instruction callbacks a vCPU index past the last vCPU (8 on a
/// 2-vCPU machine, seen in every such run).
fn exists(vcpu: u32) -> bool {
    // SAFETY: a plain query of QEMU's vCPU count, valid in any vCPU callback.
    i64::from(vcpu) < i64::from(unsafe { api::qemu_plugin_num_vcpus() })
}

/// The host thread each vCPU started on.
static STARTED: Mutex<Vec<(u32, ThreadId)>> = Mutex::new(Vec::new());
/// Whether one host thread runs several vCPUs.
static SHARED_THREAD: AtomicBool = AtomicBool::new(false);

/// Notes that `vcpu` starts on the calling thread (its vCPU-init callback).
///
/// With one host thread running several vCPUs (`-accel tcg,thread=single`, and every
/// icount or record/replay run), QEMU 10.0 and 11.1 hand the callbacks of instructions
/// that also carry a conditional callback the wrong vCPU index (8 for vCPU 1: the
/// scoreboard offset, not the index; a C plugin sees the same), and inline per-vCPU
/// operations then write outside the scoreboard (QEMU crashed). vCPU-init callbacks of
/// such a machine all run on one thread, before any code is translated, which is how the
/// case is recognised.
pub fn vcpu_started(vcpu: u32) {
    let me = std::thread::current().id();
    let mut started = STARTED.lock();
    if started.iter().any(|&(v, t)| t == me && v != vcpu)
        && !SHARED_THREAD.swap(true, Ordering::Relaxed)
    {
        log::info!(
            "one host thread runs several vCPUs: return points call back unconditionally \
             and icount positions are not recorded"
        );
    }
    started.push((vcpu, me));
}

/// Whether per-vCPU inline operations and conditions can be used: not when one host
/// thread runs several vCPUs (see [`vcpu_started`]).
pub fn per_vcpu_ops_reliable() -> bool {
    !SHARED_THREAD.load(Ordering::Relaxed)
}
