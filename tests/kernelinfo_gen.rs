//! `vmi kernelinfo` on the lab's real Debian kernels (~/.cache/vmi/kernels, made by
//! `lab/lab kernel NAME`), checked against independent sources:
//!
//! * struct layouts against `pahole -F btf` reading the same image's BTF;
//! * addresses against the guest's own `/proc/kallsyms` (nokaslr): the lines
//!   `scripts/guest-kallsyms` recorded in `tests/fixtures/guest-kallsyms-NAME.txt` when they
//!   are for the cached kernel's release, else read from a guest booted for the test;
//! * the bzImage and the ELF vmlinux give the same group;
//! * where a kernel has both BTF and DWARF (amd64-6.1 and amd64-5.10 with their -dbg
//!   packages), the two give the same group;
//! * the image's kallsyms, every entry, against the -dbg package's `System.map`, read from
//!   the file and from a KASLR-relocated copy of `.rodata` as guest memory holds it, on
//!   every kallsyms layout Debian's archive still has: bullseye's 5.10 (amd64 and 686-pae;
//!   `lab/lab kernel amd64-5.10`, a 57 MB and a 46 MB download, their -dbg packages 803 and
//!   722 MB), bookworm's 6.1 (amd64 and 686-pae), and, from the image alone, 6.12 and
//!   unstable's newest (7.x).
//!
//! A test whose kernel (`lab/lab kernel NAME`), pahole, -dbg vmlinux (`lab/lab dbg NAME`) or,
//! for a stale fixture, QEMU is missing is reported as ignored with the reason
//! (tests/common/harness.rs); with CI=true, VMI_REQUIRE_LAB=1 or (for the -dbg vmlinux)
//! VMI_REQUIRE_DBG=1 it fails instead. A kernel the machine's Debian mirror no longer serves
//! (bullseye's, once Debian archives it) is such a missing kernel.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::process::Command;

use common::Prereq::{self, Dbg, Kernel, Qemu};
use common::{need, need_for, trial};
use vmi::generate::kallsyms::{Kallsyms, Layout, Order};
use vmi::generate::{self as kgen, Generated};

fn main() {
    const A61: &str = "amd64-6.1";
    const A612: &str = "amd64-6.12";
    const I61: &str = "i386-6.1";
    const A510: &str = "amd64-5.10";
    const I510: &str = "i386-5.10";
    const AH61: &str = "armhf-6.1";
    common::run(vec![
        trial(
            "the_newest_debian_kernel_yields_a_group",
            &[Prereq::NewestImage],
            the_newest_debian_kernel_yields_a_group,
        ),
        trial(
            "layouts_amd64_6_1",
            &[Kernel(A61), Prereq::Pahole],
            layouts_amd64_6_1,
        ),
        trial(
            "layouts_amd64_6_12",
            &[Kernel(A612), Prereq::Pahole],
            layouts_amd64_6_12,
        ),
        trial(
            "layouts_i386_6_1_from_dwarf",
            &[Kernel(I61), Dbg(I61), Prereq::Pahole],
            layouts_i386_6_1_from_dwarf,
        ),
        trial(
            "layouts_armhf_6_1_from_dwarf",
            &[Kernel(AH61), Dbg(AH61), Prereq::Pahole],
            layouts_armhf_6_1_from_dwarf,
        ),
        trial("symbols_amd64_6_1", &[Kernel(A61)], symbols_amd64_6_1),
        trial("symbols_amd64_6_12", &[Kernel(A612)], symbols_amd64_6_12),
        trial(
            "bzimage_and_vmlinux_agree",
            &[Kernel(A61), Kernel(A612)],
            bzimage_and_vmlinux_agree,
        ),
        trial(
            "checked_in_groups_are_current",
            &[Kernel(A61), Kernel(A612)],
            checked_in_groups_are_current,
        ),
        trial(
            "i386_without_btf_is_a_clear_error",
            &[Kernel(I61)],
            i386_without_btf_is_a_clear_error,
        ),
        trial(
            "truncated_images_fail_cleanly",
            &[Kernel(A612)],
            truncated_images_fail_cleanly,
        ),
        trial(
            "symbols_i386_6_1_agree_with_image_kallsyms_and_system_map",
            &[Kernel(I61), Dbg(I61)],
            symbols_i386_6_1_agree_with_image_kallsyms_and_system_map,
        ),
        trial("memory_and_image_agree_amd64_6_1", &[Kernel(A61)], || {
            memory_and_image_agree(&kernel_dir(A61).join("vmlinuz"), &[0])
        }),
        trial("memory_and_image_agree_amd64_6_12", &[Kernel(A612)], || {
            memory_and_image_agree(&kernel_dir(A612).join("vmlinuz"), &[0])
        }),
        trial(
            "memory_and_image_agree_newest",
            &[Prereq::NewestImage],
            || memory_and_image_agree(&need(Prereq::NewestImage), &[0, 0x2e00000]),
        ),
        trial(
            "arm64_6_12_image_and_memory_agree",
            &[Kernel("arm64-6.12")],
            arm64_6_12_image_and_memory_agree,
        ),
        trial(
            "arm64_6_1_image_system_map_and_dbg_vmlinux_agree",
            &[Kernel("arm64-6.1"), Dbg("arm64-6.1")],
            arm64_6_1_image_system_map_and_dbg_vmlinux_agree,
        ),
        trial(
            "btf_and_dwarf_agree_amd64_6_1",
            &[Kernel(A61), Dbg(A61)],
            || btf_and_dwarf_agree("amd64-6.1"),
        ),
        trial(
            "btf_and_dwarf_agree_amd64_5_10",
            &[Kernel(A510), Dbg(A510)],
            || btf_and_dwarf_agree("amd64-5.10"),
        ),
        trial(
            "layouts_amd64_5_10",
            &[Kernel(A510), Prereq::Pahole],
            || check_layouts("amd64-5.10", false),
        ),
        trial(
            "layouts_i386_5_10_from_dwarf",
            &[Kernel(I510), Dbg(I510), Prereq::Pahole],
            || check_layouts("i386-5.10", true),
        ),
        trial("kallsyms_amd64_5_10_image", &[Kernel(A510)], || {
            kallsyms_of_the_image_alone(A510)
        }),
        trial("kallsyms_i386_5_10_image", &[Kernel(I510)], || {
            kallsyms_of_the_image_alone(I510)
        }),
        trial("kallsyms_amd64_6_1_image", &[Kernel(A61)], || {
            kallsyms_of_the_image_alone(A61)
        }),
        trial("kallsyms_i386_6_1_image", &[Kernel(I61)], || {
            kallsyms_of_the_image_alone(I61)
        }),
        trial("kallsyms_amd64_6_12_image", &[Kernel(A612)], || {
            kallsyms_of_the_image_alone(A612)
        }),
        trial(
            "kallsyms_amd64_5_10_equal_system_map",
            &[Kernel(A510), Dbg(A510)],
            || kallsyms_equal_system_map(A510),
        ),
        trial(
            "kallsyms_i386_5_10_equal_system_map",
            &[Kernel(I510), Dbg(I510)],
            || kallsyms_equal_system_map(I510),
        ),
        trial(
            "kallsyms_amd64_6_1_equal_system_map",
            &[Kernel(A61), Dbg(A61)],
            || kallsyms_equal_system_map(A61),
        ),
        trial(
            "kallsyms_i386_6_1_equal_system_map",
            &[Kernel(I61), Dbg(I61)],
            || kallsyms_equal_system_map(I61),
        ),
        trial(
            "i386_5_10_from_dwarf_and_its_kallsyms_agree",
            &[Kernel(I510), Dbg(I510)],
            i386_5_10_from_dwarf_and_its_kallsyms_agree,
        ),
    ]);
}

