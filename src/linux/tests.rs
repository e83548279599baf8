//! The Linux provider on synthetic kernels ([`super::testmem`]).

use super::testmem::{Builder, CURRENT_TASK, INIT_TASK, MODULES, PER_CPU_BASE, ctx};
use super::{KernelContext, Linux};
use crate::osi::{Incomplete, Introspect, OsiError, ProcessHandle, Thread};

/// init_task, then `systemd` (pid 1, with mm), `kthreadd` (2, kernel thread), `bash` (300,
/// two threads). Returns (builder, [systemd, kthreadd, bash], bash's second thread).
fn three_processes() -> (Builder, [u64; 3], u64) {
    let mut b = Builder::new();
    let mm1 = b.mm(0x1000_0000);
    let systemd = b.process(1, "systemd", INIT_TASK, mm1);
    let kthreadd = b.process(2, "kthreadd", INIT_TASK, 0);
    let mm3 = b.mm(0x2000_0000);
    b.mem.w64(mm3 + 0x110, 0x5000);
    b.mem.w64(mm3 + 0x118, 0x9000);
    let bash = b.process(300, "bash", systemd, mm3);
    let t2 = b.thread(bash, 301);
    (b, [systemd, kthreadd, bash], t2)
}

#[test]
fn process_list() {
    let (b, [systemd, kthreadd, bash], _) = three_processes();
    let linux = Linux::new(&b.mem, &b.info, ctx());
    let list = linux.processes().unwrap();
    assert!(list.is_complete(), "{:?}", list.incomplete);
    let pids: Vec<u32> = list.items.iter().map(|p| p.pid).collect();
    assert_eq!(pids, vec![0, 1, 2, 300]);
    let [swapper, p1, p2, p3] = &list.items[..] else {
        panic!()
    };
    assert_eq!(swapper.comm, "swapper/0");
    assert!(swapper.kernel_thread && swapper.asid.is_none());
    assert_eq!(
        (p1.task, p1.comm.as_str(), p1.ppid),
        (systemd, "systemd", 0)
    );
    assert_eq!(p1.asid, Some(0x1000_0000));
    assert!(!p1.kernel_thread);
    assert_eq!((p2.task, p2.kernel_thread, p2.asid), (kthreadd, true, None));
    assert_eq!((p3.task, p3.ppid, p3.comm.as_str()), (bash, 1, "bash"));
    assert_eq!(
        (p3.uid, p3.gid, p3.euid, p3.egid),
        (Some(1300), Some(2300), Some(3300), Some(4300))
    );
    assert_eq!(
        (p3.start_brk, p3.brk, p3.start_time),
        (0x5000, 0x9000, Some(300_000))
    );
    assert_eq!(p3.threads, vec![300, 301]);
    // argv is not read without knowing the live address space.
    assert_eq!(p3.argv, None);
    assert_eq!(linux.process(ProcessHandle(bash)).unwrap(), *p3);
}

#[test]
fn threads_via_thread_group_and_thread_head() {
    let (mut b, [_, _, bash], t2) = three_processes();
    {
        let linux = Linux::new(&b.mem, &b.info, ctx());
        let threads = linux.threads(ProcessHandle(bash)).unwrap();
        assert!(threads.is_complete());
        assert_eq!(
            threads.items,
            vec![Thread { pid: 300, tid: 300 }, Thread { pid: 300, tid: 301 }]
        );
    }
    // 6.7+: no thread_group; signal->thread_head links task->thread_node.
    b.info.task.thread_group_offset = None;
    b.info.task.signal_offset = Some(0x98);
    b.info.task.thread_node_offset = Some(0xa0);
    b.info.signal.thread_head_offset = Some(0x10);
    let signal = b.alloc(0x100, 64);
    b.list_init(signal + 0x10);
    for t in [bash, t2] {
        b.mem.w64(t + 0x98, signal);
        b.list_add_tail(signal + 0x10, t + 0xa0);
    }
    let linux = Linux::new(&b.mem, &b.info, ctx());
    let tids: Vec<u32> = linux
        .threads(ProcessHandle(t2))
        .unwrap()
        .items
        .iter()
        .map(|t| t.tid)
        .collect();
    assert_eq!(tids, vec![300, 301]);
}

