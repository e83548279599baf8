//! The plugin API's examples (`examples/`) and a crate made outside the repository, each
//! built and run on a lab guest, their output checked against the guest's own account of
//! the same run (the `api` scenario: strace of the opens and execs, strace's own maps).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Boot, Run, boot, guest, root, tempdir, trial};

fn main() {
    common::run(vec![
        trial(
            "file_monitor_matches_strace",
            &guest("amd64-6.1"),
            file_monitor_matches_strace,
        ),
        trial(
            "openat_counter_sees_every_traced_openat",
            &guest("amd64-6.1"),
            openat_counter_sees_every_traced_openat,
        ),
        trial(
            "process_recorder_matches_the_guest_maps",
            &guest("amd64-6.12"),
            process_recorder_matches_the_guest_maps,
        ),
        trial(
            "c_plugin_next_to_libvmi_matches_strace",
            &guest("amd64-6.1"),
            || c_plugin_next_to_libvmi_matches_strace("amd64-6.1", false),
        ),
        trial(
            "c_plugin_next_to_libvmi_matches_strace_arm64_kaslr",
            &guest("arm64-6.12"),
            || c_plugin_next_to_libvmi_matches_strace("arm64-6.12", true),
        ),
        trial(
            "file_monitor_matches_strace_arm64",
            &guest("arm64-6.12"),
            || file_monitor_matches_strace_on("arm64-6.12"),
        ),
        trial(
            "c_plugin_next_to_libvmi_matches_strace_kpti_kaslr",
            &guest("amd64-6.1"),
            || c_plugin_next_to_libvmi_matches_strace("amd64-6.1", true),
        ),
        trial(
            "the_guides_first_plugin_runs",
            &guest("amd64-6.1"),
            the_guides_first_plugin_runs,
        ),
        trial(
            "a_crate_outside_the_repository_builds_on_vmi",
            &guest("amd64-6.1"),
            a_crate_outside_the_repository_builds_on_vmi,
        ),
        trial(
            "c_header_compiles_strictly",
            &[],
            c_header_compiles_strictly,
        ),
        trial(
            "a_c_plugin_of_another_api_version_is_refused",
            &guest("amd64-6.1"),
            a_c_plugin_of_another_api_version_is_refused,
        ),
    ]);
}

/// The release build of example `lib<name>.so`, which `cargo build --release` makes with
/// `libvmi.so`; one older than the vmi library it links is a failure, as a stale
/// `libvmi.so` is.
fn example(name: &str) -> PathBuf {
    let so = root().join(format!("target/release/lib{name}.so"));
    let age = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let library = root().join("target/release/libvmi.rlib");
    let (Some(built), Some(vmi)) = (age(&so), age(&library)) else {
        panic!("no {}: run cargo build --release", so.display());
    };
    assert!(
        built >= vmi,
        "{} is older than {}: run cargo build --release",
        so.display(),
        library.display()
    );
    so
}

/// `(pid, call, path, result)` of each open/openat/execve strace printed.
fn strace_paths(run: &Run) -> Vec<(u32, String, String, i64)> {
    let mut out = Vec::new();
    for line in run.console.lines() {
        let Some(at) = line.find("@@VMI strace ") else {
            continue;
        };
        let (pid, text) = line[at + 13..].trim_end().split_once(' ').expect("pid");
        let text = text.trim_start();
        let Some(open) = text.find('(') else { continue };
        let call = &text[..open];
        if !["open", "openat", "execve"].contains(&call) {
            continue;
        }
        let quoted = &text[text.find('"').expect("a path") + 1..];
        let path = &quoted[..quoted.find('"').expect("closing quote")];
        let ret = text.rsplit_once(" = ").expect("a result").1.trim();
        let ret = match ret.split_whitespace().collect::<Vec<_>>()[..] {
            [n] => n.parse().expect("a number"),
            ["-1", "ENOENT", ..] => -2,
            ["-1", "EACCES", ..] => -13,
            _ => panic!("result not understood: {text}"),
        };
        out.push((
            pid.parse().unwrap(),
            call.to_string(),
            path.to_string(),
            ret,
        ));
    }
    assert!(
        !out.is_empty(),
        "strace printed nothing: {}",
        run.dir.display()
    );
    out
}

fn file_monitor_matches_strace() {
    file_monitor_matches_strace_on("amd64-6.1");
}

