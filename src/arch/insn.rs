//! The instructions that enter the kernel for a system call: x86's (32- and 64-bit),
//! arm64's, and 32-bit ARM's (ARM and Thumb code).
//!
//! Recognised at translation time from the instruction's bytes, so that only these
//! instructions get a callback and all other code runs uninstrumented.

use serde::Serialize;

use super::Arch;

/// An instruction a user process uses to make a system call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SyscallInsn {
    /// `syscall` (0f 05): the x86_64 ABI.
    Syscall,
    /// `sysenter` (0f 34): the i386 vDSO's fast path; the 6th argument is on the stack.
    Sysenter,
    /// `int 0x80` (cd 80): the i386 ABI, also on a 64-bit kernel (compat table).
    Int80,
    /// `svc #0` (d4000001): the arm64 ABI.
    Svc,
    /// `svc #0` in 32-bit ARM code (A32 `ef000000`, 4 bytes): the EABI.
    SvcArm,
    /// `svc #0` in Thumb code (T32 `df00`, 2 bytes): the EABI, as Debian's armhf
    /// userland (Thumb-2) makes its calls.
    SvcThumb,
}

impl SyscallInsn {
    /// Every variant, in a fixed order (used to index per-kind counters).
    pub const ALL: [SyscallInsn; 6] = [
        SyscallInsn::Syscall,
        SyscallInsn::Sysenter,
        SyscallInsn::Int80,
        SyscallInsn::Svc,
        SyscallInsn::SvcArm,
        SyscallInsn::SvcThumb,
    ];

    /// Classifies one whole instruction of an `arch` guest by its bytes (QEMU hands over
    /// exactly one instruction). Prefixed or conditional forms are not system calls that
    /// Linux user space emits, so only the exact encodings match. x86's are whole 2-byte
    /// instructions, arm64's `svc` a 4-byte word (little-endian). On 32-bit ARM the size
    /// tells the instruction sets apart: a 2-byte instruction is Thumb, and no 4-byte
    /// Thumb instruction starts with the halfword `0000`, so `ef000000` is ARM code.
    /// The same bytes mean other things elsewhere (`00 df` is an x86 `add`), hence `arch`.
    pub fn classify(arch: Arch, insn: &[u8]) -> Option<SyscallInsn> {
        match (arch, insn) {
            (Arch::X86_64 | Arch::I386, [0x0f, 0x05]) => Some(SyscallInsn::Syscall),
            (Arch::X86_64 | Arch::I386, [0x0f, 0x34]) => Some(SyscallInsn::Sysenter),
            (Arch::X86_64 | Arch::I386, [0xcd, 0x80]) => Some(SyscallInsn::Int80),
            (Arch::Aarch64, [0x01, 0x00, 0x00, 0xd4]) => Some(SyscallInsn::Svc),
            // On arm64 too: 32-bit programs (EL0 in AArch32 state, the kernel's compat path).
            (Arch::Arm | Arch::Aarch64, [0x00, 0x00, 0x00, 0xef]) => Some(SyscallInsn::SvcArm),
            (Arch::Arm | Arch::Aarch64, [0x00, 0xdf]) => Some(SyscallInsn::SvcThumb),
            _ => None,
        }
    }

    /// The instruction's length in bytes: where the thread resumes after it.
    pub fn size(self) -> u64 {
        match self {
            SyscallInsn::Syscall | SyscallInsn::Int80 | SyscallInsn::SvcThumb => 2,
            SyscallInsn::Sysenter | SyscallInsn::Svc | SyscallInsn::SvcArm => 4,
        }
    }

    /// A small stable number, so the kind can travel as a callback's user data.
    pub fn index(self) -> usize {
        match self {
            SyscallInsn::Syscall => 0,
            SyscallInsn::Sysenter => 1,
            SyscallInsn::Int80 => 2,
            SyscallInsn::Svc => 3,
            SyscallInsn::SvcArm => 4,
            SyscallInsn::SvcThumb => 5,
        }
    }

    /// The inverse of [`SyscallInsn::index`].
    pub fn from_index(index: usize) -> Option<SyscallInsn> {
        SyscallInsn::ALL.get(index).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_encodings_only() {
        let x86 = |b: &[u8]| SyscallInsn::classify(Arch::X86_64, b);
        let arm64 = |b: &[u8]| SyscallInsn::classify(Arch::Aarch64, b);
        let arm = |b: &[u8]| SyscallInsn::classify(Arch::Arm, b);
        assert_eq!(x86(&[0x0f, 0x05]), Some(SyscallInsn::Syscall));
        assert_eq!(x86(&[0x0f, 0x34]), Some(SyscallInsn::Sysenter));
        assert_eq!(x86(&[0xcd, 0x80]), Some(SyscallInsn::Int80));
        assert_eq!(
            SyscallInsn::classify(Arch::I386, &[0xcd, 0x80]),
            Some(SyscallInsn::Int80)
        );
        assert_eq!(arm64(&[0x01, 0x00, 0x00, 0xd4]), Some(SyscallInsn::Svc));
        // svc #1, hvc #0: not Linux system calls.
        assert_eq!(arm64(&[0x21, 0x00, 0x00, 0xd4]), None);
        assert_eq!(arm64(&[0x02, 0x00, 0x00, 0xd4]), None);
        assert_eq!(x86(&[0xcd, 0x81]), None);
        assert_eq!(x86(&[0x48, 0x0f, 0x05]), None);
        assert_eq!(x86(&[0x0f]), None);
        assert_eq!(x86(&[]), None);
        // 32-bit ARM: svc #0 in ARM and Thumb code; not svc #1, not a conditional svc
        // (svceq #0), and not the same bytes on another architecture (x86 `add bh, bl`).
        assert_eq!(arm(&[0x00, 0x00, 0x00, 0xef]), Some(SyscallInsn::SvcArm));
        assert_eq!(arm(&[0x00, 0xdf]), Some(SyscallInsn::SvcThumb));
        assert_eq!(arm(&[0x01, 0xdf]), None);
        assert_eq!(arm(&[0x01, 0x00, 0x00, 0xef]), None);
        assert_eq!(arm(&[0x00, 0x00, 0x00, 0x0f]), None);
        assert_eq!(x86(&[0x00, 0xdf]), None);
        assert_eq!(arm(&[0x0f, 0x05]), None);
        assert_eq!(arm(&[0x01, 0x00, 0x00, 0xd4]), None);
        // arm64 runs 32-bit programs: their svc #0 in ARM and Thumb code.
        assert_eq!(arm64(&[0x00, 0x00, 0x00, 0xef]), Some(SyscallInsn::SvcArm));
        assert_eq!(arm64(&[0x00, 0xdf]), Some(SyscallInsn::SvcThumb));
        assert_eq!(SyscallInsn::SvcThumb.size(), 2);
        assert_eq!(SyscallInsn::SvcArm.size(), 4);
    }

    #[test]
    fn index_round_trips() {
        for kind in SyscallInsn::ALL {
            assert_eq!(SyscallInsn::from_index(kind.index()), Some(kind));
        }
        assert_eq!(SyscallInsn::from_index(SyscallInsn::ALL.len()), None);
    }
}
