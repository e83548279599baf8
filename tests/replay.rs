//! Record once, analyse many times: a guest run recorded with QEMU's record/replay
//! (`lab/lab record`, without the plugin) and replayed with the plugin
//! (`lab/lab replay`). Two replays of one recording, one given the lab's `conf=` and one
//! with no kernelinfo (found in the guest's memory), must write the same event log, and
//! what a replay sees must agree with the guest's own `/proc` printed during the
//! recording exactly as a live run's log agrees with its own console.
//!
//! The recording is made once and cached under `$VMI_CACHE/recordings/`; a test run then
//! costs two replays (in parallel) and one short diverging replay.

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::checks::{check_against_proc, check_kernel_ready};
use common::{Boot, Recording, guest, guest_dbg, read_lossy, record, replay, tempdir, trial};
use serde_json::Value;

fn main() {
    common::run(vec![
        trial(
            "amd64_61_replays_agree_with_each_other_and_with_proc",
            &guest("amd64-6.1"),
            amd64_61_replays_agree_with_each_other_and_with_proc,
        ),
        trial(
            "arm64_612_replays_agree_with_each_other_and_with_proc",
            &guest("arm64-6.12"),
            arm64_612_replays_agree_with_each_other_and_with_proc,
        ),
        trial(
            "arm64_61_kaslr_replays_agree_with_each_other_and_with_proc",
            &guest_dbg("arm64-6.1"),
            arm64_61_kaslr_replays_agree_with_each_other_and_with_proc,
        ),
        trial(
            "armhf_61_replays_agree_with_each_other_and_with_proc",
            &guest_dbg("armhf-6.1"),
            armhf_61_replays_agree_with_each_other_and_with_proc,
        ),
        trial(
            "amd64_61_diverging_replay_is_reported",
            &guest("amd64-6.1"),
            amd64_61_diverging_replay_is_reported,
        ),
    ]);
}

/// Fields that count QEMU's work rather than the guest's and so may differ between
/// replays of one recording, as (record type, field). Everything else must be identical.
///
/// `run_end.translations`: the blocks QEMU translated. Under icount QEMU refills the
/// vCPU's 16-bit instruction budget in chunks and translates a one-off shortened block
/// where a chunk ends; where chunks start depends on when other host threads kick the
/// vCPU out of its loop (host timing), so a replay translates a few dozen blocks more or
/// fewer (e.g. 108424 vs 108492) while executing exactly the same instructions.
const HOST_DEPENDENT: &[(&str, &str)] = &[("run_end", "translations")];

/// Fields that differ between a replay given `conf=` and one that found the kernel's
/// description in memory: the arguments, where the kernelinfo came from, and the position
/// of `kernel_ready` and of the processes it finds running. The description found in boot
/// knows the KASLR slide before the first system call, which `conf=` learns from that
/// call's entry, so the kernel is first read a few hundred instructions earlier (at a
/// return point of the first user program), and the context switches counted from then on
/// (`run_end.task_switches`) may include one or two more.
const CONF_DEPENDENT: &[(&str, &str)] = &[
    ("run_end", "task_switches"),
    ("run_start", "args"),
    ("run_start", "conf"),
    ("run_start", "group"),
    ("kernel_ready", "kernelinfo"),
    ("kernel_ready", "kernelinfo_file"),
    ("kernel_ready", "icount"),
    ("process_start:already_running", "icount"),
];

/// The amd64-6.1 default-scenario recording, made (or found in the cache) once for all
/// the tests of this file.
fn recording_61() -> &'static Recording {
    static REC: OnceLock<Recording> = OnceLock::new();
    REC.get_or_init(|| {
        record(&Boot {
            kernel: "amd64-6.1",
            scenario: "default",
            ..Boot::default()
        })
    })
}

/// Every file the recorded command line names is in the recording directory, and the
/// metadata says what was recorded with what.
fn check_recording(rec: &Recording) {
    for key in [
        "kernel",
        "scenario",
        "package",
        "initramfs_sha256",
        "scenario_sha256",
        "qemu",
        "icount",
        "key",
    ] {
        assert!(
            rec.meta.get(key).is_some_and(|v| !v.is_empty()),
            "no {key} in {}/meta",
            rec.dir.display()
        );
    }
    let cmdline = read_lossy(&rec.dir.join("cmdline"));
    let args: Vec<&str> = cmdline.lines().collect();
    for opt in ["-kernel", "-initrd"] {
        let at = args.iter().position(|a| *a == opt).expect(opt);
        assert!(
            rec.dir.join(args[at + 1]).is_file(),
            "{opt} {}",
            args[at + 1]
        );
    }
    assert!(
        args.iter()
            .any(|a| a.contains("rr=record,rrfile=replay.bin")),
        "{cmdline}"
    );
    assert!(!args.contains(&"-plugin"), "recorded with a plugin");
    assert!(rec.dir.join("replay.bin").is_file());
    assert!(rec.console.contains("@@VMI end"), "scenario incomplete");
}

