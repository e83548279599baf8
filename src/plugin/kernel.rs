//! What the plugin learns at run time about the running kernel before it can read its
//! structures: the KASLR slide and the direct-map base, found once; and, per callback,
//! the vCPU's per-CPU base and address space.
//!
//! The slide comes from execution, not from a memory scan: the first block QEMU
//! translates after a user-mode system call instruction is the kernel's entry point for
//! that instruction (`entry_SYSCALL_64`, `entry_INT80_*`, `entry_SYSENTER_*`), and the
//! kernelinfo holds that symbol's link-time address. The banner, when the kernelinfo
//! names it, confirms the slide.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use once_cell::sync::OnceCell;

use crate::arch::Arch;
use crate::arch::insn::SyscallInsn;
use crate::arch::regs::Reg;
use crate::config::KernelInfo;
use crate::cpu::Vcpu;
use crate::linux::{KernelContext, Linux, task};
use crate::mem::paging::Paging;

/// x86 KASLR moves the kernel in steps of `CONFIG_PHYSICAL_ALIGN` (2 MiB on Debian).
const KASLR_ALIGN: u64 = 0x20_0000;

/// x86 KASLR moves the kernel up, by less than 1 GiB (`KERNEL_IMAGE_SIZE`).
const KASLR_MAX: u64 = 0x4000_0000;

/// x86_64's direct map without KASLR (`__PAGE_OFFSET_BASE_L4`).
const X86_64_PAGE_OFFSET: u64 = 0xffff_8880_0000_0000;

/// i386's direct map with Debian's 3G/1G split (`CONFIG_PAGE_OFFSET`).
const I386_PAGE_OFFSET: u64 = 0xc000_0000;

/// 32-bit ARM's `vector_swi`: the offset of its third instruction, where the Spectre-BHB
/// entry variants join it.
const ARM_SWI_SAVED: u64 = 8;

/// `swapgs`: the first instruction of `entry_SYSCALL_64` (after an `endbr64` on IBT
/// kernels); confirms that an observed block is the 64-bit entry.
const SWAPGS: [u8; 3] = [0x0f, 0x01, 0xf8];

thread_local! {
    /// Set by a user-mode system call instruction on this vCPU thread; the next block this
    /// thread translates, if in the kernel, is the entry point for that instruction.
    static AWAITING_ENTRY: Cell<Option<SyscallInsn>> = const { Cell::new(None) };
}

/// Whether `info` can describe a kernel of `arch`: its addresses are that architecture's
/// kernel addresses (a 64-bit kernel's are in the upper canonical half, a 32-bit one's
/// fit in 32 bits).
pub fn for_arch(info: &KernelInfo, arch: Arch) -> bool {
    let init = info.task.init_addr;
    arch.is_kernel_address(init) && (arch.pointer_size() == 8 || init <= u64::from(u32::MAX))
}

/// A user-mode system call instruction of `kind` is about to run on this thread: the next
/// kernel block this thread translates is its entry point.
pub fn await_entry(kind: SyscallInsn) {
    AWAITING_ENTRY.with(|a| a.set(Some(kind)));
}

/// This thread translates a block at `va` whose first instructions are `insns`: if it is
/// the kernel entry a system call instruction just led to, which instruction and where.
pub fn observed_entry(arch: Arch, va: u64, insns: &[&[u8]]) -> Option<(SyscallInsn, u64)> {
    let kind = AWAITING_ENTRY.with(|a| a.take())?;
    if !arch.is_kernel_address(va) {
        return None;
    }
    let looks_right = kind != SyscallInsn::Syscall || insns.iter().take(2).any(|i| *i == SWAPGS);
    looks_right.then_some((kind, va))
}

/// Why the kernel cannot be read yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NotReady {
    /// The slide is still unknown: no system call has entered the kernel yet.
    #[error("the KASLR slide is not known yet (no system call seen)")]
    Slide,
    /// The kernelinfo describes another kernel.
    #[error("the kernelinfo group does not describe the running kernel")]
    WrongKernel,
    /// The direct-map base could not be read.
    #[error("the kernel's direct-map base (page_offset_base) is not readable here")]
    PageOffset,
}

