//! The instructions that enter the kernel for a system call: x86's (32- and 64-bit) and
//! arm64's.
//!
//! Recognised at translation time from the instruction's bytes, so that only these
//! instructions get a callback and all other code runs uninstrumented.

use serde::Serialize;

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
}

impl SyscallInsn {
    /// Every variant, in a fixed order (used to index per-kind counters).
    pub const ALL: [SyscallInsn; 4] = [
        SyscallInsn::Syscall,
        SyscallInsn::Sysenter,
        SyscallInsn::Int80,
        SyscallInsn::Svc,
    ];

    /// Classifies one whole instruction by its bytes. Prefixed forms are not system
    /// calls that Linux user space emits, so only the exact encodings match. The
    /// architectures cannot be confused: x86's are whole 2-byte instructions, arm64's
    /// `svc` a 4-byte word (little-endian) that no x86 instruction is.
    pub fn classify(insn: &[u8]) -> Option<SyscallInsn> {
        match insn {
            [0x0f, 0x05] => Some(SyscallInsn::Syscall),
            [0x0f, 0x34] => Some(SyscallInsn::Sysenter),
            [0xcd, 0x80] => Some(SyscallInsn::Int80),
            [0x01, 0x00, 0x00, 0xd4] => Some(SyscallInsn::Svc),
            _ => None,
        }
    }

    /// A small stable number, so the kind can travel as a callback's user data.
    pub fn index(self) -> usize {
        match self {
            SyscallInsn::Syscall => 0,
            SyscallInsn::Sysenter => 1,
            SyscallInsn::Int80 => 2,
            SyscallInsn::Svc => 3,
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
        assert_eq!(
            SyscallInsn::classify(&[0x0f, 0x05]),
            Some(SyscallInsn::Syscall)
        );
        assert_eq!(
            SyscallInsn::classify(&[0x0f, 0x34]),
            Some(SyscallInsn::Sysenter)
        );
        assert_eq!(
            SyscallInsn::classify(&[0xcd, 0x80]),
            Some(SyscallInsn::Int80)
        );
        assert_eq!(
            SyscallInsn::classify(&[0x01, 0x00, 0x00, 0xd4]),
            Some(SyscallInsn::Svc)
        );
        // svc #1, hvc #0: not Linux system calls.
        assert_eq!(SyscallInsn::classify(&[0x21, 0x00, 0x00, 0xd4]), None);
        assert_eq!(SyscallInsn::classify(&[0x02, 0x00, 0x00, 0xd4]), None);
        assert_eq!(SyscallInsn::classify(&[0xcd, 0x81]), None);
        assert_eq!(SyscallInsn::classify(&[0x48, 0x0f, 0x05]), None);
        assert_eq!(SyscallInsn::classify(&[0x0f]), None);
        assert_eq!(SyscallInsn::classify(&[]), None);
    }

    #[test]
    fn index_round_trips() {
        for kind in SyscallInsn::ALL {
            assert_eq!(SyscallInsn::from_index(kind.index()), Some(kind));
        }
        assert_eq!(SyscallInsn::from_index(4), None);
    }
}
