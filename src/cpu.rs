//! What a vCPU callback can see: the vCPU's registers and guest memory through its
//! current page tables. QEMU provides both only inside a callback on that vCPU, so a
//! [`Vcpu`] value never outlives the callback it was made in.

use crate::arch::regs::Registers;
use crate::mem::GuestMemory;

/// The vCPU a callback runs on.
pub trait Vcpu: GuestMemory + Registers {
    /// QEMU's index of this vCPU.
    fn index(&self) -> u32;

    /// Instructions this vCPU has executed, when the plugin counts them (`icount=on`).
    fn icount(&self) -> Option<u64> {
        None
    }
}