/// The running kernel as the plugin sees it: its description plus the facts found at
/// run time.
#[derive(Debug)]
pub struct KernelView {
    info: KernelInfo,
    group: String,
    arch: Arch,
    slide: OnceCell<u64>,
    page_offset: OnceCell<u64>,
    user_readable: OnceCell<bool>,
    /// Whether the user-mode page tables leave the kernel unmapped (KPTI), decided with
    /// `user_readable`.
    kpti: OnceCell<bool>,
    /// Whether the running kernel is the one described (its banner where the group says).
    verified: OnceCell<bool>,
    /// Slides (in KASLR steps) under which a block was instrumented as `__switch_to`.
    switch_hooked: [AtomicU64; SLIDES / 64],
    /// A block was instrumented as `__switch_to` under the slide known then, when that
    /// slide lies beyond x86's range of candidates (arm64's KASLR; the kernel found in
    /// memory knows its slide before the function is first translated).
    switch_hooked_known: AtomicBool,
    /// Calls left at which the followed task is compared with the kernel's own
    /// ([`KernelView::confirm_switch`]).
    switch_checks: AtomicU32,
    /// Comparisons finished without refuting (equal, or `current_task` unreadable).
    switch_settled: AtomicU32,
    /// A comparison failed: `vmi.switch_to_addr` is not this kernel's `__switch_to`.
    switch_refuted: AtomicBool,
}

/// How many calls check the followed task against the kernel's `current_task`.
const SWITCH_CHECKS: u32 = 16;

/// The candidate of a block instrumented under a known slide beyond x86's range.
const KNOWN_SLIDE: u16 = u16::MAX;

/// How many KASLR slides there are.
const SLIDES: usize = (KASLR_MAX / KASLR_ALIGN) as usize;

impl KernelView {
    /// A view of a kernel described by `group` of a kernelinfo file.
    pub fn new(info: KernelInfo, group: String, arch: Arch) -> KernelView {
        let view = KernelView::unplaced(info, group, arch);
        if view.entry_link(SyscallInsn::Syscall).is_none()
            && view.entry_link(SyscallInsn::Int80).is_none()
            && view.entry_link(SyscallInsn::Sysenter).is_none()
            && !view.placed_by_text()
        {
            // A PANDA-only group: no entry symbol to measure against, so the kernel is
            // taken to run where it was linked (PANDA's own assumption). 32-bit ARM has no
            // KASLR (no RANDOMIZE_BASE), so its groups need none.
            if arch == Arch::Arm {
                log::info!(
                    "kernelinfo group [{}]: 32-bit ARM, no KASLR: the kernel runs where linked",
                    view.group
                );
            } else {
                log::info!(
                    "kernelinfo group [{}] has no vmi.entry_* addresses: assuming no KASLR",
                    view.group
                );
            }
            let _ = view.slide.set(0);
        }
        view
    }

    /// A view of a kernel whose group was built from its memory, where it runs moved by
    /// `slide`.
    pub fn found(info: KernelInfo, group: String, arch: Arch, slide: u64) -> KernelView {
        let view = KernelView::unplaced(info, group, arch);
        let _ = view.slide.set(slide);
        view
    }

    /// A view whose slide is still to be found.
    fn unplaced(info: KernelInfo, group: String, arch: Arch) -> KernelView {
        KernelView {
            info,
            group,
            arch,
            slide: OnceCell::new(),
            page_offset: OnceCell::new(),
            user_readable: OnceCell::new(),
            kpti: OnceCell::new(),
            verified: OnceCell::new(),
            switch_hooked: Default::default(),
            switch_hooked_known: AtomicBool::new(false),
            switch_checks: AtomicU32::new(SWITCH_CHECKS),
            switch_settled: AtomicU32::new(0),
            switch_refuted: AtomicBool::new(false),
        }
    }

    /// The kernelinfo.
    pub fn info(&self) -> &KernelInfo {
        &self.info
    }

    /// The kernelinfo group's name.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// The slide, once known.
    pub fn slide(&self) -> Option<u64> {
        self.slide.get().copied()
    }

    fn entry_link(&self, kind: SyscallInsn) -> Option<u64> {
        let v = &self.info.vmi;
        match kind {
            SyscallInsn::Syscall => v.entry_syscall_addr,
            SyscallInsn::Int80 => v.entry_int80_addr,
            SyscallInsn::Sysenter => v.entry_sysenter_addr,
            SyscallInsn::Svc | SyscallInsn::SvcArm | SyscallInsn::SvcThumb => None,
        }
    }