fn file_monitor_matches_strace_on(kernel: &'static str) {
    let (run, lines) = run_example("filemon", kernel);
    let seen: Vec<(u32, String, String, i64)> = lines
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            assert_eq!(f.len(), 5, "pid comm call path result: {l}");
            (
                f[0].parse().unwrap(),
                f[2].to_string(),
                f[3].to_string(),
                f[4].parse().unwrap_or(i64::MIN),
            )
        })
        .collect();
    let traced: Vec<_> = strace_paths(&run)
        .into_iter()
        .filter(|t| t.1 != "execve")
        .collect();
    let pids: std::collections::BTreeSet<u32> = traced.iter().map(|t| t.0).collect();
    let ours: Vec<_> = seen.into_iter().filter(|s| pids.contains(&s.0)).collect();
    assert_eq!(ours, traced, "the monitor's opens of the traced processes");
    assert!(
        traced.iter().any(|t| t.3 < 0),
        "a failed open is among them"
    );
}

/// The typed-hook example counts openat at entry: at least every openat strace saw in its
/// tree (the run has more: init's, strace's own), and at least the absolute ones.
fn openat_counter_sees_every_traced_openat() {
    let (run, text) = run_example("opencount", "amd64-6.1");
    let words: Vec<&str> = text.split_whitespace().collect();
    let [_, calls, _, absolute] = words[..] else {
        panic!("openat N absolute M: {text}");
    };
    let (calls, absolute): (usize, usize) = (calls.parse().unwrap(), absolute.parse().unwrap());
    let traced: Vec<_> = strace_paths(&run)
        .into_iter()
        .filter(|t| t.1 == "openat")
        .collect();
    let traced_absolute = traced.iter().filter(|t| t.2.starts_with('/')).count();
    assert!(
        calls >= traced.len() && absolute >= traced_absolute && absolute <= calls,
        "{text} against strace's {} ({traced_absolute} absolute)",
        traced.len()
    );
}

fn process_recorder_matches_the_guest_maps() {
    let (run, lines) = run_example("procrec", "amd64-6.12");
    let pid: u32 = run.truth.marks["strace_pid"].parse().unwrap();
    // The files strace had mapped while it ran: its executable and its libraries.
    let mut files: Vec<String> = Vec::new();
    for (name, line) in &run.truth.all_marks {
        if name == "strace_maps"
            && let Some(path) = line.split_whitespace().nth(5)
            && path.starts_with('/')
            && !files.iter().any(|f| f == path)
        {
            files.push(path.to_string());
        }
    }
    let line = lines
        .lines()
        .find(|l| l.starts_with(&format!("{pid}\t")))
        .unwrap_or_else(|| panic!("no line for strace (pid {pid}) in:\n{lines}"));
    let f: Vec<&str> = line.split('\t').collect();
    assert_eq!(f.len(), 4, "pid comm exe libs: {line}");
    assert_eq!(f[1], "strace");
    assert_eq!(f[2], "/usr/bin/strace", "{line}");
    let mut ours: Vec<&str> = std::iter::once(f[2]).chain(f[3].split(' ')).collect();
    let mut theirs: Vec<&str> = files.iter().map(String::as_str).collect();
    ours.sort();
    theirs.sort();
    assert_eq!(ours, theirs, "executable and libraries");
    assert!(theirs.iter().any(|f| f.contains("libc.so")), "{theirs:?}");
    // Every program the scenario ran through exec has its line, with its executable.
    for prog in ["/bin/exitcode", "/bin/passthru"] {
        assert!(
            lines.lines().any(|l| l.split('\t').nth(2) == Some(prog)),
            "{prog} in:\n{lines}"
        );
    }
}