#[test]
fn current_task_and_thread() {
    let (mut b, [_, _, bash], t2) = three_processes();
    b.mem.w64(PER_CPU_BASE + CURRENT_TASK, t2);
    let linux = Linux::new(&b.mem, &b.info, ctx());
    assert_eq!(
        linux.current_thread().unwrap(),
        Thread { pid: 300, tid: 301 }
    );
    let p = linux.current_process().unwrap();
    assert_eq!((p.pid, p.task), (300, bash));
    let no_base = KernelContext {
        per_cpu_base: None,
        ..ctx()
    };
    let linux = Linux::new(&b.mem, &b.info, no_base);
    assert!(matches!(
        linux.current_thread(),
        Err(OsiError::MissingContext(_))
    ));
}

#[test]
fn argv_only_in_the_live_address_space() {
    let (mut b, [_, _, bash], _) = three_processes();
    let mut raw = [0u8; 8];
    crate::mem::GuestMemory::read(&b.mem, bash + 0x50, &mut raw).unwrap();
    let mm = u64::from_le_bytes(raw);
    let args = 0x7ffd_0000_0ff8u64; // crosses a page boundary
    let block = b"/bin/bash\0-l\0";
    b.mem.write(args, block);
    b.mem.w64(mm + 0x100, args);
    b.mem.w64(mm + 0x108, args + block.len() as u64);
    // KPTI: the user PGD is one page above the kernel one.
    let live = KernelContext {
        current_asid: Some(0x2000_1000),
        user_paging: None,
        ..ctx()
    };
    let linux = Linux::new(&b.mem, &b.info, live);
    let p = linux.process(ProcessHandle(bash)).unwrap();
    assert_eq!(
        p.argv,
        Some(vec!["/bin/bash".to_string(), "-l".to_string()])
    );
    let other = KernelContext {
        current_asid: Some(0x1000_0000),
        user_paging: None,
        ..ctx()
    };
    let linux = Linux::new(&b.mem, &b.info, other);
    assert_eq!(linux.process(ProcessHandle(bash)).unwrap().argv, None);
    // Where the memory reads other address spaces (QEMU with physical reads), a process
    // that is not running has its argv read through its own page tables.
    let through_tables = ReadsIn {
        mem: &b.mem,
        root: 0x2000_0000,
    };
    let linux = Linux::new(&through_tables, &b.info, other);
    assert_eq!(
        linux.process(ProcessHandle(bash)).unwrap().argv,
        Some(vec!["/bin/bash".to_string(), "-l".to_string()])
    );
    // Unreadable user memory: no argv, no error.
    b.mem.poison(args);
    let linux = Linux::new(&b.mem, &b.info, live);
    assert_eq!(linux.process(ProcessHandle(bash)).unwrap().argv, None);
    let through_tables = ReadsIn {
        mem: &b.mem,
        root: 0x2000_0000,
    };
    let linux = Linux::new(&through_tables, &b.info, other);
    assert_eq!(linux.process(ProcessHandle(bash)).unwrap().argv, None);
}

/// Memory that reads the address space at `root` as `mem` (a stand-in for walking that
/// process's page tables) and no other.
struct ReadsIn<'a> {
    mem: &'a dyn crate::mem::GuestMemory,
    root: u64,
}

impl crate::mem::GuestMemory for ReadsIn<'_> {
    fn read(&self, va: u64, buf: &mut [u8]) -> Result<(), crate::mem::Fault> {
        self.mem.read(va, buf)
    }

    fn read_in(&self, root: u64, va: u64, buf: &mut [u8]) -> Result<(), crate::mem::Fault> {
        if root == self.root {
            self.mem.read(va, buf)
        } else {
            Err(crate::mem::Fault { va, len: buf.len() })
        }
    }
}