    /// The kernel's entry for `kind` was observed at run-time address `va`: sets the
    /// slide if `va` is this kernel's entry moved by a plausible KASLR slide. `None` when
    /// there is nothing to learn (slide known, no entry symbol), `Some(false)` when `va`
    /// cannot be this kernel's entry (a kernelinfo for another kernel).
    pub fn entry_observed(&self, kind: SyscallInsn, va: u64) -> Option<bool> {
        if self.slide.get().is_some() {
            return None;
        }
        let link = self.entry_link(kind)?;
        let slide = va.wrapping_sub(link);
        if slide % KASLR_ALIGN != 0 || slide >= KASLR_MAX {
            log::debug!(
                "[{}] entry {kind:?} at {va:#x} is not {link:#x} moved by KASLR",
                self.group
            );
            return Some(false);
        }
        let _ = self.slide.set(slide);
        log::info!(
            "[{}] kernel entry {kind:?} at {va:#x}: KASLR slide {slide:#x}",
            self.group
        );
        Some(true)
    }

    /// Whether the slide is measured from where the kernel's `_text` runs
    /// ([`KernelView::text_observed`]) rather than from its entry: arm64, whose entry is
    /// an exception vector (moved to a trampoline under KPTI) and whose KASLR has no
    /// small range of candidates.
    pub fn placed_by_text(&self) -> bool {
        self.arch == Arch::Aarch64 && self.info.vmi.text_addr.is_some()
    }

    /// The kernel's `_text` was found running at `text` (arm64: its boot header, see
    /// [`crate::generate::memory::arm64_text`]): sets the slide. `None` when there is
    /// nothing to learn, `Some(false)` when `text` cannot be this kernel's (below its link
    /// address, or not moved by whole pages).
    pub fn text_observed(&self, text: u64) -> Option<bool> {
        if self.slide.get().is_some() || !self.placed_by_text() {
            return None;
        }
        let link = self.info.vmi.text_addr?;
        let Some(slide) = text.checked_sub(link).filter(|s| s % 0x1000 == 0) else {
            log::debug!(
                "[{}] _text runs at {text:#x}: not {link:#x} moved by KASLR",
                self.group
            );
            return Some(false);
        };
        let _ = self.slide.set(slide);
        log::info!(
            "[{}] kernel _text at {text:#x}: KASLR slide {slide:#x}",
            self.group
        );
        Some(true)
    }

    /// Whether the first instruction of a kernel block at `va` may be `__switch_to`; if so,
    /// the slide under which it is, in units of the KASLR alignment, and the caller
    /// instruments it. Before the slide is
    /// known every address the slide could move the function to qualifies: it runs, and
    /// is translated, long before the first system call reveals the slide, and QEMU does
    /// not translate it again. The callback then acts only under the real slide
    /// ([`KernelView::is_switch`]); any other block that qualified costs a callback
    /// that does nothing. A known slide beyond x86's KASLR range (arm64's spans
    /// terabytes) is the candidate [`KNOWN_SLIDE`].
    pub fn switch_candidate(&self, va: u64) -> Option<u16> {
        let slide = va.checked_sub(self.info.vmi.switch_to_addr?)?;
        let in_range = slide % KASLR_ALIGN == 0 && slide < KASLR_MAX;
        let fits = match self.slide() {
            Some(known) if slide == known && !in_range => {
                self.switch_hooked_known.store(true, Ordering::Relaxed);
                return Some(KNOWN_SLIDE);
            }
            Some(known) => slide == known,
            None => in_range,
        };
        if !fits {
            return None;
        }
        let step = (slide / KASLR_ALIGN) as usize;
        let (word, bit) = Self::hooked_bit(step);
        self.switch_hooked[word].fetch_or(bit, Ordering::Relaxed);
        Some(step as u16)
    }

    /// Where [`KernelView::switch_hooked`] keeps the slide of KASLR step `step` (< SLIDES).
    fn hooked_bit(step: usize) -> (usize, u64) {
        (step / 64, 1 << (step % 64))
    }

    /// Whether a [`KernelView::switch_candidate`] is `__switch_to` of the running kernel:
    /// its slide is the real one and the kernel is the described one.
    pub fn is_switch(&self, candidate: u16) -> bool {
        let slid = match candidate {
            KNOWN_SLIDE => self.slide().is_some(),
            step => self.slide() == Some(u64::from(step) * KASLR_ALIGN),
        };
        slid && self.verified.get() == Some(&true) && !self.switch_refuted.load(Ordering::Relaxed)
    }

