//! The plugin's safe state and its reactions to QEMU's callbacks.
//!
//! [`ffi`](crate) owns the QEMU entry points and calls in here with plain Rust values; this
//! module decides what to instrument ([`hook`]) and what to record. It never sees a raw
//! pointer. The flow of one system call:
//!
//! ```text
//! syscall instruction ─ on_syscall_insn ─┬─ (kernel readable) ─────────────┐
//!                                        └─ (KPTI) on_kernel_dispatch ─────┤
//!                                 enter: snapshot on reboot, lifecycle, tracer.enter
//! block after the instruction ─ on_return_point ─ tracer.ret ─ emit: record, events
//! ```
//!
//! `calls` follows each system call from its instruction to its record;
//! [`kernel`] learns where the running kernel is (KASLR slide, KPTI, which group);
//! [`tracer`] pairs entries with returns, placing calls where their shared translations
//! run ([`placement`]); [`lifecycle`] turns completed calls into process events;
//! [`snapshot`] and [`probe`] make their records; `unnamed` keeps the calls whose caller
//! cannot be named yet.

mod calls;
mod discovery;
pub mod hook;
pub mod kernel;
pub mod lifecycle;
pub mod placement;
pub mod probe;
pub mod snapshot;
pub mod threads;
pub mod tracer;
mod unnamed;

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use once_cell::sync::OnceCell;
use parking_lot::Mutex;

use crate::api::{Analysis, Consumers, Ctx, Engine};
use crate::arch::Arch;
use crate::arch::insn::SyscallInsn;
use crate::arch::regs::Reg;
use crate::args::Options;
use crate::config::{KernelInfo, KeyFile};
use crate::cpu::Vcpu;
use crate::error::Error;
use crate::events::{Event, Tracker};
use crate::linux::{self, Linux};
use crate::mem::GuestMemory;
use crate::osi::Introspect;
use crate::output::records::{
    self, KernelReady, KernelinfoSource, RunEnd, RunStart, SyscallInsnCounts,
};
use crate::syscalls::Abi;

use discovery::Discovery;
pub use hook::Hook;
use kernel::KernelView;
use probe::Probe;
use snapshot::Reason;
use tracer::Tracer;
use unnamed::Unnamed;

/// What QEMU told the plugin about the machine at install time.
#[derive(Debug, Clone)]
pub struct MachineInfo {
    /// QEMU's target name, e.g. `x86_64-softmmu`.
    pub target: String,
    /// Current plugin API version.
    pub plugin_api: i32,
    /// vCPUs at start.
    pub vcpus: i32,
    /// Whether QEMU emulates a whole system (not user mode).
    pub system: bool,
}

/// System calls during which the plugin tries to choose a kernelinfo group by banner.
const DETECT_BUDGET: u64 = 1000;

/// Analyses waiting for the guest to start; `None` once they are wired (no more can join).
struct Pending(Option<Vec<Box<dyn Analysis>>>);

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Some(list) => write!(f, "{} analyses", list.len()),
            None => f.write_str("wired"),
        }
    }
}

/// What the engine does for the analyses of the run, fixed when the guest starts: the
/// analyses, and the tracer and process events their union of interests needs.
#[derive(Debug)]
struct Wired {
    consumers: Consumers,
    tracer: Tracer,
    events: Option<Mutex<Tracker>>,
}

/// Kernel blocks from which arm64's `_text` is looked for with `conf=`.
const TEXT_SEARCHES: u32 = 256;

