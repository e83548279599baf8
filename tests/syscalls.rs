//! System call records on real guests, checked against `strace` run by the guest itself
//! on the same workload in the same run: for every process strace followed, the plugin's
//! calls (names, decodable arguments, return values) must be strace's, in order.

mod common;

use std::collections::BTreeMap;

use common::{Boot, Run, boot, guest, guest_dbg, manual_trial, trial};
use serde_json::Value;

fn main() {
    common::run(vec![
        trial(
            "amd64_612_filtered_matches_strace",
            &guest("amd64-6.12"),
            amd64_612_filtered_matches_strace,
        ),
        trial(
            "amd64_61_matches_strace",
            &guest("amd64-6.1"),
            amd64_61_matches_strace,
        ),
        trial(
            "amd64_61_single_thread_smp2_matches_strace",
            &guest("amd64-6.1"),
            amd64_61_single_thread_smp2_matches_strace,
        ),
        trial(
            "amd64_61_wrong_switch_to_is_refuted",
            &guest("amd64-6.1"),
            amd64_61_wrong_switch_to_is_refuted,
        ),
        trial(
            "amd64_612_matches_strace",
            &guest("amd64-6.12"),
            amd64_612_matches_strace,
        ),
        trial(
            "amd64_sid_matches_strace",
            &guest("amd64-sid"),
            amd64_sid_matches_strace,
        ),
        trial(
            "arm64_612_matches_strace",
            &guest("arm64-6.12"),
            arm64_612_matches_strace,
        ),
        trial(
            "arm64_61_matches_strace",
            &guest_dbg("arm64-6.1"),
            arm64_61_matches_strace,
        ),
        trial(
            "armhf_61_matches_strace",
            &guest("armhf-6.1"),
            armhf_61_matches_strace,
        ),
        trial(
            "amd64_61_compat_matches_strace",
            &guest("amd64-6.1"),
            amd64_61_compat_matches_strace,
        ),
        trial(
            "armhf_61_nokaslr_matches_strace",
            &guest_dbg("armhf-6.1"),
            armhf_61_nokaslr_matches_strace,
        ),
        trial(
            "armhf_61_compat_with_kernelinfo_matches_strace",
            &guest_dbg("armhf-6.1"),
            armhf_61_compat_with_kernelinfo_matches_strace,
        ),
        trial(
            "arm64_61_compat_matches_strace",
            &guest_dbg("arm64-6.1"),
            arm64_61_compat_matches_strace,
        ),
        trial(
            "arm64_612_compat_matches_strace",
            &guest("arm64-6.12"),
            arm64_612_compat_matches_strace,
        ),
        trial(
            "armhf_61_compat_matches_strace",
            &guest("armhf-6.1"),
            armhf_61_compat_matches_strace,
        ),
        trial(
            "amd64_612_compat_matches_strace",
            &guest("amd64-6.12"),
            amd64_612_compat_matches_strace,
        ),
        trial(
            "i386_61_compat_matches_strace",
            &guest("i386-6.1"),
            i386_61_compat_matches_strace,
        ),
        trial("strace_lines_parse", &[], strace_lines_parse),
        trial(
            "i386_61_matches_strace",
            &guest("i386-6.1"),
            i386_61_matches_strace,
        ),
        manual_trial("recheck", recheck),
    ]);
}

/// One call as strace printed it.
#[derive(Debug, Clone)]
struct Traced {
    pid: u32,
    name: String,
    args: Vec<String>,
    ret: String,
    line: String,
}

/// Splits `name(args) = ret` at the top level, honouring quotes and brackets.
fn parse_call(pid: u32, text: &str) -> Option<Traced> {
    let open = text.find('(')?;
    let name = text[..open].to_string();
    let (mut depth, mut quoted, mut escaped) = (0i32, false, false);
    let mut args = Vec::new();
    let mut cur = String::new();
    let mut close = None;
    for (i, c) in text[open + 1..].char_indices() {
        if quoted {
            cur.push(c);
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => quoted = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => {
                quoted = true;
                cur.push(c);
            }
            '(' | '[' | '{' => {
                depth += 1;
                cur.push(c);
            }
            ')' if depth == 0 => {
                close = Some(open + 1 + i);
                break;
            }
            ')' | ']' | '}' => {
                depth -= 1;
                cur.push(c);
            }
            ',' if depth == 0 => args.push(std::mem::take(&mut cur).trim().to_string()),
            _ => cur.push(c),
        }
    }
    let close = close?;
    if !cur.trim().is_empty() {
        args.push(cur.trim().to_string());
    }
    let ret = text[close + 1..]
        .trim()
        .strip_prefix("= ")?
        .trim()
        .to_string();
    Some(Traced {
        pid,
        name,
        args,
        ret,
        line: text.to_string(),
    })
}

