//! From an ELF vmlinux to the keys of `docs/kernelinfo.md`: layouts from BTF, addresses from
//! kallsyms (or a symbol file), names from `linux_banner`.
//!
//! Layout changes are handled by asking whether a member exists, never by version:
//!
//! | change | kernel |
//! |---|---|
//! | `task_struct.state` → `__state` | 5.14 |
//! | `mm_struct.mmap` / `vm_area_struct.vm_next` → `mm_struct.mm_mt` (maple tree) | 6.1 |
//! | `current_task` per-CPU variable → `pcpu_hot.current_task` | 6.2 (x86) |
//! | `module.core_layout`/`init_layout` → `module.mem[MOD_MEM_NUM_TYPES]` | 6.4 |
//! | `task_struct.thread_group` removed (`thread_node` + `signal->thread_head` since 6.6) | 6.7 |
//! | `dentry.d_iname` → `d_shortname` | 6.14 |

use super::kallsyms::Kallsyms;
use super::symbols::SymbolFile;
use super::types::Types;
use super::{GenError, Result};

/// One line of a group as the generator collects it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    /// `# text`.
    Comment(String),
    /// `key = value`.
    Value(String, String),
}

/// A generated kernelinfo group. Its content is the reader's own type
/// ([`crate::config::KernelInfo`], what the plugin loads), written by that type: the
/// generator cannot write a key the plugin does not read, nor a value it would refuse.
#[derive(Debug, Clone)]
pub struct Generated {
    /// The group name, `distro:release:bits` (`debian:6.1.0-56-amd64:64`).
    pub group: String,
    /// The group, typed.
    pub info: crate::config::KernelInfo,
    /// What the reader of the file should know (keys that cannot be generated).
    pub notes: Vec<String>,
    /// `key = value` pairs as written, for lookups.
    written: Vec<(String, String)>,
}

impl Generated {
    /// Checks the generator's `entries` by reading them as the plugin does.
    fn new(group: String, entries: Vec<Entry>) -> Result<Generated> {
        let mut text = format!("[{group}]\n");
        let mut notes = Vec::new();
        for e in entries {
            match e {
                Entry::Comment(c) => notes.push(c),
                Entry::Value(k, v) => text.push_str(&format!("{k} = {v}\n")),
            }
        }
        let origin = std::path::Path::new("(generated)");
        let invalid = |e: crate::config::ConfigError| GenError::Invalid(e.to_string());
        let keys = crate::config::KeyFile::parse(&text, origin).map_err(invalid)?;
        let info = crate::config::KernelInfo::from_keyfile(&keys, &group).map_err(invalid)?;
        if !info.extra.is_empty() {
            let unknown: Vec<&str> = info.extra.keys().map(String::as_str).collect();
            return Err(GenError::Invalid(format!(
                "keys the kernelinfo reader does not know: {}",
                unknown.join(", ")
            )));
        }
        let written = info
            .to_keyfile_text(&group)
            .lines()
            .filter_map(|l| l.split_once(" = "))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Ok(Generated {
            group,
            info,
            notes,
            written,
        })
    }

    /// The value of `key`, as written.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.written
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every `key = value` as written, in file order.
    pub fn values(&self) -> impl Iterator<Item = (&str, &str)> {
        self.written.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The value of `key` as a number (decimal or `0x` hex).
    pub fn number(&self, key: &str) -> Option<i128> {
        let v = self.get(key)?;
        match v.strip_prefix("0x") {
            Some(h) => i128::from_str_radix(h, 16).ok(),
            None => v.parse().ok(),
        }
    }

    /// The group as key-file text: the notes, then the keys as the reader's type writes
    /// them.
    pub fn to_keyfile(&self) -> String {
        let text = self.info.to_keyfile_text(&self.group);
        let (header, keys) = text.split_once('\n').unwrap_or((&text, ""));
        let mut out = format!("{header}\n");
        for n in &self.notes {
            out.push_str(&format!("# {n}\n"));
        }
        out.push_str(keys);
        out
    }
}

/// Escapes a key-file value (GLib: `\\`, `\n`, `\t`, `\r`, leading space as `\s`).
fn escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for (i, c) in v.chars().enumerate() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            ' ' if i == 0 => out.push_str("\\s"),
            c => out.push(c),
        }
    }
    out
}

