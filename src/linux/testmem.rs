//! Synthetic kernels for tests: a sparse page store with fault injection, and a builder
//! that lays out tasks, lists, maple trees, dentries, mounts, files and modules using a
//! synthetic [`KernelInfo`].

use std::collections::{BTreeMap, BTreeSet};

use super::KernelContext;
use crate::config::KernelInfo;
use crate::mem::{Fault, GuestMemory};

/// Sparse guest memory: 4 KiB pages on demand; unwritten or poisoned pages fault.
#[derive(Default)]
pub struct SparseMemory {
    pages: BTreeMap<u64, Vec<u8>>,
    poisoned: BTreeSet<u64>,
}

impl SparseMemory {
    pub fn write(&mut self, va: u64, bytes: &[u8]) {
        for (i, b) in bytes.iter().enumerate() {
            let a = va + i as u64;
            let page = self
                .pages
                .entry(a & !0xfff)
                .or_insert_with(|| vec![0; 0x1000]);
            page[(a & 0xfff) as usize] = *b;
        }
    }
    pub fn w64(&mut self, va: u64, v: u64) {
        self.write(va, &v.to_le_bytes());
    }
    pub fn w32(&mut self, va: u64, v: u32) {
        self.write(va, &v.to_le_bytes());
    }
    /// Makes the page containing `va` fault.
    pub fn poison(&mut self, va: u64) {
        self.poisoned.insert(va & !0xfff);
    }
}

impl GuestMemory for SparseMemory {
    fn read(&self, va: u64, buf: &mut [u8]) -> Result<(), Fault> {
        let fault = Fault { va, len: buf.len() };
        for (i, b) in buf.iter_mut().enumerate() {
            let a = va.checked_add(i as u64).ok_or(fault)?;
            let page = a & !0xfff;
            if self.poisoned.contains(&page) {
                return Err(fault);
            }
            *b = self.pages.get(&page).ok_or(fault)?[(a & 0xfff) as usize];
        }
        Ok(())
    }
}

pub const PAGE_OFFSET: u64 = 0xffff_8880_0000_0000;
pub const INIT_TASK: u64 = 0xffff_ffff_8261_0000;
pub const MODULES: u64 = 0xffff_ffff_8270_0000;
pub const PER_CPU_BASE: u64 = 0xffff_8880_7000_0000;
pub const CURRENT_TASK: u64 = 0x16bc0;

/// A synthetic 64-bit kernel description (offsets chosen freely, struct sizes small).
pub fn info() -> KernelInfo {
    let mut k = KernelInfo {
        name: "synthetic".into(),
        ..Default::default()
    };
    let t = &mut k.task;
    t.init_addr = INIT_TASK;
    t.current_task_addr = Some(CURRENT_TASK);
    t.size = 0x400;
    t.tasks_offset = Some(0x10);
    t.pid_offset = 0x20;
    t.tgid_offset = 0x24;
    t.group_leader_offset = Some(0x28);
    t.thread_group_offset = Some(0x30);
    t.real_parent_offset = Some(0x40);
    t.parent_offset = Some(0x48);
    t.mm_offset = 0x50;
    t.real_cred_offset = Some(0x58);
    t.cred_offset = Some(0x60);
    t.comm_offset = 0x70;
    t.comm_size = 16;
    t.files_offset = Some(0x80);
    t.start_time_offset = Some(0x88);
    t.flags_offset = Some(0x90);
    k.cred.uid_offset = Some(4);
    k.cred.gid_offset = Some(8);
    k.cred.euid_offset = Some(20);
    k.cred.egid_offset = Some(24);
    let m = &mut k.mm;
    m.size = Some(0x200);
    m.mmap_offset = Some(0);
    m.pgd_offset = 0x50;
    m.arg_start_offset = 0x100;
    m.arg_end_offset = Some(0x108);
    m.start_brk_offset = 0x110;
    m.brk_offset = 0x118;
    m.start_stack_offset = 0x120;
    let v = &mut k.vma;
    v.size = Some(0x100);
    v.vm_start_offset = 0;
    v.vm_end_offset = 8;
    v.vm_next_offset = Some(0x10);
    v.vm_mm_offset = 0x40;
    v.vm_flags_offset = 0x50;
    v.vm_pgoff_offset = Some(0x98);
    v.vm_file_offset = 0xa0;
    let f = &mut k.fs;
    f.f_path_mnt_offset = Some(0x10);
    f.f_path_dentry_offset = Some(0x18);
    f.f_pos_offset = Some(0x68);
    f.fdt_offset = Some(0x20);
    f.fdtab_offset = Some(0x28);
    f.fd_offset = Some(8);
    f.max_fds_offset = Some(0);
    k.qstr.size = Some(16);
    k.qstr.name_offset = Some(8);
    k.qstr.len_offset = Some(4);
    let p = &mut k.path;
    p.d_name_offset = 0x20;
    p.d_iname_offset = 0x38;
    p.d_parent_offset = 0x18;
    p.mnt_root_offset = Some(0);
    p.mnt_parent_offset = Some(-16);
    p.mnt_mountpoint_offset = Some(-8);
    let md = &mut k.module;
    md.list_offset = Some(8);
    md.name_offset = Some(0x18);
    md.name_size = Some(56);
    md.core_base_offset = Some(0x100);
    md.core_size_offset = Some(0x108);
    md.init_size_offset = Some(0x10c);
    k.vmi.modules_addr = Some(MODULES);
    k
}

