//! The foundation loop on real guests: the plugin loads into stock QEMU, sees system call
//! instructions execute, reads guest kernel memory, and writes a log the tests parse;
//! bad arguments make QEMU refuse it with one clear line.

mod common;

use std::process::Command;

use common::Prereq::{Kernel, Plugin, Qemu, Shared};
use common::{Boot, boot, guest, need, plugin_path, trial};
use object::{Object, ObjectSegment};

fn main() {
    common::run(vec![
        trial(
            "amd64_guest_runs_with_plugin_and_reads_kernel_memory",
            &guest("amd64-6.1"),
            amd64_guest_runs_with_plugin_and_reads_kernel_memory,
        ),
        trial(
            "i386_guest_enters_the_kernel_through_sysenter_or_int80",
            &guest("i386-6.1"),
            i386_guest_enters_the_kernel_through_sysenter_or_int80,
        ),
        trial(
            "bad_arguments_are_refused_with_one_clear_line",
            &[Qemu, Plugin, Kernel("amd64-6.1")],
            bad_arguments_are_refused_with_one_clear_line,
        ),
        trial(
            "an_unknown_group_is_refused_listing_the_groups",
            &[Qemu, Plugin, Shared],
            an_unknown_group_is_refused_listing_the_groups,
        ),
    ]);
}

/// Link-time addresses of the kernel's version banners, and the banner text, found
/// independently of the plugin: the banner's bytes in the kernel's ELF image, mapped
/// through its program headers. (The image holds more than one copy; `linux_banner` is
/// one of them.)
fn banners(kernel: &str, release: &str) -> (Vec<u64>, String) {
    let image = std::fs::read(common::cache().join("kernels").join(kernel).join("vmlinux"))
        .expect("vmlinux");
    let needle = format!("Linux version {release} (");
    let elf = object::File::parse(&*image).expect("ELF");
    let mut addresses = Vec::new();
    let mut text = String::new();
    let mut from = 0;
    while let Some(at) = image[from..]
        .windows(needle.len())
        .position(|w| w == needle.as_bytes())
    {
        let offset = (from + at) as u64;
        from += at + 1;
        let address = elf.segments().find_map(|s| {
            let (start, len) = s.file_range();
            (start..start + len)
                .contains(&offset)
                .then(|| s.address() + offset - start)
        });
        if let Some(address) = address {
            if text.is_empty() {
                let bytes = &image[offset as usize..];
                let end = bytes.iter().position(|&b| b == 0).unwrap_or(0);
                text = String::from_utf8_lossy(&bytes[..end]).into_owned();
            }
            addresses.push(address);
        }
    }
    assert!(!addresses.is_empty(), "no banner in the {kernel} image");
    (addresses, text)
}

fn amd64_guest_runs_with_plugin_and_reads_kernel_memory() {
    // The release (and with it the image) is known once the kernel is in the cache.
    let release = common::kernel_release("amd64-6.1");
    let (banners, banner_text) = banners("amd64-6.1", &release);
    let run = boot(&Boot {
        kernel: "amd64-6.1",
        scenario: "default",
        plugin_args: vec![format!("probe={:#x}", banners[0])],
        ..Boot::default()
    });
    run.assert_finished();
    assert_eq!(run.truth.release.as_deref(), Some(release.as_str()));
    // The guest's own kallsyms agrees that `linux_banner` is one of the copies found.
    let linux_banner = run.truth.kallsyms["linux_banner"];
    assert!(
        banners.contains(&linux_banner),
        "{linux_banner:#x} not in {banners:x?}"
    );

    let start = &run.events[0];
    assert_eq!(start["type"], "run_start");
    assert_eq!(start["target"], "x86_64");
    assert_eq!(start["version"], env!("CARGO_PKG_VERSION"));
    let end = run.run_end();
    assert_eq!(run.events.last(), Some(end), "run_end is the last record");
    let syscalls = end["syscalls"].as_u64().unwrap();
    // Booting busybox and running the scenario takes thousands of system calls, all
    // through `syscall` on a 64-bit guest.
    assert!(syscalls > 5_000, "only {syscalls} system calls seen");
    assert_eq!(end["syscall_insns"]["syscall"], syscalls);
    // The banner was read at every system call instruction, identically each time.
    let probe = &end["probe"];
    assert_eq!(probe["reads"], syscalls);
    assert_eq!(probe["matched"], syscalls, "{probe}");
    assert_eq!(probe["text"], banner_text);
}