    /// Whether context switches are followed: `__switch_to` of the running kernel was
    /// instrumented (the kernelinfo names it, and it was translated while this view could
    /// recognise it), so the task a vCPU runs is the one the last switch on it went to.
    pub fn follows_switches(&self) -> bool {
        let Some(slide) = self.slide() else {
            return false;
        };
        let step = (slide / KASLR_ALIGN) as usize;
        let (word, bit) = Self::hooked_bit(step);
        let hooked = if slide % KASLR_ALIGN == 0 && step < SLIDES {
            self.switch_hooked[word].load(Ordering::Relaxed) & bit != 0
        } else {
            self.switch_hooked_known.load(Ordering::Relaxed)
        };
        self.verified.get() == Some(&true) && hooked && !self.switch_refuted.load(Ordering::Relaxed)
    }

    /// For the first calls made while switches are followed: whether `followed`, the
    /// task the last switch on `cpu` went to, is the kernel's own `current_task`. A
    /// `vmi.switch_to_addr` naming another function (a hand-edited or foreign group whose
    /// entry and banner still match) would otherwise give every call a wrong thread. On a
    /// mismatch switches stop being followed, for good, with one warning: the kernel is
    /// then read at every call (slower, right).
    pub fn confirm_switch(&self, cpu: &dyn Vcpu, in_kernel: bool, followed: u64) {
        let checking = self
            .switch_checks
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok();
        if checking {
            self.check_switch(cpu, in_kernel, followed);
        }
    }

    /// One of the checks of [`KernelView::confirm_switch`]: only the first calls make
    /// one, so it stays out of the path of the others.
    #[cold]
    #[inline(never)]
    fn check_switch(&self, cpu: &dyn Vcpu, in_kernel: bool, followed: u64) {
        let Some(actual) = self.current_task(cpu, in_kernel) else {
            self.switch_settled.fetch_add(1, Ordering::Release);
            return;
        };
        if actual == followed {
            self.switch_settled.fetch_add(1, Ordering::Release);
        } else if !self.switch_refuted.swap(true, Ordering::Relaxed) {
            self.switch_checks.store(0, Ordering::Relaxed);
            log::warn!(
                "kernelinfo group [{}]: vmi.switch_to_addr ({:#x}) is not this kernel's __switch_to (it reported task {followed:#x} where current_task is {actual:#x}): context switches are not followed, which makes tracing slower; regenerate the group with 'vmi kernelinfo'",
                self.group,
                self.info.vmi.switch_to_addr.unwrap_or(0)
            );
        }
    }

    /// Whether switches are followed for good: every comparison of
    /// [`KernelView::confirm_switch`] has finished and none refuted them. Until then a
    /// vCPU may stop following switches, so nothing may rely on seeing each one.
    pub fn switches_settled(&self) -> bool {
        self.switch_settled.load(Ordering::Acquire) == SWITCH_CHECKS && self.follows_switches()
    }

    /// Whether the slide is still to be found.
    pub fn needs_slide(&self) -> bool {
        self.slide.get().is_none()
    }

    /// Run-time addresses of the functions every system call reaches with the kernel's
    /// page tables active; empty until the slide is known.
    ///
    /// 32-bit ARM: its `svc` entry, `vector_swi`, in kernel mode with the caller's
    /// registers intact, and the instruction after its first two (`sub sp`, `stmia sp,
    /// {r0-r12}`): the Spectre-BHB vectors (`vector_bhb_*_swi`, which a Cortex-A15 gets)
    /// run those two themselves, clear the branch history with r8, and branch there. A
    /// call that enters at `vector_swi` runs both in one block, which QEMU instruments
    /// at its start only.
    pub fn dispatch_addrs(&self) -> [Option<u64>; 6] {
        let v = &self.info.vmi;
        let slid = |a: Option<u64>| Some(a?.wrapping_add(self.slide()?));
        [
            slid(v.do_syscall_64_addr),
            slid(v.do_int80_addr),
            slid(v.do_fast_syscall_32_addr),
            slid(v.do_el0_svc_compat_addr),
            slid(v.vector_swi_addr),
            slid(v.vector_swi_addr).map(|a| a.wrapping_add(ARM_SWI_SAVED)),
        ]
    }

