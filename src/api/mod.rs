//! The plugin API: your own analysis on top of vmi's introspection, system calls and
//! process events, while the guest runs (what PANDA's `osi`, `syscalls2` and `osi_pse`
//! give a PANDA plugin).
//!
//! ```text
//! QEMU callbacks → engine (crate::plugin: kernel, calls, process events)
//!                → every Analysis: the event log (crate::eventlog), yours, a C plugin's
//! ```
//!
//! An analysis implements [`Analysis`]: it says what it wants ([`Interest`]) and gets
//! callbacks with a [`Ctx`] through which it asks the guest questions ([`Ctx::processes`],
//! [`Ctx::mapping_at`], [`Ctx::read`], ...). It pays for what it asks: calls nobody wants
//! are not decoded, and without process events nobody follows lifecycles. A crate makes
//! a QEMU plugin of it with [`export_plugin!`](crate::export_plugin); `docs/api.md` is
//! the guide.
//!
//! Threading: under MTTCG QEMU runs callbacks on several vCPU threads at once, so an
//! analysis is `Send + Sync` and synchronises its own state.

mod dispatch;
mod hooks;

pub use dispatch::Consumers;

use crate::args::{Options, SyscallFilter};
use crate::cpu::Vcpu;
use crate::events::Event;
use crate::linux::Linux;
use crate::mem::{Fault, GuestMemory};
use crate::osi::{
    FileDescriptor, Introspect, Listing, Mapping, Module, OsiError, Process, ProcessHandle, Thread,
};
use crate::output::records::{KernelReady, RunEnd, RunStart, SnapshotRecord};
use crate::syscalls::decode::MAX_STR;
use crate::syscalls::{RawCall, SyscallRecord, ThreadInfo};

/// The version of this API. A C plugin asks `vmi_get_api` (include/vmi.h) for the table
/// of its version; another one is refused at load, in one line. A Rust plugin links its
/// own vmi, so its version is always this one.
pub const API_VERSION: u32 = 1;

/// What an analysis wants from the engine. The engine follows the union of every
/// analysis's interest and nothing more; each analysis gets only what it asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interest {
    /// Calls whose completed record (decoded arguments, result) it gets in
    /// [`Analysis::syscall_return`].
    pub returns: SyscallFilter,
    /// Calls it gets at entry, in [`Analysis::syscall_enter`] (raw arguments; decode or
    /// read what you need there, while the caller's memory is as it was).
    pub entries: SyscallFilter,
    /// Process and thread events ([`Analysis::process_event`]).
    pub process_events: bool,
    /// Context switches ([`Analysis::task_change`]); needs `vmi.switch_to_addr` in the
    /// kernelinfo.
    pub task_changes: bool,
}

impl Default for Interest {
    /// Nothing: an analysis that only asks questions at `kernel_ready` or `run_end`.
    fn default() -> Self {
        Interest {
            returns: SyscallFilter::None,
            entries: SyscallFilter::None,
            process_events: false,
            task_changes: false,
        }
    }
}