/// Compiles the C example against `include/vmi.h` into `dir`.
fn build_c_example(dir: &Path) -> PathBuf {
    let so = dir.join("libexecve.so");
    let out = Command::new("cc")
        .args([
            "-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-Werror", "-I",
        ])
        .arg(root().join("include"))
        .arg("-o")
        .arg(&so)
        .arg(root().join("examples/c-execve/execve.c"))
        .output()
        .expect("run cc (lab/lab setup installs gcc)");
    assert!(
        out.status.success(),
        "cc failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    so
}

/// `kpti`: KASLR and KPTI on (amd64: `-cpu Skylake-Client`), where the kernel is read at
/// the dispatch function for the calls the C plugin wants at entry (as always on arm64,
/// whose EL0 reads do not reach the kernel).
fn c_plugin_next_to_libvmi_matches_strace(kernel: &'static str, kpti: bool) {
    let arm64 = kernel.starts_with("arm64");
    let dir = tempdir("c-execve");
    let so = build_c_example(&dir);
    let out = dir.join("execs.txt");
    let also = format!("{},out={}", so.display(), out.display());
    // The C plugin declares the plugin API version vmi chose (QEMU 11.1 accepts only 7,
    // 10.0 at most 4): `lab/lab test` runs this suite under both.
    let run = boot(&Boot {
        kernel,
        scenario: "api",
        kaslr: kpti,
        cpu: (kpti && !arm64).then_some("Skylake-Client"),
        also: vec![also],
        ..Boot::default()
    });
    run.assert_finished();
    let text = std::fs::read_to_string(&out).expect("the C plugin's output");
    let field = |l: &str, k: &str| -> String {
        l.split('\t')
            .find_map(|f| f.strip_prefix(&format!("{k}=")))
            .unwrap_or_else(|| panic!("{k}= in {l}"))
            .to_string()
    };
    let ours: Vec<(u32, String, String, String)> = text
        .lines()
        .map(|l| {
            (
                field(l, "pid").parse().unwrap(),
                field(l, "comm"),
                field(l, "path"),
                field(l, "mapping"),
            )
        })
        .collect();
    let sh_exe = run.truth.marks["sh_exe"].clone();
    let libc: String = run
        .truth
        .all_marks
        .iter()
        .filter(|(n, _)| n == "strace_maps")
        .filter_map(|(_, l)| l.split_whitespace().nth(5))
        .find(|p| p.contains("/libc.so"))
        .expect("strace maps libc")
        .to_string();
    let traced: Vec<_> = strace_paths(&run)
        .into_iter()
        .filter(|t| t.1 == "execve")
        .collect();
    assert!(traced.len() >= 4, "{traced:?}");
    let mut from_strace = 0;
    for (pid, _, path, _) in &traced {
        let (_, comm, _, mapping) = ours
            .iter()
            .find(|o| o.0 == *pid && o.2 == *path)
            .unwrap_or_else(|| panic!("execve({path}) by {pid} missing from:\n{text}"));
        // The caller runs busybox (sh) or strace; a static busybox calls execve from its
        // own executable, strace from libc.
        let expected = match comm.as_str() {
            "strace" => &libc,
            _ => &sh_exe,
        };
        from_strace += usize::from(comm == "strace");
        assert_eq!(
            mapping, expected,
            "mapping of the pc of execve({path}) by {pid} ({comm})"
        );
    }
    assert!(from_strace >= 1, "strace's own execve is among them");
    assert_eq!(run.of_type("kernel_ready")[0]["kpti"], kpti, "KPTI");
}

fn c_header_compiles_strictly() {
    let dir = tempdir("c-header");
    let src = dir.join("strict.c");
    // Without _GNU_SOURCE the finder says what to define; with VMI_NO_FIND the types and
    // the table alone compile as C99 and as C++.
    std::fs::write(&src, "#include \"vmi.h\"\nint main(void) { return 0; }\n").unwrap();
    let cc = |args: &[&str]| {
        Command::new("cc")
            .args(args)
            .arg("-I")
            .arg(root().join("include"))
            .arg("-fsyntax-only")
            .arg(&src)
            .output()
            .expect("run cc")
    };
    let plain = cc(&["-std=c99", "-Wall", "-Wextra", "-Werror"]);
    assert!(!plain.status.success());
    assert!(
        String::from_utf8_lossy(&plain.stderr).contains("#define _GNU_SOURCE"),
        "{}",
        String::from_utf8_lossy(&plain.stderr)
    );
    let bare = cc(&[
        "-std=c99",
        "-pedantic",
        "-Wall",
        "-Wextra",
        "-Werror",
        "-DVMI_NO_FIND",
    ]);
    assert!(
        bare.status.success(),
        "{}",
        String::from_utf8_lossy(&bare.stderr)
    );
    let gnu = cc(&["-std=gnu11", "-Wall", "-Wextra", "-Werror", "-D_GNU_SOURCE"]);
    assert!(
        gnu.status.success(),
        "{}",
        String::from_utf8_lossy(&gnu.stderr)
    );
    let cxx = cc(&["-x", "c++", "-Wall", "-Werror", "-D_GNU_SOURCE"]);
    assert!(
        cxx.status.success(),
        "{}",
        String::from_utf8_lossy(&cxx.stderr)
    );
}

/// A C plugin built for another version of vmi's API asks for its table: vmi refuses with
/// one line naming both versions, and the plugin (as `vmi_find` users do) refuses to load.
fn a_c_plugin_of_another_api_version_is_refused() {
    let dir = tempdir("c-version");
    let src = dir.join("future.c");
    std::fs::write(
        &src,
        r#"#define _GNU_SOURCE
#include <stdio.h>
#include "vmi.h"
VMI_QEMU_PLUGIN_VERSION
__attribute__((visibility("default"))) int qemu_plugin_install(uint64_t id, const void *info,
                                                               int argc, char **argv)
{
    const vmi_api *(*get)(uint32_t);
    (void)id; (void)info; (void)argc; (void)argv;
    *(void **)(&get) = vmi_find_symbol("vmi_get_api");
    return get && get(VMI_API_VERSION + 1) ? 0 : -1;
}
"#,
    )
    .unwrap();
    let so = dir.join("libfuture.so");
    let out = Command::new("cc")
        .args(["-shared", "-fPIC", "-Wall", "-Werror", "-I"])
        .arg(root().join("include"))
        .arg("-o")
        .arg(&so)
        .arg(&src)
        .output()
        .expect("run cc");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = boot(&Boot {
        kernel: "amd64-6.1",
        scenario: "api",
        also: vec![so.display().to_string()],
        ..Boot::default()
    });
    assert_ne!(run.status, 0, "QEMU refuses the plugin");
    let line = run.stderr_line("asked for vmi API version 2");
    assert!(line.contains("offers version 1"), "{line}");
}

/// A plugin crate in a directory of its own, depending on vmi by path as a user's would:
/// it counts process starts and writes the count and every pid at the end of the run.
fn a_crate_outside_the_repository_builds_on_vmi() {
    let (dir, so) = build_outside("counter", COUNTER);
    // Its own key sits next to vmi's; an unknown one is refused naming both.
    let counts = dir.join("pids.txt");
    let run = boot_with(
        &so,
        "amd64-6.1",
        vec![
            format!("counts={}", counts.display()),
            format!("out={}", dir.join("unused").display()),
        ],
    );
    run.assert_finished();
    let text = std::fs::read_to_string(&counts).expect("the counter's output");
    let (head, rest) = text.split_once('\n').expect("a first line");
    // Queries answered at kernel_ready (pid 1 among the processes), and every context
    // switch the engine followed reached the plugin, each to a known task.
    let words: Vec<&str> = head.split_whitespace().collect();
    assert_eq!(words.len(), 6, "{head}");
    assert_eq!(words[1], "true", "processes at kernel_ready: {head}");
    assert!(words[3] == words[5] && words[3] != "0", "switches: {head}");
    let pids: Vec<u32> = rest.lines().map(|l| l.parse().unwrap()).collect();
    // Every strace'd process (the guest's own account) started under the counter's eyes.
    for (pid, ..) in strace_paths(&run) {
        assert!(pids.contains(&pid), "pid {pid} started: {pids:?}");
    }
    let refused = boot_with(&so, "amd64-6.1", vec!["nosuch=1".into()]);
    let line = refused.stderr_line("unknown plugin argument 'nosuch'");
    assert!(line.contains("counts") && line.contains("conf"), "{line}");
}

/// Runs the `api` scenario on `kernel` with example `name` as the plugin, its output in
/// `out=`; the finished run and that output.
fn run_example(name: &str, kernel: &'static str) -> (Run, String) {
    let out = tempdir(name).join("out");
    let run = boot_with(
        &example(name),
        kernel,
        vec![format!("out={}", out.display())],
    );
    run.assert_finished();
    let text = std::fs::read_to_string(&out)
        .unwrap_or_else(|e| panic!("the output of {name}: {e}: {}", run.dir.display()));
    (run, text)
}

/// Boots the `api` scenario on `kernel` with `so` as the plugin (instead of libvmi.so).
fn boot_with(so: &Path, kernel: &'static str, args: Vec<String>) -> Run {
    boot(&Boot {
        kernel,
        scenario: "api",
        plugin_args: args,
        plugin: Some(so.to_path_buf()),
        ..Boot::default()
    })
}

/// The counter plugin of [`a_crate_outside_the_repository_builds_on_vmi`].
const COUNTER: &str = r#"use std::sync::Mutex;
use vmi::api::{Analysis, Build, Built, Ctx, Interest, PluginArgs};
use vmi::events::Event;

struct Counter {
    out: std::path::PathBuf,
    pids: Mutex<Vec<u32>>,
    switches: std::sync::atomic::AtomicU64,
    ready: std::sync::atomic::AtomicBool,
}

impl Analysis for Counter {
    fn name(&self) -> &str {
        "counter"
    }
    fn interest(&self) -> Interest {
        Interest { process_events: true, task_changes: true, ..Interest::default() }
    }
    fn kernel_ready(&self, ctx: &Ctx<'_>, _: &vmi::output::records::KernelReady) {
        // The queries answer from here on.
        let ok = ctx.processes().is_ok_and(|l| l.items.iter().any(|p| p.pid == 1));
        self.ready.store(ok, std::sync::atomic::Ordering::Relaxed);
    }
    fn task_change(&self, _: &Ctx<'_>, _old: u64, new: u64) {
        if new != 0 {
            self.switches.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
    fn process_event(&self, _: &Ctx<'_>, e: &Event) {
        if let Event::ProcessStart { pid, already_running: false, .. } = e {
            self.pids.lock().unwrap().push(*pid);
        }
    }
    fn run_end(&self, end: &vmi::output::records::RunEnd) {
        use std::sync::atomic::Ordering::Relaxed;
        let pids = self.pids.lock().unwrap();
        let mut text = format!(
            "ready {} switches {} of {}\n",
            self.ready.load(Relaxed),
            self.switches.load(Relaxed),
            end.task_switches
        );
        for p in pids.iter() {
            text.push_str(&format!("{p}\n"));
        }
        std::fs::write(&self.out, text).unwrap();
    }
}

struct Plugin;
impl Build for Plugin {
    const KEYS: &'static [(&'static str, &'static str)] = &[("counts", "where the pids go")];
    fn build(args: &PluginArgs) -> Built {
        let out = args.get("counts").ok_or("counts= is required")?.into();
        Ok(vec![Box::new(Counter {
            out,
            pids: Mutex::new(Vec::new()),
            switches: Default::default(),
            ready: Default::default(),
        })])
    }
}

vmi::export_plugin!(Plugin);
"#;

/// Builds a plugin crate named `name` with `lib_rs` in a directory of its own, depending on
/// vmi by path as a user's would; its directory and its `.so`.
fn build_outside(name: &str, lib_rs: &str) -> (PathBuf, PathBuf) {
    let dir = tempdir(&format!("outside-{name}"));
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(
        dir.join("Cargo.toml"),
        format!(
            r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"

[lib]
crate-type = ["cdylib"]

[dependencies]
vmi = {{ path = "{}", package = "qemu-vmi" }}

# As vmi's own workspace builds, so that the dependencies built there are reused.
[profile.release]
debug = 1
panic = "unwind"
"#,
            root().display()
        ),
    )
    .unwrap();
    std::fs::write(dir.join("src/lib.rs"), lib_rs).unwrap();
    // Its own target directory: the one of `cargo test` is locked while tests run.
    let target = root().join("target/outside");
    let built = Command::new(env!("CARGO"))
        .args(["build", "--release", "--quiet", "--manifest-path"])
        .arg(dir.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .expect("run cargo");
    assert!(
        built.status.success(),
        "the outside crate {name} does not build:\n{}",
        String::from_utf8_lossy(&built.stderr)
    );
    (dir, target.join(format!("release/lib{name}.so")))
}

/// docs/api.md's first plugin, as the guide shows it (its first Rust block), built outside
/// the repository and run: it prints each openat's caller, path and result, which must be
/// strace's for the traced processes.
fn the_guides_first_plugin_runs() {
    let guide = std::fs::read_to_string(root().join("docs/api.md")).unwrap();
    let code = guide
        .split("```rust\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a Rust block in docs/api.md");
    assert!(code.contains("export_plugin!"), "{code}");
    let (_, so) = build_outside("opens", code);
    let run = boot_with(&so, "amd64-6.1", vec![]);
    run.assert_finished();
    for (pid, call, path, ret) in strace_paths(&run) {
        if call == "openat" {
            let line =
                format!("{pid} Some(Str {{ text: \"{path}\", truncated: false }}) = Some({ret})");
            assert!(
                run.console.contains(&line),
                "no line '{line}' in {}",
                run.dir.display()
            );
        }
    }
}