/// The cache directory of lab kernel `name` (`lab/lab kernel NAME`).
fn kernel_dir(name: &'static str) -> PathBuf {
    need(Kernel(name))
}

/// The `uname -r` of the cached kernel `name`.
fn release(name: &'static str) -> String {
    let dir = kernel_dir(name);
    std::fs::read_to_string(dir.join("release"))
        .unwrap_or_else(|e| panic!("{}/release: {e}", dir.display()))
        .trim()
        .to_string()
}

fn generate(path: &std::path::Path) -> Generated {
    let bytes = std::fs::read(path).unwrap();
    kgen::generate(&bytes, None, None).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The newest amd64 image Debian has (unstable's; Linux 7.2 now, whose kallsyms offsets
/// are relative to their own place, with no `kallsyms_relative_base`) gives a whole group:
/// the banner read at the `linux_banner` address kallsyms gives is this kernel's, which it
/// could not be if the addresses were decoded wrong; its kallsyms pass
/// [`check_image_kallsyms`] and read the same from guest memory.
fn the_newest_debian_kernel_yields_a_group() {
    let image = common::need(Prereq::NewestImage);
    let release = image
        .parent()
        .and_then(|d| d.file_name())
        .and_then(|n| n.to_str())
        .expect("lib/modules/<release>/vmlinuz")
        .to_string();
    let info = generate(&image);
    assert!(
        info.group.contains(&release),
        "{} for {release}",
        info.group
    );
    let banner = info.get("vmi.banner").expect("vmi.banner");
    assert!(banner.contains(&release), "{banner}");
    let kernel_half = |key: &str| info.number(key).is_some_and(|a| a >> 47 == 0x1_ffff);
    for key in [
        "task.init_addr",
        "vmi.switch_to_addr",
        "vmi.entry_syscall_addr",
        "vmi.linux_banner_addr",
    ] {
        assert!(kernel_half(key), "{key} = {:?}", info.get(key));
    }
    // Its kallsyms (place-relative), from the file and from guest memory.
    let bytes = std::fs::read(&image).unwrap();
    let k = check_image_kallsyms("amd64-sid", &bytes, &release);
    reads_the_same_from_memory("amd64-sid", &bytes, &k, None);
    eprintln!("{release}: group [{}]", info.group);
}

// ------------------------------------------------------------------- pahole layouts

/// A member as pahole prints it: offset, type text, nested members (inline structs).
#[derive(Debug, Default)]
struct Node {
    name: String,
    ty: String,
    offset: u64,
    children: Vec<Node>,
}

/// The `/* off size */` comment of a pahole line: (offset, rest-of-line before it).
fn comment(line: &str) -> Option<(u64, &str)> {
    let at = line.rfind("/*")?;
    let inner = line[at + 2..].trim_end().strip_suffix("*/")?.trim();
    let off = inner.split([' ', ':']).next()?.parse().ok()?;
    Some((off, &line[..at]))
}

/// Parses `pahole -C NAME` output into the members of NAME and its size.
fn parse_pahole(text: &str) -> (Vec<Node>, Option<u64>) {
    let mut stack: Vec<Vec<Node>> = vec![Vec::new()];
    let mut size = None;
    for line in text.lines().skip(1) {
        let t = line.trim();
        if let Some(s) = t.strip_prefix("/* size: ") {
            size = s.split(',').next().and_then(|n| n.trim().parse().ok());
            continue;
        }
        if t.is_empty() || t.starts_with("/*") {
            continue;
        }
        if t.ends_with('{') {
            stack.push(Vec::new());
            continue;
        }
        if t.starts_with('}') {
            let Some((off, before)) = comment(t) else {
                break; // the closing line of the top-level struct
            };
            // `} name;`, `};` or `} __attribute__((...));` (anonymous).
            let name = before
                .trim_start_matches('}')
                .trim()
                .trim_end_matches(';')
                .split_whitespace()
                .next()
                .filter(|n| !n.starts_with("__attribute__"))
                .unwrap_or("")
                .to_owned();
            let children = stack.pop().unwrap();
            stack.last_mut().unwrap().push(Node {
                name,
                ty: String::new(),
                offset: off,
                children,
            });
            continue;
        }
        let Some((off, before)) = comment(t) else {
            continue;
        };
        let decl = before.trim().trim_end_matches(';');
        let decl = decl.split(" __attribute__").next().unwrap();
        // Function pointers: `ret (*name)(args)`; arrays: `name[16]`; bitfields: `name:3`.
        let (ty, name) = if let Some(p) = decl.find("(*") {
            let rest = &decl[p + 2..];
            (decl[..p].trim(), &rest[..rest.find(')').unwrap()])
        } else {
            let decl = decl.split(':').next().unwrap().trim();
            let decl = decl.split('[').next().unwrap().trim();
            let cut = decl.rfind([' ', '*']).unwrap();
            (decl[..=cut].trim(), decl[cut + 1..].trim())
        };
        stack.last_mut().unwrap().push(Node {
            name: name.to_owned(),
            ty: ty.to_owned(),
            offset: off,
            children: Vec::new(),
        });
    }
    (stack.swap_remove(0), size)
}

/// Offset and type text of `name` among `nodes`, looking inside anonymous members (pahole
/// prints the offsets of their members from the start of the outer struct).
fn find<'a>(nodes: &'a [Node], name: &str) -> Option<(u64, &'a str)> {
    for n in nodes {
        if n.name == name {
            return Some((n.offset, &n.ty));
        }
    }
    nodes
        .iter()
        .filter(|n| n.name.is_empty())
        .find_map(|n| find(&n.children, name))
}

struct Pahole {
    vmlinux: PathBuf,
    format: &'static str,
    cache: HashMap<String, (Vec<Node>, Option<u64>)>,
}

impl Pahole {
    fn layout(&mut self, st: &str) -> &(Vec<Node>, Option<u64>) {
        self.cache.entry(st.to_owned()).or_insert_with(|| {
            let out = Command::new("pahole")
                .args(["-F", self.format, "-C", st])
                .arg(&self.vmlinux)
                .output()
                .expect("pahole runs");
            parse_pahole(&String::from_utf8_lossy(&out.stdout))
        })
    }

    /// `offsetof(st, a.b.c)`: each step in the previous member's struct type.
    fn offset(&mut self, st: &str, path: &str) -> Option<u64> {
        let mut st = st.to_owned();
        let mut total = 0;
        for part in path.split('.') {
            let (off, ty) = find(&self.layout(&st).0, part)?;
            total += off;
            st = ty
                .trim_start_matches("const ")
                .trim_start_matches("struct ")
                .to_owned();
        }
        Some(total)
    }

    fn size(&mut self, st: &str) -> Option<u64> {
        self.layout(st).1
    }
}

/// key → (struct, member path); paths with `|` name alternatives.
const OFFSETS: &[(&str, &str, &str)] = &[
    ("task.tasks_offset", "task_struct", "tasks"),
    ("task.pid_offset", "task_struct", "pid"),
    ("task.tgid_offset", "task_struct", "tgid"),
    ("task.group_leader_offset", "task_struct", "group_leader"),
    ("task.thread_group_offset", "task_struct", "thread_group"),
    ("task.real_parent_offset", "task_struct", "real_parent"),
    ("task.parent_offset", "task_struct", "parent"),
    ("task.mm_offset", "task_struct", "mm"),
    ("task.stack_offset", "task_struct", "stack"),
    ("task.real_cred_offset", "task_struct", "real_cred"),
    ("task.cred_offset", "task_struct", "cred"),
    ("task.comm_offset", "task_struct", "comm"),
    ("task.files_offset", "task_struct", "files"),
    ("task.start_time_offset", "task_struct", "start_time"),
    ("task.thread_node_offset", "task_struct", "thread_node"),
    ("task.signal_offset", "task_struct", "signal"),
    ("task.flags_offset", "task_struct", "flags"),
    ("task.exit_code_offset", "task_struct", "exit_code"),
    ("task.state_offset", "task_struct", "__state|state"),
    ("signal.thread_head_offset", "signal_struct", "thread_head"),
    ("cred.uid_offset", "cred", "uid"),
    ("cred.gid_offset", "cred", "gid"),
    ("cred.euid_offset", "cred", "euid"),
    ("cred.egid_offset", "cred", "egid"),
    ("mm.mmap_offset", "mm_struct", "mmap"),
    ("mm.mm_mt_offset", "mm_struct", "mm_mt"),
    ("mm.pgd_offset", "mm_struct", "pgd"),
    ("mm.arg_start_offset", "mm_struct", "arg_start"),
    ("mm.arg_end_offset", "mm_struct", "arg_end"),
    ("mm.env_start_offset", "mm_struct", "env_start"),
    ("mm.env_end_offset", "mm_struct", "env_end"),
    ("mm.start_brk_offset", "mm_struct", "start_brk"),
    ("mm.brk_offset", "mm_struct", "brk"),
    ("mm.start_stack_offset", "mm_struct", "start_stack"),
    ("mm.map_count_offset", "mm_struct", "map_count"),
    ("vma.vm_mm_offset", "vm_area_struct", "vm_mm"),
    ("vma.vm_start_offset", "vm_area_struct", "vm_start"),
    ("vma.vm_end_offset", "vm_area_struct", "vm_end"),
    ("vma.vm_next_offset", "vm_area_struct", "vm_next"),
    ("vma.vm_flags_offset", "vm_area_struct", "vm_flags"),
    ("vma.vm_file_offset", "vm_area_struct", "vm_file"),
    ("vma.vm_pgoff_offset", "vm_area_struct", "vm_pgoff"),
    ("fs.f_path_dentry_offset", "file", "f_path.dentry"),
    ("fs.f_path_mnt_offset", "file", "f_path.mnt"),
    ("fs.f_pos_offset", "file", "f_pos"),
    ("fs.fdt_offset", "files_struct", "fdt"),
    ("fs.fdtab_offset", "files_struct", "fdtab"),
    ("fs.fd_offset", "fdtable", "fd"),
    ("fs.max_fds_offset", "fdtable", "max_fds"),
    ("qstr.name_offset", "qstr", "name"),
    ("qstr.len_offset", "qstr", "len"),
    ("path.d_name_offset", "dentry", "d_name"),
    ("path.d_iname_offset", "dentry", "d_iname|d_shortname"),
    ("path.d_parent_offset", "dentry", "d_parent"),
    ("path.d_op_offset", "dentry", "d_op"),
    ("path.d_dname_offset", "dentry_operations", "d_dname"),
    ("path.mnt_root_offset", "vfsmount", "mnt_root"),
    ("maple.ma_root_offset", "maple_tree", "ma_root"),
    ("maple.range64_pivot_offset", "maple_range_64", "pivot"),
    ("maple.range64_slot_offset", "maple_range_64", "slot"),
    ("maple.arange64_pivot_offset", "maple_arange_64", "pivot"),
    ("maple.arange64_slot_offset", "maple_arange_64", "slot"),
    ("module.list_offset", "module", "list"),
    ("module.name_offset", "module", "name"),
    ("module.mem_offset", "module", "mem"),
    ("module.core_base_offset", "module", "core_layout.base"),
    ("module.core_size_offset", "module", "core_layout.size"),
    ("module.init_size_offset", "module", "init_layout.size"),
    ("module_memory.base_offset", "module_memory", "base"),
    ("module_memory.size_offset", "module_memory", "size"),
];

const SIZES: &[(&str, &str)] = &[
    ("task.size", "task_struct"),
    ("mm.size", "mm_struct"),
    ("vma.size", "vm_area_struct"),
    ("qstr.size", "qstr"),
    ("maple.node_size", "maple_node"),
    ("module_memory.size", "module_memory"),
];

/// The generator's layouts against pahole's, reading the image's BTF or, with `dwarf` (always
/// for i386: no BTF), the -dbg vmlinux's DWARF.
fn check_layouts(name: &'static str, dwarf: bool) {
    let dir = kernel_dir(name);
    let (info, mut p) = if dwarf {
        // DWARF and symbols from the -dbg vmlinux.
        let dbg = need(Dbg(name));
        let debug = std::fs::read(&dbg).unwrap();
        // armhf's vmlinuz is a zImage, which the generator does not read: the -dbg
        // vmlinux is the image too.
        let image = if name.starts_with("armhf-") {
            debug.clone()
        } else {
            std::fs::read(dir.join("vmlinuz")).unwrap()
        };
        let info = kgen::generate(&image, Some((&dbg, &debug)), Some(&debug)).unwrap();
        let p = Pahole {
            vmlinux: dbg,
            format: "dwarf",
            cache: HashMap::new(),
        };
        (info, p)
    } else {
        let p = Pahole {
            vmlinux: dir.join("vmlinux"),
            format: "btf",
            cache: HashMap::new(),
        };
        (generate(&dir.join("vmlinux")), p)
    };
    let mut checked = 0;
    for &(key, st, paths) in OFFSETS {
        let want = paths.split('|').find_map(|path| p.offset(st, path));
        let got = info.number(key);
        assert_eq!(
            got,
            want.map(i128::from),
            "{name}: {key} ({st}.{paths}): generator vs pahole"
        );
        checked += usize::from(got.is_some());
    }
    for &(key, st) in SIZES {
        let got = info.number(key);
        if got.is_some() {
            assert_eq!(got, p.size(st).map(i128::from), "{name}: {key}");
            checked += 1;
        }
    }
    // mount.mnt_parent - mount.mnt (PANDA's vfsmount-relative offsets).
    for (key, member) in [
        ("path.mnt_parent_offset", "mnt_parent"),
        ("path.mnt_mountpoint_offset", "mnt_mountpoint"),
    ] {
        let want =
            p.offset("mount", member).unwrap() as i128 - p.offset("mount", "mnt").unwrap() as i128;
        assert_eq!(info.number(key), Some(want), "{name}: {key}");
        checked += 1;
    }
    let source = if dwarf { "dwarf" } else { "btf" };
    eprintln!("{name}: {checked} layout values equal pahole -F {source}'s");
    assert!(checked > 60, "{name}: only {checked} values checked");
}

fn layouts_amd64_6_1() {
    check_layouts("amd64-6.1", false);
}

fn layouts_amd64_6_12() {
    check_layouts("amd64-6.12", false);
}

fn layouts_i386_6_1_from_dwarf() {
    check_layouts("i386-6.1", true);
}

/// 32-bit ARM (Debian's armmp-lpae 6.1): no BTF, the -dbg vmlinux's DWARF; its ARM keys
/// name the symbols the plugin needs there.
fn layouts_armhf_6_1_from_dwarf() {
    check_layouts("armhf-6.1", true);
    let dbg = need(Dbg("armhf-6.1"));
    let debug = std::fs::read(&dbg).unwrap();
    let info = kgen::generate(&debug, None, Some(&debug)).unwrap();
    assert!(info.group.ends_with(":32"), "{}", info.group);
    assert!(info.get("name").unwrap().ends_with("|armv7l"));
    let map = std::fs::read_to_string(
        dbg.with_file_name(
            dbg.file_name()
                .unwrap()
                .to_string_lossy()
                .replace("vmlinux-", "System.map-"),
        ),
    )
    .unwrap();
    let addr = |sym: &str| {
        map.lines()
            .find_map(|l| {
                let mut f = l.split_whitespace();
                let (a, _, n) = (f.next()?, f.next()?, f.next()?);
                (n == sym).then(|| i128::from_str_radix(a, 16).ok())?
            })
            .unwrap_or_else(|| panic!("{sym} not in System.map"))
    };
    for (key, sym) in [
        ("task.current_task_addr", "__entry_task"),
        ("vmi.pv_offset_addr", "__pv_offset"),
        ("vmi.swapper_pg_dir_addr", "swapper_pg_dir"),
        ("vmi.vector_swi_addr", "vector_swi"),
        ("vmi.switch_to_addr", "__switch_to"),
        ("task.init_addr", "init_task"),
        ("vmi.modules_addr", "modules"),
    ] {
        assert_eq!(info.number(key), Some(addr(sym)), "{key} = &{sym}");
    }
    // Debian's zImage (xz inside) with the -dbg vmlinux for types and symbols: the same
    // group.
    let zimage = std::fs::read(kernel_dir("armhf-6.1").join("vmlinuz")).unwrap();
    let from_zimage = kgen::generate(&zimage, Some((&dbg, &debug)), Some(&debug)).unwrap();
    assert_eq!(
        from_zimage.to_keyfile(),
        info.to_keyfile(),
        "zImage vs vmlinux"
    );
    for x86 in [
        "vmi.entry_int80_addr",
        "vmi.do_syscall_64_addr",
        "vmi.page_offset",
    ] {
        assert_eq!(info.get(x86), None, "{x86}");
    }
}

// --------------------------------------------------------------- guest kallsyms

/// key → the symbol whose guest address it must equal (plus a BTF member offset for
/// pcpu_hot, checked by the layout tests).
const SYMBOLS: &[(&str, &str)] = &[
    ("task.init_addr", "init_task"),
    ("task.per_cpu_offsets_addr", "__per_cpu_offset"),
    ("task.current_task_addr", "current_task|pcpu_hot"),
    ("vmi.linux_banner_addr", "linux_banner"),
    ("vmi.text_addr", "_text"),
    ("vmi.entry_syscall_addr", "entry_SYSCALL_64"),
    (
        "vmi.entry_int80_addr",
        "entry_INT80_compat|asm_int80_emulation",
    ),
    ("vmi.entry_sysenter_addr", "entry_SYSENTER_compat"),
    ("vmi.page_offset_base_addr", "page_offset_base"),
    ("vmi.modules_addr", "modules"),
];

/// The guest's own `/proc/kallsyms` addresses (nokaslr) of the [`SYMBOLS`] of lab kernel
/// `name`, with where they come from: the checked-in fixture if it was recorded from this
/// release, else a guest booted now (the fixture is older than Debian's kernel:
/// `scripts/guest-kallsyms NAME` refreshes it). Booting needs QEMU: without it the test is
/// ignored, saying why.
fn guest_kallsyms(name: &'static str) -> (HashMap<String, u64>, String) {
    let release = release(name);
    let fixture = format!("tests/fixtures/guest-kallsyms-{name}.txt");
    let text = std::fs::read_to_string(common::root().join(&fixture)).unwrap_or_default();
    let truth = common::Truth::parse(&text);
    let recorded = truth
        .release
        .unwrap_or_else(|| "no release (absent or empty)".into());
    if recorded == release {
        return (truth.kallsyms.into_iter().collect(), fixture);
    }
    let stale = format!("{fixture} is for {recorded}, the cached kernel is {release}");
    need_for(
        &format!("{stale}, and no guest can boot to read its /proc/kallsyms"),
        Qemu,
    );
    eprintln!(
        "{name} symbols: {stale}: reading a guest's /proc/kallsyms \
         (scripts/guest-kallsyms {name} refreshes the fixture)"
    );
    let dir = common::tempdir(&format!("{name}-kallsyms"));
    common::lab([
        std::ffi::OsStr::new("boot"),
        name.as_ref(),
        "kallsyms".as_ref(),
        "--no-plugin".as_ref(),
        "--out".as_ref(),
        dir.as_os_str(),
    ]);
    let run = common::load(&dir);
    assert!(
        run.truth.complete,
        "kallsyms scenario incomplete: {}",
        dir.display()
    );
    assert_eq!(
        run.truth.release.as_deref(),
        Some(release.as_str()),
        "the booted guest's release: {}",
        dir.display()
    );
    (
        run.truth.kallsyms.into_iter().collect(),
        dir.display().to_string(),
    )
}

fn check_symbols(name: &'static str) {
    let dir = kernel_dir(name);
    let (guest, source) = guest_kallsyms(name);
    let info = generate(&dir.join("vmlinuz"));
    let mut checked = 0;
    for &(key, syms) in SYMBOLS {
        let Some(want) = syms.split('|').find_map(|s| guest.get(s)) else {
            continue;
        };
        assert_eq!(
            info.number(key),
            Some(i128::from(*want)),
            "{name}: {key} vs the guest's {syms} ({source})"
        );
        checked += 1;
    }
    eprintln!("{name}: {checked} addresses equal the guest's /proc/kallsyms ({source})");
    assert!(
        checked >= 8,
        "{name}: only {checked} addresses checked ({source})"
    );
}

fn symbols_amd64_6_1() {
    check_symbols("amd64-6.1");
}

fn symbols_amd64_6_12() {
    check_symbols("amd64-6.12");
}

// -------------------------------------------------------------------- other checks

fn bzimage_and_vmlinux_agree() {
    for name in ["amd64-6.1", "amd64-6.12"] {
        let dir = kernel_dir(name);
        let a = generate(&dir.join("vmlinuz"));
        let b = generate(&dir.join("vmlinux"));
        assert_eq!(a.to_keyfile(), b.to_keyfile(), "{name}");
        let release = std::fs::read_to_string(dir.join("release")).unwrap();
        assert_eq!(a.group, format!("debian:{}:64", release.trim()));
        assert!(a.get("vmi.banner").unwrap().starts_with("Linux version "));
    }
}

/// Same for what is checked in: kernelinfo/NAME.conf is what the generator prints now.
fn checked_in_groups_are_current() {
    for name in ["amd64-6.1", "amd64-6.12"] {
        let dir = kernel_dir(name);
        let conf =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("kernelinfo/{name}.conf"));
        let text =
            std::fs::read_to_string(&conf).unwrap_or_else(|e| panic!("{}: {e}", conf.display()));
        let info = generate(&dir.join("vmlinuz"));
        let release = std::fs::read_to_string(dir.join("release")).unwrap();
        if !text.contains(&format!("[debian:{}:", release.trim())) {
            // Debian has a newer kernel than the one kernelinfo/ was made for: the lab
            // generates that one's group (lab/lab conf) meanwhile, and this check cannot
            // run until scripts/gen-kernelinfo: the trial says so (ignored, failed in CI).
            common::part_skipped(
                &format!("the {name} check"),
                &format!(
                    "kernelinfo/{name}.conf is for an older kernel than {}; \
                     scripts/gen-kernelinfo updates it",
                    release.trim()
                ),
            );
            continue;
        }
        assert!(
            text.contains(&info.to_keyfile()),
            "{} is stale: run scripts/gen-kernelinfo",
            conf.display()
        );
    }
}