/// What the banner says about the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Banner {
    /// `uname -r`.
    pub release: String,
    /// `uname -v`.
    pub version: String,
    /// Upstream version numbers.
    pub numbers: (u32, u32, u32),
    /// `debian`, `ubuntu` or `linux`.
    pub distro: &'static str,
}

/// Parses `Linux version RELEASE (BUILDER) (COMPILER) VERSION`.
pub fn parse_banner(banner: &str) -> Option<Banner> {
    let rest = banner.strip_prefix("Linux version ")?;
    let release = rest.split_whitespace().next()?.to_owned();
    let version = match rest.rfind(") #") {
        Some(i) => &rest[i + 2..],
        None => &rest[rest.find(" #")? + 1..],
    }
    .trim_end()
    .to_owned();
    let distro = if banner.contains("Ubuntu") {
        "ubuntu"
    } else if banner.contains("Debian") || banner.contains("debian") {
        "debian"
    } else {
        "linux"
    };
    // Debian's release is the ABI (6.1.0-56); the upstream version is in `uname -v`
    // ("... Debian 6.1.158-1 (2025-11-09)").
    let numbers = version
        .split_once("Debian ")
        .and_then(|(_, v)| numbers(v))
        .or_else(|| numbers(&release))?;
    Some(Banner {
        release,
        version,
        numbers,
        distro,
    })
}

fn numbers(s: &str) -> Option<(u32, u32, u32)> {
    let head: String = s
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let mut it = head.split('.').map(|p| p.parse::<u32>().ok());
    let a = it.next()??;
    let b = it.next()??;
    let c = it.next().flatten().unwrap_or(0);
    Some((a, b, c))
}

/// A kernel as the generator reads it, besides its types: an ELF vmlinux file
/// ([`super::image::Elf`]) or the running kernel's image read from guest memory
/// ([`super::memory`]). Addresses are link-time ones in both.
pub trait KernelImage {
    /// 64 or 32.
    fn bits(&self) -> u32;
    /// The machine as `uname -m` says (`x86_64`, `i686`), for the group's name.
    fn machine(&self) -> &str;
    /// The bytes from link-time address `addr` to the end of what is known there.
    fn at_addr(&self, addr: u64) -> Option<&[u8]>;
    /// The read-only data, searched for the banner when no symbol names it.
    fn rodata(&self) -> Option<&[u8]>;
    /// The kernel's virtual minus physical address (the direct-map base on i386), when
    /// known.
    fn virt_minus_phys(&self) -> Option<u64>;
}

/// Reads the NUL-terminated banner at `addr`, or finds it in the read-only data.
fn read_banner(image: &dyn KernelImage, addr: Option<u64>) -> Result<String> {
    let raw = match addr.and_then(|a| image.at_addr(a)) {
        Some(b) => b,
        None => {
            let ro = image
                .rodata()
                .ok_or_else(|| GenError::Banner("no linux_banner symbol and no .rodata".into()))?;
            let mut from = 0;
            loop {
                let at = super::image::find(&ro[from..], b"Linux version ")
                    .ok_or_else(|| GenError::Banner("no 'Linux version' string".into()))?;
                let s = &ro[from + at..];
                if s.get(14).is_some_and(u8::is_ascii_digit) {
                    break s;
                }
                from += at + 1;
            }
        }
    };
    let end = raw
        .iter()
        .take(1024)
        .position(|&b| b == 0)
        .ok_or_else(|| GenError::Banner("not NUL-terminated".into()))?;
    let s = std::str::from_utf8(&raw[..end]).map_err(|e| GenError::Banner(e.to_string()))?;
    if !s.starts_with("Linux version ") {
        return Err(GenError::Banner(format!("unexpected text '{s}'")));
    }
    Ok(s.trim_end_matches('\n').to_owned())
}

/// Collects entries and whatever is missing.
struct Builder<'b> {
    btf: &'b dyn Types,
    kallsyms: Option<&'b Kallsyms>,
    extra: Option<&'b SymbolFile>,
    entries: Vec<Entry>,
    missing_types: Vec<String>,
    missing_symbols: Vec<String>,
}

