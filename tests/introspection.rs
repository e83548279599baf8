//! Linux introspection on real guests, checked against the guest's own `/proc` from the
//! same run: the `snapshot` the plugin writes when the scenario runs `vmi-snapshot` must
//! show the processes, threads, modules, mappings and open files the guest then prints.

mod common;

use common::Prereq::{Kernel, Plugin, Qemu};
use common::checks::{check_against_proc, check_kernel_ready};
use common::{Boot, boot, guest, guest_dbg, trial};

fn main() {
    // Kernels whose kernelinfo these tests read (with `lab/lab conf`) besides the one booted.
    let all = [
        Qemu,
        Plugin,
        Kernel("amd64-6.1"),
        Kernel("amd64-6.12"),
        Kernel("i386-6.1"),
    ];
    common::run(vec![
        trial("amd64_61_nokaslr", &guest("amd64-6.1"), amd64_61_nokaslr),
        trial("amd64_61_kaslr", &guest("amd64-6.1"), amd64_61_kaslr),
        trial("amd64_612_nokaslr", &guest("amd64-6.12"), amd64_612_nokaslr),
        trial(
            "amd64_612_kaslr_smp2",
            &guest("amd64-6.12"),
            amd64_612_kaslr_smp2,
        ),
        trial("amd64_sid_nokaslr", &guest("amd64-sid"), amd64_sid_nokaslr),
        trial(
            "amd64_sid_kaslr_smp2_noargs",
            &guest("amd64-sid"),
            amd64_sid_kaslr_smp2_noargs,
        ),
        trial(
            "amd64_sid_kpti_kaslr_noargs",
            &guest("amd64-sid"),
            amd64_sid_kpti_kaslr_noargs,
        ),
        trial(
            "amd64_612_kaslr_smp2_noargs",
            &guest("amd64-6.12"),
            amd64_612_kaslr_smp2_noargs,
        ),
        trial(
            "amd64_61_kpti_kaslr_noargs",
            &guest("amd64-6.1"),
            amd64_61_kpti_kaslr_noargs,
        ),
        trial(
            "arm64_612_kaslr_noargs",
            &guest("arm64-6.12"),
            arm64_612_kaslr_noargs,
        ),
        trial(
            "arm64_612_nokaslr_smp2_noargs",
            &guest("arm64-6.12"),
            arm64_612_nokaslr_smp2_noargs,
        ),
        trial(
            "arm64_612_kaslr_smp2",
            &guest("arm64-6.12"),
            arm64_612_kaslr_smp2,
        ),
        trial(
            "arm64_61_kaslr_smp2",
            &guest_dbg("arm64-6.1"),
            arm64_61_kaslr_smp2,
        ),
        trial(
            "armhf_61_nokaslr",
            &guest_dbg("armhf-6.1"),
            armhf_61_nokaslr,
        ),
        trial("armhf_61_smp2", &guest_dbg("armhf-6.1"), armhf_61_smp2),
        trial(
            "arm64_61_noargs_says_what_is_missing",
            &guest("arm64-6.1"),
            arm64_61_noargs_says_what_is_missing,
        ),
        trial(
            "i386_61_noargs_says_what_is_missing",
            &guest("i386-6.1"),
            i386_61_noargs_says_what_is_missing,
        ),
        trial(
            "amd64_sid_kpti_kaslr",
            &guest("amd64-sid"),
            amd64_sid_kpti_kaslr,
        ),
        trial("i386_61_kpti", &guest("i386-6.1"), i386_61_kpti),
        trial("i386_61_kaslr", &guest("i386-6.1"), i386_61_kaslr),
        trial(
            "amd64_61_kpti_kaslr",
            &guest("amd64-6.1"),
            amd64_61_kpti_kaslr,
        ),
        trial("group_chosen_by_banner", &all, group_chosen_by_banner),
        trial(
            "no_matching_group_leaves_the_guest_alone",
            &all,
            no_matching_group_leaves_the_guest_alone,
        ),
        trial(
            "group_chosen_by_banner_under_kpti",
            &[Qemu, Plugin, Kernel("amd64-6.1"), Kernel("amd64-6.12")],
            group_chosen_by_banner_under_kpti,
        ),
        trial(
            "an_arm64_group_for_another_kernel_is_refused_at_run_time",
            &[Qemu, Plugin, Kernel("arm64-6.1"), Kernel("arm64-6.12")],
            an_arm64_group_for_another_kernel_is_refused_at_run_time,
        ),
        trial(
            "a_group_for_another_kernel_is_refused_at_run_time",
            &[Qemu, Plugin, Kernel("amd64-6.1"), Kernel("amd64-6.12")],
            a_group_for_another_kernel_is_refused_at_run_time,
        ),
        trial(
            "common::stat_lines_with_odd_comms_parse",
            &[],
            common::stat_lines_with_odd_comms_parse,
        ),
    ]);
}

