//! System calls: the tables generated from `prototypes/*.txt`, the per-architecture
//! calling conventions, argument decoding, typed hooks, and entry/return matching.
//!
//! How the plugin uses it, per system call instruction it sees:
//!
//! 1. [`Abi::detect`] from the instruction kind and the CPU mode, then
//!    [`Abi::entry`] on a [`Regs`] snapshot → a [`RawCall`] (number, 6 arguments, pc);
//! 2. [`Matcher::enter`] with the thread's identity → possibly a [`Completed`] call (one
//!    that will never return, or an older one this thread abandoned);
//! 3. [`SyscallHooks::enter`] runs user hooks;
//! 4. when the thread reaches [`RawCall::return_pc`], [`Matcher::ret`] with
//!    [`Abi::return_value`] → the [`Completed`] call; [`SyscallHooks::ret`] runs hooks and
//!    [`SyscallRecord::new`] makes the JSON record.

#![deny(unsafe_code)]

pub mod abi;
pub mod decode;
pub mod effects;
pub mod hooks;
pub mod matcher;
pub mod proto;

pub use abi::{Abi, RawCall, Regs};
pub use decode::{
    Args, Comm, DecodedArg, SyscallRecord, ThreadInfo, When, decode_arg, decode_args,
};
pub use effects::Effects;
pub use hooks::{HookCtx, SyscallHooks};
pub use matcher::{Completed, Done, Matcher, Outcome, page_offset};
pub use proto::ArgKind;

use serde::Serialize;

/// One argument of a system call, as its prototype declares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArgSpec {
    /// The parameter name (`filename`), `argN` if the prototype left it unnamed.
    pub name: &'static str,
    /// The C type (`const char __user *`).
    pub ctype: &'static str,
    /// How the raw value is interpreted.
    pub kind: ArgKind,
    /// Width of the value in bits: the kernel truncates the register to the C type
    /// (`int` → 32 bits) and never takes more than one register per argument on x86.
    pub bits: u8,
}

/// One system call of a profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyscallInfo {
    /// The number in this profile.
    pub nr: u32,
    /// The name records and hooks use: the kernel function without `sys_` (`openat`,
    /// `newstat`, `ia32_pread64`, `time32`).
    pub name: &'static str,
    /// The kernel function (`sys_openat`).
    pub func: &'static str,
    /// The arguments, at most 6.
    pub args: &'static [ArgSpec],
    /// What it does that bookkeeping depends on (from the name, at compile time).
    pub effects: Effects,
}

/// Shorthand used by the generated tables.
const fn a(name: &'static str, ctype: &'static str, kind: ArgKind, bits: u8) -> ArgSpec {
    ArgSpec {
        name,
        ctype,
        kind,
        bits,
    }
}

mod generated {
    use super::*;
    use std::sync::Arc;

    use super::hooks::Phase;

    include!(concat!(env!("OUT_DIR"), "/syscalls_gen.rs"));
}

/// A system call table: which numbers mean what.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Profile {
    /// Linux x86_64, the `syscall` instruction (64-bit processes).
    LinuxX64,
    /// Linux i386: a 32-bit kernel, or a 32-bit process on a 64-bit kernel (`int 0x80`,
    /// `sysenter`, or `syscall` from compatibility mode).
    LinuxX86,
    /// Linux arm64 (`svc #0`): the generic table of `asm-generic/unistd.h`.
    LinuxArm64,
    /// Linux 32-bit ARM, EABI (`svc #0` in ARM or Thumb code: number in `r7`):
    /// arch/arm/tools/syscall.tbl, and the ARM-private calls from `0x0f0001` (`set_tls`,
    /// `cacheflush`, ...). arm64's compat table (32-bit processes on arm64) has the same
    /// numbers.
    LinuxArm,
}

impl Profile {
    /// Every profile, in a fixed order (see [`Profile::index`]).
    pub const ALL: [Profile; 4] = [
        Profile::LinuxX64,
        Profile::LinuxX86,
        Profile::LinuxArm64,
        Profile::LinuxArm,
    ];