impl Builder<'_> {
    fn value(&mut self, key: &str, v: String) {
        self.entries.push(Entry::Value(key.to_owned(), v));
    }
    fn comment(&mut self, c: &str) {
        self.entries.push(Entry::Comment(c.to_owned()));
    }

    /// Address of the first of `names` that exists.
    fn addr(&self, names: &[&str]) -> Option<u64> {
        names.iter().find_map(|n| {
            self.extra
                .and_then(|s| s.get(n))
                .or_else(|| self.kallsyms.and_then(|k| k.get(n)))
        })
    }

    fn sym(&mut self, key: &str, names: &[&str], required: bool) -> Option<u64> {
        let a = self.addr(names);
        match a {
            Some(a) => self.value(key, format!("{a:#x}")),
            None if required => self.missing_symbols.push(names.join("|")),
            None => {}
        }
        a
    }

    /// `offsetof(st, path)` for the first of `paths` that exists.
    fn off_of(&self, st: &str, paths: &[&str]) -> Option<(u64, u64)> {
        paths.iter().find_map(|p| self.btf.offset_of(st, p))
    }

    fn off(&mut self, key: &str, st: &str, paths: &[&str], required: bool) -> Option<(u64, u64)> {
        let r = self.off_of(st, paths);
        match r {
            Some((o, _)) => self.value(key, o.to_string()),
            None if required => self.missing_types.push(format!("{st}.{}", paths.join("|"))),
            None => {}
        }
        r
    }

    fn size(&mut self, key: &str, st: &str, required: bool) {
        match self.btf.struct_size(st) {
            Some(s) => self.value(key, s.to_string()),
            None if required => self.missing_types.push(format!("struct {st}")),
            None => {}
        }
    }

    /// `sizeof` the member at `st.path` (arrays: the whole array).
    fn member_size(&mut self, key: &str, st: &str, path: &str) {
        match self
            .off_of(st, &[path])
            .and_then(|(_, t)| self.btf.size_of(t))
        {
            Some(s) => self.value(key, s.to_string()),
            None => self.missing_types.push(format!("sizeof {st}.{path}")),
        }
    }

    /// Number of elements of the array at `st.path`.
    fn array_len(&mut self, key: &str, st: &str, path: &str) {
        match self
            .off_of(st, &[path])
            .and_then(|(_, t)| self.btf.array(t))
        {
            Some((_, n)) => self.value(key, n.to_string()),
            None => self.missing_types.push(format!("{st}.{path}[]")),
        }
    }

    /// `offsetof(st, a) - offsetof(st, b)`.
    fn rel(&mut self, key: &str, st: &str, a: &str, b: &str) {
        let (x, y) = (self.off_of(st, &[a]), self.off_of(st, &[b]));
        match x.zip(y).and_then(|((x, _), (y, _))| difference(x, y)) {
            Some(d) => self.value(key, d.to_string()),
            None => self.missing_types.push(format!("{st}.{a} - {st}.{b}")),
        }
    }
}

/// `x - y` as a signed offset; `None` when hostile type information makes it overflow.
fn difference(x: u64, y: u64) -> Option<i64> {
    i64::try_from(x).ok()?.checked_sub(i64::try_from(y).ok()?)
}

