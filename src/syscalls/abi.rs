//! Linux system call conventions: where the number and the six arguments are, where
//! the result is, and where the thread resumes when the call returns.
//!
//! | entry                        | table       | nr  | arguments 1..6                      | resumes at |
//! |------------------------------|-------------|-----|-------------------------------------|------------|
//! | `svc #0`, arm64              | `linux_arm64` | x8 | x0, x1, x2, x3, x4, x5 (result: x0) | pc + 4     |
//! | `svc #0`, 32-bit ARM code    | `linux_arm` | r7  | r0, r1, r2, r3, r4, r5 (result: r0) | pc + 4     |
//! | `svc #0`, Thumb code         | `linux_arm` | r7  | r0, r1, r2, r3, r4, r5 (result: r0) | pc + 2     |
//! | `syscall`, 64-bit code       | `linux_x64` | rax | rdi, rsi, rdx, r10, r8, r9          | pc + 2     |
//! | `int 0x80` (any mode)        | `linux_x86` | eax | ebx, ecx, edx, esi, edi, ebp        | pc + 2     |
//! | `sysenter` (vDSO)            | `linux_x86` | eax | ebx, ecx, edx, esi, edi, `[ebp]`    | pc + 4     |
//! | `syscall`, 32-bit code (vDSO)| `linux_x86` | eax | ebx, **ebp**, edx, esi, edi, `[esp]`| pc + 4     |
//!
//! The two fast 32-bit paths come from the vDSO's `__kernel_vsyscall`
//! (arch/x86/entry/vdso/vdso32/system_call.S, unchanged in substance since 4.x):
//!
//! ```text
//! push %ecx; push %edx; push %ebp
//! movl %esp, %ebp; sysenter        (or: movl %ecx, %ebp; syscall)
//! int $0x80
//! int80_landing_pad: pop %ebp; pop %edx; pop %ecx; ret
//! ```
//!
//! `sysenter` saves no user stack pointer, so the vDSO passes it in `ebp`, after pushing
//! the real `ebp` (argument 6) there: the kernel (`do_fast_syscall_32` in
//! arch/x86/entry/common.c, reached from `entry_SYSENTER_32` / `entry_SYSENTER_compat`)
//! takes `regs->sp` from `ebp` and reads argument 6 with `get_user(regs->bp, regs->sp)`,
//! i.e. from `[ebp]` (= `[esp]` at the `sysenter`). `ecx` and `edx` still hold arguments 2
//! and 3. The 32-bit `syscall` path (AMD CPUs, `entry_SYSCALL_compat`) loses `ecx` to the
//! return address, so the vDSO moved argument 2 to `ebp`; argument 6 is again the pushed
//! `ebp`, at `[esp]`. Both return through `int80_landing_pad` — the vDSO places `int $0x80`
//! (2 bytes) right after the 2-byte `sysenter`/`syscall`, so the thread resumes 4 bytes
//! after the instruction, not 2 (the kernel sets `regs->ip` to the landing pad).
//!
//! 32-bit ARM is the EABI's convention (arch/arm/kernel/entry-common.S, `vector_swi`): the
//! number in `r7`, the instruction's immediate 0; a 64-bit argument takes an even/odd
//! register pair, which the tables do not model (one register per argument). A 32-bit
//! program on arm64 (AArch32 at EL0, the kernel's compat path, arch/arm64/tools/
//! syscall_32.tbl: the same numbers) calls the same way; QEMU's aarch64 registers are
//! not its own there (synced at exceptions only), so its call is read at
//! `do_el0_svc_compat` from the `pt_regs` the kernel saved, and its result from `x0` at
//! the first instruction it resumes at (synced by the exception return).
//!
//! `int 0x80` from 64-bit code uses the i386 table and the low 32 bits of the registers.
//! x32 (`syscall` with bit 30 of `rax` set) is not decoded: its numbers miss the table.

use crate::arch::insn::SyscallInsn;
use crate::arch::regs::Reg;
use crate::mem::GuestMemory;
use serde::Serialize;

use super::Profile;

