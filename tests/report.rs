//! `vmi report` on synthetic event logs: terminal text, JSON summary, Perfetto trace, HTML.
//!
//! `tests/data/report.jsonl` is hand-written to exercise every record kind the report
//! reads, plus what it must survive: an unknown record type, an unknown field, a line that
//! is not JSON, a record without a type, a reused pid, and an incomplete last line.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::Prereq::Browser;
use common::{have, trial};
use serde_json::Value;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/report.jsonl");

fn main() {
    common::run(vec![
        trial(
            "text_shows_the_tree_files_errnos_programs_and_modules",
            &[],
            text_shows_the_tree_files_errnos_programs_and_modules,
        ),
        trial(
            "broken_input_is_warned_about_with_line_numbers_not_fatal",
            &[],
            broken_input_is_warned_about_with_line_numbers_not_fatal,
        ),
        trial("command_line_errors", &[], command_line_errors),
        trial("json_summary_structure", &[], json_summary_structure),
        trial(
            "without_icount_or_process_events_lines_and_execve_calls_stand_in",
            &[],
            without_icount_or_process_events_lines_and_execve_calls_stand_in,
        ),
        trial(
            "perfetto_trace_follows_the_format_rules",
            &[],
            perfetto_trace_follows_the_format_rules,
        ),
        trial(
            "perfetto_tracks_stay_well_formed_when_positions_go_back",
            &[],
            perfetto_tracks_stay_well_formed_when_positions_go_back,
        ),
        trial(
            "html_is_one_self_contained_file_that_renders_in_a_browser",
            &[],
            html_is_one_self_contained_file_that_renders_in_a_browser,
        ),
        trial(
            "memory_stays_bounded_on_a_long_log",
            &[],
            memory_stays_bounded_on_a_long_log,
        ),
        trial(
            "a_call_without_a_caller_is_not_the_idle_tasks",
            &[],
            a_call_without_a_caller_is_not_the_idle_tasks,
        ),
        trial(
            "a_killed_process_keeps_its_abandoned_calls_and_shows_its_signal",
            &[],
            a_killed_process_keeps_its_abandoned_calls_and_shows_its_signal,
        ),
        trial(
            "many_processes_stay_within_the_budgets",
            &[],
            many_processes_stay_within_the_budgets,
        ),
    ]);
}

fn vmi(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vmi"))
        .args(args)
        .output()
        .expect("run vmi")
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).expect("UTF-8 stdout")
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).expect("UTF-8 stderr")
}

/// A fresh directory for one test's outputs.
fn scratch(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("report-{name}"));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// A log of `records`, one per line, in a fresh directory `name`; returns the directory
/// and the log.
fn log_of(name: &str, records: &[&str]) -> (PathBuf, PathBuf) {
    let dir = scratch(name);
    let log = write(&dir, "vmi.jsonl", &(records.join("\n") + "\n"));
    (dir, log)
}