    /// PANDA's name for it: `linux_x64`, `linux_x86`, `linux_arm64`, `linux_arm`.
    pub fn name(self) -> &'static str {
        match self {
            Profile::LinuxX64 => "linux_x64",
            Profile::LinuxX86 => "linux_x86",
            Profile::LinuxArm64 => "linux_arm64",
            Profile::LinuxArm => "linux_arm",
        }
    }

    /// The inverse of [`Profile::name`].
    pub fn from_name(name: &str) -> Option<Profile> {
        Profile::ALL.into_iter().find(|p| p.name() == name)
    }

    /// A small stable index.
    pub fn index(self) -> usize {
        match self {
            Profile::LinuxX64 => 0,
            Profile::LinuxX86 => 1,
            Profile::LinuxArm64 => 2,
            Profile::LinuxArm => 3,
        }
    }

    /// Width of a register (and so of a `long` or a pointer) in bits.
    pub fn word_bits(self) -> u8 {
        match self {
            Profile::LinuxX64 | Profile::LinuxArm64 => 64,
            Profile::LinuxX86 | Profile::LinuxArm => 32,
        }
    }

    /// The whole table, by [`Profile::slot`]; `None` where no system call is defined.
    pub fn table(self) -> &'static [Option<SyscallInfo>] {
        match self {
            Profile::LinuxX64 => &generated::LINUX_X64,
            Profile::LinuxX86 => &generated::LINUX_X86,
            Profile::LinuxArm64 => &generated::LINUX_ARM64,
            Profile::LinuxArm => &generated::LINUX_ARM,
        }
    }

    /// Where number `nr` sits in [`Profile::table`] (and in tables made after it): at
    /// `nr` itself, except the ARM-private numbers (`0x0f0000..0x0f0800`), which follow
    /// the ordinary ones. `None` for a number no table place can hold.
    pub fn slot(self, nr: u64) -> Option<usize> {
        const PRIVATE: std::ops::Range<u64> = 0x0f_0000..0x0f_0800;
        let private_at = match self {
            Profile::LinuxX64 => generated::LINUX_X64_PRIVATE_AT,
            Profile::LinuxX86 => generated::LINUX_X86_PRIVATE_AT,
            Profile::LinuxArm64 => generated::LINUX_ARM64_PRIVATE_AT,
            Profile::LinuxArm => generated::LINUX_ARM_PRIVATE_AT,
        };
        let nr = usize::try_from(nr).ok()?;
        if nr < private_at {
            return Some(nr);
        }
        let private = u64::try_from(nr).ok().filter(|n| PRIVATE.contains(n))?;
        Some(private_at + usize::try_from(private - PRIVATE.start).ok()?)
    }

    /// The system call with number `nr`, if there is one.
    pub fn lookup(self, nr: u64) -> Option<&'static SyscallInfo> {
        self.table().get(self.slot(nr)?)?.as_ref()
    }

    /// The system call called `name` (`openat`), if there is one.
    pub fn by_name(self, name: &str) -> Option<&'static SyscallInfo> {
        self.table().iter().flatten().find(|s| s.name == name)
    }

    /// Every defined system call, by increasing number.
    pub fn iter(self) -> impl Iterator<Item = &'static SyscallInfo> {
        self.table().iter().flatten()
    }
}

impl SyscallInfo {
    /// The argument called `name`, with its index.
    pub fn arg(&self, name: &str) -> Option<(usize, &'static ArgSpec)> {
        self.args.iter().enumerate().find(|(_, a)| a.name == name)
    }

    /// Whether a thread never comes back from this call to the instruction after it:
    /// `exit`, `exit_group` (the thread ends), `rt_sigreturn`, `sigreturn` (it resumes the
    /// interrupted code). A successful `execve` does not return either, but a failed one
    /// does; see [`SyscallInfo::is_exec`].
    pub fn never_returns(&self) -> bool {
        self.effects.never_returns()
    }

    /// `execve` or `execveat`: no return when it succeeds, an error return when not.
    pub fn is_exec(&self) -> bool {
        self.effects.any(Effects::EXEC)
    }
}

#[cfg(test)]
mod tests;
