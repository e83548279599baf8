//! The harness of the integration tests (libtest-mimic; `harness = false` in Cargo.toml):
//! each test file's `main` lists its trials and what each needs. A trial whose
//! prerequisite is missing is reported as *ignored* with the reason, never as passed:
//!
//! ```text
//! test amd64_61_nokaslr ... ignored (qemu-system-x86_64 not found; lab/lab setup installs it)
//! ```
//!
//! Where the prerequisite is required — `CI=true`, or the variable of its kind
//! (`VMI_REQUIRE_LAB=1`, `VMI_REQUIRE_SHARED=1`, `VMI_REQUIRE_DBG=1`,
//! `VMI_REQUIRE_BROWSER=1`) — a missing one is a failure with the same reason.
//!
//! Three ways to state a need:
//! * [`trial`]'s list: checked before the test runs;
//! * [`need`] / [`need_for`], inside a test, for a need found on the way (the trial ends
//!   there, ignored);
//! * [`have`] (or [`part_skipped`]) for an optional part: the rest runs, and a trial that
//!   passed but skipped a part is reported as ignored, naming the part.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::panic::{self, AssertUnwindSafe};
use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;

use libtest_mimic::{Arguments, Completion, Failed, Trial};

/// Something a test needs from the machine it runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prereq {
    /// `qemu-system-x86_64` runs (`lab/lab setup`).
    Qemu,
    /// The plugin under test exists: `$VMI_PLUGIN`, or the release build (which must
    /// not be older than its sources: that is a failure, not a skip).
    Plugin,
    /// A lab kernel, fetched into the cache if needed (`lab/lab kernel NAME`).
    Kernel(&'static str),
    /// The -dbg package's vmlinux of a lab kernel (`lab/lab dbg NAME`, ~800 MB download;
    /// the tests never fetch it).
    Dbg(&'static str),
    /// `../shared/`, the project's reference material.
    Shared,
    /// `pahole` (Debian package dwarves, installed by `lab/lab setup`).
    Pahole,
    /// Chromium, for the HTML report (`VMI_CHROMIUM` names another binary).
    Browser,
    /// A small tmpfs can be mounted (root), for a full disk.
    Tmpfs,
    /// The newest packaged kernel's unistd headers (`scripts/gen-prototypes.py
    /// --unistd`, from Debian unstable's linux-libc-dev).
    Unistd,
    /// The newest amd64 kernel image Debian has (`scripts/gen-prototypes.py
    /// --newest-image`, unstable's linux-binary-unsigned).
    NewestImage,
}

use Prereq::*;

/// What booting a guest of `kernel` with the plugin needs.
pub const fn guest(kernel: &'static str) -> [Prereq; 3] {
    [Qemu, Plugin, Kernel(kernel)]
}

/// What a guest test needs whose kernelinfo (`lab/lab conf`) is made with the kernel's
/// -dbg package: Debian's arm64 6.1, whose kallsyms has no data symbols.
pub const fn guest_dbg(kernel: &'static str) -> [Prereq; 4] {
    [Qemu, Plugin, Kernel(kernel), Dbg(kernel)]
}

/// A test named `name` that runs `f` once everything in `needs` is there.
pub fn trial(name: &str, needs: &[Prereq], f: impl FnOnce() + Send + 'static) -> Trial {
    let needs = needs.to_vec();
    Trial::ignorable_test(name, move || {
        PARTS.with(|p| p.borrow_mut().clear());
        let result = panic::catch_unwind(AssertUnwindSafe(|| {
            for p in needs {
                need(p);
            }
            f()
        }));
        let parts = PARTS.with(|p| p.take());
        match result {
            Ok(()) if parts.is_empty() => Ok(Completion::Completed),
            Ok(()) => Ok(Completion::ignored_with(parts.join("; "))),
            Err(payload) => match payload.downcast::<Stop>() {
                Ok(stop) => match *stop {
                    Stop::Skip(why) => Ok(Completion::ignored_with(why)),
                    Stop::Fail(why) => Err(why.into()),
                },
                Err(payload) => Err(failure(payload.as_ref())),
            },
        }
    })
}

/// Like [`trial`], but only run when asked (`-- --ignored` or `--include-ignored`), as
/// libtest's `#[ignore]`.
pub fn manual_trial(name: &str, f: impl FnOnce() + Send + 'static) -> Trial {
    trial(name, &[], f).with_ignored_flag(true)
}

/// Runs the trials with libtest's command line (filter, `--exact`, `--test-threads`,
/// `--list`, `--ignored`; `RUST_TEST_THREADS` too) and its closing `test result:` line,
/// and exits with its status.
pub fn run(trials: Vec<Trial>) -> ! {
    let mut args = Arguments::from_args();
    if args.test_threads.is_none() {
        args.test_threads = std::env::var("RUST_TEST_THREADS")
            .ok()
            .and_then(|n| n.parse().ok());
    }
    let default_hook = panic::take_hook();
    panic::set_hook(Box::new(move |info| {
        LOCATION.with(|l| *l.borrow_mut() = info.location().map(|l| l.to_string()));
        default_hook(info);
    }));
    libtest_mimic::run(&args, trials).exit()
}

/// The path `p` stands for (the kernel's cache directory, the -dbg vmlinux, `../shared`,
/// the program), or, if it is missing, the end of the running trial: ignored with the
/// reason, or failed where `p` is required.
pub fn need(p: Prereq) -> PathBuf {
    need_for("", p)
}

/// [`need`] for `what` (a part of the test, or why `p` is needed): its reason reads
/// `what: reason`.
pub fn need_for(what: &str, p: Prereq) -> PathBuf {
    match check(p) {
        Ok(path) => path,
        Err(why) => {
            let why = if what.is_empty() {
                why
            } else {
                format!("{what}: {why}")
            };
            match required(Some(p)) {
                Some(rule) => stop(Stop::Fail(missing(&rule, &why))),
                None => stop(Stop::Skip(why)),
            }
        }
    }
}

/// The path `p` stands for, or `None` if it is missing: then the part of the test that
/// needs it is skipped, and the trial, if the rest passes, is reported as ignored with
/// `what` and the reason. Where `p` is required, a missing `p` fails the trial.
pub fn have(p: Prereq, what: &str) -> Option<PathBuf> {
    match check(p) {
        Ok(path) => Some(path),
        Err(why) => match required(Some(p)) {
            Some(rule) => stop(Stop::Fail(missing(&rule, &format!("{what}: {why}")))),
            None => {
                PARTS.with(|parts| parts.borrow_mut().push(format!("{what} skipped: {why}")));
                None
            }
        },
    }
}

/// Records that `what`, a part of the running trial, could not run, for `why` (not a
/// missing prerequisite of the machine: e.g. a checked-in file older than Debian's
/// kernel). The trial is then reported as ignored; under `CI=true` it fails.
pub fn part_skipped(what: &str, why: &str) {
    if let Some(rule) = required(None) {
        stop(Stop::Fail(format!(
            "{rule}: a part that cannot run fails: {what}: {why}"
        )));
    }
    PARTS.with(|parts| parts.borrow_mut().push(format!("{what} skipped: {why}")));
}

/// How a missing prerequisite ends a trial: the payload [`need`] unwinds with.
enum Stop {
    /// Ignored, for this reason.
    Skip(String),
    /// Failed, for this reason.
    Fail(String),
}

/// Ends the running trial (through `trial`'s `catch_unwind`, without the panic hook: no
/// "panicked at" or backtrace for what is not a bug).
fn stop(how: Stop) -> ! {
    panic::resume_unwind(Box::new(how))
}

/// The failure message of a required prerequisite that is missing.
fn missing(rule: &str, why: &str) -> String {
    format!("{rule}: a missing prerequisite fails: {why}")
}

thread_local! {
    /// Parts of the running trial skipped so far.
    static PARTS: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
    /// Where the last panic on this thread happened, for the failure message.
    static LOCATION: RefCell<Option<String>> = const { RefCell::new(None) };
}

fn failure(payload: &(dyn std::any::Any + Send)) -> Failed {
    let msg = payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or("(panic without a message)");
    match LOCATION.with(|l| l.borrow_mut().take()) {
        Some(at) => format!("panicked at {at}:\n{msg}").into(),
        None => msg.into(),
    }
}

/// Whether this is a CI run: `CI=true`, as CI services set it.
pub fn ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

/// What makes a missing `p` (or, for `None`, any skipped part) a failure here, if
/// anything: `CI=true`, or the variable of its kind set to 1.
fn required(p: Option<Prereq>) -> Option<String> {
    if ci() {
        return Some("CI=true".to_string());
    }
    let var = match p? {
        Qemu | Plugin | Kernel(_) | Pahole | Tmpfs | Unistd | NewestImage => "VMI_REQUIRE_LAB",
        Shared => "VMI_REQUIRE_SHARED",
        Dbg(_) => "VMI_REQUIRE_DBG",
        Browser => "VMI_REQUIRE_BROWSER",
    };
    (std::env::var(var).as_deref() == Ok("1")).then(|| format!("{var}=1"))
}

/// Whether `p` is there: its path, or why not (one line, saying how to get it).
fn check(p: Prereq) -> Result<PathBuf, String> {
    match p {
        Qemu => runs(
            &super::qemu_binary("qemu-system-x86_64").to_string_lossy(),
            "--version",
        )
        .ok_or_else(|| "qemu-system-x86_64 not found; lab/lab setup installs it".to_string()),
        Plugin => {
            let path = super::plugin_path();
            if !path.exists() {
                return Err(format!(
                    "no plugin at {}; cargo build --release makes it",
                    path.display()
                ));
            }
            if let Some(why) = super::stale_plugin() {
                panic!("{why}");
            }
            Ok(path)
        }
        Kernel(name) => kernel(name),
        Unistd => newest("--unistd", "the newest kernel's unistd headers"),
        NewestImage => newest("--newest-image", "the newest kernel image"),
        Tmpfs => {
            let dir = std::env::temp_dir().join(format!("vmi-tmpfs-check-{}", std::process::id()));
            std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
            let mounted = Command::new("mount")
                .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
                .arg(&dir)
                .output()
                .is_ok_and(|o| o.status.success());
            if mounted {
                let _ = Command::new("umount").arg(&dir).status();
            }
            let _ = std::fs::remove_dir(&dir);
            mounted
                .then_some(dir)
                .ok_or_else(|| "cannot mount a tmpfs (needs root)".to_string())
        }
        Dbg(name) => {
            let dir = kernel(name)?;
            let release = std::fs::read_to_string(dir.join("release"))
                .map_err(|e| format!("{}/release: {e}", dir.display()))?;
            let path = dir
                .join("dbg/usr/lib/debug/boot")
                .join(format!("vmlinux-{}", release.trim()));
            if path.exists() {
                Ok(path)
            } else {
                Err(format!(
                    "no -dbg vmlinux of {}; lab/lab dbg {name} fetches it, ~800 MB",
                    release.trim()
                ))
            }
        }
        Shared => {
            let path = super::root().join("../shared");
            if !path.exists() {
                return Err(format!("{} is absent", path.display()));
            }
            // Present but unreadable is a failure, not a skip.
            if let Err(e) = std::fs::read_dir(&path) {
                panic!("{} is present but unreadable: {e}", path.display());
            }
            Ok(path)
        }
        Pahole => runs("pahole", "--version")
            .ok_or_else(|| "pahole not found; lab/lab setup installs it, package dwarves".into()),
        Browser => browser().ok_or_else(|| {
            "chromium not found; lab/lab setup installs it, or set VMI_CHROMIUM".into()
        }),
    }
}

/// `program arg` exits successfully.
fn runs(program: &str, arg: &str) -> Option<PathBuf> {
    let ok = Command::new(program)
        .arg(arg)
        .output()
        .is_ok_and(|o| o.status.success());
    ok.then(|| PathBuf::from(program))
}

/// The cache directory of lab kernel `name`, fetched by `lab/lab kernel` (once per test
/// binary; apt may need the network).
fn kernel(name: &'static str) -> Result<PathBuf, String> {
    static KERNELS: Mutex<BTreeMap<&str, Result<PathBuf, String>>> = Mutex::new(BTreeMap::new());
    let mut kernels = KERNELS.lock().unwrap_or_else(|e| e.into_inner());
    kernels
        .entry(name)
        .or_insert_with(|| {
            let out = Command::new(super::root().join("lab/lab"))
                .args(["kernel", name])
                .output()
                .map_err(|e| format!("cannot run lab/lab: {e}"))?;
            let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
            if out.status.success() && dir.join("vmlinux").exists() {
                return Ok(dir);
            }
            let stderr = String::from_utf8_lossy(&out.stderr);
            let last = stderr.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("");
            Err(format!(
                "no {name} kernel: lab/lab kernel {name} failed: {last}"
            ))
        })
        .clone()
}

/// Chromium: `$VMI_CHROMIUM`, or `chromium` / `chromium-browser` on `PATH`.
fn browser() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("VMI_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|d| ["chromium", "chromium-browser"].map(|n| d.join(n)))
        .find(|p| p.is_file())
}

/// What `scripts/gen-prototypes.py <flag>` fetches from Debian unstable (`what`), by the
/// path it prints.
fn newest(flag: &str, what: &str) -> Result<PathBuf, String> {
    let out = Command::new("python3")
        .arg(super::root().join("scripts/gen-prototypes.py"))
        .arg(flag)
        .output()
        .map_err(|e| format!("python3: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "cannot fetch {what}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}
