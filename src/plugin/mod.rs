//! The plugin's safe state and its reactions to QEMU's callbacks.
//!
//! [`kernel`] learns where the running kernel is; [`snapshot`] turns the Linux provider's
//! answers into records.
//!
//! [`ffi`](crate) owns the QEMU entry points and calls in here with plain Rust values; this
//! module decides what to instrument and what to record. It never sees a raw pointer.

pub mod kernel;
pub mod snapshot;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::Mutex;

use crate::arch::Arch;
use crate::arch::regs::Reg;
use crate::arch::x86::SyscallInsn;
use crate::args::Options;
use crate::config::{KernelInfo, KeyFile};
use crate::cpu::Vcpu;
use crate::error::Error;
use crate::linux::Linux;
use crate::output::records::{self, KernelReady, ProbeReport, RunEnd, RunStart, SyscallInsnCounts};

use crate::output::{JsonlSink, Record};
use kernel::KernelView;
use snapshot::Reason;

/// Longest string the `probe=` diagnostics reads.
const PROBE_MAX: usize = 256;

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

/// Instrumentation the plugin asks for on one instruction at translation time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    /// Call [`Plugin::on_syscall_insn`] each time this system call instruction runs.
    SyscallInsn(SyscallInsn),
}

/// The plugin: options, output, counters. Shared by all vCPU threads, so every field is
/// either immutable after install or internally synchronised.
#[derive(Debug)]
pub struct Plugin {
    options: Options,
    arch: Arch,
    args: Vec<String>,
    machine: MachineInfo,
    sink: JsonlSink,
    syscall_insns: [AtomicU64; 3],
    translations: AtomicU64,
    probe: Option<Mutex<ProbeState>>,
    kernel: Option<KernelView>,
    kernel_ready: AtomicBool,
    snapshots: AtomicU64,
}

#[derive(Debug, Default)]
struct ProbeState {
    first: Option<Vec<u8>>,
    report: ProbeReport,
}

impl Plugin {
    /// Validates the arguments against the machine and the files they name, opens the
    /// event log and writes `run_start`. Every error here makes QEMU refuse the plugin.
    pub fn install(args: Vec<String>, machine: MachineInfo) -> Result<Plugin, Error> {
        let options = Options::parse(&args)?;
        if !machine.system {
            return Err(Error::Unsupported(
                "QEMU runs in user mode: load the plugin into qemu-system-*".into(),
            ));
        }
        let arch = Arch::from_target(&machine.target).ok_or_else(|| {
            Error::Unsupported(format!(
                "guest architecture '{}' is not supported yet: use qemu-system-x86_64 or qemu-system-i386",
                machine.target
            ))
        })?;
        log::debug!("guest architecture {arch:?}");
        let mut kernel = None;
        if let Some(conf) = &options.conf {
            let file = KeyFile::load(conf)?;
            let groups = file.groups();
            let group = match (&options.group, groups.as_slice()) {
                (Some(group), _) => Some(group.clone()),
                (None, [only]) => Some(only.clone()),
                (None, _) => {
                    log::warn!(
                        "{} holds {} groups: pick one with group= (choosing by banner is not supported yet); introspection is off",
                        conf.display(),
                        groups.len()
                    );
                    None
                }
            };
            if let Some(group) = group {
                file.require_group(&group)?;
                let info = KernelInfo::from_keyfile(&file, &group)?;
                kernel = Some(KernelView::new(info, group, arch));
            }
        } else if options.group.is_some() {
            return Err(Error::Unsupported(
                "group= needs conf=: name the kernelinfo file that holds the group".into(),
            ));
        }
        let sink = JsonlSink::create(&options.out)?;
        let probe = options.probe.map(|address| {
            Mutex::new(ProbeState {
                first: None,
                report: ProbeReport {
                    address: records::hex(address),
                    ..ProbeReport::default()
                },
            })
        });
        let plugin = Plugin {
            args,
            arch,
            machine,
            sink,
            syscall_insns: Default::default(),
            translations: AtomicU64::new(0),
            probe,
            kernel,
            kernel_ready: AtomicBool::new(false),
            snapshots: AtomicU64::new(0),
            options,
        };
        plugin.sink.write(&Record::RunStart(RunStart {
            version: crate::VERSION.to_string(),
            target: plugin.machine.target.clone(),
            plugin_api: plugin.machine.plugin_api,
            vcpus: plugin.machine.vcpus,
            args: plugin.args.clone(),
            conf: plugin
                .options
                .conf
                .as_ref()
                .map(|p| p.display().to_string()),
            group: plugin.kernel.as_ref().map(|k| k.group().to_string()),
        }));
        Ok(plugin)
    }

