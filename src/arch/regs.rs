//! Registers the plugin reads, named once for both x86 widths, so that everything above
//! the QEMU glue asks for `Reg::Rax` whether the guest calls it `rax` or `eax`.

use super::Arch;

/// A register of an x86 vCPU. On i386 guests the 32-bit register of the same role is
/// meant (`Rax` is `eax`); `R8`..`R15` exist only on x86_64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[allow(missing_docs)]
pub enum Reg {
    Rax,
    Rbx,
    Rcx,
    Rdx,
    Rsi,
    Rdi,
    Rbp,
    Rsp,
    R8,
    R9,
    R10,
    R11,
    R12,
    R13,
    R14,
    R15,
    Rip,
    Cs,
    Cr3,
    Cr4,
    FsBase,
    GsBase,
    KernelGsBase,
    /// arm64 `x0`..`x8`: arguments and result (`x0`..`x5`), call number (`x8`). On 32-bit
    /// ARM the registers of the same numbers, `r0`..`r7`: arguments and result (`r0`..`r5`),
    /// call number (`r7`, EABI).
    X0,
    X1,
    X2,
    X3,
    X4,
    X5,
    X7,
    X8,
    /// arm64 `TPIDR_EL1`: this CPU's per-CPU offset (`__per_cpu_offset[cpu]`).
    TpidrEl1,
    /// arm64 `TTBR0_EL1`: the user half's page tables (ASID in the top 16 bits).
    Ttbr0El1,
    /// arm64 `TCR_EL1`: its `T1SZ` field gives the kernel half's virtual address bits.
    TcrEl1,
    /// 32-bit ARM `CPSR`: mode, and the Thumb bit.
    Cpsr,
    /// 32-bit ARM `TTBR0` (cp15 c2): the user half's page tables (64 bits with LPAE, the
    /// ASID in bits 48..55).
    Ttbr0,
    /// 32-bit ARM `TPIDRURO` (cp15 c13, opc2 3): user space's TLS pointer in user mode
    /// (`set_tls`); the current task in kernel mode with `CURRENT_POINTER_IN_TPIDRURO`.
    Tpidruro,
    /// 32-bit ARM `TPIDRPRW` (cp15 c13, opc2 4): this CPU's per-CPU offset.
    Tpidrprw,
    /// 32-bit ARM `TTBCR` (cp15 c2, opc2 2): the page-table format (`EAE`: LPAE) and how
    /// `TTBR0` and `TTBR1` split the address space.
    Ttbcr,
}

impl Reg {
    /// Every register, in a fixed order (indexes for per-register tables).
    pub const ALL: [Reg; 39] = [
        Reg::Rax,
        Reg::Rbx,
        Reg::Rcx,
        Reg::Rdx,
        Reg::Rsi,
        Reg::Rdi,
        Reg::Rbp,
        Reg::Rsp,
        Reg::R8,
        Reg::R9,
        Reg::R10,
        Reg::R11,
        Reg::R12,
        Reg::R13,
        Reg::R14,
        Reg::R15,
        Reg::Rip,
        Reg::Cs,
        Reg::Cr3,
        Reg::Cr4,
        Reg::FsBase,
        Reg::GsBase,
        Reg::KernelGsBase,
        Reg::X0,
        Reg::X1,
        Reg::X2,
        Reg::X3,
        Reg::X4,
        Reg::X5,
        Reg::X7,
        Reg::X8,
        Reg::TpidrEl1,
        Reg::Ttbr0El1,
        Reg::TcrEl1,
        Reg::Cpsr,
        Reg::Ttbr0,
        Reg::Tpidruro,
        Reg::Tpidrprw,
        Reg::Ttbcr,
    ];