#[test]
fn looping_task_list_terminates_flagged() {
    let (mut b, [systemd, kthreadd, _], _) = three_processes();
    // bash.tasks.next → kthreadd.tasks: a cycle that never returns to init_task.
    let bash_node = {
        let mut raw = [0u8; 8];
        crate::mem::GuestMemory::read(&b.mem, INIT_TASK + 0x10 + 8, &mut raw).unwrap();
        u64::from_le_bytes(raw)
    };
    b.mem.w64(bash_node, kthreadd + 0x10);
    let linux = Linux::new(&b.mem, &b.info, ctx());
    let list = linux.processes().unwrap();
    assert_eq!(list.items.len(), 4);
    assert_eq!(list.items[1].task, systemd);
    assert_eq!(
        list.incomplete,
        Some(Incomplete::Cycle {
            at: kthreadd + 0x10
        })
    );
}

#[test]
fn unreadable_task_page_gives_partial_list() {
    let (mut b, [_, kthreadd, _], _) = three_processes();
    b.mem.poison(kthreadd + 0x10);
    let linux = Linux::new(&b.mem, &b.info, ctx());
    let list = linux.processes().unwrap();
    let pids: Vec<u32> = list.items.iter().map(|p| p.pid).collect();
    assert_eq!(pids, vec![0, 1]);
    assert!(matches!(list.incomplete, Some(Incomplete::Fault { .. })));
    // A NULL link is corrupt, not a crash.
    let (mut b, [systemd, _, _], _) = three_processes();
    b.mem.w64(systemd + 0x10, 0);
    let linux = Linux::new(&b.mem, &b.info, ctx());
    let list = linux.processes().unwrap();
    assert_eq!(list.items.len(), 2);
    assert!(matches!(list.incomplete, Some(Incomplete::Corrupt { .. })));
    // No init_task at all: an error, not a listing.
    b.info.task.init_addr = 0x1234_0000;
    let linux = Linux::new(&b.mem, &b.info, ctx());
    assert!(matches!(linux.processes(), Err(OsiError::Fault(_))));
}

/// `/` (root mount) with `/usr/lib/libc.so.6`, and a second mount on `/mnt/data` holding
/// `notes.txt`. Returns (libc file, notes file, root vfsmount).
fn filesystem(b: &mut Builder) -> (u64, u64, u64) {
    let root = b.dentry("/", 0);
    let usr = b.dentry("usr", root);
    let lib = b.dentry("lib", usr);
    let libc = b.dentry("libc.so.6", lib);
    let mnt = b.dentry("mnt", root);
    let data = b.dentry("data", mnt);
    let root_mnt = b.mount(root, 0, root);
    let data_root = b.dentry("/", 0);
    let notes = b.dentry("notes.txt", data_root);
    let data_mnt = b.mount(data_root, root_mnt, data);
    let libc_file = b.file(libc, root_mnt, 0);
    let notes_file = b.file(notes, data_mnt, 42);
    (libc_file, notes_file, root_mnt)
}

#[test]
fn paths_cross_mounts() {
    let mut b = Builder::new();
    let (libc, notes, root_mnt) = filesystem(&mut b);
    let linux = Linux::new(&b.mem, &b.info, ctx());
    assert_eq!(
        super::path::file_path(&linux, libc).unwrap(),
        "/usr/lib/libc.so.6"
    );
    assert_eq!(
        super::path::file_path(&linux, notes).unwrap(),
        "/mnt/data/notes.txt"
    );
    let mut raw = [0u8; 8];
    crate::mem::GuestMemory::read(&b.mem, root_mnt, &mut raw).unwrap();
    let root = u64::from_le_bytes(raw);
    assert_eq!(super::path::d_path(&linux, root, root_mnt).unwrap(), "/");
}

