//! What the plugin instruments, and how a hook travels to its callback: packed with the
//! instruction's address into the callback's user-data word.

use crate::arch::insn::SyscallInsn;
use crate::syscalls::Abi;

/// Instrumentation the plugin asks for on one instruction at translation time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    /// Call [`super::Plugin::on_syscall_insn`] each time this system call instruction runs.
    /// The convention is decided at translation: a block is translated for one CPU mode
    /// (QEMU keys blocks by it), so the code segment need not be read at every call.
    /// `None`: an instruction that is no Linux system call in this mode (counted only).
    SyscallInsn(SyscallInsn, Option<Abi>),
    /// Call [`super::Plugin::on_return_point`]: a system call may return here.
    ReturnPoint,
    /// Call [`super::Plugin::on_kernel_dispatch`]: a kernel function every system call reaches
    /// with the kernel's page tables active.
    KernelDispatch,
    /// Call [`super::Plugin::on_task_switch`]: maybe `__switch_to` of the kernel view with
    /// the first index, under the KASLR slide with the second (see
    /// [`super::kernel::KernelView::switch_candidate`]).
    TaskSwitch(u16, u16),
}

/// Bits of [`Hook::pack`]'s word that hold the hook; the address sits above them (user
/// addresses have at most 57 bits: x86_64's 5-level paging).
const HOOK_BITS: u32 = 5;
/// Codes: instruction kinds without a convention, then conventions, then the others.
const FIRST_ABI: u64 = SyscallInsn::ALL.len() as u64;
const RETURN_POINT: u64 = FIRST_ABI + Abi::ALL.len() as u64;
const KERNEL_DISPATCH: u64 = RETURN_POINT + 1;
const TASK_SWITCH: u64 = KERNEL_DISPATCH + 1;

impl Hook {
    /// Packs the hook and the instruction's address into one word, so that both travel as
    /// a callback's user data (nothing is allocated per translation, and the callback
    /// knows the exact address: QEMU's `rip` is only synced at block boundaries). `None`
    /// for a user-space hook whose address is too high to pack (no user address is); the
    /// kernel hooks need no address: a dispatch hook packs as its code alone, a task
    /// switch with its slide index in the address's place.
    pub fn pack(self, va: u64) -> Option<u64> {
        let code = match self {
            Hook::SyscallInsn(_, Some(abi)) => FIRST_ABI + abi.index() as u64,
            Hook::SyscallInsn(kind, None) => kind.index() as u64,
            Hook::ReturnPoint => RETURN_POINT,
            Hook::KernelDispatch => return Some(KERNEL_DISPATCH),
            Hook::TaskSwitch(view, slide) => {
                let both = u64::from(view) << 16 | u64::from(slide);
                return Some(both << HOOK_BITS | TASK_SWITCH);
            }
        };
        (va >> (64 - HOOK_BITS) == 0).then_some(va << HOOK_BITS | code)
    }

    /// The inverse of [`Hook::pack`]: the hook and the address.
    pub fn unpack(word: u64) -> Option<(Hook, u64)> {
        let code = word & ((1 << HOOK_BITS) - 1);
        let hook = match code {
            RETURN_POINT => Hook::ReturnPoint,
            KERNEL_DISPATCH => Hook::KernelDispatch,
            TASK_SWITCH => {
                let both = word >> HOOK_BITS;
                return Some((Hook::TaskSwitch((both >> 16) as u16, both as u16), 0));
            }
            c if c >= FIRST_ABI => {
                let abi = *Abi::ALL.get((c - FIRST_ABI) as usize)?;
                Hook::SyscallInsn(abi.insn(), Some(abi))
            }
            c => Hook::SyscallInsn(SyscallInsn::from_index(c as usize)?, None),
        };
        Some((hook, word >> HOOK_BITS))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_hook_round_trips_with_its_address() {
        let va = 0x7fff_1234_5678;
        let mut hooks = vec![Hook::ReturnPoint];
        hooks.extend(Abi::ALL.map(|abi| Hook::SyscallInsn(abi.insn(), Some(abi))));
        hooks.extend(SyscallInsn::ALL.map(|kind| Hook::SyscallInsn(kind, None)));
        for hook in hooks {
            assert_eq!(
                Hook::unpack(hook.pack(va).unwrap()),
                Some((hook, va)),
                "{hook:?}"
            );
        }
        let word = Hook::KernelDispatch.pack(0xffff_ffff_8100_0000).unwrap();
        assert_eq!(
            Hook::unpack(word).map(|(h, _)| h),
            Some(Hook::KernelDispatch)
        );
        let word = Hook::TaskSwitch(2, 300)
            .pack(0xffff_ffff_a5a0_0000)
            .unwrap();
        assert_eq!(Hook::unpack(word), Some((Hook::TaskSwitch(2, 300), 0)));
        assert_eq!(Hook::ReturnPoint.pack(0xffff_ffff_8100_0000), None);
        assert_eq!(Hook::unpack(TASK_SWITCH + 1), None);
        assert_eq!(Hook::unpack(31), None);
    }
}