/// strace's `-f -o` output, with `<unfinished ...>` / `<... resumed>` pairs joined and
/// signal and exit notes dropped.
fn strace_calls(run: &Run) -> Vec<Traced> {
    let mut partial: BTreeMap<u32, String> = BTreeMap::new();
    let mut out = Vec::new();
    for line in run.console.lines() {
        let Some(at) = line.find("@@VMI strace ") else {
            continue;
        };
        let rest = line[at + 13..].trim_end_matches('\r');
        let (pid, text) = rest.split_once(' ').unwrap();
        let pid: u32 = pid.parse().unwrap();
        let text = text.trim_start();
        // Signals, exits, and "[ Process PID=.. runs in 32 bit mode. ]" (a 64-bit strace
        // following a 32-bit process; strace writes it to stderr, but in case it moves).
        if text.starts_with("---") || text.starts_with("+++") || text.starts_with("[ ") {
            continue;
        }
        if let Some(head) = text.strip_suffix("<unfinished ...>") {
            partial.insert(pid, head.trim_end().to_string());
            continue;
        }
        let text = match text.strip_prefix("<... ") {
            Some(resumed) => {
                let tail = &resumed[resumed.find("resumed>").expect("resumed") + 8..];
                format!(
                    "{}{}",
                    partial.remove(&pid).expect("unfinished before resumed"),
                    tail
                )
            }
            None => text.to_string(),
        };
        out.push(parse_call(pid, &text).unwrap_or_else(|| panic!("unparsed strace line: {text}")));
    }
    out
}

fn errno(name: &str) -> Option<i64> {
    Some(match name {
        "EPERM" => 1,
        "ENOENT" => 2,
        "EINTR" => 4,
        "EBADF" => 9,
        "ECHILD" => 10,
        "EAGAIN" => 11,
        "EACCES" => 13,
        "EEXIST" => 17,
        "ENOTDIR" => 20,
        "EINVAL" => 22,
        "ENOTTY" => 25,
        "ESPIPE" => 29,
        "ERANGE" => 34,
        "ENOSYS" => 38,
        _ => return None,
    })
}

fn number(text: &str) -> Option<u64> {
    let t = text.trim();
    if t == "NULL" {
        return Some(0);
    }
    let (neg, t) = match t.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, t),
    };
    let v = if let Some(h) = t.strip_prefix("0x") {
        u64::from_str_radix(h, 16).ok()?
    } else if t.len() > 1 && t.starts_with('0') {
        u64::from_str_radix(&t[1..], 8).ok()?
    } else {
        t.parse().ok()?
    };
    Some(if neg { v.wrapping_neg() } else { v })
}

fn our_number(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64().or_else(|| n.as_i64().map(|i| i as u64)),
        Value::String(s) => number(s),
        Value::Null => Some(0),
        _ => None,
    }
}

fn our_string(v: &Value) -> Option<&str> {
    match v {
        Value::String(s) => Some(s),
        Value::Object(o) => o.get("str").and_then(Value::as_str),
        _ => None,
    }
}

/// i386 names strace prints (its syscallent, the table's names) for which our name
/// (the kernel function, from the prototypes) is neither the same nor covered by the
/// general `new*`, `*64`, `*_time32` rule. Each pair is one table entry of
/// arch/x86/entry/syscalls/syscall_32.tbl.
fn i386_alias(strace: &str, ours: &str) -> bool {
    matches!(
        (strace, ours),
        // 191 ugetrlimit: entry point sys_getrlimit (the "unsigned" getrlimit; 76
        // getrlimit is sys_old_getrlimit).
        ("ugetrlimit", "getrlimit")
            // 192 mmap2: entry point sys_mmap_pgoff (the offset is in pages).
            | ("mmap2", "mmap_pgoff")
    ) || time64_alias(strace, ours)
        || uid32_alias(strace, ours)
}

/// The 32-bit-id calls 198..=216 of syscall_32.tbl (`getuid32`, `fchown32`, ...) have the
/// plain entry points (`sys_getuid`); the old numbers have the `sys_*16` ones.
fn uid32_alias(strace: &str, ours: &str) -> bool {
    const UID32: [&str; 19] = [
        "lchown32",
        "getuid32",
        "getgid32",
        "geteuid32",
        "getegid32",
        "setreuid32",
        "setregid32",
        "getgroups32",
        "setgroups32",
        "fchown32",
        "setresuid32",
        "getresuid32",
        "setresgid32",
        "getresgid32",
        "chown32",
        "setuid32",
        "setgid32",
        "setfsuid32",
        "setfsgid32",
    ];
    UID32.contains(&strace) && strace.strip_suffix("32") == Some(ours)
}