fn json_report(log: &str) -> Value {
    let o = vmi(&["report", log, "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    serde_json::from_slice(&o.stdout).expect("one JSON document")
}

fn process<'a>(s: &'a Value, pid: u64, comm: &str) -> &'a Value {
    s["processes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["pid"] == pid && p["comm"] == comm)
        .unwrap_or_else(|| panic!("no process {pid} {comm}"))
}

fn text_shows_the_tree_files_errnos_programs_and_modules() {
    let o = vmi(&["report", FIXTURE]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    for l in text.lines() {
        assert!(l.chars().count() <= 80, "wider than 80 columns: {l:?}");
    }
    let expect = [
        // header: the run was cut short
        "  run: vmi 0.1.0 on x86_64-softmmu, 1 vCPU, kernel debian-12",
        "  did not end normally: no run_end record, last line incomplete",
        // the tree: pid, tree shape, comm, start, end, exit code, threads, calls
        "        0 [swapper/0]                   before       -     -   1       0",
        "        1 └─ systemd                    before       -     -   1       0",
        "               $ /sbin/init",
        "      100    ├─ bash                     10.0k       -     -   1       5",
        "      101    │  ├─ ls                    20.0k   26.0k     0   1       6",
        "             │  │    $ ls -l /tmp  (/bin/ls)",
        "      102    │  └─ python3               30.0k   41.0k     1   2       7",
        "      200    ├─ cron                    ~42.0k       -     -   2       1",
        "      101    └─ sleep                    50.0k       -     -   1       1",
        // per process
        "── 101 ls ",
        "  top: openat 3 (1 failed), execve 1, exit_group 1, write 1",
        "  exec @21.0k: ls -l /tmp  (/bin/ls)",
        "    ok           openat   /lib/x86_64-linux-gnu/libc.so.6",
        "    EACCES       openat   /tmp/secret",
        "    ENOENT       openat   /etc/nonexistent",
        "    ENOENT       execve   /usr/bin/nothere",
        "    ENAMETOOLONG openat   /very/long/path/cut/here…",
        // whole run
        "PROGRAMS EXECUTED (2)",
        "      1×  /usr/bin/python3  (pid 102)",
        "  ENOENT: No such file or directory",
        "  EACCES: Permission denied",
        "SYSCALLS (20 calls, 6 failed)",
        "  no result: 1 abandoned, 1 exec, 1 no_return",
        "  errors: ENOENT 2, EACCES 1, EFAULT 1, ENAMETOOLONG 1, ENOSYS 1",
        "MODULES (3, from 2 snapshots)",
        "  nf_tables                0xffffffffc0100000      311296  @60.0k",
        "WARNINGS (5)",
    ];
    for e in expect {
        assert!(
            text.lines().any(|l| l.starts_with(e)),
            "missing line starting {e:?} in:\n{text}"
        );
    }
    // Idle kernel threads are left out unless asked for.
    assert!(!text.contains("kthreadd"), "{text}");
    assert!(stdout(&vmi(&["report", FIXTURE, "--all"])).contains("[kthreadd]"));
}

fn broken_input_is_warned_about_with_line_numbers_not_fatal() {
    let o = vmi(&["report", FIXTURE]);
    assert!(o.status.success());
    let err = stderr(&o);
    for w in [
        "warning: line 30: unknown record type 'cpu_hotplug'",
        "warning: line 31: unknown field 'extra_field' in 'syscall' records",
        "warning: line 32: not a JSON object",
        "warning: line 33: unusable record: no \"type\"",
        "warning: line 40: the last line is incomplete",
    ] {
        assert!(err.contains(w), "missing {w:?} in:\n{err}");
    }
    assert_eq!(err.lines().count(), 5, "{err}");

    let dir = scratch("broken");
    // Nothing in it is a record: not an event log, and the exit status says so.
    let garbage = write(&dir, "garbage.jsonl", "\u{0}\u{1}binary\n{\"a\":\nnope");
    let o = vmi(&["report", garbage.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("is not an event log: none of its 3 lines is a vmi record"),
        "{}",
        stderr(&o)
    );
    // Two runs appended to each other: refused, naming the second run_start.
    let fixture = std::fs::read_to_string(FIXTURE).unwrap();
    let twice = write(&dir, "twice.jsonl", &format!("{fixture}\n{fixture}"));
    let o = vmi(&["report", twice.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("holds more than one run (a second run_start at line"),
        "{}",
        stderr(&o)
    );
    let empty = write(&dir, "empty.jsonl", "");
    assert!(
        vmi(&["report", empty.to_str().unwrap(), "--json"])
            .status
            .success()
    );
}

fn command_line_errors() {
    let o = vmi(&["report", "/nonexistent/vmi.jsonl"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).starts_with("vmi report: cannot read /nonexistent/vmi.jsonl: "),
        "{}",
        stderr(&o)
    );
    let o = vmi(&["report"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("no event log given"));
    let o = vmi(&["report", FIXTURE, "--frobnicate"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(vmi(&["report", "--help"]).status.success());
}

fn json_summary_structure() {
    let s = json_report(FIXTURE);
    assert_eq!(s["lines"], 40);
    assert_eq!(s["records"], 35);
    assert_eq!(s["position_unit"], "icount");
    assert_eq!(s["first_position"], 5000);
    assert_eq!(s["last_position"], 61000);
    assert_eq!(s["truncated_last_line"], true);
    assert!(s["run_end"].is_null());
    assert_eq!(s["run_start"]["group"], "debian-12");
    assert_eq!(s["kernel_ready"]["kaslr_slide"], "0x1a000000");
    assert_eq!(s["snapshots"], 2);
    assert_eq!(s["record_types"]["cpu_hotplug"], 1);
    assert_eq!(s["record_types"]["syscall"], 20);
    assert_eq!(s["warnings"]["count"], 5);

    // The tree: every process once, parents before children, links consistent.
    let procs = s["processes"].as_array().unwrap();
    assert_eq!(procs.len(), 9);
    for (i, p) in procs.iter().enumerate() {
        assert_eq!(p["id"], i);
        for k in [
            "pid",
            "ppid",
            "comm",
            "path",
            "argv",
            "start",
            "end",
            "exit_code",
            "threads",
            "syscalls",
            "top_syscalls",
            "files",
            "execs",
            "children",
            "parent",
        ] {
            assert!(p.get(k).is_some(), "process {i} has no {k}: {p}");
        }
        if let Some(parent) = p["parent"].as_u64() {
            assert!((parent as usize) < i, "parent after child: {p}");
            assert!(
                procs[parent as usize]["children"]
                    .as_array()
                    .unwrap()
                    .contains(&Value::from(i))
            );
        }
    }
    let roots: Vec<u64> = s["roots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_u64().unwrap())
        .collect();
    assert_eq!(roots, [0], "swapper/0 (pid 0) is the only root");
    assert_eq!(procs[0]["comm"], "swapper/0");

    let ls = process(&s, 101, "ls");
    assert_eq!(ls["start"], 20000);
    assert_eq!(ls["end"], 26001);
    assert_eq!(ls["exit_code"], 0);
    assert_eq!(ls["path"], "/bin/ls");
    assert_eq!(ls["argv"], serde_json::json!(["ls", "-l", "/tmp"]));
    assert_eq!(ls["syscalls"], 6);
    assert_eq!(
        ls["top_syscalls"][0],
        serde_json::json!({"name":"openat","count":3,"failed":1})
    );
    assert_eq!(procs[ls["parent"].as_u64().unwrap() as usize]["pid"], 100);
    let secret = ls["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "/tmp/secret")
        .unwrap();
    assert_eq!(secret["syscall"], "openat");
    assert_eq!(secret["ok"], 0);
    assert_eq!(
        secret["errors"],
        serde_json::json!([{"errno":13,"name":"EACCES","count":1}])
    );

    let py = process(&s, 102, "python3");
    assert_eq!(py["threads"], 2);
    assert_eq!(py["exit_code"], 1);
    assert_eq!(py["comms"], serde_json::json!(["bash", "python3"]));
    assert_eq!(py["execs"].as_array().unwrap().len(), 1);
    assert_eq!(py["execs"][0]["source"], "process_exec");

    // The reused pid is a second process; the one seen only in syscalls and a snapshot
    // got its parent from the snapshot.
    let sleep = process(&s, 101, "sleep");
    assert_eq!(sleep["start"], 50000);
    assert!(sleep["end"].is_null());
    let cron = process(&s, 200, "cron");
    assert_eq!(cron["seen_from"], "syscall");
    assert_eq!(cron["ppid"], 1);
    assert_eq!(cron["threads"], 2);
    assert_eq!(cron["argv"], serde_json::json!(["/usr/sbin/cron", "-f"]));
    let systemd = process(&s, 1, "systemd");
    assert_eq!(systemd["already_running"], true);
    assert!(systemd["start"].is_null());

    assert_eq!(s["syscalls"]["total"], 20);
    assert_eq!(s["syscalls"]["failed"], 6);
    assert_eq!(
        s["syscalls"]["without_result"],
        serde_json::json!({"abandoned":1,"exec":1,"no_return":1})
    );
    let programs: Vec<&str> = s["programs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["path"].as_str().unwrap())
        .collect();
    assert_eq!(programs, ["/bin/ls", "/usr/bin/python3"]);
    let failed: Vec<(&str, &str)> = s["failed_files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["path"].as_str().unwrap(), f["name"].as_str().unwrap()))
        .collect();
    assert!(
        failed.contains(&("/etc/nonexistent", "ENOENT")),
        "{failed:?}"
    );
    assert!(
        failed.contains(&("/usr/bin/nothere", "ENOENT")),
        "{failed:?}"
    );
    let modules: Vec<&str> = s["modules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(modules, ["virtio_blk", "e1000", "nf_tables"]);
}

fn without_icount_or_process_events_lines_and_execve_calls_stand_in() {
    let (_, log) = log_of(
        "plain",
        &[
            r#"{"type":"syscall","pid":7,"tid":7,"comm":"sh","nr":59,"name":"execve","args":{"filename":"/bin/true","argv":["true"],"envp":[]},"ret":0}"#,
            r#"{"type":"syscall","pid":7,"tid":7,"comm":"true","nr":2,"name":"open","args":{"filename":"/x","flags":0,"mode":0},"ret":-2}"#,
            r#"{"type":"syscall","pid":7,"tid":7,"comm":"true","nr":85,"name":"creat","args":{"pathname":"/y","mode":420},"ret":4}"#,
        ],
    );
    let s = json_report(log.to_str().unwrap());
    assert_eq!(s["position_unit"], "line");
    assert_eq!(s["first_position"], 1);
    assert_eq!(s["last_position"], 3);
    let p = process(&s, 7, "true");
    assert_eq!(p["path"], "/bin/true");
    assert_eq!(p["execs"][0]["source"], "execve");
    assert_eq!(p["files"][1]["errors"][0]["name"], "ENOENT");
    assert_eq!(p["files"][2]["path"], "/y");
    assert_eq!(s["programs"][0]["path"], "/bin/true");
}

/// Checks a trace against the rules of the trace-event format that viewers rely on, and
/// returns the events by phase.
fn validate_trace(trace: &Value) -> std::collections::HashMap<String, Vec<Value>> {
    use std::collections::{HashMap, HashSet};
    let events = trace["traceEvents"].as_array().expect("traceEvents array");
    let mut by_ph: HashMap<String, Vec<Value>> = HashMap::new();
    let mut process_names: HashSet<u64> = HashSet::new();
    let mut thread_names: HashSet<(u64, u64)> = HashSet::new();
    let mut used: HashSet<(u64, u64)> = HashSet::new();
    // Per track: last timestamp, end of the last complete slice, open B/E slices.
    let mut last_ts: HashMap<String, f64> = HashMap::new();
    let mut slice_end: HashMap<(u64, u64), f64> = HashMap::new();
    let mut open: HashMap<(u64, u64), Vec<String>> = HashMap::new();
    for e in events {
        let ph = e["ph"].as_str().unwrap_or_else(|| panic!("no ph: {e}"));
        let pid = e["pid"].as_u64().unwrap_or_else(|| panic!("no pid: {e}"));
        let tid = e["tid"].as_u64().unwrap_or_else(|| panic!("no tid: {e}"));
        let name = e["name"].as_str().unwrap_or_else(|| panic!("no name: {e}"));
        by_ph.entry(ph.to_string()).or_default().push(e.clone());
        if ph == "M" {
            let n = e["args"]["name"].as_str();
            assert!(
                n.is_some_and(|n| !n.is_empty()),
                "metadata without a name: {e}"
            );
            match name {
                "process_name" => process_names.insert(pid),
                "thread_name" => thread_names.insert((pid, tid)),
                other => panic!("unexpected metadata {other}: {e}"),
            };
            continue;
        }
        let ts = e["ts"].as_f64().unwrap_or_else(|| panic!("no ts: {e}"));
        assert!(ts >= 0.0, "{e}");
        used.insert((pid, tid));
        let track = match (ph, e["s"].as_str()) {
            ("i", Some("g")) => "global".to_string(),
            ("i", Some("p")) => format!("{pid}"),
            _ => format!("{pid}/{tid}"),
        };
        let prev = last_ts.insert(track.clone(), ts).unwrap_or(f64::MIN);
        assert!(
            ts >= prev,
            "timestamps go back on track {track}: {prev} then {e}"
        );
        match ph {
            "X" => {
                let dur = e["dur"]
                    .as_f64()
                    .unwrap_or_else(|| panic!("X without dur: {e}"));
                assert!(dur >= 0.0, "{e}");
                let end = slice_end.entry((pid, tid)).or_insert(f64::MIN);
                assert!(
                    ts >= *end,
                    "slices overlap on {pid}/{tid}: ends {end}, then {e}"
                );
                *end = ts + dur;
            }
            "B" => open.entry((pid, tid)).or_default().push(name.to_string()),
            "E" => {
                let top = open.get_mut(&(pid, tid)).and_then(Vec::pop);
                assert!(top.is_some(), "E without B: {e}");
            }
            "i" | "I" => {
                let s = e["s"].as_str().unwrap_or("t");
                assert!(["t", "p", "g"].contains(&s), "{e}");
            }
            other => panic!("unexpected phase {other}: {e}"),
        }
    }
    for (k, v) in &open {
        assert!(v.is_empty(), "unbalanced B/E on {k:?}: {v:?}");
    }
    for (pid, tid) in &used {
        assert!(process_names.contains(pid), "no process_name for pid {pid}");
        assert!(
            thread_names.contains(&(*pid, *tid)),
            "no thread_name for {pid}/{tid}"
        );
    }
    by_ph
}

fn perfetto_trace_follows_the_format_rules() {
    let dir = scratch("perfetto");
    let out = dir.join("trace.json");
    let o = vmi(&["report", FIXTURE, "--perfetto", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let trace: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).expect("JSON");
    let by_ph = validate_trace(&trace);
    assert_eq!(by_ph["X"].len(), 20, "one slice per syscall record");
    // 11 process events
    assert_eq!(by_ph["i"].len(), 11);
    assert_eq!(trace["otherData"]["position_unit"], "icount");

    let open = by_ph["X"]
        .iter()
        .find(|e| e["args"]["filename"] == "/etc/nonexistent")
        .unwrap();
    assert_eq!(open["name"], "openat");
    assert_eq!(open["ts"], 13000);
    assert_eq!(open["args"]["errno"], "ENOENT");
    assert_eq!(open["args"]["ret"], -2);
    let exec = by_ph["i"]
        .iter()
        .find(|e| e["name"] == "exec /bin/ls")
        .unwrap();
    assert_eq!(
        exec["args"]["argv"],
        serde_json::json!(["ls", "-l", "/tmp"])
    );
    let names: Vec<&str> = by_ph["M"]
        .iter()
        .filter(|e| e["name"] == "process_name")
        .map(|e| e["args"]["name"].as_str().unwrap())
        .collect();
    for n in [
        "bash (100)",
        "ls (101)",
        "python3 (102)",
        "cron (200)",
        "sleep (101)",
    ] {
        assert!(names.contains(&n), "{n} not in {names:?}");
    }
}

fn perfetto_tracks_stay_well_formed_when_positions_go_back() {
    let dir = scratch("perfetto-back");
    let log = write(
        &dir,
        "back.jsonl",
        concat!(
            r#"{"type":"syscall","pid":5,"tid":5,"comm":"a","nr":0,"name":"read","args":{},"ret":0,"icount":100}"#,
            "\n",
            r#"{"type":"syscall","pid":5,"tid":5,"comm":"a","nr":0,"name":"read","args":{},"ret":0,"icount":100}"#,
            "\n",
            r#"{"type":"process_end","pid":5,"tid":5,"comm":"a","exit_code":0,"icount":50}"#,
            "\n",
            r#"{"type":"syscall","pid":6,"tid":7,"comm":"b","nr":0,"name":"read","args":{},"ret":0}"#,
            "\n",
        ),
    );
    let out = dir.join("trace.json");
    let o = vmi(&[
        "report",
        log.to_str().unwrap(),
        "--perfetto",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let trace: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    let by_ph = validate_trace(&trace);
    assert_eq!(by_ph["X"][1]["ts"], 101);
    assert_eq!(by_ph["X"][1]["args"]["position_clamped"], true);
    assert_eq!(by_ph["i"][0]["ts"], 102);
}

/// Runs headless Chromium with `args` and the flags that keep it offline and quiet, with
/// a time limit; returns (success, stdout, stderr).
fn run_chromium(browser: &Path, args: &[String]) -> (bool, String, String) {
    let profile = scratch(&format!("chromium-profile-{}", args.len()));
    let mut child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1280,800",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start chromium");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("chromium did not finish in 90 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let o = child.wait_with_output().unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn console_errors(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.contains("CONSOLE") || l.contains("Uncaught"))
        .collect()
}

/// Width and height from a PNG's IHDR chunk.
fn png_size(png: &[u8]) -> (u32, u32) {
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    assert_eq!(&png[12..16], b"IHDR");
    let be = |b: &[u8]| u32::from_be_bytes(b.try_into().unwrap());
    (be(&png[16..20]), be(&png[20..24]))
}

fn html_is_one_self_contained_file_that_renders_in_a_browser() {
    let dir = scratch("html");
    // The fixture, plus a process whose strings try to break out of the page's script.
    let mut log = std::fs::read_to_string(FIXTURE).unwrap();
    log.push('\n');
    log.push_str(concat!(
        r#"{"type":"process_start","pid":300,"tid":300,"ppid":1,"comm":"</script><b>x","icount":70000}"#,
        "\n",
        r#"{"type":"syscall","pid":300,"tid":300,"comm":"</script><b>x","nr":257,"name":"openat","args":{"dfd":-100,"filename":"<!--</script><img src=x onerror=alert(1)>","flags":0,"mode":0},"ret":-2,"icount":71000}"#,
        "\n",
    ));
    let log = write(&dir, "html.jsonl", &log);
    let html = dir.join("report.html");
    let o = vmi(&[
        "report",
        log.to_str().unwrap(),
        "--html",
        html.to_str().unwrap(),
        "--keep",
        "3",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let page = std::fs::read_to_string(&html).unwrap();

    // Self-contained: nothing is fetched. (The SVG namespace URI is a name, not a fetch.)
    for bad in [
        "<link", "src=\"", "src='", "@import", "url(", "https://", "<iframe",
    ] {
        assert!(!page.contains(bad), "page contains {bad:?}");
    }
    assert_eq!(page.matches("http://").count(), 1, "only the SVG namespace");
    assert_eq!(page.matches("</script>").count(), 2, "guest text escaped");
    assert!(!page.contains("<img"));

    // Without chromium the trial is reported as ignored, naming this part.
    let Some(browser) = have(Browser, "the browser part") else {
        return;
    };
    let url = format!("file://{}", html.display());

    // The screenshot: right size, and not a blank page.
    let shot = dir.join("shot.png");
    let (ok, _, err) = run_chromium(
        &browser,
        &[format!("--screenshot={}", shot.display()), url.clone()],
    );
    assert!(ok, "chromium failed:\n{err}");
    assert!(
        console_errors(&err).is_empty(),
        "{:#?}",
        console_errors(&err)
    );
    let png = std::fs::read(&shot).expect("screenshot written");
    assert_eq!(png_size(&png), (1280, 800));
    // A uniform 1280x800 screenshot compresses to a few KB; this page is text and lanes.
    assert!(
        png.len() > 30_000,
        "screenshot looks blank: {} bytes",
        png.len()
    );

    // The DOM after the script ran, with pid 101 selected as if clicked: its lane is
    // highlighted and its calls are listed (the last 3 of 6 kept, and said so).
    let (ok, dom, err) = run_chromium(
        &browser,
        &["--dump-dom".to_string(), format!("{url}#pid=101")],
    );
    assert!(ok, "chromium failed:\n{err}");
    assert!(
        console_errors(&err).is_empty(),
        "{:#?}",
        console_errors(&err)
    );
    assert!(
        dom.contains("data-ready=\"1\""),
        "the script did not finish:\n{dom}"
    );
    assert_eq!(
        dom.matches(" data-pid=").count(),
        10,
        "one lane per process:\n{dom}"
    );
    assert!(
        dom.contains("class=\"row selected\" data-id=\"3\" data-pid=\"101\""),
        "{dom}"
    );
    assert!(dom.contains("the last 3 of 6 calls"), "{dom}");
    assert_eq!(dom.matches("<tr class=\"call\">").count(), 3);
    assert!(dom.contains("EACCES"), "{dom}");
    assert!(dom.contains("ls -l /tmp  (/bin/ls)"), "{dom}");
    // The hostile strings are text, not markup.
    assert!(dom.contains("&lt;/script&gt;&lt;b&gt;x"), "{dom}");
    assert!(!dom.contains("<img"), "{dom}");
}

/// A fork-heavy log: many short processes, each opening its own files. What is kept is
/// bounded over all processes ([`Limits::files_total`], [`Limits::recent_total`]), not
/// per process times processes; everything is still counted.
fn many_processes_stay_within_the_budgets() {
    use vmi::report::{analyse, reader::Warnings, summary::Limits};
    let mut log = String::new();
    let (procs, opens) = (3_000u32, 10u32);
    for pid in 100..100 + procs {
        log.push_str(&format!(
            "{{\"type\":\"process_start\",\"pid\":{pid},\"tid\":{pid},\"ppid\":1,\"comm\":\"sh\",\"kernel_thread\":false}}\n"
        ));
        for i in 0..opens {
            log.push_str(&format!(
                "{{\"type\":\"syscall\",\"pid\":{pid},\"tid\":{pid},\"comm\":\"sh\",\"nr\":257,\"name\":\"openat\",\"args\":{{\"dfd\":-100,\"filename\":\"/f/{pid}/{i}\",\"flags\":0,\"mode\":0}},\"ret\":3}}\n"
            ));
        }
        log.push_str(&format!(
            "{{\"type\":\"process_end\",\"pid\":{pid},\"tid\":{pid},\"ppid\":1,\"comm\":\"sh\",\"exit_code\":0}}\n"
        ));
    }
    let limits = Limits {
        recent_per_process: 5,
        files_total: 10_000,
        recent_total: 4_000,
        ..Limits::default()
    };
    let mut warnings = Warnings::new(limits.warnings, false);
    let s = analyse(
        log.as_bytes(),
        "forks",
        limits,
        &mut warnings,
        None::<&mut vmi::report::perfetto::TraceWriter<Vec<u8>>>,
    )
    .unwrap();
    assert_eq!(s.processes.len(), procs as usize);
    let kept: usize = s.processes.iter().map(|p| p.files.len()).sum();
    let dropped: u64 = s.processes.iter().map(|p| p.files_dropped).sum();
    assert_eq!(kept, 10_000, "files kept up to the budget");
    assert_eq!(
        kept as u64 + dropped,
        u64::from(procs * opens),
        "the rest counted"
    );
    let recent: usize = s.processes.iter().map(|p| p.recent.len()).sum();
    assert_eq!(recent, 4_000, "recent calls up to the budget");
    assert!(
        s.processes.iter().all(|p| p.syscalls == u64::from(opens)),
        "every call counted"
    );
}

fn memory_stays_bounded_on_a_long_log() {
    use vmi::report::{analyse, perfetto::TraceWriter, reader::Warnings, summary::Limits};
    // 60000 calls over 3 processes, a garbage line every 1000 lines, positions spread
    // far beyond the density buckets' first width.
    let mut log = String::new();
    for i in 0..60_000u64 {
        let pid = 10 + i % 3;
        log.push_str(&format!(
            r#"{{"type":"syscall","pid":{pid},"tid":{pid},"comm":"p{pid}","nr":0,"name":"read","args":{{"fd":{i}}},"ret":{r},"icount":{ic}}}"#,
            r = if i % 7 == 0 { -11 } else { 1 },
            ic = 1_000 + i * 977
        ));
        log.push('\n');
        if i % 1000 == 999 {
            log.push_str("garbage\n");
        }
    }
    let limits = Limits {
        recent_per_process: 5,
        density_buckets: 50,
        warnings: 10,
        ..Limits::default()
    };
    let mut warnings = Warnings::new(limits.warnings, false);
    let mut trace = TraceWriter::new(Vec::new()).unwrap();
    let s = analyse(
        log.as_bytes(),
        "long",
        limits,
        &mut warnings,
        Some(&mut trace),
    )
    .unwrap();
    assert_eq!(s.syscalls.total, 60_000);
    assert_eq!(s.warnings.count, 60);
    assert_eq!(s.warnings.first.len(), 10);
    assert_eq!(s.processes.len(), 3);
    for p in &s.processes {
        assert_eq!(p.recent.len(), 5, "recent calls capped");
        assert_eq!(p.recent.back().unwrap().position, p.last_seen);
        assert_eq!(p.density.len(), 50, "density buckets fixed");
        assert_eq!(
            p.density.iter().map(|&d| u64::from(d)).sum::<u64>(),
            p.syscalls
        );
        assert_eq!(p.top_syscalls[0].failed, p.failed_syscalls);
    }
    let last = s.last_position.unwrap();
    let d = s.density;
    assert!(
        d.origin + d.width * d.buckets as u64 > last,
        "buckets cover the run: {d:?}"
    );
    assert!(
        d.origin + d.width * (d.buckets as u64) / 2 <= last,
        "and not twice over: {d:?}"
    );
    assert_eq!(s.syscalls.errors[0].name, "EAGAIN");
    let trace: Value = serde_json::from_slice(&trace.finish(&s).unwrap()).unwrap();
    assert_eq!(validate_trace(&trace)["X"].len(), 60_000);
}

/// A call the plugin could not attach to a thread (pid 0, tid 0: made before the kernel
/// was found, under KPTI) is counted, and not given to the idle task as a process.
fn a_call_without_a_caller_is_not_the_idle_tasks() {
    let (_, log) = log_of(
        "unattributed",
        &[
            r#"{"type":"run_start","version":"0.1.0","target":"i386","plugin_api":4,"vcpus":1}"#,
            r#"{"type":"syscall","pid":0,"tid":0,"comm":"","nr":45,"name":"brk","args":{"brk":0},"ret":151957504,"seq":0}"#,
            r#"{"type":"kernel_ready","group":"g","kaslr_slide":"0x0","page_offset":"0xc0000000","kpti":true,"banner_matches":true}"#,
            r#"{"type":"process_start","pid":1,"tid":1,"ppid":0,"comm":"init","kernel_thread":false,"already_running":true}"#,
            r#"{"type":"syscall","pid":1,"tid":1,"comm":"init","nr":45,"name":"brk","args":{"brk":151959680},"ret":151959680,"seq":1}"#,
        ],
    );
    let log = log.to_str().unwrap();
    let s = json_report(log);
    assert_eq!(s["syscalls"]["total"], 2, "{}", s["syscalls"]);
    assert_eq!(s["syscalls"]["unattributed"], 1, "{}", s["syscalls"]);
    assert_eq!(process(&s, 1, "init")["syscalls"], 1);
    assert!(
        s["processes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["pid"] != 0),
        "{}",
        s["processes"]
    );
    let text = stdout(&vmi(&["report", log]));
    assert!(
        text.contains("  1 by a caller the log does not name (pid 0: the kernel was not readable)"),
        "{text}"
    );
}

/// A process killed by a signal shows the signal, and the calls it left blocked (written
/// as `abandoned` after its `process_end`) stay its own: no second process of that pid.
fn a_killed_process_keeps_its_abandoned_calls_and_shows_its_signal() {
    let (dir, log) = log_of(
        "killed",
        &[
            r#"{"type":"run_start","version":"0.1.0","target":"x86_64","plugin_api":4,"vcpus":1}"#,
            r#"{"type":"process_start","pid":1,"tid":1,"ppid":0,"comm":"init","kernel_thread":false,"already_running":true}"#,
            r#"{"type":"process_start","pid":90,"tid":90,"ppid":1,"comm":"threads","kernel_thread":false}"#,
            r#"{"type":"syscall","pid":90,"tid":90,"comm":"threads","nr":231,"name":"set_robust_list","args":{"head":"0x0","len":24},"ret":0,"seq":1}"#,
            r#"{"type":"process_end","pid":90,"tid":90,"ppid":1,"comm":"threads","signal":15}"#,
            r#"{"type":"syscall","pid":90,"tid":91,"comm":"threads","nr":34,"name":"pause","args":{},"ret":null,"outcome":"abandoned","seq":2}"#,
            r#"{"type":"syscall","pid":90,"tid":90,"comm":"threads","nr":34,"name":"pause","args":{},"ret":null,"outcome":"abandoned","seq":3}"#,
        ],
    );
    let log = log.to_str().unwrap();
    let s = json_report(log);
    let of_90: Vec<&Value> = s["processes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["pid"] == 90)
        .collect();
    assert_eq!(of_90.len(), 1, "{of_90:?}");
    assert_eq!(of_90[0]["syscalls"], 3);
    assert_eq!(of_90[0]["threads"], 2);
    assert_eq!(of_90[0]["signal"], 15);
    let text = stdout(&vmi(&["report", log]));
    let row = text
        .lines()
        .find(|l| l.contains("─ threads"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(row.contains(" sig15 "), "{row}");
    let trace = dir.join("trace.json");
    let o = vmi(&["report", log, "--perfetto", trace.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let trace = std::fs::read_to_string(&trace).unwrap();
    assert!(
        trace.contains(r#""name":"process_end (signal 15)""#),
        "{trace}"
    );
}
