//! Guest architectures: which instructions enter the kernel, and how to read a system
//! call's number and arguments from the registers.

pub mod insn;
pub mod regs;

/// The guest architecture, from QEMU's target name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Arch {
    /// `qemu-system-x86_64`: a 64-bit kernel; 32-bit processes may run under it.
    X86_64,
    /// `qemu-system-i386`: a 32-bit kernel.
    I386,
    /// `qemu-system-aarch64`: a 64-bit arm64 kernel.
    Aarch64,
    /// `qemu-system-arm`: a 32-bit ARM kernel (ARMv7, EABI: Debian's armhf).
    Arm,
}

impl Arch {
    /// Maps QEMU's target name (`x86_64-softmmu`, `i386-softmmu`, or the bare
    /// architecture) to an architecture the plugin understands.
    pub fn from_target(target: &str) -> Option<Arch> {
        match target.split('-').next()? {
            "x86_64" => Some(Arch::X86_64),
            "i386" => Some(Arch::I386),
            "aarch64" => Some(Arch::Aarch64),
            "arm" => Some(Arch::Arm),
            _ => None,
        }
    }

    /// Bytes in a guest pointer.
    pub fn pointer_size(self) -> usize {
        match self {
            Arch::X86_64 | Arch::Aarch64 => 8,
            Arch::I386 | Arch::Arm => 4,
        }
    }

    /// Whether `va` is in the user half of the address space, where a process's own
    /// tables are walked for it: arm64's whole lower half (kernel addresses of 52-bit
    /// layouts do not all have their top 16 bits set), below the module area on 32-bit
    /// ARM, below the kernel's half on x86.
    pub fn is_user_address(self, va: u64) -> bool {
        match self {
            Arch::Aarch64 => va >> 63 == 0,
            Arch::Arm => va < 0xbf00_0000,
            Arch::X86_64 | Arch::I386 => !self.is_kernel_address(va),
        }
    }

    /// Whether `va` is in the kernel's half of the address space (x86_64: the upper
    /// canonical half; i386: above Debian's 3G/1G split; arm64: the `TTBR1` half, whose
    /// top 16 bits are set with 48-bit or smaller virtual addresses; 32-bit ARM: from
    /// the module area just below Debian's 3G/1G split on, where user space ends).
    pub fn is_kernel_address(self, va: u64) -> bool {
        match self {
            Arch::X86_64 => va >= 0xffff_8000_0000_0000,
            Arch::I386 => (0xc000_0000..=0xffff_ffff).contains(&va),
            Arch::Aarch64 => va >> 48 == 0xffff,
            Arch::Arm => (0xbf00_0000..=0xffff_ffff).contains(&va),
        }
    }

    /// The register that names the current (user) address space's page tables: CR3,
    /// arm64's `TTBR0_EL1`, or 32-bit ARM's `TTBR0`.
    pub fn page_table_register(self) -> regs::Reg {
        match self {
            Arch::X86_64 | Arch::I386 => regs::Reg::Cr3,
            Arch::Aarch64 => regs::Reg::Ttbr0El1,
            Arch::Arm => regs::Reg::Ttbr0,
        }
    }

    /// The physical page-table root in [`Arch::page_table_register`]'s value: without
    /// x86_64's PCID bits and no-flush bit, i386 PAE's low flag bits, or arm64's ASID
    /// and CnP bit, or 32-bit ARM's ASID (LPAE: bits 48..55) and low bits (LPAE: none, the
    /// table is 32-byte aligned; short descriptors: walk attributes).
    pub fn page_table_root(self, value: u64) -> u64 {
        match self {
            Arch::X86_64 => value & 0x000f_ffff_ffff_f000,
            Arch::I386 => value & !0x1f,
            Arch::Aarch64 => value & 0x0000_ffff_ffff_fffe,
            Arch::Arm => value & 0x0000_00ff_ffff_ffe0,
        }
    }

    /// Whether this is an x86 guest (32- or 64-bit).
    pub fn is_x86(self) -> bool {
        matches!(self, Arch::X86_64 | Arch::I386)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_names() {
        assert_eq!(Arch::from_target("x86_64-softmmu"), Some(Arch::X86_64));
        assert_eq!(Arch::from_target("x86_64"), Some(Arch::X86_64));
        assert_eq!(Arch::from_target("i386-softmmu"), Some(Arch::I386));
        assert_eq!(Arch::from_target("aarch64-softmmu"), Some(Arch::Aarch64));
        assert_eq!(Arch::from_target("arm-softmmu"), Some(Arch::Arm));
        assert_eq!(Arch::from_target("armeb-softmmu"), None);
        assert!(Arch::Arm.is_kernel_address(0xc040_0000));
        assert!(Arch::Arm.is_kernel_address(0xbf00_0000));
        assert!(!Arch::Arm.is_kernel_address(0xbeff_f000));
        assert_eq!(
            Arch::Arm.page_table_root(0x00ab_0000_8123_4000),
            0x8123_4000
        );
        assert!(Arch::Aarch64.is_kernel_address(0xffff_8000_8000_0000));
        assert!(!Arch::Aarch64.is_kernel_address(0x0000_ffff_f7ff_0000));
        assert!(Arch::X86_64.is_kernel_address(0xffff_ffff_8100_0000));
        assert!(!Arch::X86_64.is_kernel_address(0x7fff_ffff_f000));
        assert!(Arch::I386.is_kernel_address(0xc100_0000));
        assert!(!Arch::I386.is_kernel_address(0xbfff_f000));
    }

    #[test]
    fn user_halves() {
        // arm64: a 52-bit layout's linear map (0xfff0...) is not user memory either.
        assert!(Arch::Aarch64.is_user_address(0x0000_ffff_f7ff_0000));
        assert!(!Arch::Aarch64.is_user_address(0xfff0_0000_4000_0000));
        assert!(!Arch::Aarch64.is_user_address(0xffff_8000_8000_0000));
        // 32-bit ARM: user space ends at the module area.
        assert!(Arch::Arm.is_user_address(0xbeff_f000));
        assert!(!Arch::Arm.is_user_address(0xbf00_0000));
        assert!(Arch::X86_64.is_user_address(0x7fff_ffff_f000));
        assert!(!Arch::I386.is_user_address(0xc100_0000));
    }
}
