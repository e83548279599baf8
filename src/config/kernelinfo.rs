//! A kernelinfo group resolved once into typed offsets ([`KernelInfo`]), and written back
//! as key-file text ([`KernelInfo::to_keyfile_text`]) for the generator.
//!
//! The key names are exactly those of `docs/kernelinfo.md`. Every struct below is declared
//! through one table (the `key_struct!` macro) so that reading, writing and range checking
//! cannot disagree on a key's name.
//!
//! Which keys are required: those present in every one of PANDA's 22 reference groups
//! (`../shared/reference/panda/kernelinfo.conf`), except
//! - `version.*`, which PANDA's older `osi_linux` files lack;
//! - `mm.mmap_offset` and `vma.vm_next_offset`, gone in Linux 6.1 (maple tree): required
//!   only when `mm.mm_mt_offset` is absent;
//! - `task.thread_group_offset`, gone in 6.7: required only when the `signal->thread_head`
//!   triple (`task.signal_offset`, `task.thread_node_offset`, `signal.thread_head_offset`)
//!   is incomplete.
//!
//! `task.tasks_offset` is optional because PANDA's 2.4 group (`redhat:2.4.18-14:32`) links
//! tasks through `next_task` instead; the Linux provider refuses to walk without it.
//! Keys this module does not know (`arch`, `task.next_task_offset`, `fs.f_dentry_offset`,
//! ...) are kept verbatim in [`KernelInfo::extra`] and written back.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::{ConfigError, KeyFile};

/// A value type a key can hold.
trait KeyValue: Sized {
    /// Parses the value text; `Err` says what was expected.
    fn parse(text: &str) -> Result<Self, &'static str>;
}

impl KeyValue for u64 {
    fn parse(text: &str) -> Result<Self, &'static str> {
        parse_u64(text).ok_or("an unsigned decimal or 0x-hexadecimal number")
    }
}

impl KeyValue for i64 {
    fn parse(text: &str) -> Result<Self, &'static str> {
        parse_i64(text).ok_or("a decimal or 0x-hexadecimal number, optionally negative")
    }
}

impl KeyValue for String {
    fn parse(text: &str) -> Result<Self, &'static str> {
        Ok(text.to_string())
    }
}

/// Parses a decimal or `0x` hexadecimal unsigned number (surrounding blanks allowed).
pub fn parse_u64(text: &str) -> Option<u64> {
    let text = text.trim();
    match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None if text.starts_with('+') => None,
        None => text.parse().ok(),
    }
}

/// Parses a decimal or `0x` hexadecimal signed number: `-16`, `0x10`, `-0x10`.
pub fn parse_i64(text: &str) -> Option<i64> {
    let text = text.trim();
    let (negative, magnitude) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let magnitude = parse_u64(magnitude)?;
    if negative {
        0i64.checked_sub_unsigned(magnitude)
    } else {
        i64::try_from(magnitude).ok()
    }
}

/// Reads the keys of one group, with the context every error needs.
struct Reader<'a> {
    keyfile: &'a KeyFile,
    group: &'a str,
    /// Keys read so far; what is left over goes to [`KernelInfo::extra`].
    used: std::cell::RefCell<Vec<&'static str>>,
}

impl Reader<'_> {
    fn file(&self) -> PathBuf {
        self.keyfile.path().to_path_buf()
    }

    fn optional<T: KeyValue>(&self, key: &'static str) -> Result<Option<T>, ConfigError> {
        self.used.borrow_mut().push(key);
        let Some(text) = self.keyfile.get(self.group, key) else {
            return Ok(None);
        };
        T::parse(&text)
            .map(Some)
            .map_err(|why| self.bad(key, &text, why.to_string()))
    }

    fn required<T: KeyValue>(&self, key: &'static str) -> Result<T, ConfigError> {
        self.optional(key)?.ok_or_else(|| self.missing(key))
    }

    fn missing(&self, key: &str) -> ConfigError {
        ConfigError::MissingKey {
            file: self.file(),
            group: self.group.to_string(),
            key: key.to_string(),
        }
    }

    fn bad(&self, key: &str, value: &str, why: String) -> ConfigError {
        ConfigError::BadValue {
            file: self.file(),
            group: self.group.to_string(),
            key: key.to_string(),
            value: value.to_string(),
            why,
        }
    }
}

/// Writes `key = value` lines; addresses also get PANDA's `#key = 0x...` comment.
#[derive(Default)]
struct Writer(String);