/// The y2038 calls 403..=423 of syscall_32.tbl: strace calls them `clock_gettime64`,
/// `futex_time64`, ...; their entry points are the 64-bit-time functions amd64 uses
/// (`sys_clock_gettime`, `sys_futex`), while the old 32-bit-time numbers got the
/// `*_time32` functions (covered by the general rule the other way round).
fn time64_alias(strace: &str, ours: &str) -> bool {
    const TIME64: [&str; 20] = [
        "clock_gettime64",
        "clock_settime64",
        "clock_adjtime64",
        "clock_getres_time64",
        "clock_nanosleep_time64",
        "timer_gettime64",
        "timer_settime64",
        "timerfd_gettime64",
        "timerfd_settime64",
        "utimensat_time64",
        "pselect6_time64",
        "ppoll_time64",
        "io_pgetevents_time64",
        "recvmmsg_time64",
        "mq_timedsend_time64",
        "mq_timedreceive_time64",
        "semtimedop_time64",
        "rt_sigtimedwait_time64",
        "futex_time64",
        "sched_rr_get_interval_time64",
    ];
    TIME64.contains(&strace)
        && (strace.strip_suffix("_time64") == Some(ours) || strace.strip_suffix("64") == Some(ours))
}

/// Whether our record says what strace's line says. Returns the reason when not.
fn same_call(ours: &Value, theirs: &Traced) -> Result<(), String> {
    let name = ours["name"].as_str().unwrap_or("?");
    // Our names are the kernel functions' (PANDA's prototypes): sys_newstat is strace's
    // stat, sys_sendfile64 its sendfile, sys_nanosleep_time32 (i386) its nanosleep.
    let t = &theirs.name;
    let aliases = [format!("new{t}"), format!("{t}64"), format!("{t}_time32")];
    if name != t && !aliases.iter().any(|a| a == name) && !i386_alias(t, name) {
        return Err(format!("name {name} vs {}", theirs.name));
    }
    let outcome = ours["outcome"].as_str();
    let ret = &theirs.ret;
    let ret_ok = match (outcome, ours["ret"].as_i64()) {
        (Some("exec"), _) => ret == "0",
        (Some("no_return"), _) => ret == "?" || theirs.name.contains("sigreturn"),
        (Some("abandoned"), _) => ret.starts_with('?'),
        (None, Some(r)) => match ret.strip_prefix("-1 ") {
            Some(e) => {
                errno(e.split_whitespace().next().unwrap_or("")).is_none_or(|n| r == -n) && r < 0
            }
            None => {
                number(ret.split_whitespace().next().unwrap_or("")).map(|v| v as i64) == Some(r)
            }
        },
        _ => false,
    };
    if !ret_ok {
        return Err(format!("return {} / {:?} vs {ret}", ours["ret"], outcome));
    }
    let args = ours["args"].as_object().ok_or("no args")?;
    for (i, (key, value)) in args.iter().enumerate() {
        let Some(t) = theirs.args.get(i) else { break };
        if let Some(quoted) = t.strip_prefix('"') {
            // strace shows strings C-escaped and cut with "..."; so do we, escaped alike.
            let text = quoted.trim_end_matches("...").trim_end_matches('"');
            if let Some(s) = our_string(value)
                && !(s == text || (t.ends_with("...") && s.starts_with(text)))
            {
                return Err(format!("arg {key}: {s:?} vs {t}"));
            }
        } else if let (Some(want), Some(got)) = (number(t), our_number(value))
            && let got = if theirs.name == "mmap2" && i == 5 {
                // strace prints mmap2's page offset in bytes; we log the argument.
                got.wrapping_mul(4096)
            } else {
                got
            }
            && want != got
            && (want as u32 as u64) != (got & 0xffff_ffff)
        {
            return Err(format!("arg {key}: {value} vs {t}"));
        }
    }
    Ok(())
}

/// How a guest's trace is compared.
#[derive(Debug, Clone, Copy, Default)]
struct Compare {
    /// At least this many strace lines, and this many processes.
    min_calls: usize,
    min_procs: usize,
    /// The calls the run logged (`syscalls=` joined by `:`); empty: all.
    only: &'static [&'static str],
}

impl Compare {
    /// The `syscalls` scenario: a shell workload that forks.
    const WORKLOAD: Compare = Compare {
        min_calls: 100,
        min_procs: 4,
        only: &[],
    };
}