    /// Position in [`Reg::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// The name QEMU's register list (gdbstub XML) gives this register on `arch`, or
    /// `None` if the architecture has no such register. `Rip` and `Rsp` are every
    /// architecture's program counter and stack pointer (arm64's `pc`, `sp`).
    pub fn qemu_name(self, arch: Arch) -> Option<&'static str> {
        match arch {
            Arch::Aarch64 => return self.arm64_name(),
            Arch::Arm => return self.arm_name(),
            Arch::X86_64 | Arch::I386 => {}
        }
        let wide = arch == Arch::X86_64;
        let pick = |w: &'static str, n: &'static str| Some(if wide { w } else { n });
        match self {
            Reg::Rax => pick("rax", "eax"),
            Reg::Rbx => pick("rbx", "ebx"),
            Reg::Rcx => pick("rcx", "ecx"),
            Reg::Rdx => pick("rdx", "edx"),
            Reg::Rsi => pick("rsi", "esi"),
            Reg::Rdi => pick("rdi", "edi"),
            Reg::Rbp => pick("rbp", "ebp"),
            Reg::Rsp => pick("rsp", "esp"),
            Reg::R8 if wide => Some("r8"),
            Reg::R9 if wide => Some("r9"),
            Reg::R10 if wide => Some("r10"),
            Reg::R11 if wide => Some("r11"),
            Reg::R12 if wide => Some("r12"),
            Reg::R13 if wide => Some("r13"),
            Reg::R14 if wide => Some("r14"),
            Reg::R15 if wide => Some("r15"),
            Reg::R8 | Reg::R9 | Reg::R10 | Reg::R11 | Reg::R12 | Reg::R13 | Reg::R14 | Reg::R15 => {
                None
            }
            Reg::Rip => pick("rip", "eip"),
            Reg::Cs => Some("cs"),
            Reg::Cr3 => Some("cr3"),
            Reg::Cr4 => Some("cr4"),
            Reg::FsBase => Some("fs_base"),
            Reg::GsBase => Some("gs_base"),
            Reg::KernelGsBase => Some("k_gs_base"),
            _ => None,
        }
    }

    /// [`Reg::qemu_name`] on arm64 (QEMU's core and system-register XML).
    fn arm64_name(self) -> Option<&'static str> {
        Some(match self {
            Reg::X0 => "x0",
            Reg::X1 => "x1",
            Reg::X2 => "x2",
            Reg::X3 => "x3",
            Reg::X4 => "x4",
            Reg::X5 => "x5",
            Reg::X8 => "x8",
            Reg::Rip => "pc",
            Reg::Rsp => "sp",
            Reg::TpidrEl1 => "TPIDR_EL1",
            Reg::Ttbr0El1 => "TTBR0_EL1",
            Reg::TcrEl1 => "TCR_EL1",
            _ => return None,
        })
    }

    /// [`Reg::qemu_name`] on 32-bit ARM (QEMU's core XML and its cp15 registers).
    fn arm_name(self) -> Option<&'static str> {
        Some(match self {
            Reg::X0 => "r0",
            Reg::X1 => "r1",
            Reg::X2 => "r2",
            Reg::X3 => "r3",
            Reg::X4 => "r4",
            Reg::X5 => "r5",
            Reg::X7 => "r7",
            Reg::Rip => "pc",
            Reg::Rsp => "sp",
            Reg::Cpsr => "cpsr",
            Reg::Ttbr0 => "TTBR0",
            Reg::Tpidruro => "TPIDRURO",
            Reg::Tpidrprw => "TPIDRPRW",
            Reg::Ttbcr => "TTBCR",
            _ => return None,
        })
    }
}

/// Register reads of the vCPU whose callback is running.
pub trait Registers {
    /// The register's value, zero-extended; `None` if QEMU does not expose it.
    fn reg(&self, reg: Reg) -> Option<u64>;

    /// Several registers at once into `out` (0 for any QEMU does not expose). A system
    /// call reads up to seven per entry; an implementation can make that one trip.
    fn regs(&self, regs: &[Reg], out: &mut [u64]) {
        for (reg, value) in regs.iter().zip(out) {
            *value = self.reg(*reg).unwrap_or(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_per_width() {
        assert_eq!(Reg::Rax.qemu_name(Arch::X86_64), Some("rax"));
        assert_eq!(Reg::Rax.qemu_name(Arch::I386), Some("eax"));
        assert_eq!(Reg::R10.qemu_name(Arch::I386), None);
        assert_eq!(Reg::Cr3.qemu_name(Arch::I386), Some("cr3"));
        assert_eq!(Reg::X8.qemu_name(Arch::Aarch64), Some("x8"));
        assert_eq!(Reg::Rip.qemu_name(Arch::Aarch64), Some("pc"));
        assert_eq!(Reg::Rax.qemu_name(Arch::Aarch64), None);
        assert_eq!(Reg::X8.qemu_name(Arch::X86_64), None);
        assert_eq!(Reg::X7.qemu_name(Arch::Arm), Some("r7"));
        assert_eq!(Reg::Rip.qemu_name(Arch::Arm), Some("pc"));
        assert_eq!(Reg::X8.qemu_name(Arch::Arm), None);
        assert_eq!(Reg::Cpsr.qemu_name(Arch::Aarch64), None);
        for (i, r) in Reg::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
    }
}
