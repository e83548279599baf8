//! What the plugin instruments, and how a hook travels to its callback: packed with the
//! instruction's address into the callback's user-data word.

use crate::arch::x86::SyscallInsn;

/// Instrumentation the plugin asks for on one instruction at translation time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    /// Call [`super::Plugin::on_syscall_insn`] each time this system call instruction runs.
    SyscallInsn(SyscallInsn),
    /// Call [`super::Plugin::on_return_point`]: a system call may return here.
    ReturnPoint,
    /// Call [`super::Plugin::on_kernel_dispatch`]: a kernel function every system call reaches
    /// with the kernel's page tables active.
    KernelDispatch,
}

/// Bits of [`Hook::pack`]'s word that hold the hook; the address sits above them.
const HOOK_BITS: u32 = 3;
/// Codes of the hooks that are not system call instructions.
const RETURN_POINT: u64 = SyscallInsn::ALL.len() as u64;
const KERNEL_DISPATCH: u64 = RETURN_POINT + 1;

impl Hook {
    /// Packs the hook and the instruction's address into one word, so that both travel as
    /// a callback's user data (nothing is allocated per translation, and the callback
    /// knows the exact address: QEMU's `rip` is only synced at block boundaries). `None`
    /// for a user-space hook whose address is too high to pack (no user address is); a
    /// kernel dispatch hook needs no address and packs as its code alone.
    pub fn pack(self, va: u64) -> Option<u64> {
        let code = match self {
            Hook::SyscallInsn(kind) => kind.index() as u64,
            Hook::ReturnPoint => RETURN_POINT,
            Hook::KernelDispatch => return Some(KERNEL_DISPATCH),
        };
        (va >> (64 - HOOK_BITS) == 0).then_some(va << HOOK_BITS | code)
    }

    /// The inverse of [`Hook::pack`]: the hook and the address.
    pub fn unpack(word: u64) -> Option<(Hook, u64)> {
        let code = (word & ((1 << HOOK_BITS) - 1)) as usize;
        let hook = match SyscallInsn::from_index(code) {
            Some(kind) => Hook::SyscallInsn(kind),
            None if code as u64 == RETURN_POINT => Hook::ReturnPoint,
            None if code as u64 == KERNEL_DISPATCH => Hook::KernelDispatch,
            None => return None,
        };
        Some((hook, word >> HOOK_BITS))
    }
}