/// The engine: follows the kernel, the system calls and the processes of the guest and
/// hands what happens to the analyses ([`crate::api`]). Shared by all vCPU threads, so
/// every field is either immutable after install or internally synchronised.
#[derive(Debug)]
pub struct Plugin {
    options: Options,
    arch: Arch,
    args: Vec<String>,
    machine: MachineInfo,
    /// Analyses added before the guest runs (the C API adds them at other plugins'
    /// install), wired at the first callback.
    pending: Mutex<Pending>,
    wired: OnceCell<Wired>,
    syscall_insns: [AtomicU64; SyscallInsn::ALL.len()],
    translations: AtomicU64,
    probe: Option<Probe>,
    /// The kernels the guest may run: the `group=` one, or every group of `conf=` to
    /// choose from by banner.
    views: Vec<KernelView>,
    /// Which of `views` the guest runs, once known; `views.len()` for `discovered`.
    chosen: OnceCell<usize>,
    /// Without `conf=`: the search for the kernel's description in its memory.
    discovery: Option<Discovery>,
    /// The kernel the search found.
    discovered: OnceCell<KernelView>,
    /// System calls left to try choosing a group before giving up.
    detect_budget: AtomicU64,
    wrong_entry_said: AtomicBool,
    /// arm64 with `conf=`: kernel blocks left from which to look for the kernel's `_text`
    /// ([`Plugin::place_by_text`]) before giving up.
    text_searches_left: AtomicU32,
    /// The `task_struct` each vCPU runs, as of the last context switch on it (0: not
    /// known); kept only while [`KernelView::follows_switches`].
    current: Box<[AtomicU64]>,
    /// Whether the group fits the running kernel, once checked.
    fits: OnceCell<bool>,
    /// Checks of the fit that failed so far.
    fit_failures: AtomicU64,
    /// Calls between their instruction and the dispatch function (KPTI on plugin API 4).
    deferred: calls::DeferredCalls,
    kernel_ready: AtomicBool,
    snapshots: AtomicU64,
    syscall_records: AtomicU64,
    event_records: AtomicU64,
    task_switches: AtomicU64,
    return_callbacks: AtomicU64,
    /// Calls whose caller is not known yet (under KPTI, before the kernel is found).
    unnamed: Unnamed,
}

/// Failed checks of a group's fit after which it is refused.
const FIT_ATTEMPTS: u64 = 3;

impl Plugin {
    /// Validates the arguments against the machine and the files they name. Every error
    /// here makes QEMU refuse the plugin. The analyses come next ([`Plugin::add`]).
    pub fn install(
        options: Options,
        args: Vec<String>,
        machine: MachineInfo,
    ) -> Result<Plugin, Error> {
        if !machine.system {
            return Err(Error::Unsupported(
                "QEMU runs in user mode: load the plugin into qemu-system-*".into(),
            ));
        }
        let arch = Arch::from_target(&machine.target).ok_or_else(|| {
            Error::Unsupported(format!(
                "guest architecture '{}' is not supported yet: use qemu-system-x86_64, qemu-system-i386, qemu-system-aarch64 or qemu-system-arm",
                machine.target
            ))
        })?;
        log::debug!("guest architecture {arch:?}");
        let mut views = Vec::new();
        let chosen = OnceCell::new();
        if let Some(conf) = &options.conf {
            let file = KeyFile::load(conf)?;
            let groups = file.groups();
            match (&options.group, groups.as_slice()) {
                (Some(group), _) | (None, [group]) => {
                    file.require_group(group)?;
                    let info = KernelInfo::from_keyfile(&file, group)?;
                    if kernel::for_arch(&info, arch) {
                        views.push(KernelView::new(info, group.clone(), arch));
                        let _ = chosen.set(0);
                    } else {
                        log::warn!(
                            "kernelinfo group [{group}] describes a kernel of another architecture (init_task at {:#x}) than this {arch:?} guest: introspection is off (system calls are logged with number and name); use a group made for this guest's kernel",
                            info.task.init_addr
                        );
                    }
                }
                (None, _) => {
                    // Choose at run time: the group whose banner is in the guest's memory.
                    for group in &groups {
                        match KernelInfo::from_keyfile(&file, group) {
                            Ok(info) if !kernel::for_arch(&info, arch) => log::debug!(
                                "group [{group}] is for another architecture: not a candidate"
                            ),
                            Ok(info)
                                if info.vmi.banner.is_some()
                                    && info.vmi.linux_banner_addr.is_some() =>
                            {
                                views.push(KernelView::new(info, group.clone(), arch))
                            }
                            Ok(_) => log::debug!(
                                "group [{group}] has no vmi.banner: it cannot be chosen by banner"
                            ),
                            Err(e) => log::debug!("group [{group}] skipped: {e}"),
                        }
                    }
                    if views.is_empty() {
                        log::warn!(
                            "{} has no group with vmi.banner and vmi.linux_banner_addr to choose from: pick one with group=; introspection is off",
                            conf.display()
                        );
                    }
                }
            }
        } else if options.group.is_some() {
            return Err(Error::Unsupported(
                "group= needs conf=: name the kernelinfo file that holds the group".into(),
            ));
        }
        let probe = options.probe.map(Probe::new);
        let vcpus = machine.vcpus.max(1);
        let discovery = options.conf.is_none().then(|| Discovery::new(&options.out));
        let plugin = Plugin {
            args,
            arch,
            machine,
            pending: Mutex::new(Pending(Some(Vec::new()))),
            wired: OnceCell::new(),
            syscall_insns: Default::default(),
            translations: AtomicU64::new(0),
            probe,
            views,
            chosen,
            discovery,
            discovered: OnceCell::new(),
            detect_budget: AtomicU64::new(DETECT_BUDGET),
            wrong_entry_said: AtomicBool::new(false),
            text_searches_left: AtomicU32::new(TEXT_SEARCHES),
            current: (0..vcpus).map(|_| AtomicU64::new(0)).collect(),
            fits: OnceCell::new(),
            fit_failures: AtomicU64::new(0),
            deferred: calls::DeferredCalls::new(vcpus as usize),
            kernel_ready: AtomicBool::new(false),
            snapshots: AtomicU64::new(0),
            syscall_records: AtomicU64::new(0),
            event_records: AtomicU64::new(0),
            task_switches: AtomicU64::new(0),
            return_callbacks: AtomicU64::new(0),
            unnamed: Unnamed::default(),
            options,
        };
        Ok(plugin)
    }