/// Compares the plugin's records with strace's for every process strace followed;
/// returns the number of calls compared.
fn check_against_strace(run: &Run, how: Compare) -> usize {
    let where_ = run.dir.display();
    run.assert_finished();
    let mut traced = strace_calls(run);
    if !how.only.is_empty() {
        traced.retain(|t| how.only.contains(&t.name.as_str()));
    }
    assert!(
        traced.len() >= how.min_calls,
        "strace saw only {} calls: {where_}",
        traced.len()
    );
    let mut by_pid: BTreeMap<u32, Vec<&Traced>> = BTreeMap::new();
    for t in &traced {
        by_pid.entry(t.pid).or_default().push(t);
    }
    let records = run.of_type("syscall");
    let first_pid = traced[0].pid;
    let mut compared = 0;
    for (pid, theirs) in &by_pid {
        let mut ours: Vec<&Value> = records
            .iter()
            .copied()
            .filter(|r| r["tid"].as_u64() == Some(u64::from(*pid)))
            .collect();
        // Records come at completion; strace lists calls in entry order.
        ours.sort_by_key(|r| r["seq"].as_u64());
        if *pid == first_pid {
            // Before its execve, strace's first child is strace itself.
            let exec = ours
                .iter()
                .position(|r| r["name"] == "execve" && r["outcome"] == "exec")
                .expect("the traced execve");
            ours.drain(..exec);
        }
        for (i, t) in theirs.iter().enumerate() {
            let Some(r) = ours.get(i) else {
                panic!(
                    "pid {pid}: {} records for {} strace lines, none for {}: {where_}",
                    ours.len(),
                    theirs.len(),
                    t.line
                );
            };
            if let Err(why) = same_call(r, t) {
                panic!(
                    "pid {pid}, call {i}: {why}\n  ours:   {r}\n  strace: {}\n  run: {where_}",
                    t.line
                );
            }
            compared += 1;
        }
    }
    assert!(
        by_pid.len() >= how.min_procs,
        "strace followed {} processes: {where_}",
        by_pid.len()
    );
    eprintln!(
        "{where_}: {compared} calls of {} processes equal strace's",
        by_pid.len()
    );
    compared
}

/// The records were made on the fast path: the current task came from the context
/// switches the plugin followed, not from reading the kernel at every call.
fn assert_switches_followed(run: &Run) {
    let switches = run.run_end_count("task_switches");
    assert!(
        switches > 100,
        "{switches} context switches followed: {}",
        run.dir.display()
    );
}

/// Every system call record names its caller, including a call made before the kernel
/// was found under KPTI (the run's first): neither its entry nor its user-mode return can
/// read the kernel, so it waits for the next call of its process to name it.
fn assert_callers_named(run: &Run) {
    assert!(
        run.events.iter().any(|e| e["type"] == "kernel_ready"),
        "no kernel_ready: {}",
        run.dir.display()
    );
    for (at, e) in run.events.iter().enumerate() {
        if e["type"] == "syscall" {
            assert!(
                e["tid"] != 0 && e["pid"] != 0,
                "record {at} names no caller: {e} ({})",
                run.dir.display()
            );
        }
    }
}

/// The power-off call never returns (QEMU exits during it): it is written at the end of
/// the run as `unfinished`, with the calls still blocked then, and nothing follows them
/// but `run_end`.
fn assert_poweroff_unfinished(run: &Run) {
    let calls: Vec<&Value> = run
        .events
        .iter()
        .filter(|e| e["type"] == "syscall")
        .collect();
    let first = calls
        .iter()
        .position(|c| c["outcome"] == "unfinished")
        .unwrap_or_else(|| panic!("no unfinished call: {}", run.dir.display()));
    let tail = &calls[first..];
    assert!(
        tail.iter()
            .all(|c| c["outcome"] == "unfinished" && c["ret"].is_null()),
        "unfinished calls come last: {}",
        run.dir.display()
    );
    let reboot = tail
        .iter()
        .find(|c| c["name"] == "reboot")
        .unwrap_or_else(|| panic!("the power-off call is not written: {}", run.dir.display()));
    // LINUX_REBOOT_CMD_POWER_OFF
    assert_eq!(reboot["args"]["cmd"], 0x4321_fedc_u32, "{reboot}");
    assert_eq!(run.events.last().unwrap()["type"], "run_end");
}

/// Boots `kernel` (with KASLR when `kaslr`) into `scenario`.
fn traced(kernel: &'static str, scenario: &'static str, kaslr: bool) -> Run {
    boot(&Boot {
        kernel,
        scenario,
        kaslr,
        ..Boot::default()
    })
}

/// A run with no `conf=`, whose kernel cannot be described from its memory (armhf: no BTF).
fn traced_without_conf(kernel: &'static str, scenario: &'static str) -> Run {
    boot(&Boot {
        kernel,
        scenario,
        no_conf: true,
        ..Boot::default()
    })
}

/// The `syscalls` scenario: the workload's records equal strace's, context switches were
/// followed, and the run ends with the guest's `reboot` unfinished.
fn workload_matches_strace(kernel: &'static str, kaslr: bool) {
    check_workload(&traced(kernel, "syscalls", kaslr));
}

/// [`workload_matches_strace`]'s checks of a run of the `syscalls` scenario.
fn check_workload(run: &Run) {
    check_against_strace(run, Compare::WORKLOAD);
    assert_switches_followed(run);
    assert_poweroff_unfinished(run);
    assert_callers_named(run);
}

