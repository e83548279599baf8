//! The records of the event log, one JSON object per line, each tagged with `"type"`.
//! The schema is documented in `docs/event-log.md`.

use serde::Serialize;

/// One line of the event log.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Record {
    /// The first record of every run: what was loaded, into what, with which arguments.
    RunStart(RunStart),
    /// The last record of a run that ended normally: counters over the whole run.
    RunEnd(RunEnd),
}

/// Body of the `run_start` record.
#[derive(Debug, Clone, Serialize)]
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
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunEnd {
    /// System call instructions executed by the guest, all kinds together.
    pub syscalls: u64,
    /// The same, per instruction kind: `syscall`, `sysenter`, `int80`.
    pub syscall_insns: SyscallInsnCounts,
    /// Translation blocks QEMU translated while the plugin watched.
    pub translations: u64,
    /// Records that could not be written (I/O errors on the log).
    pub dropped_records: u64,
    /// What the `probe=` diagnostics saw, when requested.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probe: Option<ProbeReport>,
}

/// Executed system call instructions per kind.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct SyscallInsnCounts {
    /// `syscall` (x86_64).
    pub syscall: u64,
    /// `sysenter` (i386 vDSO).
    pub sysenter: u64,
    /// `int 0x80` (i386, and compat on x86_64).
    pub int80: u64,
}

/// Outcome of repeatedly reading the `probe=` address.
#[derive(Debug, Clone, Default, Serialize)]
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

/// Formats a guest address the way every record does: `"0x..."`, lower-case hex.
pub fn hex(address: u64) -> String {
    format!("{address:#x}")
}

#[cfg(test)]
mod tests {
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