    /// Adds analyses; they get everything from the start of the guest on. Refused once
    /// the guest runs (the union of interests is fixed then).
    pub fn add(&self, analyses: Vec<Box<dyn Analysis>>) -> Result<(), Error> {
        // Under the lock wiring takes them with: an analysis is wired or refused, never lost.
        match &mut self.pending.lock().0 {
            Some(list) => {
                list.extend(analyses);
                Ok(())
            }
            None => Err(Error::Unsupported(
                "analyses can only be added before the guest runs: register at your plugin's install".into(),
            )),
        }
    }

    /// The analyses and what they need, wired at the first callback that asks.
    fn wired(&self) -> &Wired {
        self.wired.get_or_init(|| self.wire())
    }

    #[cold]
    fn wire(&self) -> Wired {
        let consumers = Consumers::new(self.pending.lock().0.take().unwrap_or_default());
        let union = consumers.union();
        let wired = Wired {
            tracer: Tracer::new(union.returns.clone(), union.entries.clone(), self.vcpus()),
            events: union.process_events.then(|| Mutex::new(Tracker::new())),
            consumers,
        };
        wired.consumers.run_start(&RunStart {
            version: crate::VERSION.to_string(),
            target: self.machine.target.clone(),
            plugin_api: self.machine.plugin_api,
            vcpus: self.machine.vcpus,
            args: self.args.clone(),
            conf: self.options.conf.as_ref().map(|p| p.display().to_string()),
            group: self.kernel().map(|k| k.group().to_string()),
        });
        wired
    }

    /// The tracer of the calls the analyses want.
    fn tracer(&self) -> &Tracer {
        &self.wired().tracer
    }

    /// Process events, when an analysis wants them.
    fn events(&self) -> Option<&Mutex<Tracker>> {
        self.wired().events.as_ref()
    }

    /// The analyses.
    fn consumers(&self) -> &Consumers {
        &self.wired().consumers
    }

    /// A query context on `cpu`, where the kernel can be read in `kernel_mode`.
    fn ctx<'a>(&'a self, cpu: Option<&'a dyn Vcpu>, kernel_mode: Option<bool>) -> Ctx<'a> {
        Ctx::new(self, cpu, kernel_mode)
    }

    /// The guest architecture.
    pub fn arch(&self) -> Arch {
        self.arch
    }

    /// How many vCPUs the machine has (at least 1): the per-vCPU slots.
    pub fn vcpus(&self) -> usize {
        self.current.len()
    }

    /// The validated options.
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// Called once per translated block starting at `va` with first instructions
    /// `insns`; counts translations and lets the kernel view spot the kernel's entry.
    /// `cpu` is the translating vCPU.
    pub fn on_block_translated(&self, va: u64, insns: &[&[u8]], cpu: &dyn Vcpu) {
        self.translations.fetch_add(1, Ordering::Relaxed);
        if let Some(discovery) = &self.discovery
            && discovery.pending()
            && self.arch.is_kernel_address(va)
        {
            self.discover(discovery, va, cpu);
        }
        if self.arch == Arch::Aarch64
            && self.arch.is_kernel_address(va)
            && self.text_searches_left.load(Ordering::Relaxed) > 0
            && self
                .views
                .iter()
                .any(|v| v.needs_slide() && v.placed_by_text())
        {
            self.place_by_text(va, cpu);
        }
        if let Some((kind, va)) = kernel::observed_entry(self.arch, va, insns) {
            for (i, view) in self.views.iter().enumerate() {
                let fits = view.entry_observed(kind, va);
                // The entry is translated on the way in from user mode, with the user's
                // page tables still active: whether the kernel is mapped in them (KPTI)
                // is known from here, before the dispatch functions are translated (they
                // are instrumented only under KPTI).
                if fits == Some(true) && self.chosen.get() == Some(&i) {
                    view.readable_from_user(cpu);
                }
                // With one group named, an entry that cannot be its kernel's is a wrong conf.
                if fits == Some(false)
                    && self.chosen.get().is_some()
                    && !self.wrong_entry_said.swap(true, Ordering::Relaxed)
                {
                    log::warn!(
                        "kernelinfo group [{}] does not describe the running kernel (the kernel entered at {va:#x}, not at the group's {kind:?} entry moved by KASLR): use the group made for this kernel ('vmi kernelinfo' makes one); introspection is off",
                        view.group()
                    );
                }
            }
        }
    }