    /// [`KernelView::readable_from_user`] once decided; `None` before.
    pub fn user_readable(&self) -> Option<bool> {
        self.user_readable.get().copied()
    }

    /// Whether the kernel's user-mode page tables leave it unmapped (KPTI), decided with
    /// [`KernelView::readable_from_user`] (on `cpu`, if not yet).
    pub fn kpti(&self, cpu: &dyn Vcpu) -> Option<bool> {
        self.readable_from_user(cpu)?;
        self.kpti.get().copied()
    }

    /// Whether the kernel can be read from a user-mode callback. Under KPTI the user page
    /// tables map only the entry code: where QEMU reads physical memory the kernel's own
    /// tables are walked in software, elsewhere (plugin API 4) the plugin reads the kernel
    /// at the dispatch functions instead. Decided once, at the first user-mode callback
    /// after the slide is known, by reading `init_task`; `None` until then.
    pub fn readable_from_user(&self, cpu: &dyn Vcpu) -> Option<bool> {
        if let Some(known) = self.user_readable() {
            return Some(known);
        }
        let slide = self.slide()?;
        let init = self.info.task.init_addr.wrapping_add(slide);
        let mapped = cpu.mapped_now(init);
        let readable = mapped || cpu.read_u32(init).is_ok();
        let _ = self.kpti.set(!mapped);
        if !mapped && readable {
            log::info!(
                "kernel memory is not mapped in user mode (KPTI): reading it through the kernel's page tables in software"
            );
        }
        if !readable {
            let hooks = self.dispatch_addrs().iter().any(Option::is_some);
            if hooks && self.arch == Arch::Arm {
                log::info!(
                    "kernel memory is not readable from user mode here (QEMU reads with the user's permissions): reading it at vector_swi"
                );
            } else if hooks {
                log::info!(
                    "kernel memory is not mapped in user mode (KPTI): reading it at system call dispatch"
                );
            } else {
                log::warn!(
                    "kernel memory is not mapped in user mode (KPTI) and kernelinfo group [{}] has no vmi.do_*_addr dispatch symbols: regenerate it with 'vmi kernelinfo'; introspection is unavailable",
                    self.group
                );
            }
        }
        let _ = self.user_readable.set(readable);
        Some(readable)
    }

    /// Everything the Linux provider needs to read the kernel from `cpu` now; `in_kernel`
    /// says whether the vCPU runs kernel code (where the per-CPU base is then).
    pub fn context_at(&self, cpu: &dyn Vcpu, in_kernel: bool) -> Result<KernelContext, NotReady> {
        let mut ctx = self.base_context(cpu, in_kernel)?;
        ctx.current_asid = cpu
            .reg(self.arch.page_table_register())
            .map(|cr3| self.asid_of_cr3(cr3));
        Ok(ctx)
    }

    /// The `task_struct` running on `cpu`: one register and one pointer read, for the
    /// per-call path (the rest of [`KernelView::context_at`] is not needed for it).
    pub fn current_task(&self, cpu: &dyn Vcpu, in_kernel: bool) -> Option<u64> {
        let ctx = self.base_context(cpu, in_kernel).ok()?;
        task::current_task(&Linux::new(cpu, &self.info, ctx)).ok()
    }

    /// [`KernelView::context_at`] without the current address space.
    fn base_context(&self, cpu: &dyn Vcpu, in_kernel: bool) -> Result<KernelContext, NotReady> {
        let slide = self.slide().ok_or(NotReady::Slide)?;
        if !self.verify(cpu) {
            return Err(NotReady::WrongKernel);
        }
        let page_offset = self.page_offset(cpu, slide)?;
        let mut ctx = KernelContext {
            kaslr_slide: slide,
            per_cpu_base: None,
            page_offset,
            pointer_width: self.arch.pointer_size() as u8,
            current_asid: None,
            user_paging: match self.arch {
                Arch::Aarch64 => cpu.reg(Reg::TcrEl1).and_then(Paging::arm64),
                Arch::Arm => cpu.reg(Reg::Ttbcr).and_then(Paging::arm),
                _ => None,
            },
        };
        ctx.per_cpu_base = match self.arch {
            Arch::X86_64 => {
                // In user mode the kernel's GS base waits in KERNEL_GS_BASE until swapgs.
                cpu.reg(if in_kernel {
                    Reg::GsBase
                } else {
                    Reg::KernelGsBase
                })
                .filter(|&b| b != 0)
            }
            Arch::I386 => {
                let linux = Linux::new(cpu, &self.info, ctx);
                task::per_cpu_base_from_table(&linux, cpu.index()).ok()
            }
            // The per-CPU offset, in kernel and user mode alike.
            Arch::Aarch64 => cpu.reg(Reg::TpidrEl1),
            // 32-bit ARM SMP kernels keep this CPU's offset in TPIDRPRW.
            Arch::Arm => cpu.reg(Reg::Tpidrprw),
        };
        Ok(ctx)
    }