fn run_and_check(kernel: &'static str, kaslr: bool, smp: u32) {
    run_on_cpu(kernel, kaslr, smp, None);
}

fn run_on_cpu(kernel: &'static str, kaslr: bool, smp: u32, cpu: Option<&'static str>) {
    check_run(kernel, kaslr, smp, cpu, false);
}

/// Boots `kernel` and checks what the plugin saw against `/proc`; with `no_conf` the
/// plugin has no argument but its log, and must have built the kernelinfo from the guest's
/// memory: the very group `vmi kernelinfo` makes from the image (`lab/lab conf`).
fn check_run(
    kernel: &'static str,
    kaslr: bool,
    smp: u32,
    cpu: Option<&'static str>,
    no_conf: bool,
) {
    let run = boot(&Boot {
        kernel,
        scenario: "default",
        kaslr,
        smp,
        cpu,
        no_conf,
        ..Boot::default()
    });
    check_kernel_ready(&run, kaslr);
    let ready = run.of_type("kernel_ready")[0];
    if no_conf {
        assert_eq!(ready["kernelinfo"], "memory", "{}", run.dir.display());
        let file = run
            .dir
            .join(ready["kernelinfo_file"].as_str().expect("kernelinfo_file"));
        assert_eq!(
            keys(&std::fs::read_to_string(&file).unwrap()),
            keys(&std::fs::read_to_string(common::lab_conf(kernel)).unwrap()),
            "{} differs from the image's group",
            file.display()
        );
        // Found early in boot, so context switches are followed as with conf=.
        assert!(
            run.run_end_count("task_switches") > 0,
            "{}",
            run.dir.display()
        );
    } else {
        assert_eq!(ready["kernelinfo"], "conf");
        if kernel.starts_with("arm") {
            // arm64: placed by its _text (the boot header), early enough to follow
            // switches; 32-bit ARM: no KASLR, placed from the start.
            assert!(
                run.run_end_count("task_switches") > 0,
                "{}",
                run.dir.display()
            );
        }
    }
    // KPTI: on i386 by default, and on amd64 with a Meltdown-affected CPU model. On arm64
    // QEMU does not read kernel memory from EL0: the kernel is read at do_el0_svc, as
    // under KPTI.
    let kpti = kernel.starts_with("i386") || kernel.starts_with("arm64") || cpu.is_some();
    if kernel.starts_with("armhf") {
        // 32-bit ARM has no KPTI, but QEMU 10.0 (plugin API 4) reads kernel memory from
        // user mode with the user's permissions, which refuse it: the kernel is read at
        // vector_swi then, as under KPTI. QEMU 11.1 (API 7) reads it from user mode.
        match common::checks::plugin_api(&run) {
            4 => assert_eq!(ready["kpti"], true, "{}", run.dir.display()),
            7 => assert_eq!(ready["kpti"], false, "{}", run.dir.display()),
            _ => {}
        }
    } else {
        assert_eq!(ready["kpti"], kpti, "{}", run.dir.display());
    }
    check_against_proc(&run);
}

fn amd64_61_nokaslr() {
    run_and_check("amd64-6.1", false, 1);
}

fn amd64_61_kaslr() {
    run_and_check("amd64-6.1", true, 1);
}

fn amd64_612_nokaslr() {
    run_and_check("amd64-6.12", false, 1);
}

fn amd64_612_kaslr_smp2() {
    run_and_check("amd64-6.12", true, 2);
}

/// The newest kernel Debian has (unstable's, Linux 7.x): no `thread_group` list, per-CPU
/// symbols no longer zero-based, kallsyms offsets relative to `_text`; its group is
/// generated from the image alone.
fn amd64_sid_nokaslr() {
    run_and_check("amd64-sid", false, 1);
}

/// Without arguments (kernelinfo from the guest's memory): Linux 7.x, KASLR, two vCPUs.
fn amd64_sid_kaslr_smp2_noargs() {
    check_run("amd64-sid", true, 2, None, true);
}

