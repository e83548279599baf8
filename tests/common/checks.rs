//! Checks of a run's event log against the guest's own account of the same run (its
//! `@@VMI` console lines), shared by the live-run tests (`tests/introspection.rs`) and
//! the replay tests (`tests/replay.rs`).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::Run;

pub fn hex(v: &Value) -> u64 {
    let s = v.as_str().unwrap_or_else(|| panic!("not an address: {v}"));
    u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap()
}

/// The snapshot taken at `vmi-snapshot`.
pub fn exec_snapshot(run: &Run) -> &Value {
    run.of_type("snapshot")
        .into_iter()
        .find(|s| s["reason"] == "exec:vmi-snapshot")
        .unwrap_or_else(|| panic!("no vmi-snapshot snapshot in {}", run.dir.display()))
}

/// Everything the issue asks of a snapshot, on one run.
pub fn check_against_proc(run: &Run) {
    let where_ = run.dir.display();
    run.assert_finished();
    let snap = exec_snapshot(run);
    assert_eq!(snap["incomplete"], serde_json::json!([]), "{where_}");

    // Processes: (pid, ppid, comm) equal, except the idle task (not in /proc) and the
    // process that ran vmi-snapshot (gone by the time the guest lists /proc).
    let trigger = snap["current"]["pid"].as_u64().expect("current thread") as u32;
    let ours: BTreeMap<u32, (u32, String)> = snap["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let pid = p["pid"].as_u64().unwrap() as u32;
            (
                pid,
                (
                    p["ppid"].as_u64().unwrap() as u32,
                    p["comm"].as_str().unwrap().to_string(),
                ),
            )
        })
        .filter(|(pid, _)| *pid != 0 && *pid != trigger)
        .collect();
    let theirs: BTreeMap<u32, (u32, String)> = run
        .truth
        .procs
        .iter()
        .map(|p| (p.pid, (p.ppid, p.comm.clone())))
        .collect();
    assert!(theirs.len() > 20, "too few processes in /proc: {where_}");
    let pids = |m: &BTreeMap<u32, (u32, String)>| {
        m.iter().map(|(p, (pp, _))| (*p, *pp)).collect::<Vec<_>>()
    };
    assert_eq!(
        pids(&ours),
        pids(&theirs),
        "(pid, ppid) differ from /proc: {where_}"
    );
    let kthreads: BTreeSet<u32> = snap["processes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["kernel_thread"] == true)
        .map(|p| p["pid"].as_u64().unwrap() as u32)
        .collect();
    for (pid, (_, comm)) in &ours {
        let proc_comm = &theirs[pid].1;
        // /proc shows kernel threads' longer names (workqueue, full kthread name) of which
        // task->comm is the first 15 bytes; user processes must match exactly.
        let ok =
            comm == proc_comm || (kthreads.contains(pid) && proc_comm.starts_with(comm.as_str()));
        assert!(
            ok,
            "comm of {pid}: ours {comm:?}, /proc {proc_comm:?}: {where_}"
        );
    }
    assert!(
        kthreads.contains(&2) && !kthreads.contains(&1),
        "kernel-thread flag: {where_}"
    );

    // Command lines: where QEMU reads physical memory (plugin API 5 and later) the
    // plugin reads every process's argv through its own page tables, and each equals
    // /proc/PID/cmdline. Before, only the running process's could be read.
    if plugin_api(run) >= 5 {
        let mut compared = 0;
        for p in snap["processes"].as_array().unwrap() {
            let pid = p["pid"].as_u64().unwrap() as u32;
            let Some(theirs) = run.truth.cmdlines.get(&pid) else {
                continue;
            };
            if pid == trigger {
                continue;
            }
            let argv = p["argv"]
                .as_array()
                .unwrap_or_else(|| panic!("no argv for {pid} (/proc: {theirs:?}): {where_}"));
            let ours: Vec<&str> = argv.iter().map(|a| a.as_str().unwrap()).collect();
            assert_eq!(&ours.join(" "), theirs, "argv of {pid}: {where_}");
            compared += 1;
        }
        assert!(
            compared >= 3,
            "only {compared} command lines compared: {where_}"
        );
    }

    // Threads: every thread of every process.
    for p in snap["processes"].as_array().unwrap() {
        let pid = p["pid"].as_u64().unwrap() as u32;
        let Some(tids) = run.truth.tasks.get(&pid) else {
            continue;
        };
        let ours: BTreeSet<u32> = p["threads"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(&ours, tids, "threads of {pid}: {where_}");
    }
    let threaded = run.truth.marks("threaded");
    assert_eq!(
        run.truth.tasks[&threaded].len(),
        4,
        "the threads program has 4 threads"
    );

    // Modules: name, size and base as /proc/modules says.
    let ours: BTreeSet<(String, u64, u64)> = snap["modules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["name"].as_str().unwrap().to_string(),
                m["size"].as_u64().unwrap(),
                hex(&m["base"]),
            )
        })
        .collect();
    let theirs: BTreeSet<(String, u64, u64)> = run
        .truth
        .modules
        .iter()
        .map(|w| {
            let base = u64::from_str_radix(w[5].trim_start_matches("0x"), 16).unwrap();
            (w[0].clone(), w[1].parse().unwrap(), base)
        })
        .collect();
    assert!(
        theirs.len() >= 2,
        "the scenario loads real modules: {where_}"
    );
    assert_eq!(ours, theirs, "modules differ from /proc/modules: {where_}");

    // Mappings and open files of the chosen process.
    let chosen = run.truth.marks("chosen");
    let proc_ = snap["processes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["pid"] == chosen)
        .expect("chosen process in snapshot");
    let ours: Vec<(u64, u64, String, u64, Option<String>)> = proc_["maps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let flags = m["flags"].as_u64().unwrap();
            let perms = format!(
                "{}{}{}{}",
                if flags & 1 != 0 { 'r' } else { '-' },
                if flags & 2 != 0 { 'w' } else { '-' },
                if flags & 4 != 0 { 'x' } else { '-' },
                if flags & 0x80 != 0 { 's' } else { 'p' },
            );
            (
                hex(&m["start"]),
                hex(&m["end"]),
                perms,
                m["offset"].as_u64().unwrap(),
                m["path"].as_str().map(String::from),
            )
        })
        .collect();
    // 32-bit ARM's `[vectors]` page (0xffff0000) is the kernel's gate area, listed by
    // /proc/PID/maps after every process's mappings but in no process's VMA tree.
    let theirs: Vec<(u64, u64, String, u64, Option<String>)> = run.truth.maps[&chosen]
        .iter()
        .filter(|l| l.split_whitespace().nth(5) != Some("[vectors]"))
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            let (s, e) = w[0].split_once('-').unwrap();
            (
                u64::from_str_radix(s, 16).unwrap(),
                u64::from_str_radix(e, 16).unwrap(),
                w[1].to_string(),
                u64::from_str_radix(w[2], 16).unwrap(),
                w.get(5)
                    .filter(|p| p.starts_with('/'))
                    .map(|p| p.to_string()),
            )
        })
        .collect();
    assert!(theirs.len() >= 5, "{where_}");
    assert_eq!(ours, theirs, "maps of {chosen} differ from /proc: {where_}");

    let ours: BTreeMap<u32, String> = proc_["fds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["fd"].as_u64().unwrap() as u32,
                f["path"].as_str().unwrap_or("?").to_string(),
            )
        })
        .collect();
    assert_eq!(
        ours, run.truth.fds[&chosen],
        "fds of {chosen} differ from /proc: {where_}"
    );

    // The second snapshot, at power-off, sees the same modules.
    let reboot = run
        .of_type("snapshot")
        .into_iter()
        .find(|s| s["reason"] == "reboot")
        .unwrap_or_else(|| panic!("no reboot snapshot: {where_}"));
    assert_eq!(reboot["modules"], snap["modules"]);
}

