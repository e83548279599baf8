use super::*;

fn proc_(pid: u32, ppid: u32, comm: &str, threads: &[u32]) -> Process {
    Process {
        pid,
        ppid,
        comm: comm.into(),
        task: 0x1000 * u64::from(pid),
        asid: Some(0x100_0000 + u64::from(pid) * 0x1000),
        start_time: None,
        uid: Some(0),
        gid: Some(0),
        euid: Some(0),
        egid: Some(0),
        kernel_thread: false,
        argv: None,
        brk: 0,
        start_brk: 0,
        threads: threads.to_vec(),
        exe: None,
    }
}

fn caller(pid: u32, tid: u32, comm: &str) -> Caller {
    Caller {
        pid,
        tid,
        comm: comm.into(),
    }
}

fn types(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .map(|e| {
            serde_json::to_value(e).unwrap()["type"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

#[test]
fn nothing_before_the_first_process_list() {
    let mut t = Tracker::new();
    assert!(
        t.call(&caller(1, 1, "init"), Lifecycle::ExitGroup(0))
            .is_empty()
    );
    assert!(
        t.seen(&caller(1, 1, "init"), || Some(proc_(1, 0, "init", &[1])))
            .is_empty()
    );
}

#[test]
fn already_running_processes_start_once_with_a_marker() {
    let mut t = Tracker::new();
    let ev = t.already_running(&[
        proc_(0, 0, "swapper/0", &[0]),
        proc_(1, 0, "init", &[1]),
        proc_(7, 1, "mt", &[7, 8]),
    ]);
    assert_eq!(
        types(&ev),
        ["process_start", "process_start", "thread_start"]
    );
    let j = serde_json::to_value(&ev[0]).unwrap();
    assert_eq!(j["already_running"], true);
    assert_eq!(j["asid"], "0x1001000");
    // Seeing them again adds nothing.
    assert!(t.seen(&caller(7, 8, "mt"), || None).is_empty());
}

#[test]
fn fork_exec_exit() {
    let mut t = Tracker::new();
    t.already_running(&[proc_(1, 0, "init", &[1])]);
    let sh = caller(1, 1, "init");
    let ev = t.call(
        &sh,
        Lifecycle::Cloned {
            child: 5,
            flags: 17,
            process: Some(proc_(5, 1, "init", &[5])),
        },
    );
    assert_eq!(types(&ev), ["process_start"]);
    // The child's own calls add nothing more.
    assert!(t.seen(&caller(5, 5, "init"), || panic!("known")).is_empty());
    let mut after = proc_(5, 1, "cat", &[5]);
    after.argv = Some(vec!["cat".into(), "/etc/passwd".into()]);
    after.exe = Some("/bin/busybox".into());
    let ev = t.call(
        &caller(5, 5, "cat"),
        Lifecycle::Execed {
            process: Some(after),
            filename: Some("/bin/cat".into()),
        },
    );
    let j = serde_json::to_value(&ev[0]).unwrap();
    assert_eq!(j["type"], "process_exec");
    assert_eq!(j["comm"], "cat");
    assert_eq!(j["path"], "/bin/busybox");
    assert_eq!(j["argv"][1], "/etc/passwd");
    assert_eq!(j["ppid"], 1);
    let ev = t.call(&caller(5, 5, "cat"), Lifecycle::ExitGroup(0x103));
    let j = serde_json::to_value(&ev[0]).unwrap();
    assert_eq!(
        (j["type"].as_str(), j["exit_code"].as_i64()),
        (Some("process_end"), Some(3))
    );
    assert!(j.get("signal").is_none());
    // Reaping it later adds nothing: it ended already.
    assert!(
        t.call(
            &sh,
            Lifecycle::Reaped {
                child: 5,
                status: Some(0x300)
            }
        )
        .is_empty()
    );
}

#[test]
fn a_child_that_runs_first_starts_once() {
    let mut t = Tracker::new();
    t.already_running(&[proc_(1, 0, "init", &[1])]);
    let ev = t.seen(&caller(9, 9, "init"), || Some(proc_(9, 1, "init", &[9])));
    assert_eq!(types(&ev), ["process_start"]);
    let ev = t.call(
        &caller(1, 1, "init"),
        Lifecycle::Cloned {
            child: 9,
            flags: 0,
            process: None,
        },
    );
    assert!(ev.is_empty(), "no duplicate start");
    // Even when the child already ended before its parent's clone returned.
    let ev = t.seen(&caller(12, 12, "init"), || {
        Some(proc_(12, 1, "init", &[12]))
    });
    assert_eq!(types(&ev), ["process_start"]);
    assert_eq!(
        types(&t.call(&caller(12, 12, "init"), Lifecycle::ExitGroup(0))),
        ["process_end"]
    );
    let clone = Lifecycle::Cloned {
        child: 12,
        flags: 0,
        process: None,
    };
    assert!(t.call(&caller(1, 1, "init"), clone.clone()).is_empty());
    // A later process reusing the pid is a new process.
    assert_eq!(
        types(&t.call(&caller(1, 1, "init"), clone)),
        ["process_start"]
    );
}

#[test]
fn killed_processes_end_when_reaped() {
    let mut t = Tracker::new();
    t.already_running(&[proc_(1, 0, "init", &[1]), proc_(4, 1, "sleep", &[4])]);
    let ev = t.call(
        &caller(1, 1, "init"),
        Lifecycle::Reaped {
            child: 4,
            status: Some(15),
        },
    );
    let j = serde_json::to_value(&ev[0]).unwrap();
    assert_eq!(
        (j["type"].as_str(), j["signal"].as_i64()),
        (Some("process_end"), Some(15))
    );
    assert!(j.get("exit_code").is_none());
}

#[test]
fn threads_start_and_end() {
    let mut t = Tracker::new();
    t.already_running(&[proc_(1, 0, "init", &[1]), proc_(3, 1, "threads", &[3])]);
    let main = caller(3, 3, "threads");
    let ev = t.call(
        &main,
        Lifecycle::Cloned {
            child: 10,
            flags: CLONE_THREAD | 0x3d0f00,
            process: None,
        },
    );
    assert_eq!(types(&ev), ["thread_start"]);
    let ev = t.call(&caller(3, 10, "threads"), Lifecycle::Exit(0));
    assert_eq!(types(&ev), ["thread_end"]);
    // A thread seen without its clone (created before the plugin watched).
    assert_eq!(
        types(&t.seen(&caller(3, 11, "threads"), || None)),
        ["thread_start"]
    );
    // exit_group ends the remaining threads, then the process.
    let ev = t.call(&main, Lifecycle::ExitGroup(1));
    assert_eq!(types(&ev), ["thread_end", "process_end"]);
    // Exec in a multi-threaded process ends the other threads.
    t.already_running(&[proc_(6, 1, "mt", &[6, 7, 8])]);
    let ev = t.call(
        &caller(6, 7, "mt"),
        Lifecycle::Execed {
            process: None,
            filename: Some("/bin/x".into()),
        },
    );
    assert_eq!(types(&ev), ["thread_end", "process_exec"]);
}

#[test]
fn a_complete_snapshot_ends_what_vanished_unseen() {
    let mut t = Tracker::new();
    let mut kthread = proc_(45, 2, "kpnpbiosd", &[45]);
    kthread.kernel_thread = true;
    t.already_running(&[
        proc_(1, 0, "init", &[1]),
        proc_(2, 0, "kthreadd", &[2]),
        kthread,
    ]);
    let ev = t.reconcile(&[0, 1, 2]);
    let j = serde_json::to_value(&ev[0]).unwrap();
    assert_eq!(
        (j["type"].as_str(), j["pid"].as_u64()),
        (Some("process_end"), Some(45))
    );
    assert_eq!(j["noticed_at_snapshot"], true);
    assert!(t.reconcile(&[0, 1, 2]).is_empty(), "once");
}

#[test]
fn event_fields_are_what_the_variants_write() {
    let s = |v: &str| v.to_string();
    let every = [
        Event::ProcessStart {
            pid: 1,
            tid: 1,
            ppid: 0,
            comm: s("init"),
            asid: Some(s("0x1000")),
            kernel_thread: false,
            already_running: true,
        },
        Event::ProcessExec {
            pid: 1,
            tid: 1,
            ppid: 0,
            comm: s("sh"),
            argv: Some(vec![s("sh")]),
            path: Some(s("/bin/sh")),
        },
        Event::ProcessEnd {
            pid: 1,
            tid: 1,
            ppid: 0,
            comm: s("sh"),
            exit_code: Some(0),
            signal: Some(9),
            noticed_at_snapshot: true,
        },
        Event::ThreadStart {
            pid: 1,
            tid: 2,
            ppid: 0,
            comm: s("sh"),
            already_running: true,
        },
        Event::ThreadEnd {
            pid: 1,
            tid: 2,
            ppid: 0,
            comm: s("sh"),
        },
    ];
    let mut written = std::collections::BTreeSet::new();
    for e in &every {
        let v = serde_json::to_value(e).unwrap();
        written.extend(v.as_object().unwrap().keys().cloned());
    }
    written.remove("type");
    let listed: std::collections::BTreeSet<String> =
        EVENT_FIELDS.iter().map(|f| f.to_string()).collect();
    assert_eq!(written, listed);
}
