//! The test lab from Rust: boot a real Debian guest with the plugin through `lab/lab`,
//! and read back both sides of the same run — the plugin's event log and the guest's own
//! account of itself (the `@@VMI` lines its scenario prints on the serial console).

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

pub mod checks;
mod harness;

// Each test file uses some of these.
#[allow(unused_imports)]
pub use harness::{
    Prereq, ci, guest, guest_dbg, have, manual_trial, need, need_for, part_skipped, run, trial,
};

/// The QEMU executable `name` (`qemu-system-x86_64`, `qemu-system-i386`) of the QEMU the
/// lab runs: the system's, or with `VMI_QEMU=11` the lab's QEMU 11.1 (`lab/lab qemu 11`).
pub fn qemu_binary(name: &str) -> PathBuf {
    match std::env::var("VMI_QEMU")
        .ok()
        .filter(|v| !v.is_empty() && v != "10")
    {
        None => PathBuf::from(name),
        Some(version) => PathBuf::from(lab(["qemu", &version])).join(name),
    }
}

/// Runs `lab/lab ARGS`, which must succeed; its output, trimmed (most lab commands print
/// one path).
pub fn lab<S: AsRef<std::ffi::OsStr>>(args: impl IntoIterator<Item = S>) -> String {
    let args: Vec<S> = args.into_iter().collect();
    let out = Command::new(root().join("lab/lab"))
        .args(&args)
        .output()
        .expect("run lab/lab");
    let shown: Vec<_> = args.iter().map(|a| a.as_ref().to_string_lossy()).collect();
    assert!(
        out.status.success(),
        "lab/lab {}: {}",
        shown.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The lab's download cache: `$VMI_CACHE` or `~/.cache/vmi`, as `lab/lab` uses it.
pub fn cache() -> PathBuf {
    std::env::var_os("VMI_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/vmi")
        })
}

/// Fetches (if needed) a lab kernel and returns its `uname -r`.
pub fn kernel_release(kernel: &str) -> String {
    let dir = PathBuf::from(lab(["kernel", kernel]));
    std::fs::read_to_string(dir.join("release"))
        .expect("release file")
        .trim()
        .to_string()
}

/// The kernelinfo file of a lab kernel as apt resolves it now (`lab/lab conf`): the
/// checked-in one, or one generated for a newer Debian kernel.
pub fn lab_conf(kernel: &str) -> PathBuf {
    PathBuf::from(lab(["conf", kernel]))
}

/// Why the release build of the plugin would test old code, if it would: a source it is
/// built from changed after it was linked. `cargo test` builds the library the tests link
/// against, not the `libvmi.so` the guests load.
fn stale_plugin() -> Option<String> {
    if std::env::var_os("VMI_PLUGIN").is_some() {
        return None;
    }
    let built = std::fs::metadata(plugin_path()).ok()?.modified().ok()?;
    let mut newest: Option<(std::time::SystemTime, PathBuf)> = None;
    let mut todo: Vec<PathBuf> = ["src", "build.rs", "Cargo.toml", "Cargo.lock", "prototypes"]
        .iter()
        .map(|p| root().join(p))
        .collect();
    while let Some(path) = todo.pop() {
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            if let Ok(entries) = std::fs::read_dir(&path) {
                todo.extend(entries.flatten().map(|e| e.path()));
            }
        } else if let Ok(t) = meta.modified()
            && newest.as_ref().is_none_or(|(n, _)| t > *n)
        {
            newest = Some((t, path));
        }
    }
    let (changed, path) = newest?;
    (changed > built).then(|| {
        format!(
            "{} is older than {}: run cargo build --release",
            plugin_path().display(),
            path.display()
        )
    })
}

/// The plugin under test: `$VMI_PLUGIN` or the release build.
pub fn plugin_path() -> PathBuf {
    std::env::var_os("VMI_PLUGIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/release/libvmi.so"))
}

/// How to boot.
#[derive(Debug, Clone, Default)]
pub struct Boot {
    /// `amd64-6.1`, `amd64-6.12` or `i386-6.1`.
    pub kernel: &'static str,
    /// A script in `lab/scenarios/`.
    pub scenario: &'static str,
    /// Keep KASLR on (boots the bzImage).
    pub kaslr: bool,
    /// vCPUs.
    pub smp: u32,
    /// `-cpu` model, e.g. `Skylake-Client` for KPTI.
    pub cpu: Option<&'static str>,
    /// Extra `key=value` plugin arguments.
    pub plugin_args: Vec<String>,
    /// One host thread runs every vCPU (`-accel tcg,thread=single`), as under
    /// record/replay.
    pub single_thread: bool,
    /// QEMU's `-icount` value (`shift=5`): deterministic time, one host thread for all
    /// vCPUs.
    pub icount: Option<&'static str>,
    /// Another plugin built on vmi to load instead of `libvmi.so`.
    pub plugin: Option<PathBuf>,
    /// More `-plugin SO,ARGS` after vmi's (plugins on vmi's C API).
    pub also: Vec<String>,
    /// Give the plugin no `conf=`: it builds the kernelinfo from the guest's memory.
    pub no_conf: bool,
}