/// General-purpose registers at a system call instruction. On a 32-bit guest fill the
/// low halves (`eax` in `rax`, ...) and leave `r8`..`r15` zero; on arm64 `x0`..`x8` are
/// in `x`, the program counter and stack pointer in `rip` and `rsp`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct Regs {
    pub rax: u64,
    pub rbx: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub rbp: u64,
    pub rsp: u64,
    pub r8: u64,
    pub r9: u64,
    pub r10: u64,
    pub r11: u64,
    pub r12: u64,
    pub r13: u64,
    pub r14: u64,
    pub r15: u64,
    pub rip: u64,
    pub x: [u64; 9],
}

impl Regs {
    /// Sets the field of `reg` (`Rax` → `rax`); registers without a field are ignored.
    pub fn set(&mut self, reg: Reg, value: u64) {
        let field = match reg {
            Reg::Rax => &mut self.rax,
            Reg::Rbx => &mut self.rbx,
            Reg::Rcx => &mut self.rcx,
            Reg::Rdx => &mut self.rdx,
            Reg::Rsi => &mut self.rsi,
            Reg::Rdi => &mut self.rdi,
            Reg::Rbp => &mut self.rbp,
            Reg::Rsp => &mut self.rsp,
            Reg::R8 => &mut self.r8,
            Reg::R9 => &mut self.r9,
            Reg::R10 => &mut self.r10,
            Reg::R11 => &mut self.r11,
            Reg::R12 => &mut self.r12,
            Reg::R13 => &mut self.r13,
            Reg::R14 => &mut self.r14,
            Reg::R15 => &mut self.r15,
            Reg::Rip => &mut self.rip,
            Reg::X0 => &mut self.x[0],
            Reg::X1 => &mut self.x[1],
            Reg::X2 => &mut self.x[2],
            Reg::X3 => &mut self.x[3],
            Reg::X4 => &mut self.x[4],
            Reg::X5 => &mut self.x[5],
            Reg::X7 => &mut self.x[7],
            Reg::X8 => &mut self.x[8],
            _ => return,
        };
        *field = value;
    }
}

/// One of the four ways into the kernel, see the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Abi {
    /// `syscall` from 64-bit code.
    X64Syscall,
    /// `int 0x80`, from 32- or 64-bit code.
    I386Int80,
    /// `sysenter` through the vDSO.
    I386Sysenter,
    /// `syscall` from 32-bit (compatibility-mode) code, through the vDSO.
    I386Syscall,
    /// `svc #0` on arm64.
    Arm64Svc,
    /// `svc #0` in 32-bit ARM code (A32), EABI.
    ArmSvc,
    /// `svc #0` in Thumb code (T32), EABI.
    ThumbSvc,
}

impl Abi {
    /// Every convention, in a fixed order (see [`Abi::index`]).
    pub const ALL: [Abi; 7] = [
        Abi::X64Syscall,
        Abi::I386Int80,
        Abi::I386Sysenter,
        Abi::I386Syscall,
        Abi::Arm64Svc,
        Abi::ArmSvc,
        Abi::ThumbSvc,
    ];

    /// Position in [`Abi::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// The instruction this convention enters with.
    pub fn insn(self) -> SyscallInsn {
        match self {
            Abi::X64Syscall | Abi::I386Syscall => SyscallInsn::Syscall,
            Abi::I386Int80 => SyscallInsn::Int80,
            Abi::I386Sysenter => SyscallInsn::Sysenter,
            Abi::Arm64Svc => SyscallInsn::Svc,
            Abi::ArmSvc => SyscallInsn::SvcArm,
            Abi::ThumbSvc => SyscallInsn::SvcThumb,
        }
    }

    /// The register that holds the call's number at the instruction.
    pub fn nr_register(self) -> Reg {
        match self {
            Abi::Arm64Svc => Reg::X8,
            Abi::ArmSvc | Abi::ThumbSvc => Reg::X7,
            _ => Reg::Rax,
        }
    }

    /// The register that holds the result at the return point.
    pub fn result_register(self) -> Reg {
        match self {
            Abi::Arm64Svc | Abi::ArmSvc | Abi::ThumbSvc => Reg::X0,
            _ => Reg::Rax,
        }
    }
}

/// A system call as it enters the kernel: raw values, nothing decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawCall {
    /// How it entered.
    pub abi: Abi,
    /// The number (`rax`, or `eax` zero-extended).
    pub nr: u64,
    /// Arguments 1..6, zero-extended from 32 bits for the i386 conventions.
    pub args: [u64; 6],
    /// Address of the system call instruction.
    pub pc: u64,
    /// Where the thread resumes when the call returns.
    pub return_pc: u64,
    /// The user stack pointer at entry, if the caller read `rsp` (0 otherwise: only the
    /// 32-bit `syscall` path needs it).
    pub sp: u64,
    /// Argument 6 lives on the user stack (`sysenter`, 32-bit `syscall`) and could not be
    /// read: `args[5]` is 0 (the kernel fails such a call with `EFAULT`).
    pub arg6_fault: bool,
}