fn amd64_sid_kpti_kaslr_noargs() {
    check_run("amd64-sid", true, 1, Some("Skylake-Client"), true);
}

fn amd64_612_kaslr_smp2_noargs() {
    check_run("amd64-6.12", true, 2, None, true);
}

fn amd64_61_kpti_kaslr_noargs() {
    check_run("amd64-6.1", true, 1, Some("Skylake-Client"), true);
}

/// arm64 (Debian's 6.12, 52-bit virtual addresses) with no arguments: the kernel is
/// described from its memory, with KASLR (a slide of terabytes) and with two vCPUs.
fn arm64_612_kaslr_noargs() {
    check_run("arm64-6.12", true, 1, None, true);
}

fn arm64_612_nokaslr_smp2_noargs() {
    check_run("arm64-6.12", false, 2, None, true);
}

/// arm64 with `conf=` (the group `vmi kernelinfo` makes from Debian's `Image`): under
/// KASLR the slide is measured from where the kernel's boot header runs.
fn arm64_612_kaslr_smp2() {
    check_run("arm64-6.12", true, 2, None, false);
}

/// Debian's arm64 6.1 (48-bit virtual addresses, the 128 MiB module area): its kallsyms
/// has no data symbols, so its group comes from the `Image` and the -dbg package's
/// System.map (`lab/lab conf`).
fn arm64_61_kaslr_smp2() {
    check_run("arm64-6.1", true, 2, None, false);
}

/// 32-bit ARM (Debian's armmp-lpae 6.1, `-cpu cortex-a15`), with the group `lab/lab conf`
/// makes from the -dbg package's vmlinux (no BTF): the per-CPU `__entry_task`, the direct
/// map from `__pv_offset`, LPAE tables, modules through `swapper_pg_dir`.
fn armhf_61_nokaslr() {
    check_run("armhf-6.1", false, 1, None, false);
}

/// The same on two vCPUs: `TPIDRPRW` gives each its per-CPU area.
fn armhf_61_smp2() {
    check_run("armhf-6.1", false, 2, None, false);
}

/// The `key = value` lines of a kernelinfo file (comments and blank lines aside).
fn keys(text: &str) -> Vec<&str> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

/// i386's kernel has no BTF: without `conf=` one line says what is missing and how to
/// make a kernelinfo; every call is still logged with its number and name.
fn i386_61_noargs_says_what_is_missing() {
    says_what_is_missing("i386-6.1", &["no BTF", "vmi kernelinfo --dwarf"]);
}

/// Debian's arm64 6.1 has no data symbols in its kallsyms (`CONFIG_KALLSYMS_ALL` off):
/// one line says so; its calls are still logged with number and name (arm64's table).
fn arm64_61_noargs_says_what_is_missing() {
    says_what_is_missing("arm64-6.1", &["no data symbols", "CONFIG_KALLSYMS_ALL"]);
}

fn says_what_is_missing(kernel: &'static str, said: &[&str]) {
    let run = boot(&Boot {
        kernel,
        scenario: "default",
        no_conf: true,
        ..Boot::default()
    });
    run.assert_finished();
    let line = run.stderr_line("no conf=");
    for s in said {
        assert!(line.contains(s), "{line}");
    }
    assert!(run.of_type("kernel_ready").is_empty());
    let calls = run.of_type("syscall");
    assert!(calls.len() > 100, "{} calls", calls.len());
    assert!(
        calls.iter().all(|c| c["name"].is_string()),
        "every call named"
    );
}

fn amd64_sid_kpti_kaslr() {
    run_on_cpu("amd64-sid", true, 1, Some("Skylake-Client"));
}

/// i386 guests run with KPTI by default: the kernel is read at system call dispatch.
fn i386_61_kpti() {
    run_and_check("i386-6.1", false, 1);
}

fn i386_61_kaslr() {
    run_and_check("i386-6.1", true, 1);
}

/// An Intel CPU model that is vulnerable to Meltdown: the amd64 kernel turns KPTI on.
fn amd64_61_kpti_kaslr() {
    run_on_cpu("amd64-6.1", true, 1, Some("Skylake-Client"));
}

/// One kernelinfo file (in a fresh directory named after `label`) holding the lab groups
/// of `kernels`.
fn groups_of<const N: usize>(label: &str, kernels: [&str; N]) -> std::path::PathBuf {
    let path = common::tempdir(label).join("groups.conf");
    let text = kernels
        .map(|k| std::fs::read_to_string(common::lab_conf(k)).unwrap())
        .join("\n");
    std::fs::write(&path, text).unwrap();
    path
}