    /// arm64 with `conf=`: measures the KASLR slide from where the kernel's `_text` runs,
    /// found from kernel text at `va` (early in boot, before `__switch_to` is first
    /// translated, so that switches are followed as on x86). Gives up, saying so, after
    /// [`TEXT_SEARCHES`] blocks.
    #[cold]
    #[inline(never)]
    fn place_by_text(&self, va: u64, cpu: &dyn Vcpu) {
        let Some(text) = crate::generate::memory::arm64_text(cpu, va) else {
            if self.text_searches_left.fetch_sub(1, Ordering::Relaxed) == 1 {
                log::warn!(
                    "the kernel's _text (its arm64 boot header) was not found below any of the {TEXT_SEARCHES} kernel blocks tried: the KASLR slide is unknown and introspection is off (system calls are logged with number and name)"
                );
            }
            return;
        };
        self.text_searches_left.store(0, Ordering::Relaxed);
        for (i, view) in self.views.iter().enumerate() {
            let chosen = self.chosen.get() == Some(&i);
            match view.text_observed(text) {
                Some(false) if chosen && !self.wrong_entry_said.swap(true, Ordering::Relaxed) => {
                    log::warn!(
                        "kernelinfo group [{}] does not describe the running kernel (its _text runs at {text:#x}, not at the group's vmi.text_addr moved by KASLR): use the group made for this kernel ('vmi kernelinfo' makes one); introspection is off",
                        view.group()
                    );
                }
                // The kernel is readable here, as its header just was: a group for
                // another kernel is refused now, by its banner, rather than left waiting
                // for dispatch functions that are not where it says.
                Some(true) if chosen => {
                    view.verify(cpu);
                }
                _ => {}
            }
        }
    }

    /// Searches the guest's memory for its kernel's description from kernel text at `va`.
    #[cold]
    #[inline(never)]
    fn discover(&self, discovery: &Discovery, va: u64, cpu: &dyn Vcpu) {
        if let Some(view) = discovery.attempt(self.arch, va, cpu)
            && self.discovered.set(view).is_ok()
        {
            let _ = self.chosen.set(self.views.len());
        }
    }

    /// Kernel view `i`: one of `conf=`'s groups, or (just past them) the one found in
    /// memory.
    fn view(&self, i: usize) -> Option<&KernelView> {
        match self.views.get(i) {
            Some(v) => Some(v),
            None if i == self.views.len() => self.discovered.get(),
            None => None,
        }
    }

    /// The kernel the guest runs, once known (and while its group is not refused).
    fn kernel(&self) -> Option<&KernelView> {
        if self.fits.get() == Some(&false) {
            return None;
        }
        self.view(*self.chosen.get()?)
    }

    /// Without `group=`: picks the group whose banner the guest's memory holds at that
    /// group's (slid) banner address. Gives up, saying what it read, after a while.
    fn choose_group(&self, cpu: &dyn Vcpu) {
        if self.chosen.get().is_none() && self.views.iter().any(|v| v.slide().is_some()) {
            self.match_banners(cpu);
        }
    }

