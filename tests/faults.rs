//! Faults from outside the guest: a full disk under the log, QEMU stopped by a signal.
//! Whatever happens, the log holds whole records only, and says what it lost.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::Prereq::{Kernel, Plugin, Qemu, Tmpfs};
use common::{plugin_path, read_lossy, tempdir, trial};
use serde_json::Value;

fn main() {
    common::run(vec![
        trial(
            "a_full_disk_leaves_whole_records_and_writing_resumes",
            &[Qemu, Plugin, Kernel("amd64-6.1"), Tmpfs],
            a_full_disk_leaves_whole_records_and_writing_resumes,
        ),
        trial(
            "sigterm_ends_the_log_with_run_end",
            &[Qemu, Plugin, Kernel("amd64-6.1")],
            sigterm_ends_the_log_with_run_end,
        ),
        trial(
            "kill_9_leaves_whole_records",
            &[Qemu, Plugin, Kernel("amd64-6.1")],
            kill_9_leaves_whole_records,
        ),
    ]);
}

/// Starts `lab/lab boot amd64-6.1 default` into `dir` with `plugin_args`, in the
/// background.
fn start(dir: &Path, plugin_args: &[String]) -> Child {
    Command::new(common::root().join("lab/lab"))
        .args(["boot", "amd64-6.1", "default", "--out"])
        .arg(dir)
        .arg("--")
        .args(plugin_args)
        .env("VMI_PLUGIN", plugin_path())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("run lab/lab boot")
}

/// Every line of `log` is one whole JSON record with a type; returns them.
fn whole_records(log: &Path) -> Vec<Value> {
    let text = std::fs::read(log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
    assert!(
        text.is_empty() || text.ends_with(b"\n"),
        "{} ends inside a record",
        log.display()
    );
    String::from_utf8_lossy(&text)
        .lines()
        .enumerate()
        .map(|(i, l)| {
            let v: Value = serde_json::from_str(l).unwrap_or_else(|e| {
                panic!("{}:{}: not a whole record ({e}): {l}", log.display(), i + 1)
            });
            assert!(
                v["type"].is_string(),
                "{}:{}: no type",
                log.display(),
                i + 1
            );
            v
        })
        .collect()
}

/// Waits until `cond` holds (polling), at most `limit`.
fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// A tmpfs mounted for one test, unmounted when dropped.
struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// The log on an 8 MiB tmpfs that a filler leaves 64 KiB of: the disk fills within the
/// first second of logging; a second later the filler goes and space comes back. The
/// file keeps whole records only (the write that fails is cut back to its last whole
/// line), the failure is said once, writing again is said, and `run_end` counts what was
/// lost. The guest is not stopped.
fn a_full_disk_leaves_whole_records_and_writing_resumes() {
    let dir = tempdir("full-disk");
    let mnt = dir.join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=8m", "tmpfs"])
        .arg(&mnt)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "mount a tmpfs on {}", mnt.display());
    let _mount = Mount(mnt.clone());
    let filler = mnt.join("filler");
    std::fs::write(&filler, vec![0u8; 8 * 1024 * 1024 - 64 * 1024]).unwrap();
    let log = mnt.join("vmi.jsonl");
    let mut lab = start(&dir, &[format!("out={}", log.display())]);
    // Full once the log stops growing near the free space.
    let full = wait_for(Duration::from_secs(120), || {
        std::fs::metadata(&log).is_ok_and(|m| m.len() > 32 * 1024)
    });
    assert!(full, "the log never filled the disk: {}", dir.display());
    std::thread::sleep(Duration::from_secs(1));
    std::fs::remove_file(&filler).unwrap();
    let status = lab.wait().unwrap();
    assert!(status.success(), "lab/lab boot: {status}");
    assert_eq!(
        read_lossy(&dir.join("exit-status")).trim(),
        "0",
        "QEMU's exit"
    );
    assert!(
        read_lossy(&dir.join("console.log")).contains("@@VMI end"),
        "the guest was stopped"
    );
    let records = whole_records(&log);
    let end = records.last().expect("records");
    assert_eq!(end["type"], "run_end", "{}", dir.display());
    let dropped = end["dropped_records"].as_u64().unwrap();
    assert!(dropped > 0, "nothing was dropped: {}", dir.display());
    let stderr = read_lossy(&dir.join("stderr.log"));
    let said = |what: &str| stderr.lines().filter(|l| l.contains(what)).count();
    assert_eq!(said("cannot write to"), 1, "{stderr}");
    assert_eq!(said("again"), 1, "{stderr}");
    eprintln!(
        "full disk: {} whole records, {dropped} dropped: {}",
        records.len(),
        dir.display()
    );
}

/// The QEMU that `lab/lab boot` started for `dir`.
fn qemu_pid(dir: &Path) -> Option<u32> {
    let needle = dir.to_string_lossy().into_owned();
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
        let cmd = String::from_utf8_lossy(&cmd);
        let exe = cmd.split('\0').next()?;
        (exe.contains("qemu-system") && cmd.contains(&needle)).then_some(pid)
    })
}

/// Boots, and sends QEMU `signal` once the plugin has found the kernel; returns the
/// records of the log.
fn signalled(signal: &str, label: &str) -> (PathBuf, Vec<Value>) {
    let dir = tempdir(label);
    let log = dir.join("vmi.jsonl");
    let mut lab = start(&dir, &[]);
    let ready = wait_for(Duration::from_secs(120), || {
        read_lossy(&log).contains("\"kernel_ready\"")
    });
    assert!(ready, "no kernel_ready: {}", dir.display());
    let pid = qemu_pid(&dir).expect("QEMU's pid");
    let ok = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "kill {signal} {pid}");
    let _ = lab.wait();
    (dir.clone(), whole_records(&log))
}

/// SIGTERM: QEMU exits through its exit path, and the plugin ends the log with
/// `run_end`.
fn sigterm_ends_the_log_with_run_end() {
    let (dir, records) = signalled("-TERM", "sigterm");
    assert_eq!(
        records.last().unwrap()["type"],
        "run_end",
        "{}",
        dir.display()
    );
}

/// SIGKILL: nothing runs after it, so no `run_end`; but the file holds whole records
/// only, up to the last batch written.
fn kill_9_leaves_whole_records() {
    let (dir, records) = signalled("-KILL", "kill9");
    assert!(records.len() > 2, "{}", dir.display());
    assert_ne!(
        records.last().unwrap()["type"],
        "run_end",
        "{}",
        dir.display()
    );
}