/// Without `group=`, the plugin picks the group whose banner the guest holds.
fn group_chosen_by_banner() {
    let all = groups_of("all-groups", ["amd64-6.1", "amd64-6.12", "i386-6.1"]);
    let run = boot(&Boot {
        kernel: "amd64-6.12",
        scenario: "default",
        kaslr: true,
        plugin_args: vec![format!("conf={}", all.display())],
        ..Boot::default()
    });
    chose_the_612_group(&run);
}

/// The run picked the 6.12 group by its banner, and what it saw matches /proc.
fn chose_the_612_group(run: &common::Run) {
    let ready = run.of_type("kernel_ready");
    assert!(
        ready[0]["group"]
            .as_str()
            .unwrap()
            .starts_with("debian:6.12"),
        "{}",
        ready[0]
    );
    check_kernel_ready(run, true);
    check_against_proc(run);
}

/// Under KPTI (amd64, a Meltdown-affected CPU model) the banner is in kernel memory that
/// user-mode callbacks cannot read through QEMU. Where QEMU reads physical memory (plugin
/// API 5 and later) the plugin walks the kernel's page tables itself and picks the group
/// as without KPTI; on API 4 (QEMU 10.0) no group is chosen without `group=`.
fn group_chosen_by_banner_under_kpti() {
    let all = groups_of("all-groups-kpti", ["amd64-6.1", "amd64-6.12"]);
    let run = boot(&Boot {
        kernel: "amd64-6.12",
        scenario: "default",
        kaslr: true,
        cpu: Some("Skylake-Client"),
        plugin_args: vec![format!("conf={}", all.display())],
        ..Boot::default()
    });
    let ready = run.of_type("kernel_ready");
    if common::checks::plugin_api(&run) >= 5 {
        assert_eq!(ready[0]["kpti"], true, "{}", run.dir.display());
        chose_the_612_group(&run);
    } else {
        assert!(ready.is_empty(), "API 4 under KPTI: {}", run.dir.display());
        run.assert_finished();
    }
}

/// No group matches: one line saying what was read and which groups exist; the plugin
/// stays passive and the guest runs to the end.
fn no_matching_group_leaves_the_guest_alone() {
    let conf = groups_of("two-groups", ["amd64-6.1", "i386-6.1"]);
    let run = boot(&Boot {
        kernel: "amd64-6.12",
        scenario: "default",
        plugin_args: vec![format!("conf={}", conf.display())],
        ..Boot::default()
    });
    assert_eq!(run.status, 0);
    assert!(run.truth.complete, "{}", run.dir.display());
    assert!(run.of_type("kernel_ready").is_empty());
    let line = run.stderr_line("no kernelinfo group matches");
    // The i386 group is no candidate on an amd64 guest: only the amd64 one was read.
    assert!(
        line.contains("debian:6.1.0") && !line.contains("686-pae"),
        "{line}"
    );
}

/// A kernelinfo for another kernel (6.12's group on the 6.1 guest): one warning line, no
/// introspection, the guest runs to the end, QEMU exits normally.
fn a_group_for_another_kernel_is_refused_at_run_time() {
    refused_on("amd64-6.1", "amd64-6.12", false);
}

/// arm64, where the group is placed by the kernel's `_text`: trixie's 6.12 group on
/// bookworm's 6.1, with KASLR (a slide is found, the banner refutes it) and without (the
/// kernel's `_text` lies below the group's link address).
fn an_arm64_group_for_another_kernel_is_refused_at_run_time() {
    refused_on("arm64-6.1", "arm64-6.12", true);
    refused_on("arm64-6.1", "arm64-6.12", false);
}

/// Boots `kernel` with the lab's group of `other` as `conf=`: refused in one line.
fn refused_on(kernel: &'static str, other: &str, kaslr: bool) {
    let wrong = common::lab_conf(other);
    let run = boot(&Boot {
        kernel,
        scenario: "default",
        kaslr,
        plugin_args: vec![format!("conf={}", wrong.display())],
        ..Boot::default()
    });
    run.assert_finished();
    assert!(run.of_type("kernel_ready").is_empty());
    assert!(run.of_type("snapshot").is_empty());
    let line = run.stderr_line("does not describe the running kernel");
    assert!(line.contains("debian:6.12"), "{line}");
}
