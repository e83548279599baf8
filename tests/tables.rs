//! The system call tables against the newest kernel Debian packages: every number its own
//! unistd headers define is in `prototypes/` (and so in the generated tables), and the
//! tables hold no number the kernel does not. A kernel with new calls is a failing test
//! here, not calls logged with `"name": null`; `scripts/gen-prototypes.py` then makes the
//! tables anew from that kernel's source.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::Prereq::Unistd;
use common::{need, trial};
use vmi::syscalls::Profile;

fn main() {
    common::run(vec![
        trial("x64_table_covers_the_newest_kernel", &[Unistd], || {
            covers(Profile::LinuxX64, "unistd_64.h", X64_NOT_IMPLEMENTED)
        }),
        trial("x86_table_covers_the_newest_kernel", &[Unistd], || {
            covers(Profile::LinuxX86, "unistd_32.h", X86_NOT_IMPLEMENTED)
        }),
        trial("arm64_table_covers_the_newest_kernel", &[Unistd], || {
            covers(Profile::LinuxArm64, "unistd_arm64.h", ARM64_NOT_IMPLEMENTED)
        }),
        trial("arm_table_covers_the_newest_kernel", &[Unistd], || {
            covers_all(
                Profile::LinuxArm,
                &["unistd_arm_eabi.h", "unistd_arm.h"],
                ARM_NOT_IMPLEMENTED,
            )
        }),
    ]);
}

/// Numbers the kernel's table gives no entry point (`sys_ni_syscall`, or none): the
/// kernel answers them with -ENOSYS, and the tables leave them out, as PANDA's do.
const X64_NOT_IMPLEMENTED: &[&str] = &[
    "uselib",
    "_sysctl",
    "create_module",
    "get_kernel_syms",
    "query_module",
    "nfsservctl",
    "getpmsg",
    "putpmsg",
    "afs_syscall",
    "tuxcall",
    "security",
    "set_thread_area",
    "get_thread_area",
    "lookup_dcookie",
    "epoll_ctl_old",
    "epoll_wait_old",
    "vserver",
];
const X86_NOT_IMPLEMENTED: &[&str] = &[
    "break",
    "stty",
    "gtty",
    "ftime",
    "prof",
    "lock",
    "mpx",
    "ulimit",
    "profil",
    "idle",
    "create_module",
    "get_kernel_syms",
    "bdflush",
    "afs_syscall",
    "_sysctl",
    "query_module",
    "nfsservctl",
    "getpmsg",
    "putpmsg",
    "lookup_dcookie",
    "vserver",
];

const ARM64_NOT_IMPLEMENTED: &[&str] = &["lookup_dcookie", "nfsservctl"];

/// 32-bit ARM (EABI).
const ARM_NOT_IMPLEMENTED: &[&str] = &[
    "bdflush",
    "_sysctl",
    "nfsservctl",
    "lookup_dcookie",
    "vserver",
];

/// `__NR_name number` lines of a unistd header; also 32-bit ARM's forms, `__NR_name
/// (__NR_SYSCALL_BASE + number)` (unistd-eabi.h, the base is 0 for EABI) and the private
/// `__ARM_NR_name (__ARM_NR_BASE+number)` (unistd.h, that base is 0x0f0000).
fn numbers(path: &Path) -> BTreeMap<u32, String> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .filter_map(|l| {
            let (rest, base) = match l.strip_prefix("#define __NR_") {
                Some(rest) => (rest, 0),
                None => (l.strip_prefix("#define __ARM_NR_")?, 0x0f_0000),
            };
            let (name, value) = rest.split_once([' ', '\t'])?;
            let value: String = value.chars().filter(|c| !c.is_whitespace()).collect();
            let nr: u32 = match value
                .strip_prefix("(__NR_SYSCALL_BASE+")
                .or_else(|| value.strip_prefix("(__ARM_NR_BASE+"))
            {
                Some(n) => n.strip_suffix(')')?.parse().ok()?,
                None if base == 0 => value.parse().ok()?,
                None => return None,
            };
            Some((nr + base, name.to_string()))
        })
        .collect()
}

fn covers(profile: Profile, header: &str, not_implemented: &[&str]) {
    covers_all(profile, &[header], not_implemented)
}

fn covers_all(profile: Profile, headers: &[&str], not_implemented: &[&str]) {
    let dir = need(Unistd);
    let kernel: BTreeMap<u32, String> =
        headers.iter().flat_map(|h| numbers(&dir.join(h))).collect();
    let header = headers.join(", ");
    assert!(
        kernel.len() > 300,
        "{header}: only {} numbers",
        kernel.len()
    );
    let missing: Vec<String> = kernel
        .iter()
        .filter(|(nr, name)| {
            profile.lookup(u64::from(**nr)).is_none() && !not_implemented.contains(&name.as_str())
        })
        .map(|(nr, name)| format!("{nr} {name}"))
        .collect();
    assert!(
        missing.is_empty(),
        "{} defines calls the {profile:?} table lacks: {} (rerun scripts/gen-prototypes.py)",
        dir.display(),
        missing.join(", ")
    );
    let extra: Vec<u32> = profile
        .table()
        .iter()
        .flatten()
        .map(|info| info.nr)
        .filter(|nr| !kernel.contains_key(nr))
        .collect();
    assert!(
        extra.is_empty(),
        "numbers the kernel does not define: {extra:?}"
    );
    // A name the kernel does not implement must not have crept into the table.
    for (nr, name) in &kernel {
        if not_implemented.contains(&name.as_str()) {
            assert!(
                profile.lookup(u64::from(*nr)).is_none(),
                "{nr} {name} is in the table"
            );
        }
    }
}