fn i386_guest_enters_the_kernel_through_sysenter_or_int80() {
    let run = boot(&Boot {
        kernel: "i386-6.1",
        scenario: "default",
        ..Boot::default()
    });
    run.assert_finished();
    assert_eq!(run.events[0]["target"], "i386");
    let end = run.run_end();
    let insns = &end["syscall_insns"];
    assert_eq!(insns["syscall"], 0, "no 64-bit syscall on a 32-bit guest");
    let seen = insns["sysenter"].as_u64().unwrap() + insns["int80"].as_u64().unwrap();
    assert!(seen > 5_000, "only {seen} system calls seen: {insns}");
}

/// Starts QEMU with the plugin and `args`, without a guest: a refused plugin stops QEMU
/// before any guest is loaded.
fn refused(args: &str) -> String {
    refused_raw(args.as_bytes())
}

/// [`refused`] with arguments that need not be UTF-8.
fn refused_raw(args: &[u8]) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut plugin = plugin_path().into_os_string();
    plugin.push(",");
    plugin.push(std::ffi::OsStr::from_bytes(args));
    let args = String::from_utf8_lossy(args);
    let out = Command::new(common::qemu_binary("qemu-system-x86_64"))
        .args([
            "-accel",
            "tcg",
            "-display",
            "none",
            "-no-reboot",
            "-net",
            "none",
        ])
        .args(["-kernel", "/nonexistent-kernel"])
        .arg("-plugin")
        .arg(plugin)
        .output()
        .expect("run qemu");
    assert!(
        !out.status.success(),
        "QEMU accepted the plugin with {args}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let line = stderr
        .lines()
        .find(|l| l.starts_with("vmi: "))
        .unwrap_or_else(|| panic!("no 'vmi:' line for {args}: {stderr}"))
        .to_string();
    assert!(
        !stderr.contains("panicked") && out.status.code().is_some(),
        "{stderr}"
    );
    assert!(
        stderr.contains("qemu_plugin_install returned error code"),
        "QEMU did not refuse the plugin cleanly: {stderr}"
    );
    line
}

fn bad_arguments_are_refused_with_one_clear_line() {
    let line = refused("colour=blue");
    assert!(line.contains("unknown plugin argument 'colour'"), "{line}");
    for key in vmi::args::Key::ALL.map(|(_, name, _)| name) {
        assert!(line.contains(key), "{key} not listed: {line}");
    }

    // A value that is not UTF-8 is refused, not rewritten.
    let line = refused_raw(b"out=/tmp/vmi-\xff.jsonl");
    assert!(line.contains("not valid UTF-8"), "{line}");

    // out= naming the conf file (under another spelling too) would destroy it.
    let conf = common::lab_conf("amd64-6.1");
    let before = std::fs::read(&conf).unwrap();
    let line = refused(&format!("conf={},out={}", conf.display(), conf.display()));
    assert!(line.contains("names the kernelinfo file"), "{line}");
    let dir = conf.parent().unwrap();
    let other = dir.join(".").join(conf.file_name().unwrap());
    let line = refused(&format!("conf={},out={}", conf.display(), other.display()));
    assert!(line.contains("names the kernelinfo file"), "{line}");
    assert_eq!(
        std::fs::read(&conf).unwrap(),
        before,
        "the conf was changed"
    );

    let line = refused("conf=/no/such/kernelinfo.conf");
    assert!(line.contains("/no/such/kernelinfo.conf"), "{line}");

    let line = refused("log=loud");
    assert!(line.contains("log=loud"), "{line}");

    let line = refused("out=/no/such/dir/vmi.jsonl");
    assert!(line.contains("/no/such/dir/vmi.jsonl"), "{line}");

    let line = refused("group=debian:6.1");
    assert!(line.contains("needs conf="), "{line}");

    let garbage = common::tempdir("garbage-conf").join("garbage.conf");
    std::fs::write(&garbage, b"not a key file [[[\n").unwrap();
    let line = refused(&format!("conf={}", garbage.display()));
    assert!(line.contains("garbage.conf"), "{line}");

    let empty = common::tempdir("empty-conf").join("empty.conf");
    std::fs::write(&empty, b"# nothing here\n").unwrap();
    let line = refused(&format!("conf={}", empty.display()));
    assert!(line.contains("no groups"), "{line}");
}

/// A group the conf does not have: the line lists the groups it has (PANDA's
/// kernelinfo.conf, from `../shared`).
fn an_unknown_group_is_refused_listing_the_groups() {
    let panda = need(Shared).join("reference/panda/kernelinfo.conf");
    assert!(panda.is_file(), "no {}", panda.display());
    let line = refused(&format!("conf={},group=no-such-group", panda.display()));
    assert!(line.contains("no group 'no-such-group'"), "{line}");
    assert!(
        line.contains("debian:3.2.0-4-686-pae:32"),
        "lists the groups: {line}"
    );
}