/// The i386 686-pae image has neither BTF nor KALLSYMS_ALL: a clear error, no panic.
fn i386_without_btf_is_a_clear_error() {
    let dir = kernel_dir("i386-6.1");
    let bytes = std::fs::read(dir.join("vmlinuz")).unwrap();
    let err = kgen::generate(&bytes, None, None).unwrap_err();
    assert!(matches!(err, kgen::GenError::NoBtf), "{err}");
    assert!(err.to_string().contains("--dwarf"));
}

/// Truncated real images fail cleanly.
fn truncated_images_fail_cleanly() {
    let dir = kernel_dir("amd64-6.12");
    let z = std::fs::read(dir.join("vmlinuz")).unwrap();
    for cut in [0, 100, 0x300, z.len() / 2, z.len() * 3 / 4] {
        assert!(
            kgen::generate(&z[..cut], None, None).is_err(),
            "cut at {cut}"
        );
    }
    let x = std::fs::read(dir.join("vmlinux")).unwrap();
    for cut in [64, 4096, x.len() / 3] {
        assert!(
            kgen::generate(&x[..cut], None, None).is_err(),
            "cut at {cut}"
        );
    }
}

/// i386: the addresses taken from the -dbg vmlinux's symbol table equal the image's own
/// kallsyms (text symbols only, no KALLSYMS_ALL) and the -dbg package's System.map.
fn symbols_i386_6_1_agree_with_image_kallsyms_and_system_map() {
    let dir = kernel_dir("i386-6.1");
    let dbg = need(Dbg("i386-6.1"));
    let image = std::fs::read(dir.join("vmlinuz")).unwrap();
    let debug = std::fs::read(&dbg).unwrap();
    let info = kgen::generate(&image, Some((&dbg, &debug)), Some(&debug)).unwrap();
    let elf = kgen::image::kernel_elf(&image).unwrap();
    let ks = kgen::kallsyms::find(&elf, 4, &|_| None).unwrap();
    let mut checked = 0;
    for (key, sym) in [
        ("vmi.text_addr", "_text"),
        ("vmi.entry_int80_addr", "entry_INT80_32"),
        ("vmi.entry_sysenter_addr", "entry_SYSENTER_32"),
    ] {
        assert_eq!(info.number(key), ks.get(sym).map(i128::from), "{key}");
        checked += 1;
    }
    let map_path = dbg.with_file_name(
        dbg.file_name()
            .unwrap()
            .to_string_lossy()
            .replace("vmlinux-", "System.map-"),
    );
    // The -dbg package ships System.map next to the vmlinux (`lab/lab dbg` keeps both).
    let map = std::fs::read(&map_path)
        .unwrap_or_else(|e| panic!("{}: {e} (lab/lab dbg i386-6.1)", map_path.display()));
    let map = kgen::symbols::parse(&map_path, &map).unwrap();
    for (key, sym) in [
        ("task.init_addr", "init_task"),
        ("task.per_cpu_offsets_addr", "__per_cpu_offset"),
        ("task.current_task_addr", "current_task"),
        ("vmi.linux_banner_addr", "linux_banner"),
        ("vmi.modules_addr", "modules"),
    ] {
        assert_eq!(info.number(key), map.get(sym).map(i128::from), "{key}");
        checked += 1;
    }
    eprintln!("i386-6.1: {checked} addresses equal the image's kallsyms / System.map");
}