    /// [`Plugin::choose_group`]'s work, while no group is chosen: out of the path of
    /// the calls made after that.
    #[cold]
    #[inline(never)]
    fn match_banners(&self, cpu: &dyn Vcpu) {
        let budget = self.detect_budget.load(Ordering::Relaxed);
        if budget == 0 {
            return;
        }
        let matches: Vec<usize> = (0..self.views.len())
            .filter(|&i| self.views[i].banner_matches(cpu) == Some(true))
            .collect();
        if let [only] = matches[..] {
            let _ = self.chosen.set(only);
            log::info!(
                "kernelinfo group [{}] matches the guest's banner",
                self.views[only].group()
            );
            return;
        }
        if self.detect_budget.fetch_sub(1, Ordering::Relaxed) == 1 {
            let read: Vec<String> = self
                .views
                .iter()
                .filter_map(|v| {
                    Some(format!(
                        "[{}] reads \"{}\"",
                        v.group(),
                        v.banner_shown(cpu)?
                    ))
                })
                .collect();
            let groups: Vec<&str> = self.views.iter().map(KernelView::group).collect();
            log::warn!(
                "no kernelinfo group matches the guest kernel ({}); groups: {}; pick one with group= or generate one with 'vmi kernelinfo'; introspection is off",
                if read.is_empty() {
                    "no banner readable".to_string()
                } else {
                    read.join(", ")
                },
                groups.join(", ")
            );
        }
    }

    /// Decides, at translation time, whether the instruction at `va` with these bytes
    /// needs a callback; `first` says it starts its block, and `cpu` (the translating
    /// vCPU) reads the code around it and the mode it runs in. Everything that returns
    /// `None` runs at full speed.
    ///
    /// A block is a return point when a call announced it, or when the bytes just before
    /// it are a system call instruction (QEMU ends a block at each of them, so the thread
    /// resumes at the start of a block): the latter also covers code first translated
    /// before any call through it was seen.
    pub fn hook_for(&self, va: u64, insn: &[u8], first: bool, cpu: &dyn Vcpu) -> Option<Hook> {
        if let Some(kind) = SyscallInsn::classify(self.arch, insn) {
            // 32-bit code on a 64-bit kernel runs with the compatibility code segment
            // (`__USER32_CS` = 0x23).
            let code64 = match self.arch {
                Arch::I386 => false,
                Arch::X86_64 => cpu.reg(Reg::Cs).is_none_or(|cs| cs & 0xffff != 0x23),
                Arch::Aarch64 | Arch::Arm => true,
            };
            return Some(Hook::SyscallInsn(kind, Abi::detect(kind, code64)));
        }
        let mem: &dyn GuestMemory = cpu;
        if !first {
            return None;
        }
        if self.arch.is_kernel_address(va) {
            // The dispatch functions matter under KPTI only: without it (known once the
            // slide is) every call would pay a callback there for nothing.
            if self.kernel().is_some_and(|k| {
                k.user_readable() != Some(true) && k.dispatch_addrs().contains(&Some(va))
            }) {
                return Some(Hook::KernelDispatch);
            }
            // Before a group is chosen, any of them may be the kernel.
            let candidates = match self.chosen.get() {
                Some(&i) => i..i + 1,
                None => 0..self.views.len(),
            };
            return candidates.into_iter().find_map(|i| {
                let slide = self.view(i)?.switch_candidate(va)?;
                Some(Hook::TaskSwitch(u16::try_from(i).ok()?, slide))
            });
        }
        if self.kernel().is_none() && !self.tracer().follows_any() {
            return None;
        }
        if self.tracer().is_return_pc(va) {
            return Some(Hook::ReturnPoint);
        }
        let mut before = [0u8; 4];
        if self.arch == Arch::Aarch64 && va > u64::from(u32::MAX) {
            // 64-bit code only: 32-bit programs live below 4 GiB.
            let after_svc = mem.read(va.wrapping_sub(4), &mut before).is_ok()
                && SyscallInsn::classify(self.arch, &before) == Some(SyscallInsn::Svc);
            return after_svc.then_some(Hook::ReturnPoint);
        }
        if matches!(self.arch, Arch::Arm | Arch::Aarch64) {
            // After a Thumb `svc` (2 bytes) or an ARM one (4 bytes, word-aligned code).
            let thumb = mem.read(va.wrapping_sub(2), &mut before[2..]).is_ok()
                && SyscallInsn::classify(self.arch, &before[2..]) == Some(SyscallInsn::SvcThumb);
            let mut arm = || {
                va.is_multiple_of(4)
                    && mem.read(va.wrapping_sub(4), &mut before).is_ok()
                    && matches!(
                        SyscallInsn::classify(self.arch, &before),
                        Some(SyscallInsn::SvcArm | SyscallInsn::Svc)
                    )
            };
            return (thumb || arm()).then_some(Hook::ReturnPoint);
        }
        let after_syscall = mem.read(va.wrapping_sub(2), &mut before[2..]).is_ok()
            && SyscallInsn::classify(self.arch, &before[2..])
                .is_some_and(|k| k != SyscallInsn::Sysenter);
        // The vDSO's fast paths resume after `sysenter; int $0x80` (or `syscall; int $0x80`).
        let mut after_fast_path = || {
            mem.read(va.wrapping_sub(4), &mut before).is_ok()
                && before[2..] == [0xcd, 0x80]
                && matches!(
                    SyscallInsn::classify(self.arch, &before[..2]),
                    Some(SyscallInsn::Sysenter | SyscallInsn::Syscall)
                )
        };
        (after_syscall || after_fast_path()).then_some(Hook::ReturnPoint)
    }