    /// The guest architecture.
    pub fn arch(&self) -> Arch {
        self.arch
    }

    /// The validated options.
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// Called once per translated block starting at `va` with first instructions
    /// `insns`; counts translations and lets the kernel view spot the kernel's entry.
    pub fn on_block_translated(&self, va: u64, insns: &[&[u8]]) {
        self.translations.fetch_add(1, Ordering::Relaxed);
        if let Some(kernel) = &self.kernel {
            kernel.block_translated(va, insns);
        }
    }

    /// Decides, at translation time, whether the instruction with these bytes needs a
    /// callback. Everything that returns `None` runs at full speed.
    pub fn hook_for(&self, insn: &[u8]) -> Option<Hook> {
        SyscallInsn::classify(insn).map(Hook::SyscallInsn)
    }

    /// A system call instruction is about to execute on a vCPU whose memory is `mem`.
    pub fn on_syscall_insn(&self, kind: SyscallInsn, cpu: &dyn Vcpu) {
        self.syscall_insns[kind.index()].fetch_add(1, Ordering::Relaxed);
        if let Some(kernel) = &self.kernel {
            kernel.syscall_insn_seen(kind);
            if let Some(reason) = self.snapshot_reason(kind, cpu) {
                self.snapshot(kernel, cpu, &reason);
            }
        }
        if let (Some(probe), Some(address)) = (&self.probe, self.options.probe) {
            let read = cpu.read_cstr(address, PROBE_MAX);
            let mut state = probe.lock();
            state.report.reads += 1;
            match read {
                Err(_) => state.report.failed += 1,
                Ok((bytes, _)) => match &state.first {
                    None => {
                        state.report.text = Some(String::from_utf8_lossy(&bytes).into_owned());
                        state.report.matched += 1;
                        state.first = Some(bytes);
                    }
                    Some(first) if *first == bytes => state.report.matched += 1,
                    Some(_) => state.report.mismatched += 1,
                },
            }
        }
    }

    /// Whether this system call asks for a snapshot: an `execve`/`execveat` of the
    /// `snapshot=` program, or `reboot`.
    fn snapshot_reason(&self, kind: SyscallInsn, cpu: &dyn Vcpu) -> Option<Reason> {
        let nr = cpu.reg(Reg::Rax)? & 0xffff_ffff;
        // (execve, execveat, reboot) numbers and the filename's register per ABI.
        let (execve, execveat, reboot, file_reg, at_file_reg) = match kind {
            SyscallInsn::Syscall => (59, 322, 169, Reg::Rdi, Reg::Rsi),
            SyscallInsn::Int80 | SyscallInsn::Sysenter => (11, 358, 88, Reg::Rbx, Reg::Rcx),
        };
        let filename = match nr {
            n if n == reboot => return Some(Reason::Reboot),
            n if n == execve => cpu.reg(file_reg)?,
            n if n == execveat => cpu.reg(at_file_reg)?,
            _ => return None,
        };
        let (path, _) = cpu.read_cstr(filename, 4096).ok()?;
        let name = path.rsplit(|&b| b == b'/').next().unwrap_or(&path);
        (name == self.options.snapshot.as_bytes())
            .then(|| Reason::Exec(self.options.snapshot.clone()))
    }