// ------------------------------------------------------------------- BTF vs DWARF

/// Key prefixes of struct layouts (offsets, sizes, array lengths).
const LAYOUT_PREFIXES: &[&str] = &[
    "task.",
    "cred.",
    "mm.",
    "vma.",
    "fs.",
    "qstr.",
    "path.",
    "module.",
    "module_memory.",
    "maple.",
    "signal.",
];

/// Symbols of the `_addr` keys not in [`SYMBOLS`].
const MORE_SYMBOLS: &[(&str, &str)] = &[
    ("vmi.do_syscall_64_addr", "do_syscall_64"),
    (
        "vmi.do_int80_addr",
        "do_int80_emulation|do_int80_syscall_32",
    ),
    ("vmi.do_fast_syscall_32_addr", "do_fast_syscall_32"),
];

fn values(info: &Generated) -> BTreeMap<&str, &str> {
    info.values().collect()
}

/// Where a kernel has both BTF and DWARF they agree: the group of `name` (amd64-6.1,
/// amd64-5.10) from the image alone (BTF, kallsyms) equals, key by key, its group from the
/// -dbg vmlinux (`--dwarf` and `--symbols`: DWARF, ELF symbol table); and every address
/// key's symbol has the same address in the image's kallsyms and in the symbol table, each
/// read on its own.
fn btf_and_dwarf_agree(name: &'static str) {
    let dir = kernel_dir(name);
    let dbg = need(Dbg(name));
    let image = std::fs::read(dir.join("vmlinuz")).unwrap();
    let debug = std::fs::read(&dbg).unwrap();
    let from_btf = kgen::generate(&image, None, None).unwrap();
    let from_dwarf = kgen::generate(&image, Some((&dbg, &debug)), Some(&debug)).unwrap();
    let (a, b) = (values(&from_btf), values(&from_dwarf));
    let mut diffs = Vec::new();
    if from_btf.group != from_dwarf.group {
        diffs.push(format!(
            "group: BTF {}, DWARF {}",
            from_btf.group, from_dwarf.group
        ));
    }
    let keys: BTreeSet<&str> = a.keys().chain(b.keys()).copied().collect();
    for key in &keys {
        match (a.get(key), b.get(key)) {
            (Some(x), Some(y)) if x == y => {}
            (x, y) => diffs.push(format!("{key}: BTF {x:?}, DWARF {y:?}")),
        }
    }
    let layout = keys
        .iter()
        .filter(|k| LAYOUT_PREFIXES.iter().any(|p| k.starts_with(p)) && !k.ends_with("_addr"))
        .count();

    // The addresses, source by source (the generator would fall back from one to the other).
    let symtab = kgen::symbols::parse(&dbg, &debug).unwrap();
    let kallsyms = image_kallsyms(&image);
    let mut symbols = 0;
    for &(key, names) in SYMBOLS.iter().chain(MORE_SYMBOLS) {
        let found = names.split('|').find_map(|s| {
            let pair = (kallsyms.get(s), symtab.get(s));
            (pair != (None, None)).then_some((s, pair))
        });
        match found {
            Some((_, (Some(x), Some(y)))) if x == y => symbols += 1,
            Some((s, (x, y))) => diffs.push(format!(
                "{key} ({s}): kallsyms {x:#x?}, symbol table {y:#x?}"
            )),
            None => {}
        }
    }
    assert!(
        diffs.is_empty(),
        "{name}: BTF/kallsyms and DWARF/symbol table differ ({} of {} keys):\n{}",
        diffs.len(),
        keys.len(),
        diffs.join("\n")
    );
    eprintln!(
        "{name}: {} keys equal from BTF and DWARF ({layout} layout values), \
         {symbols} symbols equal in kallsyms and the symbol table",
        keys.len()
    );
    assert!(layout > 60, "{name}: only {layout} layout values compared");
    assert!(symbols >= 10, "{name}: only {symbols} symbols compared");
}

