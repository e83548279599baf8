//! Guest architectures: which instructions enter the kernel, and how to read a system
//! call's number and arguments from the registers.

pub mod regs;
pub mod x86;

/// The guest architecture, from QEMU's target name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Arch {
    /// `qemu-system-x86_64`: a 64-bit kernel; 32-bit processes may run under it.
    X86_64,
    /// `qemu-system-i386`: a 32-bit kernel.
    I386,
}

impl Arch {
    /// Maps QEMU's target name (`x86_64-softmmu`, `i386-softmmu`, or the bare
    /// architecture) to an architecture the plugin understands.
    pub fn from_target(target: &str) -> Option<Arch> {
        match target.split('-').next()? {
            "x86_64" => Some(Arch::X86_64),
            "i386" => Some(Arch::I386),
            _ => None,
        }
    }

    /// Bytes in a guest pointer.
    pub fn pointer_size(self) -> usize {
        match self {
            Arch::X86_64 => 8,
            Arch::I386 => 4,
        }
    }

    /// Whether `va` is in the kernel's half of the address space (x86_64: the upper
    /// canonical half; i386: above Debian's 3G/1G split).
    pub fn is_kernel_address(self, va: u64) -> bool {
        match self {
            Arch::X86_64 => va >= 0xffff_8000_0000_0000,
            Arch::I386 => (0xc000_0000..=0xffff_ffff).contains(&va),
        }
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
        assert_eq!(Arch::from_target("aarch64-softmmu"), None);
        assert!(Arch::X86_64.is_kernel_address(0xffff_ffff_8100_0000));
        assert!(!Arch::X86_64.is_kernel_address(0x7fff_ffff_f000));
        assert!(Arch::I386.is_kernel_address(0xc100_0000));
        assert!(!Arch::I386.is_kernel_address(0xbfff_f000));
    }
}