/// Your analysis. Every method has an empty default: implement what you need and say so
/// in [`Analysis::interest`]. Callbacks run on vCPU threads, several at once under MTTCG.
///
/// A callback that panics is caught: the analysis is switched off (its callbacks are not
/// called again), one line names it and the callback, and the guest runs on.
#[allow(unused_variables)]
pub trait Analysis: Send + Sync + 'static {
    /// A short name for messages (the panic line, the unknown-argument line).
    fn name(&self) -> &str;

    /// What it wants; asked once, before the guest runs.
    fn interest(&self) -> Interest {
        Interest::default()
    }

    /// The run starts: what was loaded into which QEMU (the log's `run_start`).
    fn run_start(&self, run: &RunStart) {}

    /// The kernel can be read from now on: the queries of [`Ctx`] answer.
    fn kernel_ready(&self, ctx: &Ctx<'_>, ready: &KernelReady) {}

    /// A call wanted by [`Interest::entries`] enters the kernel; `thread` is its caller
    /// (zero and empty while the kernel cannot be read yet).
    fn syscall_enter(&self, ctx: &Ctx<'_>, call: &RawCall, thread: &ThreadInfo) {}

    /// A call wanted by [`Interest::returns`] completed: returned (its output buffers
    /// read), or known never to return (`record.outcome` says why).
    fn syscall_return(&self, ctx: &Ctx<'_>, call: &RawCall, record: &SyscallRecord) {}

    /// A process or thread started, ran a new program or ended.
    fn process_event(&self, ctx: &Ctx<'_>, event: &Event) {}

    /// The vCPU of `ctx` switches from the thread whose `task_struct` is at `old` (0:
    /// not known) to the one at `new` (PANDA's `on_task_change`).
    fn task_change(&self, ctx: &Ctx<'_>, old: u64, new: u64) {}

    /// The whole process tree and the modules at one instant (reboot, or the program
    /// `snapshot=` names starts).
    fn snapshot(&self, ctx: &Ctx<'_>, snapshot: &SnapshotRecord) {}

    /// QEMU exits: the engine's counters. No guest can be read any more.
    fn run_end(&self, end: &RunEnd) {}
}

/// The engine's side of a [`Ctx`]: how the queries reach the kernel.
pub(crate) trait Engine: Sync {
    /// A Linux provider for `cpu`, once the kernel is known, fits, and can be read in this
    /// mode (`in_kernel`).
    fn linux<'a>(&'a self, cpu: &'a dyn Vcpu, in_kernel: bool) -> Option<Linux<'a>>;
    /// The address space (page-table root, KPTI bit cleared) `cpu` runs in.
    fn asid(&self, cpu: &dyn Vcpu) -> u64;
    /// The guest's architecture.
    fn arch(&self) -> crate::arch::Arch;
}

/// Why a query has no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// Asked outside a vCPU (at `run_end`, or for a call written when the run ended).
    #[error("no vCPU runs here: the guest cannot be read at this point")]
    NoVcpu,
    /// No kernelinfo describes the running kernel, or it is not found yet.
    #[error(
        "the kernel is not known (yet): wait for kernel_ready, and give vmi a kernelinfo (conf=)"
    )]
    KernelUnknown,
    /// Under KPTI the kernel is not mapped at user-mode points (a call's return).
    #[error("the kernel is not mapped here (KPTI, user mode): ask at entry or at an event")]
    KernelUnmapped,
    /// The kernel could be read, but this answer could not.
    #[error(transparent)]
    Osi(#[from] OsiError),
    /// Guest memory could not be read.
    #[error(transparent)]
    Fault(#[from] Fault),
}

/// What a callback may ask: valid only during the callback (it reads guest memory through
/// the vCPU that runs it).
pub struct Ctx<'a> {
    engine: &'a dyn Engine,
    cpu: Option<&'a dyn Vcpu>,
    /// Whether the kernel can be read here, and in which mode the vCPU runs (`None`: it
    /// cannot, a user-mode point under KPTI).
    kernel_mode: Option<bool>,
}

impl<'a> Ctx<'a> {
    /// A context on `cpu` (`None`: outside any vCPU).
    pub(crate) fn new(
        engine: &'a dyn Engine,
        cpu: Option<&'a dyn Vcpu>,
        kernel_mode: Option<bool>,
    ) -> Self {
        Ctx {
            engine,
            cpu,
            kernel_mode,
        }
    }

    /// The vCPU this callback runs on.
    pub fn vcpu(&self) -> Option<u32> {
        self.cpu.map(|c| c.index())
    }

    /// Instructions the vCPU has executed, with `icount=on` (identical across replays).
    pub fn icount(&self) -> Option<u64> {
        self.cpu?.icount()
    }

    /// The page-table root of the current address space (the log's `asid`).
    pub fn asid(&self) -> Option<u64> {
        Some(self.engine.asid(self.cpu?))
    }

    /// The guest's virtual memory as the current thread sees it.
    pub fn memory(&self) -> Result<&'a dyn GuestMemory, QueryError> {
        let cpu: &'a dyn Vcpu = self.cpu.ok_or(QueryError::NoVcpu)?;
        Ok(cpu)
    }

    /// Reads `buf.len()` bytes of the current address space at `va`.
    pub fn read(&self, va: u64, buf: &mut [u8]) -> Result<(), QueryError> {
        match self.memory()?.read(va, buf) {
            Err(fault) => self
                .read_user_from_kernel(va, |m| m.read(va, buf))
                .ok_or(fault)?
                .map_err(QueryError::from),
            ok => Ok(ok?),
        }
    }

    /// The NUL-terminated string at `va` (at most [`MAX_STR`] bytes, lossily decoded).
    pub fn read_str(&self, va: u64) -> Result<String, QueryError> {
        let (bytes, _) = match self.memory()?.read_cstr(va, MAX_STR) {
            Err(fault) => self
                .read_user_from_kernel(va, |m| m.read_cstr(va, MAX_STR))
                .ok_or(fault)??,
            ok => ok?,
        };
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// At a kernel-mode point, user memory the vCPU cannot read directly (arm64's PAN
    /// applies to QEMU's reads from EL1) read by walking the current address space's tables
    /// through the kernel's direct map; `None` where that does not apply.
    fn read_user_from_kernel<R>(
        &self,
        va: u64,
        f: impl FnOnce(&dyn GuestMemory) -> R,
    ) -> Option<R> {
        let cpu = self.cpu?;
        // Only ARM reads user memory so ([`crate::linux::KernelContext::user_paging`]).
        if self.kernel_mode != Some(true) || !self.engine.arch().is_user_address(va) {
            return None;
        }
        let asid = self.engine.asid(cpu);
        self.linux().ok()?.with_user_memory(asid, f)
    }

    /// The Linux provider here, or why there is none.
    fn linux(&self) -> Result<Linux<'a>, QueryError> {
        let cpu = self.cpu.ok_or(QueryError::NoVcpu)?;
        let in_kernel = self.kernel_mode.ok_or(QueryError::KernelUnmapped)?;
        self.engine
            .linux(cpu, in_kernel)
            .ok_or(QueryError::KernelUnknown)
    }

    /// The process the vCPU runs (or, in the kernel, runs for).
    pub fn current_process(&self) -> Result<Process, QueryError> {
        Ok(self.linux()?.current_process()?)
    }

    /// The thread the vCPU runs.
    pub fn current_thread(&self) -> Result<Thread, QueryError> {
        Ok(self.linux()?.current_thread()?)
    }

    /// All processes, starting with the idle task (pid 0).
    pub fn processes(&self) -> Result<Listing<Process>, QueryError> {
        Ok(self.linux()?.processes()?)
    }

    /// One process by handle ([`Process::task`]).
    pub fn process(&self, handle: ProcessHandle) -> Result<Process, QueryError> {
        Ok(self.linux()?.process(handle)?)
    }

    /// The threads of a process, leader first.
    pub fn threads(&self, handle: ProcessHandle) -> Result<Listing<Thread>, QueryError> {
        Ok(self.linux()?.threads(handle)?)
    }

    /// Loaded kernel modules, newest first.
    pub fn modules(&self) -> Result<Listing<Module>, QueryError> {
        Ok(self.linux()?.modules()?)
    }

    /// The memory mappings of a process, by address (`/proc/<pid>/maps`).
    pub fn mappings(&self, handle: ProcessHandle) -> Result<Listing<Mapping>, QueryError> {
        Ok(self.linux()?.mappings(handle)?)
    }

    /// The mapping of a process that holds `addr` (PANDA's `get_mapping_by_addr`);
    /// `None` when no mapping does.
    pub fn mapping_at(
        &self,
        handle: ProcessHandle,
        addr: u64,
    ) -> Result<Option<Mapping>, QueryError> {
        let maps = self.mappings(handle)?;
        Ok(maps
            .items
            .into_iter()
            .find(|m| m.start <= addr && addr < m.end))
    }

    /// The open file descriptors of a process, with path and position.
    pub fn fds(&self, handle: ProcessHandle) -> Result<Listing<FileDescriptor>, QueryError> {
        Ok(self.linux()?.fds(handle)?)
    }

    /// The path of descriptor `fd` of a process, if it is open.
    pub fn fd_path(&self, handle: ProcessHandle, fd: u32) -> Result<Option<String>, QueryError> {
        Ok(self
            .fds(handle)?
            .items
            .into_iter()
            .find(|f| f.fd == fd)
            .and_then(|f| f.path))
    }
}

/// The arguments a plugin built on vmi gets: vmi's own ([`Options`]) and the ones it
/// declared ([`Build::KEYS`]), as `-plugin libx.so,conf=...,mykey=value` gives them.
#[derive(Debug, Clone)]
pub struct PluginArgs {
    /// vmi's arguments.
    pub options: Options,
    own: Vec<(String, String)>,
}

impl PluginArgs {
    /// Splits `args` into vmi's and the plugin's (`keys`); any other key is refused with
    /// one line listing both.
    pub fn parse(
        args: &[String],
        keys: &[(&str, &str)],
    ) -> Result<PluginArgs, crate::args::ArgsError> {
        let (own, vmi): (Vec<&String>, Vec<&String>) = args.iter().partition(|a| {
            let key = a.split_once('=').map_or(a.as_str(), |(k, _)| k);
            keys.iter().any(|(k, _)| *k == key)
        });
        let options = Options::parse_with(vmi, keys)?;
        let own = own
            .into_iter()
            .map(|a| {
                a.split_once('=')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .ok_or_else(|| crate::args::ArgsError::NoValue(a.clone()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        for (i, (k, _)) in own.iter().enumerate() {
            if own[..i].iter().any(|(seen, _)| seen == k) {
                return Err(crate::args::ArgsError::Repeated(k.clone()));
            }
        }
        Ok(PluginArgs { options, own })
    }

    /// The value of the plugin's own argument `key`, if given.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.own
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// What [`Build::build`] gives: the analyses, or the one line that refuses the plugin.
pub type Built = Result<Vec<Box<dyn Analysis>>, String>;

/// How a plugin built on vmi makes its analyses from its arguments (see
/// [`export_plugin!`](crate::export_plugin)).
pub trait Build {
    /// The plugin's own arguments, with what each is for; they sit next to vmi's on the
    /// `-plugin` line and show in the unknown-argument message.
    const KEYS: &'static [(&'static str, &'static str)] = &[];

    /// The analyses to run; an error refuses the plugin with that one line.
    fn build(args: &PluginArgs) -> Built;
}

/// Makes a QEMU plugin of `$build` (a type implementing [`Build`]): exports
/// `qemu_plugin_install` from the crate this is written in, which must be a `cdylib`.
/// vmi's own exports (`qemu_plugin_version`, the C API) come with the vmi library.
///
/// ```ignore
/// struct Mine;
/// impl vmi::api::Build for Mine {
///     fn build(_: &vmi::api::PluginArgs) -> vmi::api::Built {
///         Ok(vec![Box::new(MyAnalysis::default())])
///     }
/// }
/// vmi::export_plugin!(Mine);
/// ```
#[macro_export]
macro_rules! export_plugin {
    ($build:ty) => {
        /// QEMU's install hook, made by `vmi::export_plugin!`.
        ///
        /// # Safety
        /// Called by QEMU with a valid `info` and `argc` valid C strings in `argv`.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn qemu_plugin_install(
            id: u64,
            info: *const ::std::ffi::c_void,
            argc: ::std::ffi::c_int,
            argv: *const *const ::std::ffi::c_char,
        ) -> ::std::ffi::c_int {
            // SAFETY: forwarded unchanged from QEMU.
            unsafe {
                $crate::install(
                    id,
                    info,
                    argc,
                    argv,
                    <$build as $crate::api::Build>::KEYS,
                    <$build as $crate::api::Build>::build,
                )
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::KernelInfo;
    use crate::cpu::fake::FakeCpu;
    use crate::linux::testmem::{Builder, CURRENT_TASK, INIT_TASK, PER_CPU_BASE, ctx};

    /// An engine over synthetic memory: the kernel is known once `ready`.
    struct Known {
        info: KernelInfo,
        ready: bool,
    }

    impl Engine for Known {
        fn linux<'a>(&'a self, cpu: &'a dyn Vcpu, _in_kernel: bool) -> Option<Linux<'a>> {
            self.ready.then(|| Linux::new(cpu, &self.info, ctx()))
        }

        fn asid(&self, _cpu: &dyn Vcpu) -> u64 {
            0x3000_0000
        }

        fn arch(&self) -> crate::arch::Arch {
            crate::arch::Arch::X86_64
        }
    }

    #[test]
    fn queries_answer_in_a_callback_and_say_why_not() {
        let mut b = Builder::new();
        let mm = b.mm(0x3000_0000);
        let task = b.process(8, "cat", INIT_TASK, mm);
        let v1 = b.vma(mm, 0x1000, 0x2000, 1, 0);
        let v2 = b.vma(mm, 0x3000, 0x4000, 3, 0);
        b.mem.w64(mm, v1);
        b.mem.w64(v1 + 0x10, v2);
        let root = b.dentry("/", 0);
        let notes = b.dentry("notes.txt", root);
        let root_mnt = b.mount(root, 0, root);
        let file = b.file(notes, root_mnt, 7);
        let files = b.alloc(0x100, 64);
        let fdt = files + 0x28;
        let array = b.alloc(8 * 4, 8);
        b.mem.w32(fdt, 4);
        b.mem.w64(fdt + 8, array);
        b.mem.w64(files + 0x20, fdt);
        b.mem.w64(array + 8 * 2, file);
        b.mem.w64(task + 0x80, files);
        b.mem.w64(PER_CPU_BASE + CURRENT_TASK, task);
        let text = b.string("hello");
        let engine = Known {
            info: b.info.clone(),
            ready: true,
        };
        let cpu = FakeCpu::with_memory(3, b.mem);
        let ctx = Ctx::new(&engine, Some(&cpu), Some(true));
        let h = ProcessHandle(task);
        assert_eq!(
            (ctx.vcpu(), ctx.icount(), ctx.asid()),
            (Some(3), None, Some(0x3000_0000))
        );
        assert_eq!(ctx.current_process().unwrap().pid, 8);
        assert_eq!(ctx.current_thread().unwrap(), Thread { pid: 8, tid: 8 });
        assert!(ctx.processes().unwrap().items.iter().any(|p| p.pid == 8));
        assert_eq!(ctx.process(h).unwrap().comm, "cat");
        assert_eq!(
            ctx.threads(h).unwrap().items,
            vec![Thread { pid: 8, tid: 8 }]
        );
        assert!(ctx.modules().is_ok());
        assert_eq!(ctx.mappings(h).unwrap().items.len(), 2);
        assert_eq!(
            ctx.mapping_at(h, 0x3800).unwrap().map(|m| m.start),
            Some(0x3000)
        );
        assert_eq!(ctx.mapping_at(h, 0x2800).unwrap(), None);
        assert_eq!(ctx.fds(h).unwrap().items.len(), 1);
        assert_eq!(ctx.fd_path(h, 2).unwrap().as_deref(), Some("/notes.txt"));
        assert_eq!(ctx.fd_path(h, 1).unwrap(), None);
        assert_eq!(ctx.read_str(text).unwrap(), "hello");
        let mut byte = [0u8; 1];
        assert_eq!(
            ctx.read(0x10, &mut byte),
            Err(QueryError::Fault(Fault { va: 0x10, len: 1 }))
        );
        // Where the kernel cannot be read, each query says why.
        let user = Ctx::new(&engine, Some(&cpu), None);
        assert_eq!(user.processes().unwrap_err(), QueryError::KernelUnmapped);
        assert_eq!(
            user.read_str(text).unwrap(),
            "hello",
            "user memory still reads"
        );
        let outside = Ctx::new(&engine, None, Some(true));
        assert_eq!(outside.current_process().unwrap_err(), QueryError::NoVcpu);
        assert_eq!(outside.read_str(text).unwrap_err(), QueryError::NoVcpu);
        let unknown = Known {
            info: engine.info.clone(),
            ready: false,
        };
        let early = Ctx::new(&unknown, Some(&cpu), Some(true));
        assert_eq!(early.modules().unwrap_err(), QueryError::KernelUnknown);
    }

    #[test]
    fn plugin_arguments_sit_next_to_vmis() {
        let keys = [("counts", "where the counts go")];
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let parsed =
            PluginArgs::parse(&args(&["counts=/tmp/c", "syscalls=openat"]), &keys).unwrap();
        assert_eq!(parsed.get("counts"), Some("/tmp/c"));
        assert_eq!(parsed.get("other"), None);
        assert_eq!(
            parsed.options.syscalls,
            SyscallFilter::Names(vec!["openat".into()])
        );
        let err = |a: &[&str]| PluginArgs::parse(&args(a), &keys).unwrap_err().to_string();
        let unknown = err(&["nosuch=1"]);
        assert!(
            unknown.contains("'nosuch'") && unknown.contains("counts"),
            "{unknown}"
        );
        assert!(unknown.contains("conf"), "vmi's keys too: {unknown}");
        assert!(err(&["counts"]).contains("has no value"));
        assert!(err(&["counts=a", "counts=b"]).contains("given twice"));
    }
}