impl RawCall {
    /// The same call made from code `by` bytes away: the same instructions mapped at
    /// another address (QEMU shares one translation between them).
    pub fn shifted(self, by: u64) -> RawCall {
        RawCall {
            pc: self.pc.wrapping_add(by),
            return_pc: self.return_pc.wrapping_add(by),
            ..self
        }
    }

    /// The table that gives [`RawCall::nr`] its meaning.
    pub fn profile(&self) -> Profile {
        self.abi.profile()
    }

    /// What the table says of this call, if it knows the number.
    pub fn info(&self) -> Option<&'static super::SyscallInfo> {
        self.profile().lookup(self.nr)
    }

    /// The call's name (`openat`), if the table knows the number.
    pub fn name(&self) -> Option<&'static str> {
        self.info().map(|i| i.name)
    }

    /// What the call does besides its result (`NONE` for a number the table does not
    /// know).
    pub fn effects(&self) -> super::Effects {
        self.info().map_or(super::Effects::NONE, |i| i.effects)
    }
}

impl Abi {
    /// The convention of an instruction; `code64` says whether the CPU runs 64-bit code
    /// (long mode with `CS.L` set). `sysenter` from 64-bit code is not a Linux system call.
    pub fn detect(insn: SyscallInsn, code64: bool) -> Option<Abi> {
        match (insn, code64) {
            (SyscallInsn::Syscall, true) => Some(Abi::X64Syscall),
            (SyscallInsn::Syscall, false) => Some(Abi::I386Syscall),
            (SyscallInsn::Int80, _) => Some(Abi::I386Int80),
            (SyscallInsn::Sysenter, false) => Some(Abi::I386Sysenter),
            (SyscallInsn::Sysenter, true) => None,
            (SyscallInsn::Svc, _) => Some(Abi::Arm64Svc),
            (SyscallInsn::SvcArm, _) => Some(Abi::ArmSvc),
            (SyscallInsn::SvcThumb, _) => Some(Abi::ThumbSvc),
        }
    }

    /// The table this convention indexes.
    pub fn profile(self) -> Profile {
        match self {
            Abi::X64Syscall => Profile::LinuxX64,
            Abi::Arm64Svc => Profile::LinuxArm64,
            Abi::ArmSvc | Abi::ThumbSvc => Profile::LinuxArm,
            _ => Profile::LinuxX86,
        }
    }

    /// How many bytes after the instruction the thread resumes.
    pub fn return_offset(self) -> u64 {
        match self {
            Abi::X64Syscall | Abi::I386Int80 | Abi::ThumbSvc => 2,
            Abi::I386Sysenter | Abi::I386Syscall | Abi::Arm64Svc | Abi::ArmSvc => 4,
        }
    }

    /// How many arguments call number `nr` (the raw `rax`) takes: its prototype's count,
    /// or all six for a number the table does not know.
    pub fn arg_count(self, nr: u64) -> usize {
        self.info(nr).map_or(6, |i| i.args.len())
    }

