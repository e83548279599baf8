//! The records of the event log, one JSON object per line, each tagged with `"type"`.
//! The schema is documented in `docs/event-log.md`.

use serde::{Deserialize, Serialize};

/// One line of the event log.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Record {
    /// The first record of every run: what was loaded, into what, with which arguments.
    RunStart(RunStart),
    /// The last record of a run that ended normally: counters over the whole run.
    RunEnd(RunEnd),
    /// The process tree and kernel modules at one instant.
    Snapshot(SnapshotRecord),
    /// The plugin can now read the guest kernel (or explains why it cannot).
    KernelReady(KernelReady),
}

/// Body of the `kernel_ready` record: what the plugin found out about the kernel.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KernelReady {
    /// The kernelinfo group in use.
    pub group: String,
    /// Run-time minus link-time kernel address.
    pub kaslr_slide: String,
    /// Start of the kernel's direct map.
    pub page_offset: String,
    /// Whether user page tables leave the kernel out (KPTI): the plugin then reads the
    /// kernel at system call dispatch instead of at the system call instruction.
    pub kpti: bool,
    /// Whether the banner read from the guest matches the kernelinfo; absent when the
    /// kernelinfo has no banner.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub banner_matches: Option<bool>,
    /// Where the kernelinfo came from.
    pub kernelinfo: KernelinfoSource,
    /// With [`KernelinfoSource::Memory`]: the file, beside the log, the group found was
    /// written to; later runs and replays pass it as `conf=` and skip the search.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernelinfo_file: Option<String>,
}

/// Where the plugin's description of the guest kernel came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KernelinfoSource {
    /// The `conf=` file.
    Conf,
    /// The guest kernel's own memory (BTF, kallsyms, banner): no argument needed.
    Memory,
}

/// Body of the `snapshot` record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SnapshotRecord {
    /// Why: `exec:<name>` or `reboot`.
    pub reason: String,
    /// The thread that was running when the snapshot was taken (the one that asked).
    pub current: Option<crate::osi::Thread>,
    /// Every process (thread-group leader), idle task (pid 0) first.
    pub processes: Vec<SnapshotProcess>,
    /// Loaded modules, newest first (the kernel's list order).
    pub modules: Vec<SnapshotModule>,
    /// Walks that stopped early, each `"<what>: <why>"`; empty when all is complete.
    pub incomplete: Vec<String>,
}

/// One process of a snapshot.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SnapshotProcess {
    /// `tgid`.
    pub pid: u32,
    /// `real_parent->tgid`.
    pub ppid: u32,
    /// `comm`.
    pub comm: String,
    /// Address of the leader's `task_struct`.
    pub task: String,
    /// Physical page-table root (CR3 value); absent for kernel threads.
    pub asid: Option<String>,
    /// Thread ids, leader first.
    pub threads: Vec<u32>,
    /// Kernel thread.
    pub kernel_thread: bool,
    /// Start time, ns since boot.
    pub start_time: Option<u64>,
    /// Real user id.
    pub uid: Option<u32>,
    /// Real group id.
    pub gid: Option<u32>,
    /// Effective user id.
    pub euid: Option<u32>,
    /// Effective group id.
    pub egid: Option<u32>,
    /// Command line, when readable.
    pub argv: Option<Vec<String>>,
    /// The program it runs (`/proc/<pid>/exe`).
    pub exe: Option<String>,
    /// `mm->brk`.
    pub brk: String,
    /// `mm->start_brk`.
    pub start_brk: String,
    /// Memory mappings (`/proc/<pid>/maps`).
    pub maps: Vec<SnapshotMapping>,
    /// Open file descriptors (`/proc/<pid>/fd`).
    pub fds: Vec<SnapshotFd>,
}

/// One mapping of a snapshot process.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SnapshotMapping {
    /// First address.
    pub start: String,
    /// One past the last address.
    pub end: String,
    /// `vm_flags`.
    pub flags: u64,
    /// File offset in bytes.
    pub offset: u64,
    /// Mapped file.
    pub path: Option<String>,
}

/// One open file of a snapshot process.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SnapshotFd {
    /// Descriptor number.
    pub fd: u32,
    /// Path, when it can be rebuilt.
    pub path: Option<String>,
    /// File position.
    pub position: u64,
}

/// One kernel module of a snapshot.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SnapshotModule {
    /// Name.
    pub name: String,
    /// Load address.
    pub base: String,
    /// Size in bytes, as `/proc/modules` shows it.
    pub size: u64,
}

/// Body of the `run_start` record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunStart {
    /// The plugin's version (`CARGO_PKG_VERSION`).
    pub version: String,
    /// QEMU's target name, e.g. `x86_64-softmmu`.
    pub target: String,
    /// The plugin API version QEMU reported (current).
    pub plugin_api: i32,
    /// The vCPUs the machine started with.
    pub vcpus: i32,
    /// The plugin arguments exactly as given.
    pub args: Vec<String>,
    /// The kernelinfo file, if one was given.
    pub conf: Option<String>,
    /// The kernelinfo group in use, if known at start.
    pub group: Option<String>,
}