/// The kernel was found where the guest says it is.
pub fn check_kernel_ready(run: &Run, kaslr: bool) {
    let ready = run.of_type("kernel_ready");
    assert_eq!(ready.len(), 1, "{}", run.dir.display());
    let ready = ready[0];
    assert_eq!(ready["banner_matches"], true);
    let slide = hex(&ready["kaslr_slide"]);
    let i386 = run.events[0]["target"] == "i386";
    if run.events[0]["target"] == "arm" {
        // No KASLR on 32-bit ARM (RANDOMIZE_BASE absent): the kernel runs where linked,
        // and its svc entry is where the group says, by the guest's own kallsyms.
        assert_eq!(slide, 0, "{}", run.dir.display());
        let conf = run.events[0]["conf"].as_str().expect("run_start.conf");
        let text = std::fs::read_to_string(conf).expect("the kernelinfo file");
        let swi = text
            .lines()
            .find_map(|l| l.strip_prefix("vmi.vector_swi_addr = "))
            .and_then(|v| match v.trim().strip_prefix("0x") {
                Some(h) => u64::from_str_radix(h, 16).ok(),
                None => v.trim().parse().ok(),
            })
            .unwrap_or_else(|| panic!("no vmi.vector_swi_addr in {conf}"));
        assert_eq!(
            run.truth.kallsyms.get("vector_swi").copied(),
            Some(swi.wrapping_add(slide)),
            "vector_swi: the group's against /proc/kallsyms: {}",
            run.dir.display()
        );
        return;
    }
    if run.events[0]["target"] == "aarch64" {
        // 6.1's /proc/kallsyms lists no _text (CONFIG_KALLSYMS_ALL off); its _stext follows
        // the 64 KiB-aligned head (arm64's SEGMENT_ALIGN).
        let kallsyms = &run.truth.kallsyms;
        let text = kallsyms
            .get("_text")
            .copied()
            .or_else(|| Some(kallsyms.get("_stext")? - 0x1_0000))
            .unwrap_or_else(|| {
                panic!(
                    "no _text or _stext in /proc/kallsyms: {}",
                    run.dir.display()
                )
            });
        // arm64 links the kernel at KIMAGE_VADDR, above the module area: 128 MiB of it
        // through 6.4, 2 GiB since (48-bit layout). KASLR moves it by up to terabytes.
        let link = text.wrapping_sub(slide);
        assert!(
            [0xffff_8000_0800_0000, 0xffff_8000_8000_0000].contains(&link),
            "slide {slide:#x} vs /proc/kallsyms _text {text:#x}: linked at {link:#x}"
        );
        assert_eq!(
            slide != 0,
            kaslr,
            "KASLR moved the kernel: {}",
            run.dir.display()
        );
        return;
    }
    let text = run.truth.kallsyms["_text"];
    if kaslr {
        // KASLR may leave the kernel where it was linked (one 6.12 boot here did, by the
        // guest's own kallsyms). On x86_64 it moves the direct map too, so one of them has
        // moved.
        let page_offset = hex(&ready["page_offset"]);
        let map_moved = !i386 && page_offset != 0xffff_8880_0000_0000;
        assert!(
            slide != 0 || map_moved,
            "KASLR on, yet nothing moved: {}",
            run.dir.display()
        );
    } else {
        assert_eq!(slide, 0);
    }
    // Debian links the x86_64 kernel at 0xffffffff81000000, the i386 one at 0xc1000000.
    let link = if i386 {
        0xc100_0000
    } else {
        0xffff_ffff_8100_0000
    };
    assert_eq!(
        text.wrapping_sub(slide),
        link,
        "slide vs /proc/kallsyms _text"
    );
}

/// The plugin API version the run's QEMU spoke (`run_start`).
pub fn plugin_api(run: &Run) -> u64 {
    run.of_type("run_start")[0]["plugin_api"]
        .as_u64()
        .expect("run_start.plugin_api")
}