#[test]
fn maple_tree_two_levels() {
    let mut b = Builder::new();
    let (libc, _, _) = filesystem(&mut b);
    b.info.mm.mmap_offset = None;
    b.info.vma.vm_next_offset = None;
    b.info.mm.mm_mt_offset = Some(0x40);
    let mm = b.mm(0x3000_0000);
    let task = b.process(7, "maple", INIT_TASK, mm);
    let v = [
        b.vma(mm, 0x40_0000, 0x40_1000, 0x5, libc),
        b.vma(mm, 0x40_1000, 0x40_3000, 0x3, 0),
        b.vma(mm, 0x7f00_0000, 0x7f00_1000, 0x1, 0),
        b.vma(mm, 0x7ffd_0000, 0x7ffe_0000, 0x3, 0),
    ];
    // Leaves: ranges with gaps (NULL slots) between the VMAs.
    let leaf1 = b.maple_node(
        1,
        &[
            (0x3f_ffff, 0),
            (0x40_0fff, v[0]),
            (0x40_2fff, v[1]),
            (0x7eff_ffff, 0),
        ],
    );
    let leaf2 = b.maple_node(
        1,
        &[(0x7f00_0fff, v[2]), (0x7ffc_ffff, 0), (0x7ffd_ffff, v[3])],
    );
    let root = b.maple_node(3, &[(0x7eff_ffff, leaf1), (u64::MAX, leaf2)]);
    b.mem.w64(mm + 0x40 + 8, root | 2);
    let linux = Linux::new(&b.mem, &b.info, ctx());
    let maps = linux.mappings(ProcessHandle(task)).unwrap();
    assert!(maps.is_complete(), "{:?}", maps.incomplete);
    let starts: Vec<u64> = maps.items.iter().map(|m| m.start).collect();
    assert_eq!(starts, vec![0x40_0000, 0x40_1000, 0x7f00_0000, 0x7ffd_0000]);
    assert_eq!(maps.items[0].path.as_deref(), Some("/usr/lib/libc.so.6"));
    assert_eq!((maps.items[0].flags, maps.items[0].offset), (5, 0x2000));
    assert_eq!(maps.items[1].path, None);

    // A child pointing back at the root: a cycle, flagged, with what was read before.
    let root_node = root & !0xff;
    b.mem.w64(root_node + 80 + 8, root);
    let linux = Linux::new(&b.mem, &b.info, ctx());
    let maps = linux.mappings(ProcessHandle(task)).unwrap();
    assert_eq!(maps.incomplete, Some(Incomplete::Cycle { at: root_node }));
    assert_eq!(maps.items.len(), 2);
    // A bad node type is corrupt, not a panic.
    b.mem.w64(mm + 0x40 + 8, (root & !0x7f) | 7 << 3 | 2);
    let linux = Linux::new(&b.mem, &b.info, ctx());
    let maps = linux.mappings(ProcessHandle(task)).unwrap();
    assert!(matches!(maps.incomplete, Some(Incomplete::Corrupt { .. })));
    // A single-entry root is one VMA.
    b.mem.w64(mm + 0x40 + 8, v[3]);
    let linux = Linux::new(&b.mem, &b.info, ctx());
    assert_eq!(linux.mappings(ProcessHandle(task)).unwrap().items.len(), 1);
}

#[test]
fn vm_next_list_before_6_1() {
    let mut b = Builder::new();
    let mm = b.mm(0x3000_0000);
    let task = b.process(8, "old", INIT_TASK, mm);
    let v1 = b.vma(mm, 0x1000, 0x2000, 1, 0);
    let v2 = b.vma(mm, 0x3000, 0x4000, 3, 0);
    b.mem.w64(mm, v1);
    b.mem.w64(v1 + 0x10, v2);
    let linux = Linux::new(&b.mem, &b.info, ctx());
    let maps = linux.mappings(ProcessHandle(task)).unwrap();
    assert!(maps.is_complete());
    assert_eq!(maps.items.len(), 2);
    b.mem.w64(v2 + 0x10, v1);
    let linux = Linux::new(&b.mem, &b.info, ctx());
    let maps = linux.mappings(ProcessHandle(task)).unwrap();
    assert_eq!(maps.incomplete, Some(Incomplete::Cycle { at: v1 }));
    // Kernel threads have no mappings.
    let k = b.process(9, "kworker", INIT_TASK, 0);
    let linux = Linux::new(&b.mem, &b.info, ctx());
    assert!(linux.mappings(ProcessHandle(k)).unwrap().items.is_empty());
}

