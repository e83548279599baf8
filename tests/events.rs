//! Process and thread events on real guests, checked one for one against the guest's own
//! account of the same run (pids from `$!`, exit statuses from `wait`).

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::{Boot, Run, boot, guest, guest_dbg, trial};
use serde_json::Value;

fn main() {
    common::run(vec![
        trial(
            "amd64_61_events_match_the_guest",
            &guest("amd64-6.1"),
            amd64_61_events_match_the_guest,
        ),
        trial(
            "amd64_612_smp2_events_match_the_guest",
            &guest("amd64-6.12"),
            amd64_612_smp2_events_match_the_guest,
        ),
        trial(
            "amd64_sid_smp2_events_match_the_guest",
            &guest("amd64-sid"),
            amd64_sid_smp2_events_match_the_guest,
        ),
        trial(
            "arm64_612_kaslr_smp2_events_match_the_guest",
            &guest("arm64-6.12"),
            arm64_612_kaslr_smp2_events_match_the_guest,
        ),
        trial(
            "arm64_61_kaslr_smp2_events_match_the_guest",
            &guest_dbg("arm64-6.1"),
            arm64_61_kaslr_smp2_events_match_the_guest,
        ),
        trial(
            "armhf_61_smp2_events_match_the_guest",
            &guest_dbg("armhf-6.1"),
            armhf_61_smp2_events_match_the_guest,
        ),
        trial(
            "i386_61_kpti_events_match_the_guest",
            &guest("i386-6.1"),
            i386_61_kpti_events_match_the_guest,
        ),
        trial(
            "amd64_612_smp2_events_only_match_the_guest",
            &guest("amd64-6.12"),
            amd64_612_smp2_events_only_match_the_guest,
        ),
        trial(
            "amd64_61_single_thread_smp2_events_match_the_guest",
            &guest("amd64-6.1"),
            amd64_61_single_thread_smp2_events_match_the_guest,
        ),
        trial(
            "amd64_612_icount_smp2_events_match_the_guest",
            &guest("amd64-6.12"),
            amd64_612_icount_smp2_events_match_the_guest,
        ),
    ]);
}

fn pid(v: &Value) -> u32 {
    v["pid"].as_u64().expect("pid") as u32
}

fn marks<'a>(run: &'a Run, name: &str) -> Vec<Vec<&'a str>> {
    run.truth
        .all_marks
        .iter()
        .filter(|(n, _)| n == name)
        .map(|(_, v)| v.split_whitespace().collect())
        .collect()
}