    /// A Linux provider for `cpu`, once the kernel can be read; `in_kernel` says whether
    /// the vCPU runs kernel code (it decides where the per-CPU base is).
    fn linux<'a>(&'a self, cpu: &'a dyn Vcpu, in_kernel: bool) -> Option<Linux<'a>> {
        let kernel = self.kernel()?;
        let ctx = kernel.context_at(cpu, in_kernel).ok()?;
        let linux = Linux::new(cpu, kernel.info(), ctx);
        if self.fits.get().is_none() && !self.check_fit(kernel, &linux) {
            return None;
        }
        self.announce_kernel(kernel, cpu, in_kernel, &ctx);
        Some(linux)
    }

    /// Checks once that the group fits the running kernel (see [`crate::linux::validate`])
    /// before anything is reported from it. A failure may be a moment where the kernel
    /// changes its lists on another vCPU, so the group is refused after
    /// [`FIT_ATTEMPTS`] failures: one line naming the check, and introspection stays off
    /// (system calls are still logged, with number and name). Returns whether it fits.
    #[cold]
    fn check_fit(&self, kernel: &KernelView, linux: &Linux<'_>) -> bool {
        match crate::linux::validate::check(linux) {
            Ok(()) => {
                let _ = self.fits.set(true);
                true
            }
            Err(misfit) => {
                if self.fit_failures.fetch_add(1, Ordering::Relaxed) + 1 >= FIT_ATTEMPTS
                    && self.fits.set(false).is_ok()
                {
                    log::warn!(
                        "kernelinfo group [{}] does not fit the running kernel: {misfit}; introspection is off (system calls are logged with number and name): make the group for this kernel with 'vmi kernelinfo'",
                        kernel.group()
                    );
                }
                false
            }
        }
    }

    /// Writes `kernel_ready` the first time the kernel is readable.
    fn announce_kernel(
        &self,
        kernel: &KernelView,
        cpu: &dyn Vcpu,
        in_kernel: bool,
        ctx: &crate::linux::KernelContext,
    ) {
        if !self.kernel_ready.swap(true, Ordering::Relaxed) {
            let ready = KernelReady {
                group: kernel.group().to_string(),
                kaslr_slide: records::hex(ctx.kaslr_slide),
                page_offset: records::hex(ctx.page_offset),
                kpti: kernel.kpti(cpu) == Some(true),
                banner_matches: kernel.banner_matches(cpu),
                kernelinfo: if self.discovered.get().is_some() {
                    KernelinfoSource::Memory
                } else {
                    KernelinfoSource::Conf
                },
                kernelinfo_file: self.discovery.as_ref().and_then(Discovery::file_name),
            };
            let kernel_mode = Some(in_kernel);
            self.consumers()
                .kernel_ready(&self.ctx(Some(cpu), kernel_mode), &ready);
            if let Some(events) = self.events() {
                let linux = Linux::new(cpu, kernel.info(), *ctx);
                match linux.processes() {
                    Ok(list) => {
                        self.track(cpu, kernel_mode, events, |t| t.already_running(&list.items))
                    }
                    Err(e) => {
                        log::warn!("process events wait: the process list is unreadable ({e})")
                    }
                }
            }
        }
    }

    /// Updates the lifecycle state and writes the events it yields, under the tracker's
    /// lock, so that events reach the log in the order the tracker decided them even when
    /// vCPUs race (a child on one vCPU exiting while its parent returns from `clone`).
    fn track(
        &self,
        cpu: &dyn Vcpu,
        kernel_mode: Option<bool>,
        events: &Mutex<Tracker>,
        f: impl FnOnce(&mut Tracker) -> Vec<Event>,
    ) {
        let mut tracker = events.lock();
        let happened = f(&mut tracker);
        self.event_records
            .fetch_add(happened.len() as u64, Ordering::Relaxed);
        let ctx = self.ctx(Some(cpu), kernel_mode);
        for e in &happened {
            self.consumers().process_event(&ctx, e);
        }
    }