    /// What the table says of number `nr` as it is in `rax` at the instruction (only its
    /// low 32 bits count for the i386 conventions).
    pub fn info(self, nr: u64) -> Option<&'static super::SyscallInfo> {
        let nr = match self {
            Abi::X64Syscall | Abi::Arm64Svc => nr,
            _ => nr & 0xffff_ffff,
        };
        self.profile().lookup(nr)
    }

    /// The registers [`Abi::entry_with`] needs, besides `rax`, for a call with `nargs`
    /// arguments: a caller that pays for every register read fetches only these.
    pub fn arg_registers(self, nargs: usize) -> &'static [Reg] {
        // The sixth is where argument 6 is: a register, or the one pointing at it on the
        // user stack (ebp for sysenter, esp for 32-bit syscall).
        const X64: [Reg; 6] = [Reg::Rdi, Reg::Rsi, Reg::Rdx, Reg::R10, Reg::R8, Reg::R9];
        const INT80: [Reg; 6] = [Reg::Rbx, Reg::Rcx, Reg::Rdx, Reg::Rsi, Reg::Rdi, Reg::Rbp];
        const SYSCALL32: [Reg; 6] = [Reg::Rbx, Reg::Rbp, Reg::Rdx, Reg::Rsi, Reg::Rdi, Reg::Rsp];
        const ARM64: [Reg; 6] = [Reg::X0, Reg::X1, Reg::X2, Reg::X3, Reg::X4, Reg::X5];
        let regs: &'static [Reg; 6] = match self {
            Abi::X64Syscall => &X64,
            Abi::Arm64Svc | Abi::ArmSvc | Abi::ThumbSvc => &ARM64,
            Abi::I386Int80 | Abi::I386Sysenter => &INT80,
            Abi::I386Syscall => &SYSCALL32,
        };
        &regs[..nargs.min(6)]
    }

    /// Reads the number and arguments at the instruction at `regs.rip`. Only argument 6
    /// of the fast 32-bit paths touches memory (4 bytes of user stack).
    pub fn entry(self, regs: &Regs, mem: &dyn GuestMemory) -> RawCall {
        self.entry_with(regs, mem, 6)
    }

    /// [`Abi::entry`] for a call known to take `nargs` arguments: the user stack is read
    /// for argument 6 only when there is one.
    pub fn entry_with(self, regs: &Regs, mem: &dyn GuestMemory, nargs: usize) -> RawCall {
        let lo = |v: u64| v & 0xffff_ffff;
        let (nr, mut args, stack_arg6) = match self {
            Abi::X64Syscall => (
                regs.rax,
                [regs.rdi, regs.rsi, regs.rdx, regs.r10, regs.r8, regs.r9],
                None,
            ),
            Abi::I386Int80 => (
                lo(regs.rax),
                [regs.rbx, regs.rcx, regs.rdx, regs.rsi, regs.rdi, regs.rbp].map(lo),
                None,
            ),
            Abi::I386Sysenter => (
                lo(regs.rax),
                [regs.rbx, regs.rcx, regs.rdx, regs.rsi, regs.rdi, 0].map(lo),
                Some(lo(regs.rbp)),
            ),
            Abi::I386Syscall => (
                lo(regs.rax),
                [regs.rbx, regs.rbp, regs.rdx, regs.rsi, regs.rdi, 0].map(lo),
                Some(lo(regs.rsp)),
            ),
            Abi::Arm64Svc => (
                regs.x[8],
                [
                    regs.x[0], regs.x[1], regs.x[2], regs.x[3], regs.x[4], regs.x[5],
                ],
                None,
            ),
            Abi::ArmSvc | Abi::ThumbSvc => (
                lo(regs.x[7]),
                [
                    regs.x[0], regs.x[1], regs.x[2], regs.x[3], regs.x[4], regs.x[5],
                ]
                .map(lo),
                None,
            ),
        };
        let mut arg6_fault = false;
        if let Some(at) = stack_arg6.filter(|_| nargs >= 6) {
            match mem.read_u32(at) {
                Ok(v) => args[5] = u64::from(v),
                Err(_) => arg6_fault = true,
            }
        }
        RawCall {
            abi: self,
            nr,
            args,
            pc: regs.rip,
            return_pc: regs.rip.wrapping_add(self.return_offset()),
            sp: regs.rsp,
            arg6_fault,
        }
    }

    /// The result at the return point: `rax` (`x0` on arm64) as a signed value, or `eax`. Values in
    /// `-4095..=-1` are `-errno` (the kernel's `IS_ERR_VALUE`). A 32-bit result outside
    /// that range is zero-extended, not sign-extended: it is a count or an address, and
    /// 32-bit addresses at or above 2 GiB (`mmap2` returning `0xf7f82000`, every `mmap`
    /// of an i386 process under the 3 GiB split) are not negative.
    pub fn return_value(self, regs: &Regs) -> i64 {
        match self {
            Abi::X64Syscall => regs.rax as i64,
            Abi::Arm64Svc => regs.x[0] as i64,
            _ => {
                let eax = match self {
                    Abi::ArmSvc | Abi::ThumbSvc => regs.x[0] as u32,
                    _ => regs.rax as u32,
                };
                if eax >= (-4095i32) as u32 {
                    i64::from(eax as i32)
                } else {
                    i64::from(eax)
                }
            }
        }
    }
}