/// The two logs are byte-identical, or differ only in `allowed` fields (which the test
/// reports).
fn assert_same_log(a: &Path, b: &Path, allowed: &[(&str, &str)]) {
    let (ta, tb) = (read_lossy(a), read_lossy(b));
    assert!(!ta.is_empty(), "empty log {}", a.display());
    if ta == tb {
        return;
    }
    let (la, lb): (Vec<&str>, Vec<&str>) = (ta.lines().collect(), tb.lines().collect());
    assert_eq!(
        la.len(),
        lb.len(),
        "replays wrote different numbers of records: {} {}",
        a.display(),
        b.display()
    );
    for (i, (x, y)) in la.iter().zip(&lb).enumerate() {
        if x == y {
            continue;
        }
        let (mut vx, mut vy): (Value, Value) = (
            serde_json::from_str(x).unwrap(),
            serde_json::from_str(y).unwrap(),
        );
        let mut ty = vx["type"].as_str().unwrap_or("").to_string();
        if vx["already_running"] == true {
            ty.push_str(":already_running");
        }
        let mut dropped = vec![];
        for (t, field) in allowed {
            if *t == ty {
                dropped.push(format!("{t}.{field}: {} vs {}", vx[field], vy[field]));
                vx.as_object_mut().unwrap().remove(*field);
                vy.as_object_mut().unwrap().remove(*field);
            }
        }
        assert_eq!(
            vx,
            vy,
            "record {} differs between replays of one recording: {} {}",
            i + 1,
            a.display(),
            b.display()
        );
        eprintln!(
            "notice: replays differ only in host-dependent fields: {}",
            dropped.join(", ")
        );
    }
}

/// With `icount=on` every record made while the guest runs carries its position (vCPU,
/// instructions executed), and records come in execution order: per vCPU, positions
/// never go back. Calls still pending at the end are written after the guest stopped,
/// like `run_end`: no position.
fn check_positions(events: &[Value]) {
    let mut last = std::collections::BTreeMap::<u64, u64>::new();
    for e in events {
        if e["type"] == "run_start" || e["type"] == "run_end" || e["outcome"] == "unfinished" {
            continue;
        }
        let pos = e["icount"]
            .as_u64()
            .unwrap_or_else(|| panic!("no icount: {e}"));
        let vcpu = e.get("vcpu").and_then(Value::as_u64).unwrap_or(0);
        let prev = last.insert(vcpu, pos).unwrap_or(0);
        assert!(pos >= prev, "icount goes back on vCPU {vcpu}: {e}");
    }
}

fn amd64_61_replays_agree_with_each_other_and_with_proc() {
    let name = "replay amd64-6.1";
    let rec = recording_61();
    check_recording(rec);
    let icount = ["icount=on".to_string()];
    // One replay with the lab's conf=, one with no kernelinfo at all (found in memory).
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| replay(rec, &[], &icount));
        let b = s.spawn(|| replay(rec, &["--no-conf"], &icount));
        (a.join().unwrap(), b.join().unwrap())
    });
    for r in [&a, &b] {
        assert_eq!(r.verdict, "ok", "{}", r.run.dir.display());
        assert_eq!(r.run.console, rec.console, "replay console");
    }
    eprintln!(
        "{name}: recorded in {}s ({} bytes of events), replays took {}s and {}s",
        rec.meta.get("record_seconds").map_or("?", String::as_str),
        rec.meta.get("replay_bytes").map_or("?", String::as_str),
        a.seconds,
        b.seconds
    );
    let allowed: Vec<_> = HOST_DEPENDENT
        .iter()
        .chain(CONF_DEPENDENT)
        .copied()
        .collect();
    assert_same_log(
        &a.run.dir.join("vmi.jsonl"),
        &b.run.dir.join("vmi.jsonl"),
        &allowed,
    );
    let found = b.run.of_type("kernel_ready")[0];
    assert_eq!(found["kernelinfo"], "memory", "{}", b.run.dir.display());
    let written = b.run.dir.join(found["kernelinfo_file"].as_str().unwrap());
    let keys = |p: &Path| -> Vec<String> {
        read_lossy(p)
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(
        keys(&written),
        keys(&common::lab_conf("amd64-6.1")),
        "{}",
        written.display()
    );
    check_positions(&a.run.events);
    // `vmi report` reads the positions as positions: no warning about them.
    let report = std::process::Command::new(env!("CARGO_BIN_EXE_vmi"))
        .arg("report")
        .arg(a.run.dir.join("vmi.jsonl"))
        .output()
        .expect("run vmi report");
    assert!(report.status.success());
    let warnings = String::from_utf8_lossy(&report.stderr);
    assert!(!warnings.contains("warning"), "{warnings}");
    // The same checks as a live run, against the recording's console.
    check_kernel_ready(&a.run, false);
    check_against_proc(&a.run);
}