// ------------------------------------------------------------------- from memory

/// An ELF vmlinux's loadable segments at their link-time addresses moved by `slide`, as
/// the running kernel has them (bss as zeros); nothing else is readable.
struct Loaded(Vec<(u64, Vec<u8>)>);

impl Loaded {
    fn new(elf: &[u8], slide: u64) -> Loaded {
        use object::read::elf::{ElfFile64, ProgramHeader};
        let file = ElfFile64::<object::Endianness>::parse(elf).expect("ELF vmlinux");
        let e = file.endian();
        let mut segments = Vec::new();
        for ph in file.elf_program_headers() {
            let va = ph.p_vaddr(e);
            if ph.p_type(e) != object::elf::PT_LOAD || va >> 47 != 0x1_ffff {
                continue;
            }
            let mut bytes = ph.data(e, elf).expect("segment").to_vec();
            bytes.resize(ph.p_memsz(e) as usize, 0);
            segments.push((va + slide, bytes));
        }
        Loaded(segments)
    }
}

impl vmi::mem::GuestMemory for Loaded {
    fn read(&self, va: u64, buf: &mut [u8]) -> Result<(), vmi::mem::Fault> {
        let fault = vmi::mem::Fault { va, len: buf.len() };
        for (start, bytes) in &self.0 {
            if let Some(at) = va.checked_sub(*start)
                && let Some(src) = bytes.get(at as usize..at as usize + buf.len())
            {
                buf.copy_from_slice(src);
                return Ok(());
            }
        }
        Err(fault)
    }
}