/// Builds the group of a kernel from its bytes, its kallsyms tables (as found in it, at
/// link-time addresses) and its type information.
pub fn build(
    image: &dyn KernelImage,
    kallsyms: Result<Kallsyms>,
    types: &dyn Types,
    extra: Option<&SymbolFile>,
) -> Result<Generated> {
    let kallsyms = match kallsyms {
        Ok(k) => Some(k),
        // A symbol file makes kallsyms optional.
        Err(_) if extra.is_some() => None,
        Err(e) => return Err(e),
    };
    let mut b = Builder {
        btf: types,
        kallsyms: kallsyms.as_ref(),
        extra,
        entries: Vec::new(),
        missing_types: Vec::new(),
        missing_symbols: Vec::new(),
    };
    let banner_text = read_banner(image, b.addr(&["linux_banner"]))?;
    let banner = parse_banner(&banner_text)
        .ok_or_else(|| GenError::Banner(format!("cannot parse '{banner_text}'")))?;
    let arm64 = image.machine() == "aarch64";
    let arm = image.machine() == "armv7l";
    let x86_64 = image.bits() == 64 && !arm64;

    b.value(
        "name",
        escape(&format!(
            "{}|{}|{}",
            banner.release,
            banner.version,
            image.machine()
        )),
    );
    let (va, vb, vc) = banner.numbers;
    b.value("version.a", va.to_string());
    b.value("version.b", vb.to_string());
    b.value("version.c", vc.to_string());

    // --- PANDA keys ---
    b.sym("task.init_addr", &["init_task"], true);
    b.sym("task.per_cpu_offsets_addr", &["__per_cpu_offset"], true);
    b.comment(
        "task.per_cpu_offset_0_addr (= __per_cpu_offset[0]) is set at boot: not in the image",
    );
    // 6.2+: `current` is pcpu_hot.current_task; before, the per-CPU variable current_task.
    // arm64 keeps `current` in sp_el0 in the kernel and, per CPU, in `__entry_task`.
    let hot = b.btf.offset_of("pcpu_hot", "current_task").map(|(o, _)| o);
    // A symbol file can say anything: an address that overflows is no address.
    match hot
        .zip(b.addr(&["pcpu_hot"]))
        .and_then(|(o, a)| a.checked_add(o))
    {
        Some(at) => b.value("task.current_task_addr", format!("{at:#x}")),
        None => {
            b.sym(
                "task.current_task_addr",
                &["current_task", "__entry_task"],
                true,
            );
        }
    }
    b.size("task.size", "task_struct", true);
    let task = |b: &mut Builder, key: &str, m: &str| b.off(key, "task_struct", &[m], true);
    task(&mut b, "task.tasks_offset", "tasks");
    task(&mut b, "task.pid_offset", "pid");
    task(&mut b, "task.tgid_offset", "tgid");
    task(&mut b, "task.group_leader_offset", "group_leader");
    b.off(
        "task.thread_group_offset",
        "task_struct",
        &["thread_group"],
        false,
    );
    task(&mut b, "task.real_parent_offset", "real_parent");
    task(&mut b, "task.parent_offset", "parent");
    task(&mut b, "task.mm_offset", "mm");
    task(&mut b, "task.stack_offset", "stack");
    task(&mut b, "task.real_cred_offset", "real_cred");
    task(&mut b, "task.cred_offset", "cred");
    task(&mut b, "task.comm_offset", "comm");
    b.member_size("task.comm_size", "task_struct", "comm");
    task(&mut b, "task.files_offset", "files");
    task(&mut b, "task.start_time_offset", "start_time");
    for f in ["uid", "gid", "euid", "egid"] {
        b.off(&format!("cred.{f}_offset"), "cred", &[f], true);
    }
    b.size("mm.size", "mm_struct", true);
    let has_mt = b.btf.offset_of("mm_struct", "mm_mt").is_some();
    b.off("mm.mmap_offset", "mm_struct", &["mmap"], !has_mt);
    for f in ["pgd", "arg_start", "start_brk", "brk", "start_stack"] {
        b.off(&format!("mm.{f}_offset"), "mm_struct", &[f], true);
    }
    b.size("vma.size", "vm_area_struct", true);
    for f in ["vm_mm", "vm_start", "vm_end"] {
        b.off(&format!("vma.{f}_offset"), "vm_area_struct", &[f], true);
    }
    b.off(
        "vma.vm_next_offset",
        "vm_area_struct",
        &["vm_next"],
        !has_mt,
    );
    for f in ["vm_flags", "vm_file"] {
        b.off(&format!("vma.{f}_offset"), "vm_area_struct", &[f], true);
    }
    b.off("fs.f_path_dentry_offset", "file", &["f_path.dentry"], true);
    b.off("fs.f_path_mnt_offset", "file", &["f_path.mnt"], true);
    b.off("fs.f_pos_offset", "file", &["f_pos"], true);
    b.off("fs.fdt_offset", "files_struct", &["fdt"], true);
    b.off("fs.fdtab_offset", "files_struct", &["fdtab"], true);
    b.off("fs.fd_offset", "fdtable", &["fd"], true);
    b.size("qstr.size", "qstr", true);
    b.off("qstr.name_offset", "qstr", &["name"], true);
    b.off("path.d_name_offset", "dentry", &["d_name"], true);
    b.off(
        "path.d_iname_offset",
        "dentry",
        &["d_iname", "d_shortname"],
        true,
    );
    b.off("path.d_parent_offset", "dentry", &["d_parent"], true);
    b.off("path.d_op_offset", "dentry", &["d_op"], true);
    b.off(
        "path.d_dname_offset",
        "dentry_operations",
        &["d_dname"],
        true,
    );
    b.off("path.mnt_root_offset", "vfsmount", &["mnt_root"], true);
    b.rel("path.mnt_parent_offset", "mount", "mnt_parent", "mnt");
    b.rel(
        "path.mnt_mountpoint_offset",
        "mount",
        "mnt_mountpoint",
        "mnt",
    );

    // --- vmi additions ---
    b.value("vmi.banner", escape(&banner_text));
    b.sym("vmi.linux_banner_addr", &["linux_banner"], true);
    b.sym("vmi.text_addr", &["_text"], true);
    if x86_64 {
        b.sym("vmi.entry_syscall_addr", &["entry_SYSCALL_64"], true);
        // 6.7 (and stable backports, e.g. Debian 6.1.1xx/6.12) replaced entry_INT80_compat
        // with an ordinary IDT entry, asm_int80_emulation.
        if b.addr(&["entry_INT80_compat"]).is_none() && b.addr(&["asm_int80_emulation"]).is_some() {
            b.comment("vmi.entry_int80_addr: asm_int80_emulation (entry_INT80_compat is gone)");
        }
        b.sym(
            "vmi.entry_int80_addr",
            &["entry_INT80_compat", "asm_int80_emulation"],
            false,
        );
        b.sym("vmi.entry_sysenter_addr", &["entry_SYSENTER_compat"], false);
        if b.sym("vmi.page_offset_base_addr", &["page_offset_base"], false)
            .is_some()
        {
            b.comment("vmi.page_offset: the direct-map base without KASLR (4-level paging)");
        }
        b.value("vmi.page_offset", "0xffff888000000000".into());
    } else if arm64 {
        // The linear map starts at physical memstart_addr; where it starts in virtual
        // addresses (PAGE_OFFSET: 48- or 52-bit) the plugin reads from TCR_EL1.
        b.sym("vmi.memstart_addr_addr", &["memstart_addr"], true);
    } else if arm {
        // The direct map is PAGE_OFFSET + (pa - PHYS_OFFSET); the kernel patches the
        // difference in at boot (ARM_PATCH_PHYS_VIRT) and keeps it in __pv_offset.
        b.sym("vmi.pv_offset_addr", &["__pv_offset"], true);
        // Modules are mapped in the kernel's tables, and in a process's only after it
        // faulted on them (the kernel copies the entry from init_mm's then).
        b.sym("vmi.swapper_pg_dir_addr", &["swapper_pg_dir"], false);
        // Every system call enters at vector_swi, in kernel mode, the caller's registers
        // still in r0..r7: where the kernel is read when user mode cannot read it.
        b.sym("vmi.vector_swi_addr", &["vector_swi"], true);
    } else {
        b.sym("vmi.entry_int80_addr", &["entry_INT80_32"], true);
        b.sym("vmi.entry_sysenter_addr", &["entry_SYSENTER_32"], true);
        // PAGE_OFFSET = the kernel's virtual minus physical load address.
        if let Some(po) = image.virt_minus_phys() {
            b.value("vmi.page_offset", format!("{po:#x}"));
        }
    }
    b.sym("vmi.modules_addr", &["modules"], true);
    // The C functions every system call path reaches with the kernel's page tables
    // active (after the KPTI CR3 switch), where the plugin reads kernel memory.
    if x86_64 || arm64 {
        b.sym(
            "vmi.do_syscall_64_addr",
            &["do_syscall_64", "do_el0_svc"],
            false,
        );
    }
    if arm64 {
        b.sym("vmi.do_el0_svc_compat_addr", &["do_el0_svc_compat"], false);
    } else if !arm {
        b.sym(
            "vmi.do_int80_addr",
            &["do_int80_emulation", "do_int80_syscall_32"],
            false,
        );
    }
    if !arm {
        b.sym(
            "vmi.do_fast_syscall_32_addr",
            &["do_fast_syscall_32"],
            false,
        );
    }
    // Every context switch, next task in the second argument (rsi; edx on i386; on
    // 32-bit ARM the third, r2, is the next task's thread_info, its first member).
    b.sym("vmi.switch_to_addr", &["__switch_to"], false);
    b.off(
        "task.thread_node_offset",
        "task_struct",
        &["thread_node"],
        false,
    );
    task(&mut b, "task.signal_offset", "signal");
    b.off(
        "signal.thread_head_offset",
        "signal_struct",
        &["thread_head"],
        false,
    );
    task(&mut b, "task.flags_offset", "flags");
    task(&mut b, "task.exit_code_offset", "exit_code");
    b.off(
        "task.state_offset",
        "task_struct",
        &["__state", "state"],
        true,
    );
    for f in ["arg_end", "env_start", "env_end", "exe_file"] {
        b.off(&format!("mm.{f}_offset"), "mm_struct", &[f], true);
    }
    b.off("mm.mm_mt_offset", "mm_struct", &["mm_mt"], false);
    b.off("mm.map_count_offset", "mm_struct", &["map_count"], true);
    b.off("vma.vm_pgoff_offset", "vm_area_struct", &["vm_pgoff"], true);
    if has_mt {
        b.off("maple.ma_root_offset", "maple_tree", &["ma_root"], true);
        b.size("maple.node_size", "maple_node", true);
        for (kind, st) in [
            ("range64", "maple_range_64"),
            ("arange64", "maple_arange_64"),
        ] {
            b.off(&format!("maple.{kind}_pivot_offset"), st, &["pivot"], true);
            b.off(&format!("maple.{kind}_slot_offset"), st, &["slot"], true);
            b.array_len(&format!("maple.{kind}_slots"), st, "slot");
        }
    }
    b.off("fs.max_fds_offset", "fdtable", &["max_fds"], true);
    b.off("qstr.len_offset", "qstr", &["len"], true);
    b.off("module.list_offset", "module", &["list"], true);
    b.off("module.name_offset", "module", &["name"], true);
    b.member_size("module.name_size", "module", "name");
    if b.btf.offset_of("module", "mem").is_some() {
        b.off("module.mem_offset", "module", &["mem"], true);
        b.array_len("module.mem_count", "module", "mem");
        b.size("module_memory.size", "module_memory", true);
        b.off(
            "module_memory.base_offset",
            "module_memory",
            &["base"],
            true,
        );
        b.off(
            "module_memory.size_offset",
            "module_memory",
            &["size"],
            true,
        );
    } else {
        b.off(
            "module.core_base_offset",
            "module",
            &["core_layout.base"],
            true,
        );
        b.off(
            "module.core_size_offset",
            "module",
            &["core_layout.size"],
            true,
        );
        b.off(
            "module.init_size_offset",
            "module",
            &["init_layout.size"],
            true,
        );
    }

    if !b.missing_symbols.is_empty() {
        return Err(GenError::MissingSymbols(b.missing_symbols));
    }
    if !b.missing_types.is_empty() {
        return Err(GenError::MissingTypes(b.missing_types));
    }
    Generated::new(
        format!("{}:{}:{}", banner.distro, banner.release, image.bits()),
        b.entries,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn banners() {
        let b = parse_banner(
            "Linux version 6.1.0-56-amd64 (debian-kernel@lists.debian.org) (gcc-12 (Debian \
             12.2.0-14+deb12u1) 12.2.0, GNU ld (GNU Binutils for Debian) 2.40) #1 SMP \
             PREEMPT_DYNAMIC Debian 6.1.158-1 (2025-11-09)",
        )
        .unwrap();
        assert_eq!(b.release, "6.1.0-56-amd64");
        assert_eq!(
            b.version,
            "#1 SMP PREEMPT_DYNAMIC Debian 6.1.158-1 (2025-11-09)"
        );
        assert_eq!(b.numbers, (6, 1, 158));
        assert_eq!(b.distro, "debian");
        let u = parse_banner("Linux version 5.4.0-42-generic (buildd@lgw01) (gcc 7.5) #46~18.04.1-Ubuntu SMP Fri Jul 10 07:21:24 UTC 2020").unwrap();
        assert_eq!(u.numbers, (5, 4, 0));
        assert_eq!(u.distro, "ubuntu");
        assert!(parse_banner("garbage").is_none());
    }

    #[test]
    fn differences_that_overflow_are_none() {
        assert_eq!(difference(16, 48), Some(-32));
        assert_eq!(difference(u64::MAX, 0), None);
        assert_eq!(difference(0, 1 << 63), None);
    }

    #[test]
    fn escapes() {
        assert_eq!(escape(" a\\b\n"), "\\sa\\\\b\\n");
    }
}