#[test]
fn file_descriptors() {
    let mut b = Builder::new();
    let (libc, notes, _) = filesystem(&mut b);
    let task = b.process(10, "cat", INIT_TASK, 0);
    let files = b.alloc(0x100, 64);
    let fdt = files + 0x28; // the embedded fdtab
    let array = b.alloc(8 * 4, 8);
    b.mem.w32(fdt, 4);
    b.mem.w64(fdt + 8, array);
    b.mem.w64(files + 0x20, fdt);
    b.mem.w64(array, libc);
    b.mem.w64(array + 8 * 3, notes);
    b.mem.w64(task + 0x80, files);
    let linux = Linux::new(&b.mem, &b.info, ctx());
    let fds = linux.fds(ProcessHandle(task)).unwrap();
    assert!(fds.is_complete());
    let got: Vec<(u32, Option<&str>, u64)> = fds
        .items
        .iter()
        .map(|f| (f.fd, f.path.as_deref(), f.position))
        .collect();
    assert_eq!(
        got,
        vec![
            (0, Some("/usr/lib/libc.so.6"), 0),
            (3, Some("/mnt/data/notes.txt"), 42)
        ]
    );
}

/// Found by fuzzing (fuzz/ walkers): a table of 65,536 descriptors whose file's path is a
/// cycle of two dentries with 255-byte names took minutes (each path read 256 names before
/// being refused as too deep). The listing now stops at the read budget, flagged.
#[test]
fn a_hostile_fd_table_stops_at_the_read_budget() {
    let mut b = Builder::new();
    let task = b.process(10, "evil", INIT_TASK, 0);
    let name = "x".repeat(255);
    let a = b.dentry(&name, 0);
    let c = b.dentry(&name, a);
    b.mem.w64(a + 0x18, c); // a's parent is c, c's is a
    let file = b.file(a, 0, 0);
    let files = b.alloc(0x100, 64);
    let fdt = b.alloc(0x40, 8);
    let n = super::path::MAX_FDS;
    let array = b.alloc(8 * n, 8);
    for fd in 0..n {
        b.mem.w64(array + 8 * fd, file);
    }
    b.mem.w32(fdt, n as u32);
    b.mem.w64(fdt + 8, array);
    b.mem.w64(files + 0x20, fdt);
    b.mem.w64(task + 0x80, files);
    let linux = Linux::new(&b.mem, &b.info, ctx());
    let fds = linux.fds(ProcessHandle(task)).unwrap();
    assert!(
        matches!(fds.incomplete, Some(Incomplete::Limit { max }) if max == fds.items.len()),
        "{:?}",
        fds.incomplete
    );
    assert!(
        fds.items.len() < 1024,
        "{} descriptors read",
        fds.items.len()
    );
    assert!(
        fds.items.iter().all(|f| f.path.is_none()),
        "a cycle has no path"
    );
}

#[test]
fn modules_both_layouts() {
    let mut b = Builder::new();
    let m1 = b.module("e1000");
    b.mem.w64(m1 + 0x100, 0xffff_ffff_c000_0000);
    b.mem.w32(m1 + 0x108, 0x2_0000);
    b.mem.w32(m1 + 0x10c, 0x1000);
    let m2 = b.module("ext4");
    b.mem.w64(m2 + 0x100, 0xffff_ffff_c010_0000);
    b.mem.w32(m2 + 0x108, 0x8_0000);
    let linux = Linux::new(&b.mem, &b.info, ctx());
    let mods = linux.modules().unwrap();
    assert!(mods.is_complete());
    let got: Vec<(&str, u64, u64)> = mods
        .items
        .iter()
        .map(|m| (m.name.as_str(), m.base, m.size))
        .collect();
    assert_eq!(
        got,
        vec![
            ("e1000", 0xffff_ffff_c000_0000, 0x2_1000),
            ("ext4", 0xffff_ffff_c010_0000, 0x8_0000)
        ]
    );

    // 6.4+: mem[7] of { base, size } at +0x140, stride 0x40.
    let m = &mut b.info.module;
    m.mem_offset = Some(0x140);
    m.mem_count = Some(7);
    m.memory_size = Some(0x40);
    m.memory_base_offset = Some(0);
    m.memory_size_offset = Some(8);
    for (i, size) in [0x3000u32, 0x1000, 0x800, 0, 0x400, 0, 0]
        .iter()
        .enumerate()
    {
        let e = m1 + 0x140 + 0x40 * i as u64;
        b.mem.w64(e, 0xffff_ffff_c020_0000 + 0x10_0000 * i as u64);
        b.mem.w32(e + 8, *size);
    }
    let linux = Linux::new(&b.mem, &b.info, ctx());
    let mods = linux.modules().unwrap();
    assert_eq!(mods.items[0].base, 0xffff_ffff_c020_0000);
    assert_eq!(mods.items[0].size, 0x4c00);

    // Missing keys are named; KASLR slides the list head.
    b.info.vmi.modules_addr = None;
    let linux = Linux::new(&b.mem, &b.info, ctx());
    assert!(matches!(
        linux.modules(),
        Err(OsiError::MissingKey {
            key: "vmi.modules_addr",
            ..
        })
    ));
    b.info.vmi.modules_addr = Some(MODULES - 0x20_0000);
    let slid = KernelContext {
        kaslr_slide: 0x20_0000,
        ..ctx()
    };
    let linux = Linux::new(&b.mem, &b.info, slid);
    assert_eq!(linux.modules().unwrap().items.len(), 2);
}