/// The plugin's reading of a running kernel's memory gives, key for key, the group `vmi
/// kernelinfo` makes from the image file, from wherever the first kernel block QEMU
/// translates may be (the system call entry; `startup_64` after a bzImage boot;
/// `x86_64_start_kernel`, init code past the read-only data, after a PVH boot); under each
/// `slides` (only position-independent kallsyms, 7.x's, can be moved here: older tables
/// hold a base the kernel relocates at boot).
fn memory_and_image_agree(image: &std::path::Path, slides: &[u64]) {
    let bytes = std::fs::read(image).unwrap();
    let offline = kgen::generate(&bytes, None, None).unwrap();
    let elf = kgen::image::kernel_elf(&bytes).unwrap();
    let symbols = kgen::image::Elf::parse(&elf).unwrap().kallsyms().unwrap();
    let starts = ["entry_SYSCALL_64", "startup_64", "x86_64_start_kernel"]
        .map(|s| symbols.get(s).unwrap_or_else(|| panic!("{s}")));
    let target = kgen::memory::Target {
        bits: 64,
        machine: "x86_64",
        link_text: &[0xffff_ffff_8100_0000],
    };
    for (&slide, start) in slides
        .iter()
        .flat_map(|s| starts.iter().map(move |a| (s, a)))
    {
        let mem = Loaded::new(&elf, slide);
        let t = std::time::Instant::now();
        let found = kgen::memory::from_memory(&mem, start + slide, target)
            .unwrap_or_else(|e| panic!("{} slid by {slide:#x}: {e}", image.display()));
        eprintln!(
            "{}: from {start:#x}, slide {slide:#x}: {} bytes read, {} symbols, BTF {} bytes, {:?}",
            offline.group,
            found.read,
            found.symbols,
            found.btf_len,
            t.elapsed()
        );
        assert_eq!(found.slide, slide);
        assert_eq!(found.generated.group, offline.group);
        let (a, b) = (values(&offline), values(&found.generated));
        assert_eq!(a, b, "{} slid by {slide:#x}", image.display());
    }
}

/// An arm64 `Image` as memory holds it without KASLR: from its link address.
struct ImageMemory<'a> {
    base: u64,
    bytes: &'a [u8],
}