/// Everything one guest run left behind.
#[derive(Debug)]
pub struct Run {
    /// The run directory (console.log, vmi.jsonl, cmdline, ...).
    pub dir: PathBuf,
    /// The serial console.
    pub console: String,
    /// QEMU's exit status.
    pub status: i32,
    /// The event log, one JSON value per line.
    pub events: Vec<Value>,
    /// The guest's own account.
    pub truth: Truth,
}

impl Run {
    /// The one line of QEMU's stderr (where the plugin's messages go) that contains
    /// `text`; fails, showing the whole stderr, unless there is exactly one.
    pub fn stderr_line(&self, text: &str) -> String {
        let stderr = std::fs::read_to_string(self.dir.join("stderr.log")).unwrap();
        let lines: Vec<&str> = stderr.lines().filter(|l| l.contains(text)).collect();
        assert_eq!(lines.len(), 1, "one line with {text:?} in:\n{stderr}");
        lines[0].to_string()
    }

    /// Records of one type, in log order.
    pub fn of_type(&self, ty: &str) -> Vec<&Value> {
        self.events.iter().filter(|e| e["type"] == ty).collect()
    }

    /// QEMU exited normally and the scenario printed its end marker.
    pub fn assert_finished(&self) {
        let dir = self.dir.display();
        assert_eq!(self.status, 0, "QEMU exit status; see {dir}");
        assert!(self.truth.complete, "scenario did not finish: {dir}");
    }

    /// The single `run_end` record.
    pub fn run_end(&self) -> &Value {
        let ends = self.of_type("run_end");
        assert_eq!(ends.len(), 1, "one run_end in {}", self.dir.display());
        ends[0]
    }

    /// A number of the `run_end` record (0 when absent).
    pub fn run_end_count(&self, field: &str) -> u64 {
        self.run_end()[field].as_u64().unwrap_or(0)
    }
}