/// arm64 (no arguments: the kernel described from its memory in each replay): two
/// replays of one recording write the same log, which agrees with the recording's `/proc`.
fn arm64_612_replays_agree_with_each_other_and_with_proc() {
    arm_replays_agree("arm64-6.12", false, &["--no-conf"], "memory");
}

/// Debian's arm64 6.1 recorded under KASLR, replayed with `conf=`: the slide measured
/// from the boot header is the recording's in both replays.
fn arm64_61_kaslr_replays_agree_with_each_other_and_with_proc() {
    arm_replays_agree("arm64-6.1", true, &[], "conf");
}

/// Debian's armhf 6.1 recorded (no KASLR on 32-bit ARM), replayed with `conf=` (the
/// group from its -dbg package): two replays write the same log, which agrees with /proc.
fn armhf_61_replays_agree_with_each_other_and_with_proc() {
    arm_replays_agree("armhf-6.1", false, &[], "conf");
}

/// Records `kernel`'s default scenario and replays it twice with `extra` (lab/lab replay
/// options): the same log both times, where the kernelinfo came from `kernelinfo`, and
/// what the recording's `/proc` says.
fn arm_replays_agree(kernel: &'static str, kaslr: bool, extra: &[&str], kernelinfo: &str) {
    let rec = record(&Boot {
        kernel,
        scenario: "default",
        kaslr,
        ..Boot::default()
    });
    check_recording(&rec);
    let icount = ["icount=on".to_string()];
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| replay(&rec, extra, &icount));
        let b = s.spawn(|| replay(&rec, extra, &icount));
        (a.join().unwrap(), b.join().unwrap())
    });
    for r in [&a, &b] {
        assert_eq!(r.verdict, "ok", "{}", r.run.dir.display());
        assert_eq!(r.run.console, rec.console, "replay console");
    }
    assert_same_log(
        &a.run.dir.join("vmi.jsonl"),
        &b.run.dir.join("vmi.jsonl"),
        HOST_DEPENDENT,
    );
    check_positions(&a.run.events);
    assert_eq!(a.run.of_type("kernel_ready")[0]["kernelinfo"], kernelinfo);
    check_kernel_ready(&a.run, kaslr);
    check_against_proc(&a.run);
}

/// A replay whose command line differs from the recording's does not hang: it is stopped
/// and reported as diverged.
fn amd64_61_diverging_replay_is_reported() {
    let rec = recording_61();
    // A copy of the recording with one more word on the kernel command line.
    let dir = tempdir("bad-recording");
    for f in std::fs::read_dir(&rec.dir).unwrap() {
        let f = f.unwrap().path();
        let to = dir.join(f.file_name().unwrap());
        std::fs::hard_link(&f, &to)
            .or_else(|_| std::fs::copy(&f, &to).map(|_| ()))
            .unwrap();
    }
    let cmdline = read_lossy(&rec.dir.join("cmdline"));
    let changed: Vec<String> = cmdline
        .lines()
        .map(|l| {
            if l.starts_with("console=") {
                format!("{l} vmi.diverge=1")
            } else {
                l.to_string()
            }
        })
        .collect();
    std::fs::remove_file(dir.join("cmdline")).unwrap();
    std::fs::write(dir.join("cmdline"), changed.join("\n") + "\n").unwrap();
    let bad = Recording {
        dir: PathBuf::from(&dir),
        ..rec.clone()
    };
    let r = replay(&bad, &["--stall", "5", "--timeout", "120"], &[]);
    assert!(
        r.verdict.starts_with("diverged"),
        "verdict {:?}: {}",
        r.verdict,
        r.run.dir.display()
    );
    assert!(r.seconds < 100.0, "took {}s to notice", r.seconds);
}