    fn asid(&self, cpu: &dyn Vcpu) -> u64 {
        let root = cpu.reg(self.arch.page_table_register()).unwrap_or(0);
        match self.kernel() {
            Some(k) => k.asid_of_cr3(root),
            None if self.arch == Arch::Aarch64 => self.arch.page_table_root(root),
            None => root,
        }
    }

    /// Whether the program the current process just started is the `snapshot=` one. Asked
    /// once the new image runs (its first system call), by its name (`comm`, which exec
    /// sets from the path it was given, symlinks included): at exec entry the path may
    /// not even be readable, as a fresh child's page tables map its strings lazily.
    fn exec_snapshot_reason(&self, linux: &Linux<'_>) -> Option<Reason> {
        let want = &self.options.snapshot;
        if want == "*" {
            return Some(Reason::Exec(want.clone()));
        }
        let comm = linux::task::comm(linux, linux::task::current_task(linux).ok()?).ok()?;
        // comm holds the first 15 bytes of the name.
        let limit = want.len().min(15);
        (comm.len() == limit && want.as_bytes()[..limit] == *comm.as_bytes())
            .then(|| Reason::Exec(want.clone()))
    }

    /// Takes a snapshot through `linux` (made on `cpu` in `kernel_mode`) and hands it
    /// to the analyses.
    fn snapshot(&self, cpu: &dyn Vcpu, kernel_mode: bool, linux: &Linux<'_>, reason: &Reason) {
        if log::log_enabled!(log::Level::Info) {
            // The cost of the snapshot's core (processes with threads, and modules) alone,
            // measured apart from mappings and open files.
            let started = std::time::Instant::now();
            let n = linux.processes().map(|l| l.items.len()).unwrap_or(0);
            let m = linux.modules().map(|l| l.items.len()).unwrap_or(0);
            log::info!(
                "process list with threads ({n}) and modules ({m}) in {} us",
                started.elapsed().as_micros()
            );
        }
        let started = std::time::Instant::now();
        let record = snapshot::take(linux, reason);
        log::info!(
            "snapshot ({reason:?}): {} processes, {} modules in {} us",
            record.processes.len(),
            record.modules.len(),
            started.elapsed().as_micros()
        );
        self.snapshots.fetch_add(1, Ordering::Relaxed);
        let complete = record.incomplete.is_empty();
        let alive: Vec<u32> = record.processes.iter().map(|p| p.pid).collect();
        let kernel_mode = Some(kernel_mode);
        self.consumers()
            .snapshot(&self.ctx(Some(cpu), kernel_mode), &record);
        if let Some(events) = self.events()
            && complete
        {
            self.track(cpu, kernel_mode, events, |t| t.reconcile(&alive));
        }
    }

    /// QEMU is exiting: write the calls still pending, then `run_end` with the counters.
    pub fn on_exit(&self) {
        // Outside any vCPU: no position, and no process events (nothing can be read).
        let mut write = |done: tracer::Finished| {
            if let Some(record) = done.record {
                self.deliver_call(&done.done.call, &record, None, None);
            }
        };
        self.unnamed.drain().into_iter().for_each(&mut write);
        self.tracer().unfinished(&mut write);
        let count = |kind: SyscallInsn| self.syscall_insns[kind.index()].load(Ordering::Relaxed);
        let syscall_insns = SyscallInsnCounts {
            syscall: count(SyscallInsn::Syscall),
            sysenter: count(SyscallInsn::Sysenter),
            int80: count(SyscallInsn::Int80),
            svc: count(SyscallInsn::Svc)
                + count(SyscallInsn::SvcArm)
                + count(SyscallInsn::SvcThumb),
        };
        let record = RunEnd {
            syscalls: SyscallInsn::ALL.into_iter().map(count).sum(),
            syscall_insns,
            translations: self.translations.load(Ordering::Relaxed),
            snapshots: self.snapshots.load(Ordering::Relaxed),
            syscall_records: self.syscall_records.load(Ordering::Relaxed),
            event_records: self.event_records.load(Ordering::Relaxed),
            dropped_records: 0,
            task_switches: self.task_switches.load(Ordering::Relaxed),
            return_callbacks: self.return_callbacks.load(Ordering::Relaxed),
            probe: self.probe.as_ref().map(Probe::report),
        };
        self.consumers().run_end(&record);
    }
}