#[test]
fn dentry_cycle_is_an_error_not_a_hang() {
    let mut b = Builder::new();
    let (_, _, root_mnt) = filesystem(&mut b);
    let d1 = b.dentry("a", 0);
    let d2 = b.dentry("b", d1);
    b.mem.w64(d1 + 0x18, d2);
    let linux = Linux::new(&b.mem, &b.info, ctx());
    assert!(matches!(
        super::path::d_path(&linux, d1, root_mnt),
        Err(OsiError::Corrupt { .. })
    ));
}

#[test]
fn list_walk_on_a_32_bit_guest() {
    // Two nodes of 4-byte list_heads around a head at 0x1000.
    let mut mem = super::testmem::SparseMemory::default();
    for (node, next) in [(0x1000u64, 0x2000u32), (0x2000, 0x3000), (0x3000, 0x1000)] {
        mem.w32(node, next);
    }
    let info = super::testmem::info();
    let ctx32 = KernelContext {
        pointer_width: 4,
        page_offset: 0xc000_0000,
        ..ctx()
    };
    let linux = Linux::new(&mem, &info, ctx32);
    let (nodes, stop) = super::list::collect(super::list::ListIter::new(&linux, 0x1000, 10));
    assert_eq!((nodes, stop), (vec![0x2000, 0x3000], None));
    let (nodes, stop) = super::list::collect(super::list::ListIter::new(&linux, 0x1000, 1));
    assert_eq!(
        (nodes, stop),
        (vec![0x2000], Some(Incomplete::Limit { max: 1 }))
    );
}

#[test]
fn find_process_reads_one_process_in_full() {
    let (b, [_, _, bash], _) = three_processes();
    let linux = Linux::new(&b.mem, &b.info, ctx());
    let all = linux.processes().unwrap();
    let found = super::task::find_process(&linux, 300).unwrap().unwrap();
    assert_eq!(found.task, bash);
    assert_eq!(Some(&found), all.items.iter().find(|p| p.pid == 300));
    // A thread id is no process; nor is a pid nobody has.
    assert_eq!(super::task::find_process(&linux, 301).unwrap(), None);
    assert_eq!(super::task::find_process(&linux, 4242).unwrap(), None);
}

/// [`three_processes`] with bash running: its task current, its page tables (the KPTI
/// user half) in CR3.
fn bash_running() -> (Builder, KernelContext) {
    let (mut b, [_, _, bash], _) = three_processes();
    b.mem.w64(PER_CPU_BASE + CURRENT_TASK, bash);
    let running = KernelContext {
        current_asid: Some(0x2000_1000),
        user_paging: None,
        ..ctx()
    };
    (b, running)
}

