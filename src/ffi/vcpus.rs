//! Which vCPU a callback runs on, where QEMU's index cannot be trusted.
//!
//! With one host thread running several vCPUs (`-accel tcg,thread=single`, and every
//! icount or record/replay run of an SMP guest) QEMU 10.0 and 11.1 generate code without
//! `CF_PARALLEL`, where a callback's vCPU index is compiled in as a constant: the index of
//! the vCPU that *translated* the block, while translations are shared by every vCPU.
//! Measured: every `__switch_to` callback of a 2-vCPU run reported vCPU 0, and calls made
//! on one vCPU were taken for the other's. Instructions that also carry a conditional
//! callback get that index times 8, and inline per-vCPU operations then write outside
//! their scoreboard (QEMU aborted or crashed).
//!
//! Such a machine is recognised at vCPU init (all vCPUs start on one host thread, before
//! any code is translated). There conditions and inline operations are not used, and the
//! executing vCPU is told by what the guest's kernel keeps per CPU: on x86_64 the per-CPU
//! base, in GS (kernel mode) or the saved kernel GS (user mode), different on each CPU.

use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::ThreadId;

use parking_lot::Mutex;

use crate::arch::Arch;
use crate::arch::regs::{Reg, Registers};

/// The host thread each vCPU started on.
static STARTED: Mutex<Vec<(u32, ThreadId)>> = Mutex::new(Vec::new());
/// Whether one host thread runs several vCPUs.
static SHARED_THREAD: AtomicBool = AtomicBool::new(false);
/// Per-CPU bases seen, in order: the position is the vCPU slot the plugin uses.
static BASES: Mutex<Vec<u64>> = Mutex::new(Vec::new());

/// Notes that `vcpu` starts on the calling thread (its vCPU-init callback).
pub fn started(vcpu: u32) {
    let me = std::thread::current().id();
    let mut started = STARTED.lock();
    if started.iter().any(|&(v, t)| t == me && v != vcpu)
        && !SHARED_THREAD.swap(true, Ordering::Relaxed)
    {
        log::info!(
            "one host thread runs several vCPUs: vCPUs are told apart by the kernel's \
             per-CPU base, return points call back unconditionally and icount positions \
             are not recorded"
        );
    }
    started.push((vcpu, me));
}

/// Whether per-vCPU inline operations and conditions can be used: not when one host
/// thread runs several vCPUs.
pub fn per_vcpu_ops_reliable() -> bool {
    !SHARED_THREAD.load(Ordering::Relaxed)
}

/// The vCPU a callback that QEMU says runs on `vcpu` runs on, reading `regs` (the
/// executing vCPU's) where QEMU's index cannot be trusted. `vcpus` is how many there
/// are; QEMU's index stays where the kernel has no per-CPU base to tell them apart by
/// (before it sets them up, or on i386, whose user mode keeps none in a register).
pub fn executing(vcpu: u32, vcpus: usize, regs: &dyn Registers) -> u32 {
    if per_vcpu_ops_reliable() {
        return vcpu;
    }
    // x86_64 only: an i386 kernel's per-CPU base is in no user-mode register.
    let kernel_half = |r| regs.reg(r).filter(|&b| Arch::X86_64.is_kernel_address(b));
    let Some(base) = kernel_half(Reg::GsBase).or_else(|| kernel_half(Reg::KernelGsBase)) else {
        return vcpu;
    };
    let mut bases = BASES.lock();
    if let Some(at) = bases.iter().position(|&b| b == base) {
        return at as u32;
    }
    if bases.len() < vcpus {
        bases.push(base);
        return (bases.len() - 1) as u32;
    }
    vcpu
}