    /// The physical page-table root in CR3 (arm64: `TTBR0_EL1`): without x86_64's PCID
    /// bits and no-flush bit, i386 PAE's low flag bits, or arm64's ASID and CnP bit.
    pub fn asid_of_cr3(&self, cr3: u64) -> u64 {
        self.arch.page_table_root(cr3)
    }

    fn page_offset(&self, cpu: &dyn Vcpu, slide: u64) -> Result<u64, NotReady> {
        if let Some(&p) = self.page_offset.get() {
            return Ok(p);
        }
        let fixed = self.info.vmi.page_offset.unwrap_or(match self.arch {
            Arch::X86_64 => X86_64_PAGE_OFFSET,
            Arch::I386 => I386_PAGE_OFFSET,
            Arch::Aarch64 | Arch::Arm => 0,
        });
        let value = match (self.arch, self.info.vmi.page_offset_base_addr) {
            // arm64's linear map starts at PAGE_OFFSET, the bottom of the kernel half
            // (52- or 48-bit, as TCR_EL1.T1SZ says), and maps physical memstart_addr
            // (moved by KASLR) there: `pa = va - (PAGE_OFFSET - memstart_addr)`.
            (Arch::Aarch64, _) => {
                let page_offset = match self.info.vmi.page_offset {
                    Some(fixed) => fixed,
                    None => {
                        let t1sz = (cpu.reg(Reg::TcrEl1).ok_or(NotReady::PageOffset)? >> 16) & 0x3f;
                        if !(12..=25).contains(&t1sz) {
                            return Err(NotReady::PageOffset);
                        }
                        0u64.wrapping_sub(1 << (64 - t1sz))
                    }
                };
                let at = self
                    .info
                    .vmi
                    .memstart_addr_addr
                    .ok_or(NotReady::PageOffset)?;
                let memstart = cpu
                    .read_u64(at.wrapping_add(slide))
                    .map_err(|_| NotReady::PageOffset)?;
                page_offset.wrapping_sub(memstart)
            }
            // 32-bit ARM: the kernel patched itself at boot with PHYS_OFFSET - PAGE_OFFSET
            // and keeps it in __pv_offset (64 bits, sign-extended): `pa = va +
            // __pv_offset`, so the direct map is `va = pa - __pv_offset`, modulo 2^32.
            (Arch::Arm, _) => {
                let at = self.info.vmi.pv_offset_addr.ok_or(NotReady::PageOffset)?;
                let pv = cpu
                    .read_u64(at.wrapping_add(slide))
                    .map_err(|_| NotReady::PageOffset)?;
                u64::from((pv as u32).wrapping_neg())
            }
            (Arch::X86_64, Some(addr)) => cpu
                .read_u64(addr.wrapping_add(slide))
                .ok()
                .filter(|&p| self.arch.is_kernel_address(p))
                .ok_or(NotReady::PageOffset)?,
            _ => fixed,
        };
        let _ = self.page_offset.set(value);
        log::info!("kernel direct map at {value:#x}");
        Ok(value)
    }

    /// Checks once that the guest runs the kernel this group describes: its banner must be
    /// where the group says (after the slide). A mismatch (a kernelinfo for another kernel)
    /// is said once and turns introspection off; an unreadable banner is checked again
    /// later, and a group without a banner is trusted.
    pub(super) fn verify(&self, cpu: &dyn Vcpu) -> bool {
        if let Some(&ok) = self.verified.get() {
            return ok;
        }
        let ok = match self.banner_matches(cpu) {
            None if self.info.vmi.banner.is_some() => return true,
            None | Some(true) => true,
            Some(false) => {
                let found = self.banner_shown(cpu).unwrap_or_default();
                log::warn!(
                    "kernelinfo group [{}] does not describe the running kernel (its banner address holds \"{found}\"): use the group made for this kernel ('vmi kernelinfo' makes one); introspection is off",
                    self.group
                );
                false
            }
        };
        let _ = self.verified.set(ok);
        ok
    }