#[test]
fn a_group_that_fits_passes_the_checks() {
    let (b, running) = bash_running();
    let linux = Linux::new(&b.mem, &b.info, running);
    assert_eq!(super::validate::check(&linux), Ok(()));
    // Another process's page tables on the vCPU: the group's mm offsets are wrong.
    let other = KernelContext {
        current_asid: Some(0x3000_0000),
        user_paging: None,
        ..ctx()
    };
    let linux = Linux::new(&b.mem, &b.info, other);
    assert!(matches!(
        super::validate::check(&linux),
        Err(super::validate::Misfit::PageTables { .. })
    ));
}

/// Offsets drawn at random (a fixed seed): a group that reads garbage is refused, and one
/// that passes reads what is there. Never a process that is not.
#[test]
fn random_offsets_never_invent_processes() {
    let (b, running) = bash_running();
    let pids = |linux: &Linux<'_>| -> Vec<u32> {
        linux
            .processes()
            .unwrap()
            .items
            .iter()
            .map(|p| p.pid)
            .collect()
    };
    let truth = pids(&Linux::new(&b.mem, &b.info, running));
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move |below: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % below
    };
    let (mut refused, mut passed) = (0, 0);
    for _ in 0..500 {
        let mut info = b.info.clone();
        let t = &mut info.task;
        for off in [&mut t.tasks_offset, &mut t.real_parent_offset] {
            if next(2) == 0 {
                *off = Some((next(0x200) & !7) as i64);
            }
        }
        for (off, align) in [
            (&mut t.comm_offset, 8),
            (&mut t.mm_offset, 8),
            (&mut t.pid_offset, 4),
            (&mut t.tgid_offset, 4),
        ] {
            if next(2) == 0 {
                *off = (next(0x200) & !(align - 1)) as i64;
            }
        }
        let linux = Linux::new(&b.mem, &info, running);
        match super::validate::check(&linux) {
            Err(_) => refused += 1,
            Ok(()) => {
                passed += 1;
                assert_eq!(
                    pids(&linux),
                    truth,
                    "a group that passed invented processes"
                );
            }
        }
    }
    assert!(
        refused > 300,
        "only {refused} of 500 random groups refused ({passed} passed)"
    );
}

#[test]
fn arm_modules_are_read_through_the_kernels_own_tables() {
    use crate::mem::paging::Paging;
    // 32-bit ARM, LPAE: the direct map is va = pa + 0x80000000; the kernel's tables
    // (swapper_pg_dir) map the module area, the vCPU's own do not.
    const DIRECT: u64 = 0x8000_0000;
    const SWAPPER: u64 = 0xc020_3000;
    const MODULE: u64 = 0xbf03_9000;
    let (l2, l3, page) = (0x4100_0000u64, 0x4100_1000u64, 0x4200_0000u64);
    let mut mem = super::testmem::SparseMemory::default();
    let root = SWAPPER - DIRECT;
    let table = |e: u64| e | 3;
    mem.w64(root + DIRECT + 2 * 8, table(l2));
    mem.w64(l2 + DIRECT + ((MODULE >> 21) & 511) * 8, table(l3));
    mem.w64(l3 + DIRECT + ((MODULE >> 12) & 511) * 8, page | 0x703);
    mem.write(page + DIRECT + 0x14c, b"loop\0");
    let mut info = super::testmem::info();
    info.vmi.swapper_pg_dir_addr = Some(SWAPPER);
    let arm = KernelContext {
        pointer_width: 4,
        page_offset: DIRECT,
        user_paging: Paging::arm(0xb502_3500),
        ..ctx()
    };
    let linux = Linux::new(&mem, &info, arm);
    let mut name = [0u8; 5];
    assert!(linux.memory().read(MODULE + 0x14c, &mut name).is_err());
    linux.with_kernel_tables(|k| {
        k.memory().read(MODULE + 0x14c, &mut name).unwrap();
        // What the vCPU reads itself is read as it is.
        assert_eq!(k.memory().read_u64(root + DIRECT + 16), Ok(table(l2)));
    });
    assert_eq!(&name, b"loop\0");
    // Without the key, or off ARM: the provider itself.
    info.vmi.swapper_pg_dir_addr = None;
    let linux = Linux::new(&mem, &info, arm);
    linux.with_kernel_tables(|k| assert!(k.memory().read(MODULE + 0x14c, &mut name).is_err()));
}