impl Writer {
    fn offset(&mut self, key: &str, value: Option<i64>) {
        if let Some(v) = value {
            let _ = writeln!(self.0, "{key} = {v}");
        }
    }
    fn number(&mut self, key: &str, value: Option<u64>) {
        if let Some(v) = value {
            let _ = writeln!(self.0, "{key} = {v}");
        }
    }
    fn addr(&mut self, key: &str, value: Option<u64>) {
        if let Some(v) = value {
            // Decimal because GLib's (and so PANDA's) integer getters read base 10 only.
            let _ = writeln!(self.0, "#{key} = {v:#x}\n{key} = {v}");
        }
    }
    fn text(&mut self, key: &str, value: Option<&String>) {
        if let Some(v) = value {
            let _ = writeln!(self.0, "{key} = {}", escape(v));
        }
    }
}

/// A text value as written: [`KeyFile::get`] returns GLib's raw (unescaped) text, trimmed,
/// so the value is written raw too, with line breaks (which cannot be kept) as blanks.
fn escape(value: &str) -> String {
    value.trim().replace(['\n', '\r'], " ")
}

/// `(key, offset)` pairs of one struct.
type OffsetList = Vec<(&'static str, Option<i64>)>;

/// Declares a struct of keys: field, requiredness, kind (`off` = signed offset, `num` =
/// size or count, `addr` = link-time address, `text`) and key name.
macro_rules! key_struct {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $( $(#[$fmeta:meta])* $field:ident : $req:ident $kind:ident = $key:literal, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
        pub struct $name {
            $( $(#[$fmeta])* pub $field: key_struct!(@ty $req $kind), )*
        }

        impl $name {
            /// Every key of this struct, in file order.
            pub const KEYS: &'static [&'static str] = &[$($key),*];

            fn read(r: &Reader<'_>) -> Result<Self, ConfigError> {
                Ok($name { $( $field: key_struct!(@read r $req $kind $key), )* })
            }

            fn write(&self, w: &mut Writer) {
                $( key_struct!(@write w $req $kind $key, self.$field); )*
            }

            /// `(key, value)` of every offset field, for range checks.
            #[allow(unused_mut, dead_code, clippy::vec_init_then_push)]
            fn offsets(&self) -> OffsetList {
                let mut out = Vec::new();
                $( key_struct!(@offset out $req $kind $key, self.$field); )*
                out
            }
        }
    };
    (@ty req off) => { i64 };
    (@ty opt off) => { Option<i64> };
    (@ty req num) => { u64 };
    (@ty opt num) => { Option<u64> };
    (@ty req addr) => { u64 };
    (@ty opt addr) => { Option<u64> };
    (@ty req text) => { String };
    (@ty opt text) => { Option<String> };
    (@read $r:ident req $kind:ident $key:literal) => { $r.required($key)? };
    (@read $r:ident opt $kind:ident $key:literal) => { $r.optional($key)? };
    (@write $w:ident req off $key:literal, $v:expr) => { $w.offset($key, Some($v)) };
    (@write $w:ident opt off $key:literal, $v:expr) => { $w.offset($key, $v) };
    (@write $w:ident req num $key:literal, $v:expr) => { $w.number($key, Some($v)) };
    (@write $w:ident opt num $key:literal, $v:expr) => { $w.number($key, $v) };
    (@write $w:ident req addr $key:literal, $v:expr) => { $w.addr($key, Some($v)) };
    (@write $w:ident opt addr $key:literal, $v:expr) => { $w.addr($key, $v) };
    (@write $w:ident req text $key:literal, $v:expr) => { $w.text($key, Some(&$v)) };
    (@write $w:ident opt text $key:literal, $v:expr) => { $w.text($key, $v.as_ref()) };
    (@offset $o:ident req off $key:literal, $v:expr) => { $o.push(($key, Some($v))) };
    (@offset $o:ident opt off $key:literal, $v:expr) => { $o.push(($key, $v)) };
    (@offset $o:ident $req:ident $kind:ident $key:literal, $v:expr) => {};
}

key_struct! {
    /// `version.*`: the kernel's version numbers (PANDA `vmi_linux`).
    pub struct Version {
        /// Major.
        a: opt num = "version.a",
        /// Minor.
        b: opt num = "version.b",
        /// Patch level.
        c: opt num = "version.c",
    }
}

key_struct! {
    /// `task.*`: `struct task_struct` and the symbols that find tasks.
    pub struct TaskOffsets {
        /// `&init_task`.
        init_addr: req addr = "task.init_addr",
        /// `&__per_cpu_offset`.
        per_cpu_offsets_addr: opt addr = "task.per_cpu_offsets_addr",
        /// `__per_cpu_offset[0]` (a value, not an address of a symbol).
        per_cpu_offset_0_addr: opt addr = "task.per_cpu_offset_0_addr",
        /// Per-CPU offset of the current task pointer (`&current_task`, or
        /// `&pcpu_hot.current_task` on 6.2+).
        current_task_addr: opt addr = "task.current_task_addr",
        /// `sizeof(struct task_struct)`.
        size: req num = "task.size",
        /// `tasks` (list of all tasks).
        tasks_offset: opt off = "task.tasks_offset",
        /// `pid`.
        pid_offset: req off = "task.pid_offset",
        /// `tgid`.
        tgid_offset: req off = "task.tgid_offset",
        /// `group_leader`.
        group_leader_offset: opt off = "task.group_leader_offset",
        /// `thread_group` (gone in 6.7).
        thread_group_offset: opt off = "task.thread_group_offset",
        /// `real_parent`.
        real_parent_offset: opt off = "task.real_parent_offset",
        /// `parent`.
        parent_offset: opt off = "task.parent_offset",
        /// `mm`.
        mm_offset: req off = "task.mm_offset",
        /// `stack`.
        stack_offset: opt off = "task.stack_offset",
        /// `real_cred`.
        real_cred_offset: opt off = "task.real_cred_offset",
        /// `cred`.
        cred_offset: opt off = "task.cred_offset",
        /// `comm`.
        comm_offset: req off = "task.comm_offset",
        /// `sizeof(task->comm)` (16).
        comm_size: req num = "task.comm_size",
        /// `files`.
        files_offset: opt off = "task.files_offset",
        /// `start_time` (ns since boot).
        start_time_offset: opt off = "task.start_time_offset",
        /// `thread_node` (in `signal->thread_head`).
        thread_node_offset: opt off = "task.thread_node_offset",
        /// `signal`.
        signal_offset: opt off = "task.signal_offset",
        /// `flags` (`PF_KTHREAD` = 0x00200000).
        flags_offset: opt off = "task.flags_offset",
        /// `exit_code`.
        exit_code_offset: opt off = "task.exit_code_offset",
        /// `__state` (`state` before 5.14).
        state_offset: opt off = "task.state_offset",
    }
}

key_struct! {
    /// `cred.*`: `struct cred`.
    pub struct CredOffsets {
        /// `uid`.
        uid_offset: opt off = "cred.uid_offset",
        /// `gid`.
        gid_offset: opt off = "cred.gid_offset",
        /// `euid`.
        euid_offset: opt off = "cred.euid_offset",
        /// `egid`.
        egid_offset: opt off = "cred.egid_offset",
    }
}

key_struct! {
    /// `signal.*`: `struct signal_struct`.
    pub struct SignalOffsets {
        /// `thread_head` (list of the group's threads via `task.thread_node`).
        thread_head_offset: opt off = "signal.thread_head_offset",
    }
}

key_struct! {
    /// `mm.*`: `struct mm_struct`.
    pub struct MmOffsets {
        /// `sizeof(struct mm_struct)`.
        size: opt num = "mm.size",
        /// `mmap` (gone in 6.1).
        mmap_offset: opt off = "mm.mmap_offset",
        /// `pgd`.
        pgd_offset: req off = "mm.pgd_offset",
        /// `arg_start`.
        arg_start_offset: req off = "mm.arg_start_offset",
        /// `start_brk`.
        start_brk_offset: req off = "mm.start_brk_offset",
        /// `brk`.
        brk_offset: req off = "mm.brk_offset",
        /// `start_stack`.
        start_stack_offset: req off = "mm.start_stack_offset",
        /// `arg_end`.
        arg_end_offset: opt off = "mm.arg_end_offset",
        /// `env_start`.
        env_start_offset: opt off = "mm.env_start_offset",
        /// `env_end`.
        env_end_offset: opt off = "mm.env_end_offset",
        /// `exe_file` (the program the process runs, as `/proc/<pid>/exe`).
        exe_file_offset: opt off = "mm.exe_file_offset",
        /// `mm_mt` (maple tree of VMAs, 6.1+).
        mm_mt_offset: opt off = "mm.mm_mt_offset",
        /// `map_count`.
        map_count_offset: opt off = "mm.map_count_offset",
    }
}

key_struct! {
    /// `vma.*`: `struct vm_area_struct`.
    pub struct VmaOffsets {
        /// `sizeof(struct vm_area_struct)`.
        size: opt num = "vma.size",
        /// `vm_mm`.
        vm_mm_offset: req off = "vma.vm_mm_offset",
        /// `vm_start`.
        vm_start_offset: req off = "vma.vm_start_offset",
        /// `vm_end`.
        vm_end_offset: req off = "vma.vm_end_offset",
        /// `vm_next` (gone in 6.1).
        vm_next_offset: opt off = "vma.vm_next_offset",
        /// `vm_flags`.
        vm_flags_offset: req off = "vma.vm_flags_offset",
        /// `vm_file`.
        vm_file_offset: req off = "vma.vm_file_offset",
        /// `vm_pgoff`.
        vm_pgoff_offset: opt off = "vma.vm_pgoff_offset",
    }
}

key_struct! {
    /// `fs.*`: `struct file`, `struct files_struct`, `struct fdtable`.
    pub struct FsOffsets {
        /// `file.f_path.dentry`.
        f_path_dentry_offset: opt off = "fs.f_path_dentry_offset",
        /// `file.f_path.mnt`.
        f_path_mnt_offset: opt off = "fs.f_path_mnt_offset",
        /// `file.f_pos`.
        f_pos_offset: opt off = "fs.f_pos_offset",
        /// `files_struct.fdt`.
        fdt_offset: opt off = "fs.fdt_offset",
        /// `files_struct.fdtab`.
        fdtab_offset: opt off = "fs.fdtab_offset",
        /// `fdtable.fd`.
        fd_offset: opt off = "fs.fd_offset",
        /// `fdtable.max_fds`.
        max_fds_offset: opt off = "fs.max_fds_offset",
    }
}

key_struct! {
    /// `qstr.*`: `struct qstr`.
    pub struct QstrOffsets {
        /// `sizeof(struct qstr)`.
        size: opt num = "qstr.size",
        /// `name`.
        name_offset: opt off = "qstr.name_offset",
        /// `len`.
        len_offset: opt off = "qstr.len_offset",
    }
}

key_struct! {
    /// `path.*`: `struct dentry` and `struct mount` (the `mnt_*` offsets are relative to
    /// the `vfsmount` embedded in `struct mount`, so they may be negative).
    pub struct PathOffsets {
        /// `dentry.d_name`.
        d_name_offset: req off = "path.d_name_offset",
        /// `dentry.d_iname` (`d_shortname` since 6.14).
        d_iname_offset: req off = "path.d_iname_offset",
        /// `dentry.d_parent`.
        d_parent_offset: req off = "path.d_parent_offset",
        /// `dentry.d_op`.
        d_op_offset: opt off = "path.d_op_offset",
        /// `dentry_operations.d_dname`.
        d_dname_offset: opt off = "path.d_dname_offset",
        /// `vfsmount.mnt_root`.
        mnt_root_offset: opt off = "path.mnt_root_offset",
        /// `mount.mnt_parent - mount.mnt`.
        mnt_parent_offset: opt off = "path.mnt_parent_offset",
        /// `mount.mnt_mountpoint - mount.mnt`.
        mnt_mountpoint_offset: opt off = "path.mnt_mountpoint_offset",
    }
}

key_struct! {
    /// `module.*`, `module_memory.*`: `struct module`, in both layouts.
    pub struct ModuleOffsets {
        /// `list`.
        list_offset: opt off = "module.list_offset",
        /// `name`.
        name_offset: opt off = "module.name_offset",
        /// `MODULE_NAME_LEN`.
        name_size: opt num = "module.name_size",
        /// Before 6.4: `core_layout.base`.
        core_base_offset: opt off = "module.core_base_offset",
        /// Before 6.4: `core_layout.size`.
        core_size_offset: opt off = "module.core_size_offset",
        /// Before 6.4: `init_layout.size`.
        init_size_offset: opt off = "module.init_size_offset",
        /// 6.4+: `mem` (array of `struct module_memory`).
        mem_offset: opt off = "module.mem_offset",
        /// 6.4+: `MOD_MEM_NUM_TYPES`.
        mem_count: opt num = "module.mem_count",
        /// 6.4+: `sizeof(struct module_memory)`.
        memory_size: opt num = "module_memory.size",
        /// 6.4+: `module_memory.base`.
        memory_base_offset: opt off = "module_memory.base_offset",
        /// 6.4+: `module_memory.size`.
        memory_size_offset: opt off = "module_memory.size_offset",
    }
}

key_struct! {
    /// `maple.*`: the maple tree (6.1+).
    pub struct MapleOffsets {
        /// `maple_tree.ma_root`.
        ma_root_offset: opt off = "maple.ma_root_offset",
        /// `sizeof(struct maple_node)` (256).
        node_size: opt num = "maple.node_size",
        /// `maple_range_64.pivot`.
        range64_pivot_offset: opt off = "maple.range64_pivot_offset",
        /// `maple_range_64.slot`.
        range64_slot_offset: opt off = "maple.range64_slot_offset",
        /// Slots of a `maple_range_64` (16).
        range64_slots: opt num = "maple.range64_slots",
        /// `maple_arange_64.pivot`.
        arange64_pivot_offset: opt off = "maple.arange64_pivot_offset",
        /// `maple_arange_64.slot`.
        arange64_slot_offset: opt off = "maple.arange64_slot_offset",
        /// Slots of a `maple_arange_64` (10).
        arange64_slots: opt num = "maple.arange64_slots",
    }
}

key_struct! {
    /// `vmi.*`: symbols and facts `vmi` adds to PANDA's set.
    pub struct VmiSymbols {
        /// `linux_banner` without its trailing newline.
        banner: opt text = "vmi.banner",
        /// `&linux_banner`.
        linux_banner_addr: opt addr = "vmi.linux_banner_addr",
        /// `&_text`.
        text_addr: opt addr = "vmi.text_addr",
        /// `&entry_SYSCALL_64`.
        entry_syscall_addr: opt addr = "vmi.entry_syscall_addr",
        /// `&entry_INT80_compat` / `&entry_INT80_32`.
        entry_int80_addr: opt addr = "vmi.entry_int80_addr",
        /// `&entry_SYSENTER_compat` / `&entry_SYSENTER_32`.
        entry_sysenter_addr: opt addr = "vmi.entry_sysenter_addr",
        /// `&page_offset_base`.
        page_offset_base_addr: opt addr = "vmi.page_offset_base_addr",
        /// The direct-map base when fixed.
        page_offset: opt addr = "vmi.page_offset",
        /// `&memstart_addr` (arm64): the physical address the linear map starts at, so
        /// that `pa = va - page_offset + memstart_addr`.
        memstart_addr_addr: opt addr = "vmi.memstart_addr_addr",
        /// `&__pv_offset` (32-bit ARM): a 64-bit word holding the run-time `PHYS_OFFSET -
        /// PAGE_OFFSET` the kernel patched itself with at boot, so that `pa = va +
        /// __pv_offset` in the direct map.
        pv_offset_addr: opt addr = "vmi.pv_offset_addr",
        /// `&swapper_pg_dir` (32-bit ARM): the kernel's own page tables, which map the
        /// module area that a process's tables map only once it touched it.
        swapper_pg_dir_addr: opt addr = "vmi.swapper_pg_dir_addr",
        /// `&modules`.
        modules_addr: opt addr = "vmi.modules_addr",
        /// `&do_syscall_64` (x86_64) or `&do_el0_svc` (arm64): every 64-bit system call,
        /// in the kernel with its page tables active.
        do_syscall_64_addr: opt addr = "vmi.do_syscall_64_addr",
        /// `&do_int80_emulation` or `&do_int80_syscall_32`: every `int 0x80`.
        do_int80_addr: opt addr = "vmi.do_int80_addr",
        /// `&do_fast_syscall_32`: every `sysenter` (and 32-bit `syscall`).
        do_fast_syscall_32_addr: opt addr = "vmi.do_fast_syscall_32_addr",
        /// `&do_el0_svc_compat` (arm64): every call of a 32-bit program, its registers in
        /// the `pt_regs` its first argument points to.
        do_el0_svc_compat_addr: opt addr = "vmi.do_el0_svc_compat_addr",
        /// `&vector_swi` (32-bit ARM): the kernel's `svc` entry, where every system call
        /// arrives in kernel mode with the caller's registers intact.
        vector_swi_addr: opt addr = "vmi.vector_swi_addr",
        /// `&__switch_to`: every context switch, with the next task in the second
        /// argument register; lets the plugin know the current task without reading it.
        switch_to_addr: opt addr = "vmi.switch_to_addr",
    }
}

/// One kernel, as described by one kernelinfo group.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct KernelInfo {
    /// `name`: free text (PANDA: `uname -r|uname -v|uname -m`).
    pub name: String,
    /// `version.*`.
    pub version: Version,
    /// `task.*`.
    pub task: TaskOffsets,
    /// `cred.*`.
    pub cred: CredOffsets,
    /// `signal.*`.
    pub signal: SignalOffsets,
    /// `mm.*`.
    pub mm: MmOffsets,
    /// `vma.*`.
    pub vma: VmaOffsets,
    /// `fs.*`.
    pub fs: FsOffsets,
    /// `qstr.*`.
    pub qstr: QstrOffsets,
    /// `path.*`.
    pub path: PathOffsets,
    /// `module.*`, `module_memory.*`.
    pub module: ModuleOffsets,
    /// `maple.*`.
    pub maple: MapleOffsets,
    /// `vmi.*`.
    pub vmi: VmiSymbols,
    /// Keys of the group this module does not interpret, kept verbatim (raw text) so that
    /// writing the group back loses nothing.
    pub extra: BTreeMap<String, String>,
}

impl KernelInfo {
    /// Loads group `group` of the kernelinfo file `path`.
    pub fn load(path: &Path, group: &str) -> Result<KernelInfo, ConfigError> {
        KernelInfo::from_keyfile(&KeyFile::load(path)?, group)
    }

    /// Reads group `group` of an already loaded key file, checking required keys, number
    /// syntax and that offsets lie inside their struct where its size is known.
    pub fn from_keyfile(keyfile: &KeyFile, group: &str) -> Result<KernelInfo, ConfigError> {
        keyfile.require_group(group)?;
        let r = Reader {
            keyfile,
            group,
            used: Default::default(),
        };
        let mut info = KernelInfo {
            name: r.required("name")?,
            version: Version::read(&r)?,
            task: TaskOffsets::read(&r)?,
            cred: CredOffsets::read(&r)?,
            signal: SignalOffsets::read(&r)?,
            mm: MmOffsets::read(&r)?,
            vma: VmaOffsets::read(&r)?,
            fs: FsOffsets::read(&r)?,
            qstr: QstrOffsets::read(&r)?,
            path: PathOffsets::read(&r)?,
            module: ModuleOffsets::read(&r)?,
            maple: MapleOffsets::read(&r)?,
            vmi: VmiSymbols::read(&r)?,
            extra: BTreeMap::new(),
        };
        let used = r.used.borrow();
        for key in keyfile.keys(group) {
            if !used.contains(&key.as_str())
                && let Some(value) = keyfile.get(group, &key)
            {
                info.extra.insert(key, value);
            }
        }
        drop(used);
        info.check(&r)?;
        Ok(info)
    }

    /// Cross-key rules: replacements for keys that newer kernels lack, and offsets inside
    /// their struct.
    fn check(&self, r: &Reader<'_>) -> Result<(), ConfigError> {
        if self.mm.mm_mt_offset.is_none() {
            if self.mm.mmap_offset.is_none() {
                return Err(r.missing("mm.mmap_offset"));
            }
            if self.vma.vm_next_offset.is_none() {
                return Err(r.missing("vma.vm_next_offset"));
            }
        }
        if self.task.thread_group_offset.is_none() && !self.has_thread_head() {
            return Err(r.missing("task.thread_group_offset"));
        }
        let sized = [
            ("task_struct", Some(self.task.size), self.task.offsets()),
            ("mm_struct", self.mm.size, self.mm.offsets()),
            ("vm_area_struct", self.vma.size, self.vma.offsets()),
        ];
        for (name, size, offsets) in sized {
            for (key, offset) in offsets {
                let Some(offset) = offset else { continue };
                let inside = match size {
                    Some(size) => offset >= 0 && (offset as u64) < size,
                    None => offset >= 0,
                };
                if !inside {
                    let why = match size {
                        Some(size) => format!("offset outside struct {name} (size {size})"),
                        None => format!("negative offset in struct {name}"),
                    };
                    return Err(r.bad(key, &offset.to_string(), why));
                }
            }
        }
        if (self.task.comm_offset as u64).saturating_add(self.task.comm_size) > self.task.size {
            return Err(r.bad(
                "task.comm_size",
                &self.task.comm_size.to_string(),
                format!(
                    "comm ends past struct task_struct (size {})",
                    self.task.size
                ),
            ));
        }
        Ok(())
    }

    /// Whether the 6.7+ thread list (`signal->thread_head` / `task->thread_node`) is
    /// described.
    pub fn has_thread_head(&self) -> bool {
        self.task.signal_offset.is_some()
            && self.task.thread_node_offset.is_some()
            && self.signal.thread_head_offset.is_some()
    }

    /// The group as key-file text (`[group]` line included), in the documented key order,
    /// unknown keys last. Reading it back gives an equal [`KernelInfo`].
    pub fn to_keyfile_text(&self, group: &str) -> String {
        let mut w = Writer::default();
        let _ = writeln!(w.0, "[{group}]");
        w.text("name", Some(&self.name));
        self.version.write(&mut w);
        self.task.write(&mut w);
        self.cred.write(&mut w);
        self.signal.write(&mut w);
        self.mm.write(&mut w);
        self.vma.write(&mut w);
        self.fs.write(&mut w);
        self.qstr.write(&mut w);
        self.path.write(&mut w);
        self.module.write(&mut w);
        self.maple.write(&mut w);
        self.vmi.write(&mut w);
        for (key, value) in &self.extra {
            // Raw text as read: already escaped.
            let _ = writeln!(w.0, "{key} = {value}");
        }
        w.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str, text: &str) -> PathBuf {
        let path =
            std::env::temp_dir().join(format!("vmi-kernelinfo-{}-{name}.conf", std::process::id()));
        std::fs::write(&path, text).unwrap();
        path
    }

    /// A minimal valid group (5.4-like, x86_64), without the `[group]` line.
    const MINIMAL: &str = "name = test|#1|x86_64
task.init_addr = 0xffffffff82613780
task.size = 9216
task.tasks_offset = 1984
task.pid_offset = 2240
task.tgid_offset = 2244
task.thread_group_offset = 2416
task.mm_offset = 2064
task.comm_offset = 2680
task.comm_size = 16
mm.size = 1032
mm.mmap_offset = 0
mm.pgd_offset = 80
mm.arg_start_offset = 312
mm.start_brk_offset = 288
mm.brk_offset = 296
mm.start_stack_offset = 304
vma.size = 208
vma.vm_mm_offset = 64
vma.vm_start_offset = 0
vma.vm_end_offset = 8
vma.vm_next_offset = 16
vma.vm_flags_offset = 80
vma.vm_file_offset = 160
path.d_name_offset = 32
path.d_iname_offset = 56
path.d_parent_offset = 24
path.mnt_parent_offset = -16
";

    fn load_text(name: &str, body: &str) -> Result<KernelInfo, ConfigError> {
        let path = temp(name, &format!("[g]\n{body}"));
        let result = KernelInfo::load(&path, "g");
        std::fs::remove_file(path).unwrap();
        result
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_i64("-16"), Some(-16));
        assert_eq!(parse_i64("-0x10"), Some(-16));
        assert_eq!(parse_i64("0x10"), Some(16));
        assert_eq!(parse_i64(&i64::MIN.to_string()), Some(i64::MIN));
        assert_eq!(parse_i64("9223372036854775808"), None);
        assert_eq!(parse_i64("12abc"), None);
        assert_eq!(
            parse_u64("18446744071600072992"),
            Some(18446744071600072992)
        );
        assert_eq!(parse_u64("-1"), None);
        assert_eq!(parse_u64("+1"), None);
    }

    #[test]
    fn minimal_group_loads() {
        let info = load_text("minimal", MINIMAL).unwrap();
        assert_eq!(info.task.init_addr, 0xffffffff82613780);
        assert_eq!(info.task.tasks_offset, Some(1984));
        assert_eq!(info.path.mnt_parent_offset, Some(-16));
        assert_eq!(info.cred.uid_offset, None);
        assert_eq!(info.vmi.page_offset, None);
        assert!(info.extra.is_empty());
    }

    #[test]
    fn missing_key_is_named() {
        let body = MINIMAL.replace("task.pid_offset = 2240\n", "");
        let err = load_text("missing", &body).unwrap_err();
        assert!(
            matches!(&err, ConfigError::MissingKey { key, group, .. } if key == "task.pid_offset" && group == "g"),
            "{err}"
        );
        assert!(err.to_string().contains("vmi-kernelinfo-"), "{err}");
    }

    #[test]
    fn maple_tree_replaces_mmap_and_thread_head_replaces_thread_group() {
        let body = MINIMAL
            .replace("mm.mmap_offset = 0\n", "")
            .replace("vma.vm_next_offset = 16\n", "");
        let err = load_text("nommap", &body).unwrap_err();
        assert!(err.to_string().contains("'mm.mmap_offset'"), "{err}");
        let body = format!("{body}mm.mm_mt_offset = 64\n");
        load_text("maple", &body).unwrap();

        let body = MINIMAL.replace("task.thread_group_offset = 2416\n", "");
        let err = load_text("notg", &body).unwrap_err();
        assert!(
            err.to_string().contains("task.thread_group_offset"),
            "{err}"
        );
        let body = format!(
            "{body}task.signal_offset = 2000\ntask.thread_node_offset = 2008\nsignal.thread_head_offset = 16\n"
        );
        assert!(load_text("thread_head", &body).unwrap().has_thread_head());
    }

    #[test]
    fn garbage_value_is_named() {
        let body = MINIMAL.replace("task.pid_offset = 2240", "task.pid_offset = 22x0");
        let err = load_text("garbage", &body).unwrap_err();
        assert!(
            matches!(&err, ConfigError::BadValue { key, value, .. } if key == "task.pid_offset" && value == "22x0"),
            "{err}"
        );
        let body = MINIMAL.replace("task.size = 9216", "task.size = -1");
        let err = load_text("negsize", &body).unwrap_err();
        assert!(err.to_string().contains("'task.size'"), "{err}");
    }

    #[test]
    fn offsets_outside_their_struct() {
        let body = MINIMAL.replace("task.pid_offset = 2240", "task.pid_offset = 9216");
        let err = load_text("outside", &body).unwrap_err();
        assert!(
            err.to_string().contains("'task.pid_offset'")
                && err.to_string().contains("task_struct"),
            "{err}"
        );
        let body = MINIMAL.replace("mm.pgd_offset = 80", "mm.pgd_offset = -8");
        let err = load_text("negative", &body).unwrap_err();
        assert!(err.to_string().contains("'mm.pgd_offset'"), "{err}");
        let body = MINIMAL.replace("vma.vm_file_offset = 160", "vma.vm_file_offset = 208");
        let err = load_text("vma", &body).unwrap_err();
        assert!(err.to_string().contains("'vma.vm_file_offset'"), "{err}");
        // Without a size only the sign is checked.
        let body = MINIMAL
            .replace("mm.size = 1032\n", "")
            .replace("mm.pgd_offset = 80", "mm.pgd_offset = 5000");
        load_text("unsized", &body).unwrap();
    }

    #[test]
    fn round_trip() {
        let mut body = MINIMAL.to_string();
        body.push_str("arch = x86_64\nvmi.banner = Linux version 6.1.0 (gcc) #1 SMP\n");
        body.push_str("module.mem_offset = 0x140\nmaple.range64_slots = 16\n");
        let info = load_text("rt1", &body).unwrap();
        assert_eq!(info.extra.get("arch").map(String::as_str), Some("x86_64"));
        let text = info.to_keyfile_text("again");
        assert!(text.starts_with("[again]\n"), "{text}");
        assert!(
            text.contains("#task.init_addr = 0xffffffff82613780\n"),
            "{text}"
        );
        let path = temp("rt2", &text);
        let back = KernelInfo::load(&path, "again").unwrap();
        std::fs::remove_file(path).unwrap();
        assert_eq!(back, info);
    }

    #[test]
    fn text_round_trips_raw() {
        let info = KernelInfo {
            name: "a\\b\tc|#1 SMP".into(),
            ..load_text("esc", MINIMAL).unwrap()
        };
        let path = temp("esc2", &info.to_keyfile_text("e"));
        let back = KernelInfo::load(&path, "e").unwrap();
        std::fs::remove_file(path).unwrap();
        assert_eq!(back.name, info.name);
    }

    /// Every group of PANDA's reference file parses and round-trips.
    #[test]
    fn panda_reference_groups() {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/reference/panda/kernelinfo.conf");
        if !path.exists() {
            assert!(
                std::env::var("VMI_REQUIRE_SHARED").as_deref() != Ok("1"),
                "VMI_REQUIRE_SHARED=1 but {} is absent",
                path.display()
            );
            eprintln!("notice: {} absent, skipping", path.display());
            return;
        }
        let keyfile = KeyFile::load(&path).unwrap();
        let groups = keyfile.groups();
        assert_eq!(groups.len(), 22);
        for group in &groups {
            let info =
                KernelInfo::from_keyfile(&keyfile, group).unwrap_or_else(|err| panic!("{err}"));
            assert!(info.task.init_addr != 0, "{group}");
            let out = temp("panda-rt", &info.to_keyfile_text(group));
            let back = KernelInfo::load(&out, group).unwrap();
            std::fs::remove_file(out).unwrap();
            assert_eq!(back, info, "{group}");
        }
        let info = KernelInfo::from_keyfile(&keyfile, "ubuntu:5.4.0-42-generic:64").unwrap();
        assert_eq!(info.task.current_task_addr, Some(93120));
        assert_eq!(info.path.mnt_mountpoint_offset, Some(-8));
        assert_eq!(info.version.a, Some(5));
        let old = KernelInfo::from_keyfile(&keyfile, "redhat:2.4.18-14:32").unwrap();
        assert_eq!(old.task.tasks_offset, None);
        assert_eq!(
            old.extra.get("task.next_task_offset").map(String::as_str),
            Some("80")
        );
    }
}