impl vmi::mem::GuestMemory for ImageMemory<'_> {
    fn read(&self, va: u64, buf: &mut [u8]) -> Result<(), vmi::mem::Fault> {
        let fault = vmi::mem::Fault { va, len: buf.len() };
        let at = va.checked_sub(self.base).ok_or(fault)? as usize;
        let src = self.bytes.get(at..at + buf.len()).ok_or(fault)?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

/// Debian's arm64 6.12 `Image` (raw, no ELF inside): `vmi kernelinfo` reads it at the link
/// address its relocations give, relocated there; the plugin's reading of the same bytes
/// as memory, from `do_el0_svc` (the first kernel code a system call reaches), gives the
/// same group key for key; and the boot header found from there is `_text`, where the
/// plugin places a `conf=` group under KASLR.
fn arm64_6_12_image_and_memory_agree() {
    let file = std::fs::read(kernel_dir("arm64-6.12").join("vmlinuz")).unwrap();
    let offline = kgen::generate(&file, None, None).unwrap();
    let image = kgen::image::arm64_image(&file)
        .unwrap()
        .expect("an arm64 Image");
    assert_eq!(image.link, 0xffff_8000_8000_0000);
    assert_eq!(
        offline.get("vmi.text_addr"),
        Some(image.link.to_string().as_str())
    );
    let mem = ImageMemory {
        base: image.link,
        bytes: &image.bytes,
    };
    let svc: u64 = offline
        .get("vmi.do_syscall_64_addr")
        .unwrap()
        .parse()
        .unwrap();
    let found = kgen::memory::from_memory(&mem, svc, kgen::memory::Target::AARCH64).unwrap();
    assert_eq!(found.slide, 0);
    assert_eq!(values(&offline), values(&found.generated));
    assert_eq!(kgen::memory::arm64_text(&mem, svc), Some(image.link));
}

/// Debian's arm64 6.1: its kallsyms has code symbols only, and its package's System.map is
/// a placeholder, so its group comes from the `Image` with the -dbg package's System.map;
/// that group equals, key for key, the one from the -dbg vmlinux alone (its own symbol
/// table and BTF) and the one with its DWARF in place of the image's BTF. Every kallsyms
/// entry of the `Image` is at the System.map's address.
fn arm64_6_1_image_system_map_and_dbg_vmlinux_agree() {
    let dir = kernel_dir("arm64-6.1");
    let vmlinux = need(Dbg("arm64-6.1"));
    let map = vmlinux
        .parent()
        .unwrap()
        .join(format!("System.map-{}", release("arm64-6.1")));
    let file = std::fs::read(dir.join("vmlinuz")).unwrap();
    let map_bytes = std::fs::read(&map).unwrap();
    let dbg = std::fs::read(&vmlinux).unwrap();
    let alone = kgen::generate(&file, None, None).unwrap_err().to_string();
    assert!(alone.contains("init_task"), "{alone}");
    let from_image = kgen::generate(&file, Some((&map, &map_bytes)), None).unwrap();
    let from_dbg = kgen::generate(&dbg, None, None).unwrap();
    let from_dwarf = kgen::generate(&file, Some((&map, &map_bytes)), Some(&dbg)).unwrap();
    assert_eq!(values(&from_image), values(&from_dbg));
    assert_eq!(values(&from_image), values(&from_dwarf));

    let image = kgen::image::arm64_image(&file)
        .unwrap()
        .expect("an arm64 Image");
    assert_eq!(image.link, 0xffff_8000_0800_0000);
    let kallsyms = kgen::kallsyms::find(&image.bytes, 8, &|off| Some(image.link + off as u64))
        .expect("the Image's kallsyms");
    let system_map = kgen::symbols::parse(&map, &map_bytes).unwrap();
    // Static functions of one name in two files (gic_handle_irq of GICv2 and v3) are
    // named once in the System.map reader: compared are the names kallsyms has once.
    let mut count: HashMap<&str, usize> = HashMap::new();
    for s in kallsyms.entries() {
        *count.entry(&s.name).or_default() += 1;
    }
    let mut checked = 0;
    for s in kallsyms
        .entries()
        .iter()
        .filter(|s| count[s.name.as_str()] == 1)
    {
        if let Some(a) = system_map.get(&s.name) {
            assert_eq!(s.addr, a, "{}", s.name);
            checked += 1;
        }
    }
    let unique = count.values().filter(|&&n| n == 1).count();
    eprintln!(
        "arm64 6.1: {checked} of {unique} kallsyms names (of {} entries) are in System.map, at its addresses",
        kallsyms.len()
    );
    assert!(checked * 100 >= unique * 99, "{checked} of {unique}");
}

// ------------------------------------------------------------------- kallsyms layouts

/// Symbols of [`expected`] that are code (in `.text`).
const CODE: &[&str] = &[
    "_text",
    "startup_32",
    "entry_SYSCALL_64",
    "do_syscall_64",
    "entry_INT80_32",
    "entry_SYSENTER_32",
    "do_int80_syscall_32",
    "schedule",
];

/// Symbols of [`expected`] that are data, and their section.
const DATA: &[(&str, &str)] = &[
    ("init_task", ".data"),
    // __ro_after_init, which x86 keeps in .rodata.
    ("__per_cpu_offset", ".rodata"),
    ("modules", ".data"),
    ("linux_banner", ".rodata"),
];

/// The kallsyms layout each lab kernel has (src/generate/kallsyms.rs): what its image must
/// be read as, and the symbols its table must hold (data symbols only where the kernel has
/// `CONFIG_KALLSYMS_ALL`: not on 686-pae).
fn expected(name: &str) -> ((Layout, Order), &'static [&'static str]) {
    const AMD64: &[&str] = &[
        "_text",
        "init_task",
        "__per_cpu_offset",
        "linux_banner",
        "entry_SYSCALL_64",
        "do_syscall_64",
        "modules",
    ];
    const I386: &[&str] = &[
        "_text",
        "startup_32",
        "entry_INT80_32",
        "entry_SYSENTER_32",
        "do_int80_syscall_32",
        "schedule",
    ];
    match name {
        "amd64-5.10" | "amd64-6.1" => ((Layout::BaseRelativePercpu, Order::AddressesFirst), AMD64),
        "amd64-6.12" => ((Layout::BaseRelativePercpu, Order::AddressesLast), AMD64),
        "i386-5.10" | "i386-6.1" => ((Layout::BaseRelative, Order::AddressesFirst), I386),
        // Unstable's newest (7.2 today).
        "amd64-sid" => ((Layout::PlaceRelative, Order::AddressesLast), AMD64),
        other => panic!("no expected kallsyms layout for {other}"),
    }
}

/// The kallsyms of a kernel image (bzImage or ELF), read as `vmi kernelinfo` reads them.
fn image_kallsyms(image: &[u8]) -> Kallsyms {
    let elf_bytes = kgen::image::kernel_elf(image).unwrap();
    let elf = kgen::image::Elf::parse(&elf_bytes).unwrap();
    let ptr = if elf.bits == 64 { 8 } else { 4 };
    kgen::kallsyms::find(elf.data, ptr, &|off| elf.addr_of_offset(off)).unwrap()
}

/// Checks `name`'s kallsyms with what its image alone tells: the layout it must have, the
/// symbols it must hold, each in its section (`_text` at the start of `.text`), every entry
/// in a section of the image, and (where the table has data symbols) `linux_banner`
/// pointing at this kernel's banner.
fn kallsyms_of_the_image_alone(name: &'static str) {
    let dir = kernel_dir(name);
    let image = std::fs::read(dir.join("vmlinuz")).unwrap();
    check_image_kallsyms(name, &image, &release(name));
}

/// [`kallsyms_of_the_image_alone`] of `image`, kernel `release`, whose layout is
/// [`expected`]`(name)`'s.
fn check_image_kallsyms(name: &str, image: &[u8], release: &str) -> Kallsyms {
    let elf_bytes = kgen::image::kernel_elf(image).unwrap();
    let elf = kgen::image::Elf::parse(&elf_bytes).unwrap();
    let k = image_kallsyms(image);
    let (layout, names) = expected(name);
    assert_eq!((k.layout, k.order), layout, "{name}: layout");
    for n in names {
        assert!(k.get(n).is_some(), "{name}: no {n} in kallsyms");
    }
    let text = elf
        .sections
        .iter()
        .find(|x| x.name == ".text")
        .unwrap_or_else(|| panic!("{name}: no .text section"));
    assert_eq!(k.get("_text"), Some(text.addr), "{name}: _text");
    for n in names {
        let section = if CODE.contains(n) {
            ".text"
        } else {
            DATA.iter().find(|d| d.0 == *n).map_or("?", |d| d.1)
        };
        let s = elf.sections.iter().find(|x| x.name == section);
        let a = k.get(n).unwrap_or_default();
        assert!(
            s.is_some_and(|s| (s.addr..s.addr + s.size).contains(&a)),
            "{name}: {n} at {a:#x}, not in {section}"
        );
    }
    // Every entry lies in a section of the image (the end included: `_etext`, `_end`),
    // but x86_64's zero-based per-CPU symbols.
    let percpu = k.layout == Layout::BaseRelativePercpu;
    let outside: Vec<String> = k
        .entries()
        .iter()
        .filter(|s| !(percpu && s.kind == 'A'))
        .filter(|s| {
            !elf.sections
                .iter()
                .any(|x| x.addr != 0 && (x.addr..=x.addr + x.size).contains(&s.addr))
        })
        .map(|s| format!("{} {} {:#x}", s.kind, s.name, s.addr))
        .collect();
    // But for a few linker-script boundaries (`__end_rodata`), page-aligned, in the gaps.
    assert!(
        outside.len() <= 10 && outside.iter().all(|s| s.ends_with("000")),
        "{name}: {} of {} entries outside the image's sections: {:?}",
        outside.len(),
        k.len(),
        &outside[..outside.len().min(20)]
    );
    if let Some(at) = k.get("linux_banner") {
        let bytes = elf.at_addr(at).expect("linux_banner in the image");
        let banner = String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned();
        assert!(
            banner.starts_with(&format!("Linux version {release} ")),
            "{name}: at linux_banner: {banner}"
        );
    }
    eprintln!(
        "{name} ({release}): {} kallsyms entries ({:?}, {:?}), all in the image's sections \
         but {outside:?}",
        k.len(),
        k.layout,
        k.order,
    );
    k
}

