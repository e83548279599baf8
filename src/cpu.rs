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

    /// Says whether this vCPU's return-point callbacks may be skipped from now on, until
    /// said otherwise: true once the thread running here has nothing in flight that a
    /// return could complete. QEMU then tests a per-vCPU flag inline and makes no call,
    /// so a call the plugin does not follow costs one callback, not two. Default: every
    /// return point calls back.
    fn skip_returns(&self, _skip: bool) {}
}

/// A vCPU for unit tests: the registers a test sets (the others unreadable) and any
/// guest memory.
#[cfg(test)]
pub mod fake {
    use std::cell::Cell;

    use super::Vcpu;
    use crate::arch::regs::{Reg, Registers};
    use crate::mem::{Fault, GuestMemory, NoMemory};

    /// vCPU `index` with memory `mem`.
    pub struct FakeCpu<M = NoMemory> {
        index: u32,
        regs: [Cell<Option<u64>>; Reg::ALL.len()],
        mem: M,
    }

    impl FakeCpu {
        /// vCPU `index`, no register readable, no memory mapped.
        pub fn new(index: u32) -> FakeCpu {
            FakeCpu::with_memory(index, NoMemory)
        }
    }

    impl<M> FakeCpu<M> {
        /// vCPU `index` reading `mem`.
        pub fn with_memory(index: u32, mem: M) -> FakeCpu<M> {
            FakeCpu {
                index,
                regs: std::array::from_fn(|_| Cell::new(None)),
                mem,
            }
        }

        /// Makes `reg` read `value`.
        pub fn set(&self, reg: Reg, value: u64) {
            self.regs[reg.index()].set(Some(value));
        }
    }

    impl<M: GuestMemory> Vcpu for FakeCpu<M> {
        fn index(&self) -> u32 {
            self.index
        }
    }

    impl<M> Registers for FakeCpu<M> {
        fn reg(&self, reg: Reg) -> Option<u64> {
            self.regs[reg.index()].get()
        }
    }

    impl<M: GuestMemory> GuestMemory for FakeCpu<M> {
        fn read(&self, va: u64, buf: &mut [u8]) -> Result<(), Fault> {
            self.mem.read(va, buf)
        }

        fn read_in(&self, root: u64, va: u64, buf: &mut [u8]) -> Result<(), Fault> {
            self.mem.read_in(root, va, buf)
        }
    }
}