/// Checks a run's process events against the guest. `logged`: the run also logged every
/// system call (the default), so that calls can be checked against the events.
fn check_events(run: &Run, logged: bool) {
    let where_ = run.dir.display();
    run.assert_finished();
    let of = |ty: &str| run.of_type(ty);
    let (starts, ends, execs) = (of("process_start"), of("process_end"), of("process_exec"));
    assert!(!starts.is_empty(), "no process_start: {where_}");

    // Each process starts once and ends at most once, and only after it started.
    let mut started = BTreeMap::new();
    let mut ended = BTreeMap::new();
    for (i, e) in run.events.iter().enumerate() {
        match e["type"].as_str() {
            Some("process_start") => {
                assert!(started.insert(pid(e), i).is_none(), "started twice: {e}");
            }
            Some("process_end") => {
                assert!(ended.insert(pid(e), i).is_none(), "ended twice: {e}");
                let s = started
                    .get(&pid(e))
                    .unwrap_or_else(|| panic!("end without start: {e}"));
                assert!(*s < i, "end before start: {e}");
            }
            _ => {}
        }
    }
    // Every start has its end, or the process is alive in the last snapshot.
    let last = run.of_type("snapshot").last().copied().expect("a snapshot");
    let alive: BTreeSet<u32> = last["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(pid)
        .collect();
    for p in started.keys() {
        assert!(
            ended.contains_key(p) || alive.contains(p),
            "pid {p} started, never ended, not alive: {where_}"
        );
    }
    // No event for a process that never existed: each started pid made system calls, was
    // returned by a fork/clone, was in a snapshot, or in the kernel's process list when the
    // plugin first read it (already running).
    let mut existed: BTreeSet<u32> = run.of_type("syscall").iter().map(|r| pid(r)).collect();
    existed.extend(
        run.of_type("syscall")
            .iter()
            .filter(|r| {
                matches!(
                    r["name"].as_str(),
                    Some("clone" | "clone3" | "fork" | "vfork")
                )
            })
            .filter_map(|r| r["ret"].as_i64().filter(|&c| c > 0).map(|c| c as u32)),
    );
    for s in run.of_type("snapshot") {
        existed.extend(s["processes"].as_array().unwrap().iter().map(pid));
    }
    existed.extend(
        starts
            .iter()
            .filter(|s| s["already_running"] == true)
            .map(|s| pid(s)),
    );
    if logged {
        for p in started.keys() {
            assert!(
                existed.contains(p),
                "event for pid {p} that never ran: {where_}"
            );
        }
    }
    // Processes that were there before the plugin could read the kernel are marked.
    assert!(
        starts
            .iter()
            .any(|s| s["already_running"] == true && pid(s) == 1)
    );

    // Exit statuses as the guest's wait saw them.
    let end_of = |p: u32| {
        ends.iter()
            .find(|e| pid(e) == p)
            .unwrap_or_else(|| panic!("no process_end for {p}: {where_}"))
    };
    let exited = marks(run, "exited");
    assert_eq!(
        exited.len(),
        7,
        "5 from the shell's wait, 2 from waiter's waitid"
    );
    // Calls a killed process was blocked in are written when it is reaped, as abandoned,
    // not left pending until the run ends.
    let mut abandoned_at_reap = 0;
    for m in &exited {
        let (p, status): (u32, i64) = (m[0].parse().unwrap(), m[1].parse().unwrap());
        let e = end_of(p);
        if status >= 128 {
            assert_eq!(e["signal"].as_i64(), Some(status - 128), "{e}");
            let end = run.events.iter().position(|x| std::ptr::eq(x, *e)).unwrap();
            let calls_of = |outcome: &str| {
                run.events
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| c["type"] == "syscall" && pid(c) == p)
                    .filter(|(_, c)| c["outcome"] == outcome)
                    .map(|(i, _)| i)
                    .collect::<Vec<_>>()
            };
            assert!(calls_of("unfinished").is_empty(), "{p}: {where_}");
            abandoned_at_reap += calls_of("abandoned").iter().filter(|&&i| i > end).count();
        } else {
            assert_eq!(e["exit_code"].as_i64(), Some(status), "{e}");
        }
    }
    assert!(
        abandoned_at_reap > 0 || !logged,
        "sleep and the threads were killed blocked: {where_}"
    );
    // Execs: the new comm and argv.
    for m in marks(run, "execd") {
        let p: u32 = m[0].parse().unwrap();
        let e = execs
            .iter()
            .find(|e| pid(e) == p)
            .unwrap_or_else(|| panic!("no exec of {p}"));
        assert_eq!(e["argv"][0], m[1], "{e}");
        assert_eq!(e["comm"], m[1], "{e}");
    }
    let pipeline: Vec<&&Value> = execs
        .iter()
        .filter(|e| e["argv"][0] == "passthru" && e["path"] == "/bin/passthru")
        .collect();
    assert_eq!(pipeline.len(), 2, "the pipeline's two stages: {where_}");
    for e in pipeline {
        assert_eq!(end_of(pid(e))["exit_code"], 0, "{e}");
    }
    // Threads of the threaded process.
    let m = &marks(run, "threaded")[0];
    let p: u32 = m[0].parse().unwrap();
    let n = |ty: &str| run.of_type(ty).iter().filter(|e| pid(e) == p).count();
    assert_eq!(
        n("thread_start"),
        m[1].parse::<usize>().unwrap() - 1,
        "{where_}"
    );
    assert_eq!(n("thread_end"), n("thread_start"), "{where_}");
    // The fork storm: 500 processes, each started and ended once, with status 7.
    let storm: Vec<u32> = marks(run, "storm")
        .iter()
        .map(|m| m[0].parse().unwrap())
        .collect();
    assert_eq!(storm.len(), 500);
    for p in storm {
        assert!(
            started.contains_key(&p),
            "storm child {p} never started: {where_}"
        );
        assert_eq!(end_of(p)["exit_code"], 7, "storm child {p}");
    }
}

fn amd64_61_events_match_the_guest() {
    check_events(
        &boot(&Boot {
            kernel: "amd64-6.1",
            scenario: "events",
            ..Boot::default()
        }),
        true,
    );
}

/// The newest kernel Debian has (Linux 7.x), KASLR, two vCPUs.
fn amd64_sid_smp2_events_match_the_guest() {
    check_events(
        &boot(&Boot {
            kernel: "amd64-sid",
            scenario: "events",
            kaslr: true,
            smp: 2,
            ..Boot::default()
        }),
        true,
    );
}

