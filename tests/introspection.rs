//! Linux introspection on real guests, checked against the guest's own `/proc` from the
//! same run: the `snapshot` the plugin writes when the scenario runs `vmi-snapshot` must
//! show the processes, threads, modules, mappings and open files the guest then prints.

mod common;

use common::checks::{check_against_proc, check_kernel_ready};
use common::{Boot, boot, lab_available};

fn run_and_check(kernel: &'static str, kaslr: bool, smp: u32) {
    run_on_cpu(kernel, kaslr, smp, None);
}

fn run_on_cpu(kernel: &'static str, kaslr: bool, smp: u32, cpu: Option<&'static str>) {
    let name = format!("{kernel} kaslr={kaslr} smp={smp} cpu={cpu:?}");
    if !lab_available(&name) {
        return;
    }
    let run = boot(&Boot {
        kernel,
        scenario: "default",
        kaslr,
        smp,
        cpu,
        ..Boot::default()
    });
    check_kernel_ready(&run, kaslr);
    // KPTI: on i386 by default, and on amd64 with a Meltdown-affected CPU model.
    let kpti = kernel.starts_with("i386") || cpu.is_some();
    assert_eq!(
        run.of_type("kernel_ready")[0]["kpti"],
        kpti,
        "{}",
        run.dir.display()
    );
    check_against_proc(&run);
}

#[test]
fn amd64_61_nokaslr() {
    run_and_check("amd64-6.1", false, 1);
}

#[test]
fn amd64_61_kaslr() {
    run_and_check("amd64-6.1", true, 1);
}

#[test]
fn amd64_612_nokaslr() {
    run_and_check("amd64-6.12", false, 1);
}

#[test]
fn amd64_612_kaslr_smp2() {
    run_and_check("amd64-6.12", true, 2);
}

/// i386 guests run with KPTI by default: the kernel is read at system call dispatch.
#[test]
fn i386_61_kpti() {
    run_and_check("i386-6.1", false, 1);
}

#[test]
fn i386_61_kaslr() {
    run_and_check("i386-6.1", true, 1);
}

/// An Intel CPU model that is vulnerable to Meltdown: the amd64 kernel turns KPTI on.
#[test]
fn amd64_61_kpti_kaslr() {
    run_on_cpu("amd64-6.1", true, 1, Some("Skylake-Client"));
}