/// Body of the `run_end` record.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RunEnd {
    /// System call instructions executed by the guest, all kinds together.
    pub syscalls: u64,
    /// The same, per instruction kind: `syscall`, `sysenter`, `int80`.
    pub syscall_insns: SyscallInsnCounts,
    /// Translation blocks QEMU translated while the plugin watched.
    pub translations: u64,
    /// `snapshot` records written.
    pub snapshots: u64,
    /// `syscall` records written.
    pub syscall_records: u64,
    /// Process and thread event records written.
    pub event_records: u64,
    /// Records that could not be written (I/O errors on the log).
    pub dropped_records: u64,
    /// Context switches seen at `__switch_to`. Zero when the kernelinfo lacks
    /// `vmi.switch_to_addr`: then every system call reads the current task from the
    /// kernel instead.
    pub task_switches: u64,
    /// Return-point callbacks QEMU made. Fewer than `syscalls` when calls the plugin
    /// does not follow (events only, a filter) had their returns skipped inline.
    pub return_callbacks: u64,
    /// What the `probe=` diagnostics saw, when requested.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probe: Option<ProbeReport>,
}

/// Executed system call instructions per kind.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct SyscallInsnCounts {
    /// `syscall` (x86_64).
    pub syscall: u64,
    /// `sysenter` (i386 vDSO).
    pub sysenter: u64,
    /// `int 0x80` (i386, and compat on x86_64).
    pub int80: u64,
    /// `svc #0` (arm64).
    pub svc: u64,
}

/// Outcome of repeatedly reading the `probe=` address.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ProbeReport {
    /// The address read, as `0x...`.
    pub address: String,
    /// The string found by the first successful read (lossy UTF-8).
    pub text: Option<String>,
    /// Reads attempted.
    pub reads: u64,
    /// Reads that returned the same bytes as the first successful one.
    pub matched: u64,
    /// Reads that failed (address not mapped in the current address space).
    pub failed: u64,
    /// Reads that succeeded but returned different bytes.
    pub mismatched: u64,
}

/// A record with its position in the guest's execution: the vCPU and the instructions it
/// had executed when the record was made (`icount=on`). Identical across replays of one
/// recording, so two analyses of it can be joined on it.
#[derive(Debug, Serialize)]
pub struct Positioned<T: Serialize> {
    /// The record itself; its fields come first.
    #[serde(flatten)]
    pub record: T,
    /// The vCPU.
    pub vcpu: u32,
    /// Instructions executed by that vCPU so far.
    pub icount: u64,
}

/// The fields [`Positioned`] adds to a record, in the order it writes them: what a reader
/// (`vmi report`) takes as the record's position rather than as part of the record.
pub const POSITION_FIELDS: [&str; 2] = ["vcpu", "icount"];

/// The field names a record type is written with, taken from its own definition: what
/// `vmi report` accepts as known fields, so that a field added to a record is known to
/// the reader without a second list.
pub fn fields_of<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    /// A deserializer that only listens for the struct's field names.
    struct Fields(&'static [&'static str]);
    #[derive(Debug)]
    struct Stop;
    impl std::fmt::Display for Stop {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("fields taken")
        }
    }
    impl std::error::Error for Stop {}
    impl serde::de::Error for Stop {
        fn custom<M: std::fmt::Display>(_: M) -> Self {
            Stop
        }
    }
    impl<'de> serde::Deserializer<'de> for &mut Fields {
        type Error = Stop;
        fn deserialize_any<V: serde::de::Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
            Err(Stop)
        }
        fn deserialize_struct<V: serde::de::Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Stop> {
            self.0 = fields;
            Err(Stop)
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
            identifier ignored_any
        }
    }
    let mut d = Fields(&[]);
    let _ = T::deserialize(&mut d);
    d.0
}

/// Formats a guest address the way every record does: `"0x..."`, lower-case hex.
pub fn hex(address: u64) -> String {
    format!("{address:#x}")
}

#[cfg(test)]
mod tests {

    #[test]
    fn fields_of_lists_a_records_fields() {
        assert_eq!(
            super::fields_of::<super::KernelReady>(),
            [
                "group",
                "kaslr_slide",
                "page_offset",
                "kpti",
                "banner_matches",
                "kernelinfo",
                "kernelinfo_file"
            ]
        );
        assert!(super::fields_of::<super::RunEnd>().contains(&"dropped_records"));
    }

    #[test]
    fn position_fields_are_what_positioned_writes() {
        let v = serde_json::to_value(Positioned {
            record: serde_json::json!({"type": "x"}),
            vcpu: 1,
            icount: 2,
        })
        .unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys[1..], super::POSITION_FIELDS);
    }

    use super::*;

    #[test]
    fn records_are_tagged_with_their_type() {
        let line = serde_json::to_string(&Record::RunEnd(RunEnd::default())).unwrap();
        assert!(
            line.starts_with(r#"{"type":"run_end","syscalls":0"#),
            "{line}"
        );
        assert!(!line.contains("probe"), "{line}");
        assert_eq!(hex(0xffff_ffff_8100_0000), "0xffffffff81000000");
    }
}
