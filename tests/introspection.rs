//! Linux introspection on real guests, checked against the guest's own `/proc` from the
//! same run: the `snapshot` the plugin writes when the scenario runs `vmi-snapshot` must
//! show the processes, threads, modules, mappings and open files the guest then prints.

mod common;

use common::checks::{check_against_proc, check_kernel_ready};
use common::{Boot, boot, lab_available};

fn run_and_check(kernel: &'static str, kaslr: bool, smp: u32) {
    let name = format!("{kernel} kaslr={kaslr} smp={smp}");
    if !lab_available(&name) {
        return;
    }
    let run = boot(&Boot {
        kernel,
        scenario: "default",
        kaslr,
        smp,
        ..Boot::default()
    });
    check_kernel_ready(&run, kaslr);
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