/// arm64, no arguments, KASLR (a slide of terabytes) and two vCPUs.
fn arm64_612_kaslr_smp2_events_match_the_guest() {
    check_events(
        &boot(&Boot {
            kernel: "arm64-6.12",
            scenario: "events",
            kaslr: true,
            smp: 2,
            no_conf: true,
            ..Boot::default()
        }),
        true,
    );
}

/// Debian's armhf 6.1 with the group from its -dbg vmlinux, two vCPUs (no KASLR on 32-bit
/// ARM).
fn armhf_61_smp2_events_match_the_guest() {
    check_events(
        &boot(&Boot {
            kernel: "armhf-6.1",
            scenario: "events",
            smp: 2,
            ..Boot::default()
        }),
        true,
    );
}

/// Debian's arm64 6.1 with `conf=`, KASLR, two vCPUs.
fn arm64_61_kaslr_smp2_events_match_the_guest() {
    check_events(
        &boot(&Boot {
            kernel: "arm64-6.1",
            scenario: "events",
            kaslr: true,
            smp: 2,
            ..Boot::default()
        }),
        true,
    );
}

fn amd64_612_smp2_events_match_the_guest() {
    check_events(
        &boot(&Boot {
            kernel: "amd64-6.12",
            scenario: "events",
            kaslr: true,
            smp: 2,
            ..Boot::default()
        }),
        true,
    );
}

/// i386 runs with KPTI. On plugin API 4 the kernel is read at system call dispatch and
/// user-mode returns key threads by stack; where QEMU reads physical memory (API 5 and
/// later) it is read at the user-mode instruction through the kernel's own page tables,
/// so a forked child's `process_start` has its address space too.
fn i386_61_kpti_events_match_the_guest() {
    let run = boot(&Boot {
        kernel: "i386-6.1",
        scenario: "events",
        ..Boot::default()
    });
    check_events(&run, true);
    if common::checks::plugin_api(&run) >= 5 {
        let starts = run.of_type("process_start");
        let users: Vec<_> = starts
            .iter()
            .filter(|e| e["kernel_thread"] == false)
            .collect();
        assert!(users.len() > 10, "{}", run.dir.display());
        for e in users {
            assert!(
                e["asid"].is_string(),
                "no asid: {e} ({})",
                run.dir.display()
            );
        }
    }
}

/// Two vCPUs run by one host thread (`-accel tcg,thread=single`, as under record/replay),
/// with `icount=on` (whose per-vCPU counter QEMU cannot keep there: no positions, and no
/// crash).
fn amd64_61_single_thread_smp2_events_match_the_guest() {
    let run = boot(&Boot {
        kernel: "amd64-6.1",
        scenario: "events",
        smp: 2,
        single_thread: true,
        plugin_args: vec!["icount=on".into()],
        ..Boot::default()
    });
    check_events(&run, true);
    assert!(
        run.events.iter().all(|e| e.get("icount").is_none()),
        "{}",
        run.dir.display()
    );
}

/// Two vCPUs under `-icount shift=5` (what record/replay runs; QEMU records and replays
/// only single-vCPU machines, 10.0 and 11.1 alike: "Record/replay is not supported with
/// multiple CPUs"): one host thread for both vCPUs here too.
fn amd64_612_icount_smp2_events_match_the_guest() {
    let run = boot(&Boot {
        kernel: "amd64-6.12",
        scenario: "events",
        smp: 2,
        icount: Some("shift=5"),
        ..Boot::default()
    });
    check_events(&run, true);
}

/// Events only: most calls end at entry and their returns are skipped inline (a
/// conditional callback per vCPU); two vCPUs, so that threads migrate between them.
fn amd64_612_smp2_events_only_match_the_guest() {
    let run = boot(&Boot {
        kernel: "amd64-6.12",
        scenario: "events",
        smp: 2,
        plugin_args: vec!["syscalls=none".into()],
        ..Boot::default()
    });
    let where_ = run.dir.display();
    assert!(run.of_type("syscall").is_empty(), "{where_}");
    check_events(&run, false);
    // Most calls are not followed: their returns are skipped, but not all of them.
    let returns = run.run_end_count("return_callbacks");
    assert!(
        returns > 0 && returns < run.run_end_count("syscalls") / 2,
        "{}: {where_}",
        run.run_end()
    );
}