    fn snapshot(&self, kernel: &KernelView, cpu: &dyn Vcpu, reason: &Reason) {
        let ctx = match kernel.context(cpu) {
            Ok(ctx) => ctx,
            Err(why) => {
                log::warn!("no snapshot ({reason:?}): {why}");
                return;
            }
        };
        if !self.kernel_ready.swap(true, Ordering::Relaxed) {
            self.sink.write(&Record::KernelReady(KernelReady {
                group: kernel.group().to_string(),
                kaslr_slide: records::hex(ctx.kaslr_slide),
                page_offset: records::hex(ctx.page_offset),
                banner_matches: kernel.banner_matches(cpu),
            }));
        }
        let linux = Linux::new(cpu, kernel.info(), ctx);
        let record = snapshot::take(&linux, reason);
        self.snapshots.fetch_add(1, Ordering::Relaxed);
        self.sink.write(&Record::Snapshot(record));
    }

    /// QEMU is exiting: write `run_end` with the counters.
    pub fn on_exit(&self) {
        let count = |kind: SyscallInsn| self.syscall_insns[kind.index()].load(Ordering::Relaxed);
        let syscall_insns = SyscallInsnCounts {
            syscall: count(SyscallInsn::Syscall),
            sysenter: count(SyscallInsn::Sysenter),
            int80: count(SyscallInsn::Int80),
        };
        let record = Record::RunEnd(RunEnd {
            syscalls: syscall_insns.syscall + syscall_insns.sysenter + syscall_insns.int80,
            syscall_insns,
            translations: self.translations.load(Ordering::Relaxed),
            snapshots: self.snapshots.load(Ordering::Relaxed),
            dropped_records: self.sink.dropped(),
            probe: self.probe.as_ref().map(|p| p.lock().report.clone()),
        });
        self.sink.write(&record);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::regs::{Reg, Registers};
    use crate::mem::{Fault, GuestMemory};

    fn machine(target: &str) -> MachineInfo {
        MachineInfo {
            target: target.into(),
            plugin_api: 4,
            vcpus: 1,
            system: true,
        }
    }

    fn temp(name: &str) -> String {
        std::env::temp_dir()
            .join(format!("vmi-plugin-{}-{name}", std::process::id()))
            .display()
            .to_string()
    }

    struct Banner;
    impl Vcpu for Banner {
        fn index(&self) -> u32 {
            0
        }
    }
    impl Registers for Banner {
        fn reg(&self, _: Reg) -> Option<u64> {
            None
        }
    }
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
        let out = temp("run.jsonl");
        let plugin = Plugin::install(
            vec![format!("out={out}"), "probe=0x1000".into()],
            machine("x86_64-softmmu"),
        )
        .unwrap();
        assert_eq!(
            plugin.hook_for(&[0x0f, 0x05]),
            Some(Hook::SyscallInsn(SyscallInsn::Syscall))
        );
        assert_eq!(plugin.hook_for(&[0x90]), None);
        plugin.on_syscall_insn(SyscallInsn::Syscall, &Banner);
        plugin.on_syscall_insn(SyscallInsn::Int80, &Banner);
        plugin.on_exit();
        let text = std::fs::read_to_string(&out).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines[0]["type"], "run_start");
        assert_eq!(lines[1]["type"], "run_end");
        assert_eq!(lines[1]["syscalls"], 2);
        assert_eq!(lines[1]["syscall_insns"]["int80"], 1);
        assert_eq!(lines[1]["probe"]["text"], "Linux version 6.1");
        assert_eq!(lines[1]["probe"]["matched"], 2);
        std::fs::remove_file(out).unwrap();
    }

    #[test]
    fn refuses_what_it_cannot_do() {
        let err =
            |args: Vec<String>, m: MachineInfo| Plugin::install(args, m).unwrap_err().to_string();
        assert!(err(vec![], machine("aarch64-softmmu")).contains("aarch64"));
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