/// A filtered run: only the named calls are logged, the others end at their entry and
/// their returns are skipped inline. The calls logged are still exactly strace's, and
/// nothing else is logged.
fn amd64_612_filtered_matches_strace() {
    const ONLY: &[&str] = &["execve", "openat", "read", "write", "close"];
    let run = boot(&Boot {
        kernel: "amd64-6.12",
        scenario: "syscalls",
        smp: 2,
        plugin_args: vec![format!("syscalls={}", ONLY.join(":"))],
        ..Boot::default()
    });
    let how = Compare {
        min_calls: 15,
        min_procs: 4,
        only: ONLY,
    };
    check_against_strace(&run, how);
    let where_ = run.dir.display();
    for r in run.of_type("syscall") {
        let name = r["name"].as_str().unwrap_or("");
        assert!(
            ONLY.contains(&name),
            "{name} was not asked for: {r} ({where_})"
        );
    }
    assert!(
        run.run_end_count("return_callbacks") < run.run_end_count("syscalls"),
        "unfollowed calls' returns skipped: {} ({where_})",
        run.run_end()
    );
}

fn amd64_61_matches_strace() {
    workload_matches_strace("amd64-6.1", false);
}

/// Two vCPUs run by one host thread (`-accel tcg,thread=single`, as under record/replay):
/// per-vCPU state is the vCPU's, not the host thread's, and QEMU's wrong vCPU index for
/// conditional callbacks there does not reach the plugin. Before, QEMU aborted.
fn amd64_61_single_thread_smp2_matches_strace() {
    let run = boot(&Boot {
        kernel: "amd64-6.1",
        scenario: "syscalls",
        smp: 2,
        single_thread: true,
        ..Boot::default()
    });
    check_against_strace(&run, Compare::WORKLOAD);
    assert_switches_followed(&run);
    assert_callers_named(&run);
}

