//! Faults from outside the guest: a full disk under the log, QEMU stopped by a signal.
//! Whatever happens, the log holds whole records only, and says what it lost.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::Prereq::{Dbg, Kernel, Plugin, Qemu, Tmpfs};
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
            "random_offsets_never_invent_processes",
            &[Qemu, Plugin, Kernel("amd64-6.12")],
            random_offsets_never_invent_processes,
        ),
        trial(
            "random_offsets_never_invent_processes_arm64",
            &[Qemu, Plugin, Kernel("arm64-6.1"), Dbg("arm64-6.1")],
            random_offsets_never_invent_processes_arm64,
        ),
        trial(
            "a_group_of_another_architecture_is_refused_in_one_line",
            &[Qemu, Plugin, Kernel("amd64-6.1"), Kernel("i386-6.1")],
            a_group_of_another_architecture_is_refused_in_one_line,
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
    if !text.is_empty() {
        common::assert_report_reads(log);
    }
    common::parse_jsonl(log)
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
        // The lab's QEMU 11 runs through its root's loader: argv[0] is the loader's.
        let qemu = exe.contains("qemu-system") || exe.contains("ld-linux");
        (qemu && cmd.contains("qemu-system") && cmd.contains(&needle)).then_some(pid)
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

/// The lab's group for amd64 6.12 with its task offsets drawn at random inside
/// `task_struct` (fixed seeds): the plugin refuses the group with one line naming the
/// check that failed, or (if the draw happens to fit) reports only processes the guest
/// has. Never a process the guest did not have. The group is named with `group=`, so the
/// banner cannot refuse it first.
fn random_offsets_never_invent_processes() {
    random_offsets_on("amd64-6.12");
}

/// The same on arm64 (bookworm's 6.1, its group from the `Image` and the -dbg System.map).
fn random_offsets_never_invent_processes_arm64() {
    random_offsets_on("arm64-6.1");
}

fn random_offsets_on(kernel: &'static str) {
    let good = std::fs::read_to_string(common::lab_conf(kernel)).unwrap();
    let size: u64 = good
        .lines()
        .find_map(|l| l.strip_prefix("task.size = "))
        .and_then(|v| v.trim().parse().ok())
        .expect("task.size");
    let group = good
        .lines()
        .find_map(|l| l.strip_prefix('[').and_then(|l| l.strip_suffix(']')))
        .expect("a group")
        .to_string();
    let mut refused = 0;
    // Seed 1 draws every one of these offsets; 2 keeps the task list (so the walk works
    // and reads garbage pids, parents and comms); 3 draws only pid, tgid and comm.
    let drawn_by_seed: [&[&str]; 3] = [
        &[
            "task.tasks_offset",
            "task.pid_offset",
            "task.tgid_offset",
            "task.real_parent_offset",
            "task.mm_offset",
            "task.comm_offset",
        ],
        &[
            "task.pid_offset",
            "task.tgid_offset",
            "task.real_parent_offset",
            "task.mm_offset",
            "task.comm_offset",
        ],
        &["task.pid_offset", "task.tgid_offset", "task.comm_offset"],
    ];
    for (seed, drawn_keys) in [1u64, 2, 3].into_iter().zip(drawn_by_seed) {
        let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let conf: String = good
            .lines()
            .map(|l| {
                let drawn = drawn_keys.iter().any(|k| l.starts_with(&format!("{k} = ")));
                match l.split_once(" = ") {
                    Some((k, _)) if drawn => format!("{k} = {}\n", (next() % size) & !7),
                    _ => format!("{l}\n"),
                }
            })
            .collect();
        let dir = tempdir(&format!("random-conf-{seed}"));
        let path = dir.join("random.conf");
        std::fs::write(&path, conf).unwrap();
        let run = common::boot(&common::Boot {
            kernel,
            scenario: "default",
            plugin_args: vec![format!("conf={}", path.display()), format!("group={group}")],
            ..common::Boot::default()
        });
        run.assert_finished();
        let guest: std::collections::BTreeSet<u32> =
            run.truth.procs.iter().map(|p| p.pid).collect();
        let stderr = read_lossy(&run.dir.join("stderr.log"));
        if stderr.contains("does not fit the running kernel") {
            refused += 1;
            assert!(
                run.of_type("kernel_ready").is_empty(),
                "{}",
                run.dir.display()
            );
        }
        for e in &run.events {
            let ty = e["type"].as_str().unwrap_or("");
            if ty.starts_with("process_") || ty.starts_with("thread_") {
                let pid = e["pid"].as_u64().unwrap() as u32;
                // A process that ended before the guest listed /proc is not in it: it
                // must at least have a pid Linux hands out, and its own start.
                assert!(
                    pid < 4 * 1024 * 1024
                        && (guest.contains(&pid)
                            || ty != "process_start"
                            || e["already_running"] != true),
                    "invented {e} ({})",
                    run.dir.display()
                );
            }
        }
        for p in run
            .of_type("snapshot")
            .iter()
            .flat_map(|s| s["processes"].as_array().unwrap())
        {
            let pid = p["pid"].as_u64().unwrap() as u32;
            assert!(
                pid == 0
                    || guest.contains(&pid)
                    || pid
                        == run.of_type("snapshot")[0]["current"]["pid"]
                            .as_u64()
                            .unwrap() as u32,
                "snapshot invented {pid}: {}",
                run.dir.display()
            );
        }
        eprintln!(
            "seed {seed}: {}",
            if stderr.contains("does not fit") {
                "refused"
            } else {
                "accepted"
            }
        );
    }
    assert!(refused >= 2, "only {refused} of 3 random groups refused");
}

/// An i386 group on an amd64 guest: one line says so, no kernel is announced, and the
/// system calls are still logged with number and name.
fn a_group_of_another_architecture_is_refused_in_one_line() {
    let conf = common::lab_conf("i386-6.1");
    let run = common::boot(&common::Boot {
        kernel: "amd64-6.1",
        scenario: "default",
        plugin_args: vec![format!("conf={}", conf.display())],
        ..common::Boot::default()
    });
    run.assert_finished();
    let stderr = read_lossy(&run.dir.join("stderr.log"));
    let said: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("another architecture"))
        .collect();
    assert_eq!(said.len(), 1, "{stderr}");
    assert!(
        run.of_type("kernel_ready").is_empty(),
        "{}",
        run.dir.display()
    );
    let calls = run.of_type("syscall");
    assert!(calls.len() > 1000, "{}", run.dir.display());
    assert!(calls.iter().all(|c| c["name"].is_string() && c["pid"] == 0));
}