/// The context matching [`info`].
pub fn ctx() -> KernelContext {
    KernelContext {
        per_cpu_base: Some(PER_CPU_BASE),
        ..KernelContext::x86_64(PAGE_OFFSET)
    }
}

/// Lays out kernel objects in a [`SparseMemory`] with a bump allocator.
pub struct Builder {
    pub mem: SparseMemory,
    pub info: KernelInfo,
    next: u64,
}

impl Builder {
    pub fn new() -> Self {
        let mut b = Builder {
            mem: SparseMemory::default(),
            info: info(),
            next: PAGE_OFFSET + 0x10_0000,
        };
        // init_task and the modules head are at fixed (link-time) addresses.
        b.mem.write(INIT_TASK, &[0; 0x400]);
        b.list_init(INIT_TASK + 0x10);
        b.list_init(INIT_TASK + 0x30);
        b.mem.w32(INIT_TASK + 0x90, super::task::PF_KTHREAD);
        b.mem.write(INIT_TASK + 0x70, b"swapper/0\0");
        b.mem.w64(INIT_TASK + 0x28, INIT_TASK);
        b.list_init(MODULES);
        b
    }

    /// Zeroed memory of `size` bytes aligned to `align`.
    pub fn alloc(&mut self, size: u64, align: u64) -> u64 {
        let a = (self.next + align - 1) & !(align - 1);
        self.next = a + size;
        self.mem.write(a, &vec![0; size as usize]);
        a
    }

    pub fn string(&mut self, s: &str) -> u64 {
        let a = self.alloc(s.len() as u64 + 1, 8);
        self.mem.write(a, s.as_bytes());
        a
    }

    pub fn list_init(&mut self, head: u64) {
        self.mem.w64(head, head);
        self.mem.w64(head + 8, head);
    }

    pub fn list_add_tail(&mut self, head: u64, node: u64) {
        let mut prev = [0u8; 8];
        self.mem.read(head + 8, &mut prev).unwrap();
        let prev = u64::from_le_bytes(prev);
        self.mem.w64(node, head);
        self.mem.w64(node + 8, prev);
        self.mem.w64(prev, node);
        self.mem.w64(head + 8, node);
    }

    /// A process (leader task) on the task list; `mm` 0 for a kernel thread.
    pub fn process(&mut self, pid: u32, comm: &str, parent: u64, mm: u64) -> u64 {
        let t = self.alloc(0x400, 0x1000);
        self.mem.w32(t + 0x20, pid);
        self.mem.w32(t + 0x24, pid);
        self.mem.w64(t + 0x28, t);
        self.list_init(t + 0x30);
        self.mem.w64(t + 0x40, parent);
        self.mem.w64(t + 0x48, parent);
        self.mem.w64(t + 0x50, mm);
        self.mem.write(t + 0x70, comm.as_bytes());
        self.mem.w64(t + 0x88, u64::from(pid) * 1000);
        if mm == 0 {
            self.mem.w32(t + 0x90, super::task::PF_KTHREAD);
        }
        let cred = self.alloc(0x40, 8);
        for (off, v) in [
            (4, 1000 + pid),
            (8, 2000 + pid),
            (20, 3000 + pid),
            (24, 4000 + pid),
        ] {
            self.mem.w32(cred + off, v);
        }
        self.mem.w64(t + 0x58, cred);
        self.mem.w64(t + 0x60, cred);
        self.list_add_tail(INIT_TASK + 0x10, t + 0x10);
        t
    }