/// A group whose `vmi.switch_to_addr` names another function (here the dispatch function
/// every call passes through, whose second argument is the call number, not a task):
/// the plugin must notice at the first calls, say so once, stop following switches, and
/// still attach every call to the right thread.
fn amd64_61_wrong_switch_to_is_refuted() {
    let good = std::fs::read_to_string(common::lab_conf("amd64-6.1")).unwrap();
    let dispatch = good
        .lines()
        .find_map(|l| l.strip_prefix("vmi.do_syscall_64_addr = "))
        .expect("the group names do_syscall_64")
        .to_string();
    let wrong: String = good
        .lines()
        .map(|l| match l.strip_prefix("vmi.switch_to_addr = ") {
            Some(_) => format!("vmi.switch_to_addr = {dispatch}\n"),
            None => format!("{l}\n"),
        })
        .collect();
    assert_ne!(wrong, good, "the group names __switch_to");
    let dir = common::tempdir("wrong-switch");
    let conf = dir.join("amd64-6.1.conf");
    std::fs::write(&conf, wrong).unwrap();
    let run = boot(&Boot {
        kernel: "amd64-6.1",
        scenario: "syscalls",
        plugin_args: vec![format!("conf={}", conf.display())],
        ..Boot::default()
    });
    check_against_strace(&run, Compare::WORKLOAD);
    let line = run.stderr_line("vmi.switch_to_addr");
    assert!(line.contains("vmi kernelinfo"), "{line}");
    let switches = run.run_end_count("task_switches");
    assert!(
        switches < 100,
        "{switches} switches followed after the refutation"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

fn amd64_612_matches_strace() {
    workload_matches_strace("amd64-6.12", true);
}

/// The newest kernel Debian has (Linux 7.x), KASLR: its new calls are named.
fn amd64_sid_matches_strace() {
    workload_matches_strace("amd64-sid", true);
}

/// arm64 (`svc #0`, the generic table), no arguments: the kernelinfo is found in memory;
/// KASLR moves the kernel by terabytes, and context switches are followed all the same.
fn arm64_612_matches_strace() {
    check_workload(&boot(&Boot {
        kernel: "arm64-6.12",
        scenario: "syscalls",
        kaslr: true,
        no_conf: true,
        ..Boot::default()
    }));
}

/// Debian's arm64 6.1 with `conf=` (its group from the `Image` and the -dbg package's
/// System.map), KASLR: the slide is measured from where its boot header runs.
fn arm64_61_matches_strace() {
    workload_matches_strace("arm64-6.1", true);
}

/// Debian's armhf 6.1 with `conf=` (its group from the -dbg package's vmlinux): records
/// name their callers, so they are grouped by thread like the other architectures'.
fn armhf_61_nokaslr_matches_strace() {
    workload_matches_strace("armhf-6.1", false);
}

/// compat.a32.c natively on armhf, with the kernelinfo: [`check_compat`]'s checks.
fn armhf_61_compat_with_kernelinfo_matches_strace() {
    compat_matches_strace("armhf-6.1", false);
}

/// Compares the plugin's records with strace's where the records name no caller (no
/// kernelinfo: pid and tid are 0), so they cannot be grouped by thread as
/// [`check_against_strace`] does. Instead every strace line must be found in the log, in
/// its thread's order: strace's lines are taken in the order it printed them (a call's
/// completion, roughly the run's time order), and each claims the first record not yet
/// claimed that is equal to it (name, arguments, result) and entered (`seq`) after the
/// record its thread's previous line claimed; a thread strace met first starts after the
/// traced `execve`. Records strace did not trace (strace's own calls, init's) are left
/// over. A successful `execve` is `unfinished` in such a log: the thread resumes in a new
/// address space with a new stack, which without a kernelinfo is another thread to the
/// plugin (it keys threads by address space and stack), so the call never returns; strace
/// says `= 0` there. Returns the number of calls compared.
fn check_unnamed_against_strace(run: &Run, how: Compare) -> usize {
    let where_ = run.dir.display();
    run.assert_finished();
    let traced = strace_calls(run);
    assert!(
        traced.len() >= how.min_calls,
        "strace saw only {} calls: {where_}",
        traced.len()
    );
    let mut records = run.of_type("syscall");
    assert!(
        records.iter().all(|r| r["pid"] == 0 && r["tid"] == 0),
        "a record names a caller without a kernelinfo: {where_}"
    );
    records.sort_by_key(|r| r["seq"].as_u64());
    // An unfinished execve is taken for the successful one it is (above).
    let exec: Vec<Value> = records
        .iter()
        .map(|r| {
            let mut r = (*r).clone();
            if r["name"] == "execve" && r["outcome"] == "unfinished" {
                r["outcome"] = "exec".into();
            }
            r
        })
        .collect();
    let records: Vec<&Value> = exec.iter().collect();
    let first = &traced[0];
    let start = records
        .iter()
        .position(|r| r["outcome"] == "exec" && same_call(r, first).is_ok())
        .unwrap_or_else(|| panic!("no record of the traced {}: {where_}", first.line));
    let mut claimed = vec![false; records.len()];
    claimed[start] = true;
    let mut after: BTreeMap<u32, usize> = BTreeMap::from([(first.pid, start)]);
    for t in &traced[1..] {
        let from = after.get(&t.pid).copied().unwrap_or(start) + 1;
        let found =
            (from..records.len()).find(|&i| !claimed[i] && same_call(records[i], t).is_ok());
        let Some(i) = found else {
            let near: Vec<String> = (from..records.len())
                .filter(|&i| !claimed[i] && records[i]["name"].as_str() == Some(t.name.as_str()))
                .take(3)
                .map(|i| records[i].to_string())
                .collect();
            panic!(
                "pid {}: no record after seq {} for {}\n  same name: {near:?}\n  run: {where_}",
                t.pid,
                records[from - 1]["seq"],
                t.line
            );
        };
        claimed[i] = true;
        after.insert(t.pid, i);
    }
    assert!(
        after.len() >= how.min_procs,
        "strace followed {} processes: {where_}",
        after.len()
    );
    eprintln!(
        "{where_}: {} calls of {} processes found in order among {} records",
        traced.len(),
        after.len(),
        records.len()
    );
    traced.len()
}

/// 32-bit ARM (Debian's armhf 6.1: `svc #0` in Thumb code, the EABI table), no arguments.
/// The kernel has no BTF and no data symbols in its kallsyms, so no kernelinfo is found in
/// memory (one line says so) and records name no caller: strace's calls are found in the
/// log in order (see [`check_unnamed_against_strace`]), with their names, decoded
/// arguments and results.
fn armhf_61_matches_strace() {
    let run = traced_without_conf("armhf-6.1", "syscalls");
    assert_eq!(run.events[0]["target"], "arm", "{}", run.dir.display());
    let line = run.stderr_line("no conf=");
    assert!(line.contains("no BTF"), "{line}");
    assert!(run.of_type("kernel_ready").is_empty());
    let calls = run.of_type("syscall");
    assert!(
        calls.iter().all(|c| c["name"].is_string()),
        "every call named: {}",
        run.dir.display()
    );
    let svc = run.run_end()["syscall_insns"]["svc"].as_u64().unwrap_or(0);
    assert_eq!(svc, run.run_end_count("syscalls"), "all calls are svc");
    assert!(
        svc as usize >= calls.len() && calls.len() > 1000,
        "{svc} svc, {} records",
        calls.len()
    );
    // Every process starts with the ARM-private set_tls (0x0f0005).
    assert!(
        calls
            .iter()
            .any(|c| c["name"] == "set_tls" && c["nr"] == 0x0f_0005),
        "set_tls is named"
    );
    check_unnamed_against_strace(&run, Compare::WORKLOAD);
}

/// How compat32 enters the kernel in each half of its calls, and what its table names
/// mmap2.
struct Ways {
    halves: [&'static str; 2],
    mmap: &'static str,
}

/// tests/guest/compat.m32.c: `int 0x80`, then the vDSO; the i386 table.
const X86_WAYS: Ways = Ways {
    halves: ["int 0x80", "vdso"],
    mmap: "mmap_pgoff",
};

/// tests/guest/compat.a32.c: `svc #0` in ARM code, then in Thumb code; the EABI table.
const ARM_WAYS: Ways = Ways {
    halves: ["arm", "thumb"],
    mmap: "mmap2",
};

/// The `compat` scenario: /bin/compat32 (tests/guest/compat.m32.c on x86, compat.a32.c on
/// ARM) under strace. Its records must equal strace's, and say what the program did: the
/// same 11 calls in each of two ways, with 32-bit names, arguments (mmap2's sixth) and
/// results (errors negative, addresses above 2 GiB positive), then exit_group(7).
fn check_compat(run: &Run) -> usize {
    let ways = if run.events[0]["target"] == "aarch64" || run.events[0]["target"] == "arm" {
        ARM_WAYS
    } else {
        X86_WAYS
    };
    let where_ = run.dir.display();
    assert_eq!(
        run.truth.marks.get("compat_status").map(String::as_str),
        Some("7"),
        "compat32's exit status: {where_}"
    );
    let compared = check_against_strace(
        run,
        Compare {
            min_calls: 30,
            min_procs: 1,
            only: &[],
        },
    );
    let mut ours: Vec<&Value> = run
        .of_type("syscall")
        .into_iter()
        .filter(|r| r["comm"] == "compat32")
        .collect();
    ours.sort_by_key(|r| r["seq"].as_u64());
    let start = ours
        .iter()
        .position(|r| r["name"] == "getpid")
        .unwrap_or_else(|| panic!("no getpid from compat32: {where_}"));
    let ours = &ours[start..];
    let round = [
        "open", "openat", "read", "write", "openat", ways.mmap, "munmap", "close", "close", "close",
    ];
    let want: Vec<&str> = std::iter::once("getpid")
        .chain(round)
        .chain(std::iter::once("getppid"))
        .chain(round)
        .chain(std::iter::once("exit_group"))
        .collect();
    let names: Vec<&str> = ours
        .iter()
        .map(|r| r["name"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(names, want, "compat32's calls: {where_}");
    for (half, how) in [
        (&ours[..11], ways.halves[0]),
        (&ours[11..22], ways.halves[1]),
    ] {
        let ctx = format!("{how} calls of compat32: {where_}");
        assert_eq!(half[1]["args"]["filename"], "/nonexistent", "{ctx}");
        assert_eq!(half[1]["ret"], -2, "open ENOENT, {ctx}");
        assert_eq!(half[2]["args"]["filename"], "/lib.sh", "{ctx}");
        assert_eq!(half[2]["args"]["dfd"], -100, "{ctx}");
        let fd = half[2]["ret"].as_i64().expect("openat fd");
        assert_eq!(half[3]["args"]["fd"], fd, "{ctx}");
        assert_eq!(half[3]["ret"], 16, "{ctx}");
        assert_eq!(half[3]["args"]["buf"]["data"], "# Helpers for la", "{ctx}");
        assert_eq!(
            half[4]["args"]["buf"]["data"],
            format!("compat: {how}\\n"),
            "{ctx}"
        );
        let big = half[5]["ret"].as_i64().expect("openat fd");
        let mmap = &half[6]["args"];
        assert_eq!(
            [
                &mmap["len"],
                &mmap["prot"],
                &mmap["flags"],
                &mmap["fd"],
                &mmap["pgoff"]
            ],
            [4096, 1, 2, big, 2],
            "mmap2's six arguments, {ctx}"
        );
        let addr = half[6]["ret"].as_i64().expect("mmap2 address");
        assert!(
            addr > 0 && addr < 1 << 32 && addr % 4096 == 0,
            "mmap2 returned {addr:#x}, {ctx}"
        );
        assert_eq!(
            half[7]["args"]["addr"], addr,
            "munmap of mmap2's address, {ctx}"
        );
        assert_eq!(half[8]["args"]["fd"], big, "{ctx}");
        assert_eq!(half[9]["args"]["fd"], fd, "{ctx}");
        assert_eq!(
            (&half[10]["args"]["fd"], &half[10]["ret"]),
            (&Value::from(99), &Value::from(-9)),
            "close(99) EBADF, {ctx}"
        );
    }
    assert_eq!(ours[22]["args"]["error_code"], 7, "exit_group(7): {where_}");
    assert_eq!(ours[22]["outcome"], "no_return", "{where_}");
    // Both ways in were taken: int 0x80, and the vDSO's sysenter or 32-bit syscall (on
    // ARM: 23 svc of compat32's own, besides its start-up's and strace's).
    let insns = &run.run_end()["syscall_insns"];
    if ways.halves[0] == "arm" {
        assert!(insns["svc"].as_u64() >= Some(23), "svcs: {insns}");
    } else {
        assert!(insns["int80"].as_u64() >= Some(12), "int 0x80s: {insns}");
    }
    compared
}

/// The `compat` scenario on `kernel`, checked by [`check_compat`].
fn compat_matches_strace(kernel: &'static str, kaslr: bool) {
    check_compat(&traced(kernel, "compat", kaslr));
}

fn amd64_61_compat_matches_strace() {
    compat_matches_strace("amd64-6.1", false);
}

/// A 32-bit ARM program on arm64 (AArch32 at EL0, the kernel's compat path), KASLR: its
/// calls are read where the kernel saved its registers (`do_el0_svc_compat`), named from
/// the EABI table, and end where it resumes (ARM and Thumb code).
fn arm64_61_compat_matches_strace() {
    compat_matches_strace("arm64-6.1", true);
}

fn arm64_612_compat_matches_strace() {
    compat_matches_strace("arm64-6.12", true);
}

/// The same ARM program natively on armhf, without a kernelinfo (records name no
/// process, so [`check_compat`]'s grouping by thread cannot apply): every call strace saw
/// is in the log in order with its arguments and results (see
/// [`check_unnamed_against_strace`]), the 11 made with `svc #0` in ARM code (`ef000000`,
/// which Debian's Thumb-2 userland never runs) as well as the 11 in Thumb code; each
/// half's write carries its own text.
fn armhf_61_compat_matches_strace() {
    let run = traced_without_conf("armhf-6.1", "compat");
    let where_ = run.dir.display();
    assert_eq!(
        run.truth.marks.get("compat_status").map(String::as_str),
        Some("7"),
        "compat32's exit status: {where_}"
    );
    let names: Vec<String> = strace_calls(&run).into_iter().map(|t| t.name).collect();
    let round = [
        "open", "openat", "read", "write", "openat", "mmap2", "munmap", "close", "close", "close",
    ];
    let want: Vec<&str> = std::iter::once("getpid")
        .chain(round)
        .chain(std::iter::once("getppid"))
        .chain(round)
        .chain(std::iter::once("exit_group"))
        .collect();
    assert!(
        names.ends_with(&want.iter().map(|n| n.to_string()).collect::<Vec<_>>()),
        "strace saw {names:?}: {where_}"
    );
    let compared = check_unnamed_against_strace(
        &run,
        Compare {
            min_calls: 30,
            min_procs: 1,
            only: &[],
        },
    );
    assert_eq!(compared, names.len(), "{where_}");
    let writes: Vec<&str> = run
        .of_type("syscall")
        .iter()
        .filter(|r| r["name"] == "write" && r["args"]["fd"] == 1)
        .filter_map(|r| r["args"]["buf"]["data"].as_str())
        .filter(|b| b.starts_with("compat: "))
        .collect();
    // C-escaped, as strace shows them.
    assert_eq!(writes, ["compat: arm\\n", "compat: thumb\\n"], "{where_}");
}

fn amd64_612_compat_matches_strace() {
    // CONFIG_IA32_EMULATION=y without IA32_EMULATION_DEFAULT_DISABLED in Debian's 6.12:
    // 32-bit programs run without ia32_emulation=1.
    compat_matches_strace("amd64-6.12", true);
}

/// The same program natively on i386: the vDSO uses sysenter there (argument 6 at
/// `[ebp]`); KPTI, so strace's execve of it has no record (see `Compare`).
fn i386_61_compat_matches_strace() {
    compat_matches_strace("i386-6.1", false);
}

fn strace_lines_parse() {
    let t = parse_call(1, r#"openat(-100, "/a, b)", 0x241, 0666) = 3"#).unwrap();
    assert_eq!(t.name, "openat");
    assert_eq!(t.args, vec!["-100", "\"/a, b)\"", "0x241", "0666"]);
    assert_eq!(t.ret, "3");
    let t = parse_call(
        1,
        "wait4(-1, [{WIFEXITED(s) && WEXITSTATUS(s) == 0}], 0, NULL) = 87",
    )
    .unwrap();
    assert_eq!(t.args.len(), 4);
    assert_eq!(number("0666"), Some(0o666));
    assert_eq!(number("-100"), Some((-100i64) as u64));
}

fn i386_61_matches_strace() {
    workload_matches_strace("i386-6.1", false);
}

/// Checks a kept run again without booting, for work on the comparison:
/// `VMI_RECHECK=DIR cargo test --release --test syscalls
/// recheck -- --ignored --nocapture`.
fn recheck() {
    let dir = std::env::var("VMI_RECHECK").expect("VMI_RECHECK=run directory");
    let run = common::load(std::path::Path::new(&dir));
    if run.truth.marks.contains_key("compat_status") {
        check_compat(&run);
    } else {
        check_against_strace(&run, Compare::WORKLOAD);
    }
}