impl Engine for Plugin {
    fn linux<'a>(&'a self, cpu: &'a dyn Vcpu, in_kernel: bool) -> Option<Linux<'a>> {
        Plugin::linux(self, cpu, in_kernel)
    }

    fn asid(&self, cpu: &dyn Vcpu) -> u64 {
        Plugin::asid(self, cpu)
    }

    fn arch(&self) -> Arch {
        self.arch
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::fake::FakeCpu;
    use crate::mem::Fault;

    fn machine(target: &str) -> MachineInfo {
        MachineInfo {
            target: target.into(),
            plugin_api: 4,
            vcpus: 1,
            system: true,
        }
    }

    /// The plugin as `libvmi.so` installs it: the engine and the event log.
    fn install(args: Vec<String>, m: MachineInfo) -> Result<Plugin, Error> {
        let options = Options::parse(&args)?;
        let plugin = Plugin::install(options.clone(), args, m)?;
        plugin.add(vec![Box::new(crate::eventlog::EventLog::create(&options)?)])?;
        Ok(plugin)
    }

    fn temp(name: &str) -> String {
        std::env::temp_dir()
            .join(format!("vmi-plugin-{}-{name}", std::process::id()))
            .display()
            .to_string()
    }

    /// Memory with the text "Linux version 6.1" at 0x1000 and zeros above it.
    struct Banner;
    impl GuestMemory for Banner {
        fn read(&self, va: u64, buf: &mut [u8]) -> Result<(), Fault> {
            let text = b"Linux version 6.1\0";
            let start = va.checked_sub(0x1000).ok_or(Fault { va, len: buf.len() })? as usize;
            for (i, b) in buf.iter_mut().enumerate() {
                *b = text.get(start + i).copied().unwrap_or(0);
            }
            Ok(())
        }
    }

    #[test]
    fn counts_and_probe_end_up_in_run_end() {
        let cpu = FakeCpu::with_memory(0, Banner);
        let out = temp("run.jsonl");
        let plugin = install(
            vec![format!("out={out}"), "probe=0x1000".into()],
            machine("x86_64-softmmu"),
        )
        .unwrap();
        assert_eq!(
            plugin.hook_for(0x1000, &[0x0f, 0x05], false, &cpu),
            Some(Hook::SyscallInsn(
                SyscallInsn::Syscall,
                Some(Abi::X64Syscall)
            ))
        );
        assert_eq!(plugin.hook_for(0x1000, &[0x90], true, &cpu), None);
        plugin.on_syscall_insn(SyscallInsn::Syscall, Some(Abi::X64Syscall), &cpu, 0x1000);
        plugin.on_syscall_insn(SyscallInsn::Int80, Some(Abi::I386Int80), &cpu, 0x2000);
        plugin.on_exit();
        let text = std::fs::read_to_string(&out).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines[0]["type"], "run_start");
        let end = lines.last().unwrap();
        assert_eq!(end["type"], "run_end");
        assert_eq!(end["syscalls"], 2);
        assert_eq!(end["syscall_insns"]["int80"], 1);
        assert_eq!(end["probe"]["text"], "Linux version 6.1");
        assert_eq!(end["probe"]["matched"], 2);
        // Without registers both calls decode as number 0 (read) of one unknown thread,
        // from different instructions: the second nests above the first (as in a signal
        // handler), so neither returned; the end of the run writes both, in entry order,
        // before run_end.
        let calls: Vec<_> = lines.iter().filter(|l| l["type"] == "syscall").collect();
        assert_eq!(calls.len(), 2, "{text}");
        for (n, c) in calls.iter().enumerate() {
            assert_eq!(
                (c["outcome"].as_str(), c["ret"].is_null()),
                (Some("unfinished"), true)
            );
            assert_eq!(c["seq"], n);
        }
        assert_eq!(lines[lines.len() - 2]["type"], "syscall");
        assert_eq!(end["syscall_records"], 2);
        std::fs::remove_file(out).unwrap();
    }

    #[test]
    fn refuses_what_it_cannot_do() {
        let err = |args: Vec<String>, m: MachineInfo| install(args, m).unwrap_err().to_string();
        assert!(err(vec![], machine("riscv64-softmmu")).contains("'riscv64-softmmu'"));
        let user = MachineInfo {
            system: false,
            ..machine("x86_64")
        };
        assert!(err(vec![], user).contains("user mode"));
        assert!(err(vec!["group=x".into()], machine("x86_64")).contains("needs conf="));
        assert!(
            err(vec!["conf=/no/such.conf".into()], machine("x86_64")).contains("/no/such.conf")
        );
    }
}