/// The -dbg package's `System.map` next to its vmlinux (`lab/lab dbg` keeps both).
fn system_map(name: &'static str) -> (PathBuf, HashMap<String, Vec<u64>>) {
    let dbg = need(Dbg(name));
    let path = dbg.with_file_name(
        dbg.file_name()
            .unwrap()
            .to_string_lossy()
            .replace("vmlinux-", "System.map-"),
    );
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (lab/lab dbg {name})", path.display()));
    let mut map: HashMap<String, Vec<u64>> = HashMap::new();
    for line in text.lines() {
        let mut f = line.split_whitespace();
        if let (Some(addr), Some(_), Some(sym)) = (f.next(), f.next(), f.next()) {
            let addr = u64::from_str_radix(addr, 16).unwrap_or_else(|e| panic!("{line}: {e}"));
            map.entry(sym.to_string()).or_default().push(addr);
        }
    }
    assert!(
        map.len() > 10_000,
        "{}: {} symbols",
        path.display(),
        map.len()
    );
    (path, map)
}

/// Every entry of `name`'s kallsyms equals the -dbg package's `System.map` (where the map
/// has the name: mksysmap leaves out local labels, `.L*`); then the same from a
/// KASLR-relocated copy of `.rodata`, as guest memory holds it.
fn kallsyms_equal_system_map(name: &'static str) {
    let dir = kernel_dir(name);
    let (map_path, map) = system_map(name);
    let image = std::fs::read(dir.join("vmlinuz")).unwrap();
    let k = image_kallsyms(&image);
    let (layout, names) = expected(name);
    assert_eq!((k.layout, k.order), layout, "{name}: layout");
    let mut equal = 0;
    let mut labels = 0;
    let mut absent = Vec::new();
    let mut differ = Vec::new();
    for s in k.entries() {
        match map.get(&s.name) {
            Some(addrs) if addrs.contains(&s.addr) => equal += 1,
            Some(addrs) => differ.push(format!("{} {:#x} (map: {addrs:#x?})", s.name, s.addr)),
            // mksysmap leaves out local labels, which 5.10's kallsyms keeps.
            None if s.name.starts_with(".L") => labels += 1,
            None => absent.push(s.name.as_str()),
        }
    }
    assert!(
        differ.is_empty(),
        "{name}: {} of {} kallsyms entries differ from {}: {:?}",
        differ.len(),
        k.len(),
        map_path.display(),
        &differ[..differ.len().min(20)]
    );
    assert!(
        absent.len() <= k.len() / 1000,
        "{name}: {} of {} kallsyms entries not in {}: {:?}",
        absent.len(),
        k.len(),
        map_path.display(),
        &absent[..absent.len().min(20)]
    );
    for n in names {
        assert_eq!(
            k.get(n)
                .map(|a| map.get(*n).is_some_and(|m| m.contains(&a))),
            Some(true),
            "{name}: {n}"
        );
    }
    assert!(equal > 20_000, "{name}: only {equal} entries compared");

    let base = map.get("kallsyms_relative_base").and_then(|v| v.first());
    reads_the_same_from_memory(name, &image, &k, base.copied());
    eprintln!(
        "{name}: {equal} of {} kallsyms entries ({:?}, {:?}) equal {} ({labels} local \
         labels and {} others not in it), and read the same from relocated memory",
        k.len(),
        k.layout,
        k.order,
        map_path.display(),
        absent.len()
    );
}

/// `k`, the kallsyms of `image`, read again from guest memory: `.rodata` alone, at its
/// address plus a KASLR slide, with what the kernel relocates there relocated (the
/// `kallsyms_relative_base` at `relative_base`, if the kernel has one; offsets are not
/// relocated). Every address moves by the slide, but x86_64's absolute per-CPU ones (nm
/// type A).
fn reads_the_same_from_memory(name: &str, image: &[u8], k: &Kallsyms, relative_base: Option<u64>) {
    let elf_bytes = kgen::image::kernel_elf(image).unwrap();
    let elf = kgen::image::Elf::parse(&elf_bytes).unwrap();
    let ptr = if elf.bits == 64 { 8 } else { 4 };
    let ro = elf
        .sections
        .iter()
        .find(|s| s.name == ".rodata")
        .expect(".rodata");
    let mut mem = elf.section(".rodata").expect(".rodata bytes").to_vec();
    let slide: u64 = if ptr == 8 { 0x1e20_0000 } else { 0x0120_0000 };
    if let Some(base) = relative_base {
        let at = usize::try_from(base - ro.addr).unwrap();
        let word = &mut mem[at..at + ptr];
        let mut value = [0u8; 8];
        value[..ptr].copy_from_slice(word);
        let relocated = u64::from_le_bytes(value) + slide;
        word.copy_from_slice(&relocated.to_le_bytes()[..ptr]);
    }
    let va = ro.addr + slide;
    let m = kgen::kallsyms::find(&mem, ptr, &|off| Some(va + off as u64)).unwrap();
    assert_eq!(
        (m.layout, m.order),
        (k.layout, k.order),
        "{name}: layout in memory"
    );
    assert_eq!(m.len(), k.len(), "{name}: entries in memory");
    for (a, b) in k.entries().iter().zip(m.entries()) {
        let moved = if k.layout == Layout::BaseRelativePercpu && a.kind == 'A' {
            0
        } else {
            slide
        };
        assert_eq!(
            (&b.name, b.addr),
            (&a.name, a.addr + moved),
            "{name}: in memory"
        );
    }
}

/// i386 5.10 (no BTF): its group from the -dbg vmlinux (`--dwarf`, `--symbols`), and every
/// address key whose symbol the image's own kallsyms holds (text symbols: no
/// `CONFIG_KALLSYMS_ALL`) has kallsyms' address.
fn i386_5_10_from_dwarf_and_its_kallsyms_agree() {
    let name = "i386-5.10";
    let dir = kernel_dir(name);
    let dbg = need(Dbg(name));
    let image = std::fs::read(dir.join("vmlinuz")).unwrap();
    let debug = std::fs::read(&dbg).unwrap();
    let err = kgen::generate(&image, None, None).unwrap_err();
    assert!(matches!(err, kgen::GenError::NoBtf), "{err}");
    let info = kgen::generate(&image, Some((&dbg, &debug)), Some(&debug)).unwrap();
    assert_eq!(info.group, format!("debian:{}:32", release(name)));
    let k = image_kallsyms(&image);
    let mut checked = 0;
    for (key, sym) in [
        ("vmi.text_addr", "_text"),
        ("vmi.entry_int80_addr", "entry_INT80_32"),
        ("vmi.entry_sysenter_addr", "entry_SYSENTER_32"),
        ("vmi.do_int80_addr", "do_int80_syscall_32"),
        ("vmi.do_fast_syscall_32_addr", "do_fast_syscall_32"),
        ("vmi.switch_to_addr", "__switch_to"),
    ] {
        if info.get(key).is_none() {
            continue;
        }
        assert_eq!(
            info.number(key),
            k.get(sym).map(i128::from),
            "{key} ({sym})"
        );
        checked += 1;
    }
    eprintln!("{name}: {checked} address keys from the symbol table equal the image's kallsyms");
    assert!(checked >= 4, "{name}: only {checked} keys checked");
}