    /// Whether the banner at its slid address reads as the kernelinfo says; `None` when the
    /// kernelinfo lacks the banner or it cannot be read.
    pub fn banner_matches(&self, cpu: &dyn Vcpu) -> Option<bool> {
        let want = self.info.vmi.banner.as_ref()?;
        let found = self.banner_found(cpu)?;
        Some(found.trim_end() == want.trim_end())
    }

    /// What [`KernelView::banner_found`] reads, cut to 60 characters and made printable,
    /// for a message: a wrong group's banner address holds arbitrary bytes.
    pub fn banner_shown(&self, cpu: &dyn Vcpu) -> Option<String> {
        let text = self.banner_found(cpu)?;
        Some(
            text.chars()
                .take(60)
                .map(|c| {
                    if c.is_ascii_graphic() || c == ' ' {
                        c
                    } else {
                        '.'
                    }
                })
                .collect(),
        )
    }

    /// The string at this kernel's (slid) banner address, if readable.
    pub fn banner_found(&self, cpu: &dyn Vcpu) -> Option<String> {
        let addr = self.info.vmi.linux_banner_addr?;
        let slide = self.slide()?;
        let (bytes, _) = cpu.read_cstr(addr.wrapping_add(slide), 512).ok()?;
        Some(String::from_utf8_lossy(&bytes).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::fake::FakeCpu;

    const ENTRY: u64 = 0xffff_ffff_81c0_0080;
    const SWITCH: u64 = 0xffff_ffff_8103_1080;

    /// An x86_64 kernel with its entry and `__switch_to` known, slide not yet.
    fn switching_view() -> KernelView {
        let mut info = KernelInfo::default();
        info.vmi.entry_syscall_addr = Some(ENTRY);
        info.vmi.switch_to_addr = Some(SWITCH);
        KernelView::new(info, "g".into(), Arch::X86_64)
    }

    #[test]
    fn switch_to_is_instrumented_before_the_slide_is_known() {
        let view = switching_view();
        // Boot: the slide is unknown, so every place KASLR could put the function is
        // instrumented, and nothing else.
        assert_eq!(view.switch_candidate(SWITCH + 3 * KASLR_ALIGN), Some(3));
        assert_eq!(view.switch_candidate(SWITCH + 2 * KASLR_ALIGN), Some(2));
        assert_eq!(view.switch_candidate(SWITCH + 0x10), None);
        assert_eq!(view.switch_candidate(SWITCH - KASLR_ALIGN), None);
        assert!(!view.follows_switches());
        // The first system call reveals the slide (3 steps); the kernel is verified.
        assert_eq!(
            view.entry_observed(SyscallInsn::Syscall, ENTRY + 3 * KASLR_ALIGN),
            Some(true)
        );
        let _ = view.current_task(&FakeCpu::new(0), false);
        assert!(view.is_switch(3));
        assert!(
            !view.is_switch(2),
            "a block instrumented under another slide"
        );
        assert!(view.follows_switches());
        assert_eq!(view.switch_candidate(SWITCH + 2 * KASLR_ALIGN), None);
    }

    #[test]
    fn arm64_groups_are_placed_by_their_text() {
        const TEXT: u64 = 0xffff_8000_0800_0000;
        let arm64 = || {
            let mut info = KernelInfo::default();
            info.vmi.text_addr = Some(TEXT);
            KernelView::new(info, "arm64".into(), Arch::Aarch64)
        };
        let view = arm64();
        assert!(
            view.placed_by_text() && view.needs_slide(),
            "no slide assumed"
        );
        let slide = 0x20fd_5e20_0000;
        assert_eq!(view.text_observed(TEXT + slide), Some(true));
        assert_eq!(view.slide(), Some(slide));
        assert_eq!(view.text_observed(TEXT), None, "known already");
        // Below the link address, or not whole pages away: another kernel.
        assert_eq!(arm64().text_observed(TEXT - 0x1_0000), Some(false));
        assert_eq!(arm64().text_observed(TEXT + 0x800), Some(false));
        // x86 is placed by its entry, and a group without _text runs where linked.
        let mut info = KernelInfo::default();
        info.vmi.text_addr = Some(0xffff_ffff_8100_0000);
        let x86 = KernelView::new(info, "x86".into(), Arch::X86_64);
        assert!(!x86.placed_by_text());
        assert_eq!(x86.text_observed(0xffff_ffff_8300_0000), None);
        let bare = KernelView::new(KernelInfo::default(), "bare".into(), Arch::Aarch64);
        assert_eq!(bare.slide(), Some(0));
    }

    #[test]
    fn arm_finds_its_direct_map_in_pv_offset_and_reads_the_kernel_at_vector_swi() {
        const PV: u64 = 0xc161_2adc;
        const SWI: u64 = 0xc040_01e0;
        /// Memory holding only `__pv_offset`: PHYS_OFFSET 0x40000000 - PAGE_OFFSET
        /// 0xc0000000, sign-extended to 64 bits as the kernel stores it.
        struct PvOffset;
        impl crate::mem::GuestMemory for PvOffset {
            fn read(&self, va: u64, buf: &mut [u8]) -> Result<(), crate::mem::Fault> {
                let value = 0xffff_ffff_8000_0000u64.to_le_bytes();
                match (va, buf.len()) {
                    (PV, 8) => {
                        buf.copy_from_slice(&value);
                        Ok(())
                    }
                    _ => Err(crate::mem::Fault { va, len: buf.len() }),
                }
            }
        }
        let mut info = KernelInfo::default();
        info.vmi.pv_offset_addr = Some(PV);
        info.vmi.vector_swi_addr = Some(SWI);
        let view = KernelView::new(info, "armhf".into(), Arch::Arm);
        assert_eq!(view.slide(), Some(0), "no KASLR on 32-bit ARM");
        assert_eq!(
            view.page_offset(&FakeCpu::with_memory(0, PvOffset), 0),
            Ok(0x8000_0000),
            "va = pa + 0x80000000"
        );
        // vector_swi, and where the Spectre-BHB vectors join it.
        let dispatch = view.dispatch_addrs();
        assert!(dispatch.contains(&Some(SWI)) && dispatch.contains(&Some(SWI + 8)));
        // Without __pv_offset the direct map is unknown, not guessed.
        let bare = KernelView::new(KernelInfo::default(), "bare".into(), Arch::Arm);
        assert_eq!(
            bare.page_offset(&FakeCpu::with_memory(0, PvOffset), 0),
            Err(NotReady::PageOffset)
        );
    }

    #[test]
    fn a_known_slide_beyond_the_x86_range_is_followed() {
        let mut info = KernelInfo::default();
        info.vmi.switch_to_addr = Some(0xffff_8000_80f1_9f98);
        let slide = 0x2b2c_5680_0000;
        let view = KernelView::found(info, "arm64".into(), Arch::Aarch64, slide);
        assert_eq!(view.switch_candidate(0xffff_8000_80f1_9f98), None);
        assert!(!view.follows_switches(), "nothing instrumented yet");
        assert_eq!(
            view.switch_candidate(0xffff_8000_80f1_9f98 + slide),
            Some(KNOWN_SLIDE)
        );
        let _ = view.verified.set(true);
        assert!(view.is_switch(KNOWN_SLIDE));
        assert!(!view.is_switch(0));
        assert!(view.follows_switches());
    }

    #[test]
    fn switches_are_not_followed_when_the_function_was_never_instrumented() {
        let view = switching_view();
        view.entry_observed(SyscallInsn::Syscall, ENTRY);
        let _ = view.current_task(&FakeCpu::new(0), false);
        assert!(!view.follows_switches());
        assert_eq!(view.switch_candidate(SWITCH), Some(0));
        assert!(view.follows_switches());
    }

    #[test]
    fn switches_are_settled_once_every_comparison_finished_unrefuted() {
        let view = switching_view();
        view.entry_observed(SyscallInsn::Syscall, ENTRY);
        let cpu = FakeCpu::new(0);
        let _ = view.current_task(&cpu, false);
        assert_eq!(view.switch_candidate(SWITCH), Some(0));
        // Comparisons that cannot read `current_task` refute nothing.
        for _ in 1..SWITCH_CHECKS {
            view.confirm_switch(&cpu, true, 0x1000);
        }
        assert!(view.follows_switches());
        assert!(!view.switches_settled(), "one comparison is left");
        view.confirm_switch(&cpu, true, 0x1000);
        assert!(view.switches_settled());
        view.switch_refuted.store(true, Ordering::Relaxed);
        assert!(!view.switches_settled());
    }
}