/// Boots a guest and waits for it to power off.
pub fn boot(spec: &Boot) -> Run {
    let dir = tempdir(&format!("{}-{}", spec.kernel, spec.scenario));
    let mut cmd = Command::new(root().join("lab/lab"));
    cmd.args(["boot", spec.kernel, spec.scenario, "--out"])
        .arg(&dir);
    if spec.kaslr {
        cmd.arg("--kaslr");
    }
    if spec.smp > 1 {
        cmd.args(["--smp", &spec.smp.to_string()]);
    }
    if let Some(cpu) = spec.cpu {
        cmd.args(["--cpu", cpu]);
    }
    if spec.single_thread {
        cmd.args(["--accel", "tcg,thread=single"]);
    }
    if let Some(icount) = spec.icount {
        cmd.args(["--icount", icount]);
    }
    for also in &spec.also {
        cmd.args(["--also", also]);
    }
    if spec.no_conf {
        cmd.arg("--no-conf");
    }
    cmd.arg("--").args(&spec.plugin_args);
    cmd.env(
        "VMI_PLUGIN",
        spec.plugin.clone().unwrap_or_else(plugin_path),
    );
    let out = cmd.output().expect("run lab/lab");
    assert!(
        out.status.success(),
        "lab/lab boot failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    load(&dir)
}

/// Reads back the run `lab/lab boot` left in `dir`.
pub fn load(dir: &Path) -> Run {
    let console = read_lossy(&dir.join("console.log"));
    let status = std::fs::read_to_string(dir.join("exit-status"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(-1);
    let log = dir.join("vmi.jsonl");
    let events = parse_jsonl(&log);
    if !events.is_empty() {
        assert_report_reads(&log);
    }
    let truth = Truth::parse(&console);
    Run {
        dir: dir.to_path_buf(),
        console,
        status,
        events,
        truth,
    }
}

/// `vmi report` reads the log `path` without a warning: the reader and the writer agree on
/// every record type and field the run wrote.
pub fn assert_report_reads(path: &Path) {
    use vmi::report::{analyse, perfetto::TraceWriter, reader::Warnings, summary::Limits};
    let file = std::fs::File::open(path).expect("open the log");
    let mut warnings = Warnings::new(5, false);
    let summary = analyse(
        std::io::BufReader::new(file),
        &path.display().to_string(),
        Limits::default(),
        &mut warnings,
        None::<&mut TraceWriter<Vec<u8>>>,
    );
    assert!(summary.is_ok(), "vmi report fails on {}", path.display());
    assert_eq!(
        warnings.count(),
        0,
        "vmi report warns on {}: {:?}",
        path.display(),
        warnings.kept()
    );
}

/// A recording made by `lab/lab record` (QEMU record/replay, without the plugin).
#[derive(Debug, Clone)]
pub struct Recording {
    /// The recording directory (cmdline, console.log, meta, replay.bin, kernel, initrd).
    pub dir: PathBuf,
    /// Its `meta` file, key by key.
    pub meta: BTreeMap<String, String>,
    /// The recorded console: the guest's own account, ground truth for every replay.
    pub console: String,
}

/// Records `spec.kernel`/`spec.scenario` once, cached under `$VMI_CACHE/recordings/`
/// (keyed by kernel package, initramfs, QEMU version and command line). Only `kernel`,
/// `scenario` and `kaslr` of `spec` apply: recordings have one vCPU and no plugin.
pub fn record(spec: &Boot) -> Recording {
    let mut cmd = Command::new(root().join("lab/lab"));
    cmd.args(["record", spec.kernel, spec.scenario]);
    if spec.kaslr {
        cmd.arg("--kaslr");
    }
    let out = cmd.output().expect("run lab/lab record");
    assert!(
        out.status.success(),
        "lab/lab record failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let meta = read_lossy(&dir.join("meta"))
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let console = read_lossy(&dir.join("console.log"));
    Recording { dir, meta, console }
}

/// How a replay ended, as `lab/lab replay` judged it.
#[derive(Debug)]
pub struct Replay {
    /// The run; its `truth` comes from the recording's console.
    pub run: Run,
    /// `ok`, or why not (`diverged: ...`, `timed out ...`).
    pub verdict: String,
    /// Wall-clock seconds of the replay.
    pub seconds: f64,
}

/// Replays `rec` with the plugin (and `extra` lab options before `--`, e.g. `--stall 5`).
/// Does not assert success: the caller looks at `verdict`.
pub fn replay(rec: &Recording, extra: &[&str], plugin_args: &[String]) -> Replay {
    let dir = tempdir(&format!(
        "replay-{}",
        rec.dir.file_name().unwrap_or_default().to_string_lossy()
    ));
    let mut cmd = Command::new(root().join("lab/lab"));
    cmd.arg("replay")
        .arg(&rec.dir)
        .arg("--out")
        .arg(&dir)
        .args(extra)
        .arg("--")
        .args(plugin_args)
        .env("VMI_PLUGIN", plugin_path());
    let out = cmd.output().expect("run lab/lab replay");
    let verdict = read_lossy(&dir.join("verdict")).trim().to_string();
    assert!(
        !verdict.is_empty(),
        "lab/lab replay gave no verdict: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        out.status.success(),
        verdict == "ok",
        "lab/lab replay status vs verdict {verdict:?}"
    );
    let console = read_lossy(&dir.join("console.log"));
    let status = std::fs::read_to_string(dir.join("exit-status"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(-1);
    let seconds = std::fs::read_to_string(dir.join("seconds"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(f64::NAN);
    let log = dir.join("vmi.jsonl");
    let events = parse_jsonl(&log);
    if !events.is_empty() {
        assert_report_reads(&log);
    }
    let truth = Truth::parse(&rec.console);
    Replay {
        run: Run {
            dir,
            console,
            status,
            events,
            truth,
        },
        verdict,
        seconds,
    }
}

/// A fresh directory for one run, kept after the test for inspection.
pub fn tempdir(label: &str) -> PathBuf {
    let base = std::env::var_os("VMI_TEST_RUNS")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("vmi-test-runs"));
    std::fs::create_dir_all(&base).expect("create run base");
    for n in 0.. {
        let dir = base.join(format!("{label}-{}-{n}", std::process::id()));
        if std::fs::create_dir(&dir).is_ok() {
            return dir;
        }
    }
    unreachable!()
}

pub fn read_lossy(path: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).into_owned()
}

/// Parses a JSON Lines log; every line must be a JSON object with a `type`.
pub fn parse_jsonl(path: &Path) -> Vec<Value> {
    read_lossy(path)
        .lines()
        .enumerate()
        .map(|(i, line)| {
            let v: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{}:{}: {e}: {line}", path.display(), i + 1));
            assert!(
                v["type"].is_string(),
                "{}:{}: no type",
                path.display(),
                i + 1
            );
            v
        })
        .collect()
}

/// One process as `/proc/<pid>/stat` shows it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ProcStat {
    /// Process id.
    pub pid: u32,
    /// `comm`, without the parentheses.
    pub comm: String,
    /// One-letter state.
    pub state: char,
    /// Parent's pid.
    pub ppid: u32,
}

/// The guest's own view, from its `@@VMI` console lines.
#[derive(Debug, Default)]
pub struct Truth {
    /// `uname -r`.
    pub release: Option<String>,
    /// Every process at the moment of the dump.
    pub procs: Vec<ProcStat>,
    /// pid → its threads' tids.
    pub tasks: BTreeMap<u32, BTreeSet<u32>>,
    /// pid → `/proc/<pid>/cmdline`, its arguments joined by spaces (user processes).
    pub cmdlines: BTreeMap<u32, String>,
    /// `/proc/modules` lines, split into words.
    pub modules: Vec<Vec<String>>,
    /// pid → `/proc/<pid>/maps` lines.
    pub maps: BTreeMap<u32, Vec<String>>,
    /// pid → (fd → target).
    pub fds: BTreeMap<u32, BTreeMap<u32, String>>,
    /// symbol → address from `/proc/kallsyms`.
    pub kallsyms: BTreeMap<String, u64>,
    /// Whether the scenario reached its end marker.
    pub complete: bool,
    /// Other marks: `@@VMI <name> <value>` (e.g. `chosen 89`), the last of each name.
    pub marks: BTreeMap<String, String>,
    /// Every mark, in console order: (name, value).
    pub all_marks: Vec<(String, String)>,
}

impl Truth {
    /// Parses the console. Lines may be interleaved with kernel messages, so only
    /// well-formed `@@VMI` lines count.
    pub fn parse(console: &str) -> Truth {
        let mut t = Truth::default();
        for line in console.lines() {
            let Some(at) = line.find("@@VMI ") else {
                continue;
            };
            let rest = line[at + 6..].trim_end_matches('\r');
            let (kind, body) = rest.split_once(' ').unwrap_or((rest, ""));
            match kind {
                "uname" => t.release = Some(body.to_string()),
                "stat" => {
                    if let Some(p) = parse_stat(body) {
                        t.procs.push(p);
                    }
                }
                "task" => {
                    let mut w = body.split_whitespace().filter_map(|x| x.parse().ok());
                    if let (Some(pid), Some(tid)) = (w.next(), w.next()) {
                        t.tasks.entry(pid).or_default().insert(tid);
                    }
                }
                "cmdline" => {
                    if let Some((pid, args)) = body.split_once(' ')
                        && let Ok(pid) = pid.parse()
                    {
                        t.cmdlines.insert(pid, args.to_string());
                    }
                }
                "module" => t
                    .modules
                    .push(body.split_whitespace().map(String::from).collect()),
                "maps" => {
                    if let Some((pid, l)) = body.split_once(' ')
                        && let Ok(pid) = pid.parse()
                    {
                        t.maps.entry(pid).or_default().push(l.to_string());
                    }
                }
                "fd" => {
                    let mut w = body.splitn(3, ' ');
                    if let (Some(pid), Some(fd), Some(target)) = (w.next(), w.next(), w.next())
                        && let (Ok(pid), Ok(fd)) = (pid.parse(), fd.parse())
                    {
                        t.fds.entry(pid).or_default().insert(fd, target.to_string());
                    }
                }
                "kallsyms" => {
                    let w: Vec<&str> = body.split_whitespace().collect();
                    if let [addr, _, name] = w[..]
                        && let Ok(a) = u64::from_str_radix(addr, 16)
                    {
                        t.kallsyms.insert(name.to_string(), a);
                    }
                }
                "end" => t.complete = true,
                other => {
                    t.marks.insert(other.to_string(), body.to_string());
                    t.all_marks.push((other.to_string(), body.to_string()));
                }
            }
        }
        t
    }
}

impl Truth {
    /// The pid a scenario marked with `vmi_mark <name> <pid>`.
    pub fn marks(&self, name: &str) -> u32 {
        self.marks
            .get(name)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no '{name}' mark on the console"))
    }
}

/// `pid (comm) state ppid ...`; comm may contain spaces and parentheses, so it runs to
/// the last `)`.
fn parse_stat(body: &str) -> Option<ProcStat> {
    let open = body.find(" (")?;
    let close = body.rfind(") ")?;
    let pid = body[..open].parse().ok()?;
    let comm = body[open + 2..close].to_string();
    let mut rest = body[close + 2..].split_whitespace();
    let state = rest.next()?.chars().next()?;
    let ppid = rest.next()?.parse().ok()?;
    Some(ProcStat {
        pid,
        comm,
        state,
        ppid,
    })
}

/// A trial of its own (in `tests/introspection.rs`).
pub fn stat_lines_with_odd_comms_parse() {
    let p = parse_stat("42 (a) b) c) S 7 42 42 0").unwrap();
    assert_eq!(p.comm, "a) b) c");
    assert_eq!((p.pid, p.state, p.ppid), (42, 'S', 7));
    assert!(parse_stat("garbage").is_none());
}