    /// A non-leader thread of `leader` (on its `thread_group` ring).
    pub fn thread(&mut self, leader: u64, tid: u32) -> u64 {
        let t = self.alloc(0x400, 0x1000);
        let mut b = [0u8; 0x400];
        self.mem.read(leader, &mut b).unwrap();
        self.mem.write(t, &b);
        self.mem.w32(t + 0x20, tid);
        self.mem.w64(t + 0x28, leader);
        self.list_add_tail(leader + 0x30, t + 0x30);
        t
    }

    /// An `mm_struct` whose `pgd` is at physical address `pgd_pa`.
    pub fn mm(&mut self, pgd_pa: u64) -> u64 {
        let mm = self.alloc(0x200, 64);
        self.mem.w64(mm + 0x50, PAGE_OFFSET + pgd_pa);
        mm
    }

    /// A dentry named `name` under `parent` (0: its own parent, a root).
    pub fn dentry(&mut self, name: &str, parent: u64) -> u64 {
        let d = self.alloc(0x100, 64);
        let s = self.string(name);
        self.mem.w64(d + 0x18, if parent == 0 { d } else { parent });
        self.mem.w32(d + 0x20 + 4, name.len() as u32);
        self.mem.w64(d + 0x20 + 8, s);
        d
    }

    /// A `struct mount` (with `mnt` at +32); returns the embedded `vfsmount` address.
    /// `parent_vfsmnt` 0 makes it the root mount (its own parent).
    pub fn mount(&mut self, root: u64, parent_vfsmnt: u64, mountpoint: u64) -> u64 {
        let m = self.alloc(0x100, 64);
        let vfs = m + 32;
        self.mem.w64(vfs, root);
        let parent_mount = if parent_vfsmnt == 0 {
            m
        } else {
            parent_vfsmnt - 32
        };
        self.mem.w64(m + 16, parent_mount);
        self.mem.w64(m + 24, mountpoint);
        vfs
    }

    /// A `struct file` at `dentry` in `vfsmnt`, at position `pos`.
    pub fn file(&mut self, dentry: u64, vfsmnt: u64, pos: u64) -> u64 {
        let f = self.alloc(0x100, 64);
        self.mem.w64(f + 0x10, vfsmnt);
        self.mem.w64(f + 0x18, dentry);
        self.mem.w64(f + 0x68, pos);
        f
    }

    /// A VMA `[start, end)` with flags and an optional file.
    pub fn vma(&mut self, mm: u64, start: u64, end: u64, flags: u64, file: u64) -> u64 {
        let v = self.alloc(0x100, 64);
        self.mem.w64(v, start);
        self.mem.w64(v + 8, end);
        self.mem.w64(v + 0x40, mm);
        self.mem.w64(v + 0x50, flags);
        self.mem.w64(v + 0x98, 2);
        self.mem.w64(v + 0xa0, file);
        v
    }

    /// A maple node of `kind` (1 leaf, 2 range, 3 arange) with `(pivot, slot)` pairs;
    /// returns the encoded child pointer (`node | kind << 3 | 4`).
    pub fn maple_node(&mut self, kind: u64, entries: &[(u64, u64)]) -> u64 {
        let node = self.alloc(256, 256);
        let (pivot, slot) = if kind == 3 { (8, 80) } else { (8, 128) };
        for (i, (p, s)) in entries.iter().enumerate() {
            self.mem.w64(node + pivot + 8 * i as u64, *p);
            self.mem.w64(node + slot + 8 * i as u64, *s);
        }
        node | kind << 3 | 4
    }

    /// A module named `name` appended to `modules`; the layout fields are written by the
    /// caller at the returned address.
    pub fn module(&mut self, name: &str) -> u64 {
        let m = self.alloc(0x300, 64);
        self.mem.write(m + 0x18, name.as_bytes());
        self.list_add_tail(MODULES, m + 8);
        m
    }
}
