//! Tests of the system call tables, ABI, decoding, hooks and matcher.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use super::proto::{self, ArgKind};
use super::*;
use crate::arch::insn::SyscallInsn;
use crate::mem::{Fault, GuestMemory};

/// Sparse guest memory: 4 KiB pages written by the test; everything else faults.
#[derive(Default)]
struct Sparse(BTreeMap<u64, Vec<u8>>);

impl Sparse {
    fn put(&mut self, va: u64, bytes: &[u8]) -> &mut Self {
        for (i, b) in bytes.iter().enumerate() {
            let a = va + i as u64;
            self.0.entry(a & !0xfff).or_insert_with(|| vec![0; 0x1000])[(a & 0xfff) as usize] = *b;
        }
        self
    }
}

impl GuestMemory for Sparse {
    fn read(&self, va: u64, buf: &mut [u8]) -> Result<(), Fault> {
        let len = buf.len();
        for (i, out) in buf.iter_mut().enumerate() {
            let a = va.wrapping_add(i as u64);
            let page = self.0.get(&(a & !0xfff)).ok_or(Fault { va, len })?;
            *out = page[(a & 0xfff) as usize];
        }
        Ok(())
    }
}

// ---- PANDA's reference files -------------------------------------------------------

/// `../shared/reference/panda`, or `None` (with a notice) if `shared/` is absent and not
/// required. Present but unreadable fails.
fn panda_dir() -> Option<PathBuf> {
    let shared = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared");
    if !shared.exists() {
        assert!(
            std::env::var("VMI_REQUIRE_SHARED").as_deref() != Ok("1"),
            "VMI_REQUIRE_SHARED=1 but {} is absent",
            shared.display()
        );
        eprintln!(
            "note: {} absent; skipping PANDA cross-checks",
            shared.display()
        );
        return None;
    }
    Some(shared.join("reference/panda"))
}

fn read_panda(dir: &std::path::Path, name: &str) -> Vec<proto::Proto> {
    let path = dir.join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{} is unreadable: {e}", path.display()));
    proto::parse_file(&text).unwrap_or_else(|e| panic!("{}:{}: {}", path.display(), e.line, e.msg))
}

#[test]
fn panda_prototype_files_parse() {
    let Some(dir) = panda_dir() else { return };
    for arch in ["x64", "x86", "arm", "arm64", "mips"] {
        let protos = read_panda(&dir, &format!("linux_{arch}_prototypes.txt"));
        assert!(protos.len() > 250, "{arch}: {} prototypes", protos.len());
        for p in &protos {
            // Every argument classifies without panicking, at both widths.
            assert_eq!(proto::classify(&p.args, 32).len(), p.args.len());
            assert_eq!(proto::classify(&p.args, 64).len(), p.args.len());
        }
    }
}

/// Our name for a number PANDA names differently: the kernel renamed the entry point.
/// i386: the y2038 work (4.18-5.1) moved 32-bit-time calls to `*_time32`/`*32` entry
/// points, and 4.17+ split 64-bit arguments in `sys_ia32_*` wrappers.
fn known_rename(ours: &str, panda: &str) -> bool {
    let p = panda.trim_start_matches("sys_");
    let o = ours.trim_start_matches("sys_");
    o == format!("{p}_time32") || o == format!("{p}32") || o == format!("ia32_{p}")
}

/// arm64 numbers whose entry point PANDA names after the call: the generic table's 64-bit
/// entry points (`__SC_3264`: `sys_sendfile64`, `sys_fadvise64_64`; `__ARCH_WANT_NEW_STAT`:
/// `sys_newfstat`, `sys_newuname`) and `umount2`'s `sys_umount`.
const ARM64_ENTRY_RENAMES: [u32; 5] = [39, 71, 80, 160, 223];

/// arm's numbers whose function PANDA's linux_arm file (an older kernel's) names
/// otherwise: the 32-bit-time calls the y2038 work renamed `*_time32` / `*32` (5.1), whose
/// 64-bit-time successors got new numbers; `mmap2` (PANDA: `do_mmap2`); and the
/// ARM-private calls from 0x0f0001 (PANDA: `ARM_breakpoint` and so on).
const ARM_ENTRY_RENAMES: [u32; 33] = [
    124, 161, 162, 177, 192, 240, 245, 258, 259, 262, 263, 264, 265, 269, 276, 277, 300, 304, 308,
    312, 326, 335, 336, 348, 353, 354, 365, 372, 983041, 983042, 983043, 983044, 983045,
];

#[test]
fn numbers_and_names_agree_with_panda() {
    let Some(dir) = panda_dir() else { return };
    for (profile, file) in [
        (Profile::LinuxX64, "linux_x64_prototypes.txt"),
        (Profile::LinuxX86, "linux_x86_prototypes.txt"),
        (Profile::LinuxArm64, "linux_arm64_prototypes.txt"),
        (Profile::LinuxArm, "linux_arm_prototypes.txt"),
    ] {
        let mut both = 0;
        let mut renamed = Vec::new();
        for p in read_panda(&dir, file) {
            let Some(ours) = profile.lookup(u64::from(p.nr)) else {
                // PANDA lists a few calls since removed or made sys_ni_syscall (_sysctl,
                // bdflush, and the long-gone uselib etc.); none may be live and named
                // differently.
                continue;
            };
            both += 1;
            if ours.func != p.func {
                assert!(
                    known_rename(ours.func, &p.func)
                        || matches!(profile, Profile::LinuxArm64 | Profile::LinuxArm),
                    "{}: {} is {} here, {} in PANDA",
                    profile.name(),
                    p.nr,
                    ours.func,
                    p.func
                );
                renamed.push(p.nr);
            }
        }
        assert!(
            both > 280,
            "{}: only {both} numbers in common",
            profile.name()
        );
        match profile {
            Profile::LinuxX64 => assert!(renamed.is_empty(), "x64 renames: {renamed:?}"),
            Profile::LinuxArm64 => assert_eq!(renamed, ARM64_ENTRY_RENAMES, "arm64 renames"),
            Profile::LinuxArm => assert_eq!(renamed, ARM_ENTRY_RENAMES, "arm renames"),
            Profile::LinuxX86 => {}
        }
    }
}

// ---- our tables -----------------------------------------------------------------------

#[test]
fn tables_know_new_and_old_calls() {
    let x64 = Profile::LinuxX64;
    let x86 = Profile::LinuxX86;
    for (p, nr, name) in [
        (x64, 0, "read"),
        (x64, 59, "execve"),
        (x64, 257, "openat"),
        (x64, 435, "clone3"),
        (x64, 437, "openat2"),
        (x64, 439, "faccessat2"),
        (x64, 441, "epoll_pwait2"),
        (x86, 3, "read"),
        (x86, 11, "execve"),
        (x86, 120, "clone"),
        (x86, 192, "mmap_pgoff"),
        (x86, 295, "openat"),
        (x86, 435, "clone3"),
    ] {
        assert_eq!(
            p.lookup(nr).map(|s| s.name),
            Some(name),
            "{} {nr}",
            p.name()
        );
        assert_eq!(p.by_name(name).map(|s| s.nr as u64), Some(nr));
    }
    assert!(
        x64.lookup(134).is_none(),
        "uselib is unimplemented on x86_64"
    );
    assert!(x64.lookup(100_000).is_none());
    // i386 clone has CONFIG_CLONE_BACKWARDS's order; x86_64 does not.
    let names = |s: &SyscallInfo| s.args.iter().map(|a| a.name).collect::<Vec<_>>();
    assert_eq!(names(x86.lookup(120).unwrap())[3], "tls");
    assert_eq!(names(x64.lookup(56).unwrap())[4], "tls");
}

fn kinds(p: Profile, name: &str) -> Vec<(&'static str, ArgKind, u8)> {
    p.by_name(name)
        .unwrap_or_else(|| panic!("{name}"))
        .args
        .iter()
        .map(|a| (a.name, a.kind, a.bits))
        .collect()
}

#[test]
fn classification() {
    use ArgKind::*;
    let x64 = Profile::LinuxX64;
    assert_eq!(
        kinds(x64, "openat"),
        [
            ("dfd", Fd, 32),
            ("filename", CStr, 64),
            ("flags", Signed, 32),
            ("mode", Int, 16)
        ]
    );
    assert_eq!(
        kinds(x64, "read"),
        [
            ("fd", Fd, 32),
            ("buf", Buffer { len_arg: 2 }, 64),
            ("count", Int, 64)
        ]
    );
    assert_eq!(kinds(x64, "write")[1].1, Buffer { len_arg: 2 });
    assert_eq!(
        kinds(x64, "execve"),
        [
            ("filename", CStr, 64),
            ("argv", CStrArray, 64),
            ("envp", CStrArray, 64)
        ]
    );
    let mmap = kinds(x64, "mmap");
    assert_eq!(mmap[0], ("addr", Int, 64));
    assert_eq!(mmap[4], ("fd", Fd, 64));
    assert_eq!(
        kinds(x64, "clone3"),
        [("uargs", StructPtr, 64), ("size", Int, 64)]
    );
    assert_eq!(kinds(x64, "readlinkat")[1].1, CStr);
    assert_eq!(kinds(x64, "readlinkat")[2].1, Buffer { len_arg: 3 });
    assert_eq!(kinds(x64, "setxattr")[1].1, CStr);
    assert_eq!(kinds(x64, "setxattr")[2].1, Buffer { len_arg: 3 });
    assert_eq!(kinds(x64, "getsockopt")[3].1, Pointer);
    assert_eq!(kinds(x64, "mount")[0].1, CStr);
    assert_eq!(kinds(x64, "rt_sigprocmask")[1].1, Pointer);
    assert_eq!(kinds(x64, "dup2"), [("oldfd", Fd, 32), ("newfd", Fd, 32)]);
    // i386: one 32-bit register per argument, whatever the C type.
    assert_eq!(kinds(Profile::LinuxX86, "read")[2], ("count", Int, 32));
    assert_eq!(kinds(Profile::LinuxX86, "llseek")[1].2, 32);
    // Unnamed parameters get argN names and are never file descriptors.
    let p = proto::parse_line("9 long sys_mmap(unsigned long, unsigned long, int);").unwrap();
    assert_eq!(p.args[2].name, "arg2");
    assert!(!p.args[2].named);
    assert_eq!(proto::classify(&p.args, 64)[2], (Signed, 32));
}

#[test]
fn malformed_lines_name_their_line() {
    let text = "# comment\n\n0 long sys_read(unsigned int fd);\n1 long sys_write(int fd\n";
    let e = proto::parse_file(text).unwrap_err();
    assert_eq!(e.line, 4);
    for bad in [
        "x long sys_a(void);",
        "1 sys_a(void);",
        "1 long sys_a(void)",
        "1 long sys_a(int (*f)(void));",
        "1 long sys_a(int a, int b, int c, int d, int e, int f, int g);",
        "1 long sys_a(int a-b);",
    ] {
        assert!(proto::parse_line(bad).is_err(), "{bad}");
    }
    let p = proto::parse_line(
        "7 long sys_poll(struct pollfd __user *ufds, unsigned int nfds, int timeout);",
    )
    .unwrap();
    assert_eq!(p.args[0].ctype, "struct pollfd __user *");
    assert_eq!(p.name(), "poll");
}

// ---- ABI ---------------------------------------------------------------------------

#[test]
fn abi_x64_syscall() {
    let regs = Regs {
        rax: 257,
        rdi: (-100i64) as u64,
        rsi: 0x5000,
        rdx: 0x241,
        r10: 0o644,
        r8: 5,
        r9: 6,
        rcx: 0xdead, // clobbered by `syscall`, never an argument
        rip: 0x40_1000,
        ..Regs::default()
    };
    let abi = Abi::detect(SyscallInsn::Syscall, true).unwrap();
    let c = abi.entry(&regs, &Sparse::default());
    assert_eq!(c.profile(), Profile::LinuxX64);
    assert_eq!(c.nr, 257);
    assert_eq!(c.args, [(-100i64) as u64, 0x5000, 0x241, 0o644, 5, 6]);
    assert_eq!(c.return_pc, 0x40_1002);
    assert_eq!(
        abi.return_value(&Regs {
            rax: (-2i64) as u64,
            ..regs
        }),
        -2
    );
}

#[test]
fn only_the_registers_a_call_takes_are_asked_for() {
    use crate::arch::regs::Reg;
    // getppid (x64 110) takes nothing; openat (257) four; an unknown number all six.
    assert_eq!(Abi::X64Syscall.arg_count(110), 0);
    assert_eq!(Abi::X64Syscall.arg_count(257), 4);
    assert_eq!(Abi::X64Syscall.arg_count(9999), 6);
    let four = Abi::X64Syscall.arg_registers(4).to_vec();
    assert_eq!(four, [Reg::Rdi, Reg::Rsi, Reg::Rdx, Reg::R10]);
    // i386 numbers are eax: the upper half of rax is not part of them (mmap2 = 192).
    assert_eq!(Abi::I386Int80.arg_count(0xffff_ffff_0000_00c0), 6);
    // Argument 6 of the fast paths is on the stack, found through ebp (sysenter) or
    // esp (32-bit syscall, where ebp holds argument 2).
    assert_eq!(Abi::I386Sysenter.arg_registers(6).last(), Some(&Reg::Rbp));
    let compat = Abi::I386Syscall.arg_registers(6);
    assert_eq!((compat[1], compat[5]), (Reg::Rbp, Reg::Rsp));
    // With fewer than six arguments the stack is not read: a fault there is no fault.
    let mut regs = Regs {
        rax: 4, // write(fd, buf, count)
        rbx: 1,
        rcx: 0x5000,
        rdx: 3,
        rbp: 0xdead_0000,
        rip: 0xf7f0_0000,
        ..Regs::default()
    };
    let c = Abi::I386Sysenter.entry_with(&regs, &Sparse::default(), 3);
    assert!(!c.arg6_fault);
    assert_eq!(c.args[..3], [1, 0x5000, 3]);
    regs.rax = 192;
    let c = Abi::I386Sysenter.entry_with(&regs, &Sparse::default(), 6);
    assert!(
        c.arg6_fault,
        "mmap2's sixth argument is read, and faults here"
    );
}

#[test]
fn abi_i386_int80_uses_low_halves() {
    let regs = Regs {
        rax: 0xffff_ffff_0000_0005,
        rbx: 0x1_0000_0001,
        rcx: 2,
        rdx: 3,
        rsi: 4,
        rdi: 5,
        rbp: 6,
        rip: 0x8048000,
        ..Regs::default()
    };
    // int 0x80 is the i386 table even from 64-bit code.
    let abi = Abi::detect(SyscallInsn::Int80, true).unwrap();
    assert_eq!(abi, Abi::I386Int80);
    let c = abi.entry(&regs, &Sparse::default());
    assert_eq!((c.nr, c.args), (5, [1, 2, 3, 4, 5, 6]));
    assert_eq!(c.profile(), Profile::LinuxX86);
    assert_eq!(c.return_pc, 0x8048002);
    assert_eq!(
        abi.return_value(&Regs {
            rax: 0xffff_fff2,
            ..regs
        }),
        -14
    );
    // An address above 2 GiB is no error: 0xf7f82000, not -134733824.
    for (eax, want) in [
        (0xf7f8_2000u64, 0xf7f8_2000i64),
        (0xffff_f000, 0xffff_f000),
        (0xffff_f001, -4095),
        (0xffff_ffff, -1),
        (0x8000_0000, 0x8000_0000),
    ] {
        assert_eq!(
            abi.return_value(&Regs {
                rax: 0xffff_ffff_0000_0000 | eax,
                ..regs
            }),
            want,
            "eax {eax:#x}"
        );
    }
}

#[test]
fn abi_i386_sysenter_reads_arg6_at_ebp() {
    // __kernel_vsyscall: push ecx; push edx; push ebp; mov esp, ebp; sysenter
    let esp = 0xbfff_f000u64;
    let mut mem = Sparse::default();
    mem.put(esp, &0x66u32.to_le_bytes()) // the pushed ebp: argument 6
        .put(esp + 4, &3u32.to_le_bytes()) // pushed edx
        .put(esp + 8, &2u32.to_le_bytes()); // pushed ecx
    let regs = Regs {
        rax: 192,
        rbx: 1,
        rcx: 2,
        rdx: 3,
        rsi: 4,
        rdi: 5,
        rbp: esp,
        rsp: esp,
        rip: 0xb7ff_1420,
        ..Regs::default()
    };
    assert_eq!(Abi::detect(SyscallInsn::Sysenter, true), None);
    let abi = Abi::detect(SyscallInsn::Sysenter, false).unwrap();
    let c = abi.entry(&regs, &mem);
    assert_eq!(c.args, [1, 2, 3, 4, 5, 0x66]);
    assert!(!c.arg6_fault);
    // Returns to int80_landing_pad, after the `int $0x80` that follows `sysenter`.
    assert_eq!(c.return_pc, 0xb7ff_1424);
    // Unreadable stack: argument 6 is 0 and flagged.
    let c = abi.entry(&regs, &Sparse::default());
    assert!(c.arg6_fault);
    assert_eq!(c.args[5], 0);
}

#[test]
fn abi_i386_compat_syscall_takes_arg2_from_ebp() {
    // movl %ecx, %ebp; syscall — ecx is lost to the return address.
    let esp = 0xffff_d000u64;
    let mut mem = Sparse::default();
    mem.put(esp, &0x66u32.to_le_bytes());
    let regs = Regs {
        rax: 4,
        rbx: 1,
        rcx: 0xdead,
        rdx: 3,
        rsi: 4,
        rdi: 5,
        rbp: 2,
        rsp: esp,
        rip: 0xf7fc_1000,
        ..Regs::default()
    };
    let abi = Abi::detect(SyscallInsn::Syscall, false).unwrap();
    let c = abi.entry(&regs, &mem);
    assert_eq!(c.args, [1, 2, 3, 4, 5, 0x66]);
    assert_eq!(c.return_pc, 0xf7fc_1004);
}

// ---- decoding ----------------------------------------------------------------------

fn call(abi: Abi, nr: u64, args: [u64; 6]) -> RawCall {
    RawCall {
        abi,
        nr,
        args,
        pc: 0x1000,
        return_pc: 0x1000 + abi.return_offset(),
        sp: 0,
        arg6_fault: false,
    }
}

fn thread() -> ThreadInfo {
    ThreadInfo {
        pid: 42,
        tid: 43,
        comm: "cat".into(),
    }
}

#[test]
fn openat_record_matches_the_json_contract() {
    let mut mem = Sparse::default();
    mem.put(0x5000, b"/etc/passwd\0");
    // dfd as glibc may leave it: only the low 32 bits set.
    let c = call(Abi::X64Syscall, 257, [0xffff_ff9c, 0x5000, 0, 0, 0, 0]);
    let info = Profile::LinuxX64.lookup(257);
    let args = decode_args(info, &c, &mem, When::Enter);
    let mut m: Matcher<u64, Args> = Matcher::new();
    assert!(m.enter(7, c, args).is_empty());
    let done = m.ret(&7, 0x1002, 3).pop().unwrap();
    let rec = SyscallRecord::new(thread(), &done, done.payload.clone(), &mem);
    assert_eq!(
        serde_json::to_string(&rec).unwrap(),
        r#"{"type":"syscall","pid":42,"tid":43,"comm":"cat","nr":257,"name":"openat","args":{"dfd":-100,"filename":"/etc/passwd","flags":0,"mode":0},"ret":3}"#
    );
}

#[test]
fn read_buffer_is_decoded_at_return() {
    let mut mem = Sparse::default();
    mem.put(0x7000, b"root:x:0:0\nmore bytes that were not read");
    let c = call(Abi::X64Syscall, 0, [3, 0x7000, 4096, 0, 0, 0]);
    let info = Profile::LinuxX64.lookup(0).unwrap();
    let mut args = decode_args(Some(info), &c, &mem, When::Enter);
    assert_eq!(
        args.get("buf"),
        Some(DecodedArg::Buffer {
            ptr: 0x7000,
            len: 4096,
            data: None
        })
    );
    args.finish(&mem, 11);
    let json = serde_json::to_value(&args).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"fd": 3, "buf": {"ptr": "0x7000", "len": 4096, "data": "root:x:0:0\\n"}, "count": 4096})
    );
    // A failed read has no data.
    args.finish(&mem, -9);
    assert!(matches!(
        args.get("buf"),
        Some(DecodedArg::Buffer { data: None, .. })
    ));
}

#[test]
fn write_buffer_is_decoded_at_entry_and_cut_at_64_bytes() {
    let mut mem = Sparse::default();
    mem.put(0x7000, &[b'A'; 100]).put(0x7000, b"\x01\xff");
    let c = call(Abi::I386Int80, 4, [1, 0x7000, 100, 0, 0, 0]);
    let args = decode_args(Profile::LinuxX86.lookup(4), &c, &mem, When::Enter);
    let Some(DecodedArg::Buffer {
        len, data: Some(d), ..
    }) = args.get("buf")
    else {
        panic!("{args:?}")
    };
    assert_eq!(len, 100);
    assert_eq!(d, format!("\\x01\\xff{}", "A".repeat(62)));
}

#[test]
fn execve_strings_arrays_faults_and_truncation() {
    let mut mem = Sparse::default();
    mem.put(0x5000, b"/bin/ls\0")
        .put(0x5100, b"ls\0")
        .put(0x5110, b"-l\0");
    // argv on a 32-bit stack: 4-byte pointers, NULL-terminated.
    let mut argv = Vec::new();
    for p in [0x5100u32, 0x5110, 0] {
        argv.extend_from_slice(&p.to_le_bytes());
    }
    mem.put(0x6000, &argv);
    let long = vec![b'x'; 5000];
    mem.put(0x8000, &long);
    let c = call(Abi::I386Int80, 11, [0x5000, 0x6000, 0, 0, 0, 0]);
    let args = decode_args(Profile::LinuxX86.lookup(11), &c, &mem, When::Enter);
    assert_eq!(
        serde_json::to_value(&args).unwrap(),
        serde_json::json!({"filename": "/bin/ls", "argv": ["ls", "-l"], "envp": null})
    );
    let c = call(Abi::I386Int80, 11, [0x8000, 0x9_0000, 0, 0, 0, 0]);
    let args = decode_args(Profile::LinuxX86.lookup(11), &c, &mem, When::Enter);
    let j = serde_json::to_value(&args).unwrap();
    assert_eq!(j["filename"]["truncated"], true);
    assert_eq!(
        j["filename"]["str"].as_str().unwrap().len(),
        decode::MAX_STR
    );
    assert_eq!(
        j["argv"],
        serde_json::json!({"ptr": "0x90000", "fault": true})
    );
}

#[test]
fn unknown_numbers_give_raw_args() {
    let c = call(Abi::X64Syscall, 9999, [1, 2, 3, 4, 5, 6]);
    let args = decode_args(
        Profile::LinuxX64.lookup(9999),
        &c,
        &Sparse::default(),
        When::Enter,
    );
    let j = serde_json::to_value(&args).unwrap();
    assert_eq!(j["arg5"], 6);
}

/// Every shape a record can take survives its trip to the writer packed: strings (cut
/// or not), buffers read at return, string arrays with an unreadable entry, faults,
/// NULLs, unknown numbers, i386 calls, outcomes, no `seq`.
#[test]
fn records_pack_and_unpack_unchanged() {
    use crate::output::pack::{Packed, Unpack};
    let mut mem = Sparse::default();
    mem.put(0x5000, b"/etc/passwd\0")
        .put(0x7000, b"root:x:0:0\n\x01\xff")
        .put(0x8000, &[b'x'; 5000]);
    let mut argv = Vec::new();
    for p in [0x5000u32, 0xdead_0000, 0] {
        argv.extend_from_slice(&p.to_le_bytes());
    }
    mem.put(0x6000, &argv);
    let calls = [
        (
            call(Abi::X64Syscall, 257, [0xffff_ff9c, 0x5000, 0, 0, 0, 0]),
            Outcome::Returned(3),
        ),
        (
            call(Abi::X64Syscall, 0, [3, 0x7000, 4096, 0, 0, 0]),
            Outcome::Returned(13),
        ),
        (
            call(Abi::X64Syscall, 0, [3, 0x9_0000, 16, 0, 0, 0]),
            Outcome::Returned(-14),
        ),
        (
            call(Abi::X64Syscall, 257, [0, 0x8000, 0, 0, 0, 0]),
            Outcome::Abandoned,
        ),
        (
            call(Abi::X64Syscall, 257, [0, 0, 0, 0, 0, 0]),
            Outcome::Returned(-14),
        ),
        (
            call(Abi::I386Int80, 11, [0x5000, 0x6000, 0, 0, 0, 0]),
            Outcome::Exec,
        ),
        (
            call(Abi::I386Int80, 11, [0x9_0000, 0x9_0000, 0, 0, 0, 0]),
            Outcome::Returned(-14),
        ),
        (
            call(Abi::X64Syscall, 9999, [1, 2, 3, 4, 5, u64::MAX]),
            Outcome::NoReturn,
        ),
        (call(Abi::X64Syscall, 110, [0; 6]), Outcome::Returned(1)),
        (call(Abi::X64Syscall, 169, [0; 6]), Outcome::Unfinished),
    ];
    let mut packed = Vec::new();
    let mut records = Vec::new();
    for (n, (c, outcome)) in calls.into_iter().enumerate() {
        let args = decode_args(c.info(), &c, &mem, When::Enter);
        let done = Completed {
            thread: 0u64,
            call: c,
            payload: (),
            outcome,
        };
        let rec = SyscallRecord {
            seq: (n % 2 == 0).then_some(n as u64 * 1000),
            ..SyscallRecord::new(thread(), &done, args, &mem)
        };
        rec.pack(&mut packed);
        records.push(rec);
    }
    let mut input = Unpack(&packed);
    for rec in &records {
        let back = SyscallRecord::unpack(&mut input).expect("unpacks");
        assert_eq!(&back, rec);
        assert_eq!(
            serde_json::to_string(&back).unwrap(),
            serde_json::to_string(rec).unwrap()
        );
    }
    assert!(input.is_empty());
    // Cut short, a record does not unpack.
    assert!(SyscallRecord::unpack(&mut Unpack(&packed[..20])).is_none());
    // Every field written is one readers know, and each is written by some record.
    let mut written = std::collections::BTreeSet::new();
    for rec in &records {
        let v = serde_json::to_value(rec).unwrap();
        written.extend(v.as_object().unwrap().keys().cloned());
    }
    written.remove("type");
    let listed: std::collections::BTreeSet<String> = decode::SYSCALL_FIELDS
        .iter()
        .map(|f| f.to_string())
        .collect();
    assert_eq!(written, listed);
}

// ---- matcher -----------------------------------------------------------------------

#[test]
fn matcher_cases() {
    let x64 = |nr| call(Abi::X64Syscall, nr, [0; 6]);
    let mut m: Matcher<(u64, u32)> = Matcher::new();
    // Two threads of one address space blocked at the same return address (PANDA keys
    // by return address + asid and confuses them).
    assert!(m.enter((1, 10), x64(0), ()).is_empty());
    assert!(m.enter((1, 11), x64(0), ()).is_empty());
    assert_eq!(m.len(), 2);
    let b = m.ret(&(1, 11), 0x1002, 5).pop().unwrap();
    assert_eq!((b.thread, b.outcome), ((1, 11), Outcome::Returned(5)));
    assert!(m.ret(&(1, 11), 0x1002, 5).is_empty(), "returned once only");
    // A thread elsewhere is not returning.
    assert!(m.ret(&(1, 10), 0x9999, 0).is_empty());
    assert_eq!(
        m.ret(&(1, 10), 0x1002, 7).pop().unwrap().outcome,
        Outcome::Returned(7)
    );
    // exit_group completes at entry.
    let done = m.enter((1, 10), x64(231), ());
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].outcome, Outcome::NoReturn);
    assert!(m.is_empty());
    // rt_sigreturn too; and on i386, sigreturn.
    assert_eq!(m.enter((1, 10), x64(15), ())[0].outcome, Outcome::NoReturn);
    assert_eq!(
        m.enter((1, 10), call(Abi::I386Int80, 119, [0; 6]), ())[0].outcome,
        Outcome::NoReturn
    );
    // A failed execve returns; a successful one is closed by the next call.
    m.enter((1, 10), x64(59), ());
    assert_eq!(
        m.ret(&(1, 10), 0x1002, -2).pop().unwrap().outcome,
        Outcome::Returned(-2)
    );
    m.enter((1, 10), x64(59), ());
    let done = m.enter((1, 10), x64(12), ());
    assert_eq!(done.len(), 1);
    assert_eq!((done[0].call.nr, done[0].outcome), (59, Outcome::Exec));
    // The same instruction again while its call is pending: a restarted call.
    let done = m.enter((1, 10), x64(0), ());
    assert_eq!((done[0].call.nr, done[0].outcome), (12, Outcome::Abandoned));
    // The child of a fork returns with nothing pending: ignored.
    assert!(m.ret(&(1, 99), 0x1002, 0).is_empty());
    // Told of an exec / a thread's end.
    m.enter((2, 1), x64(322), ());
    assert_eq!(
        m.exec_succeeded(&(2, 1)).pop().unwrap().outcome,
        Outcome::Exec
    );
    assert_eq!(
        m.forget(&(1, 10)).pop().unwrap().outcome,
        Outcome::Abandoned
    );
    assert!(m.is_empty());
    // The run ends with calls pending: all of them, each thread's oldest first.
    m.enter((3, 1), x64(0), ());
    let handler = RawCall {
        pc: 0x2000,
        return_pc: 0x2002,
        ..x64(1)
    };
    m.enter((3, 1), handler, ());
    m.enter((4, 1), x64(61), ());
    let mut done: Vec<_> = m
        .drain()
        .into_iter()
        .map(|d| (d.thread, d.call.nr, d.outcome))
        .collect();
    done.sort_by_key(|d| d.0);
    assert_eq!(
        done,
        [
            ((3, 1), 0, Outcome::Unfinished),
            ((3, 1), 1, Outcome::Unfinished),
            ((4, 1), 61, Outcome::Unfinished)
        ]
    );
    assert!(m.is_empty() && !m.may_return_at(0x1002));
}

#[test]
fn matcher_keeps_a_call_interrupted_by_a_signal_handler() {
    let at = |nr, pc: u64| RawCall {
        pc,
        return_pc: pc + 2,
        ..call(Abi::X64Syscall, nr, [0; 6])
    };
    let mut m: Matcher<u32> = Matcher::new();
    // wait4 completes in the kernel, but a SIGCHLD handler runs before it returns.
    assert!(m.enter(1, at(61, 0x1000), ()).is_empty());
    assert!(
        m.enter(1, at(1, 0x2000), ()).is_empty(),
        "the handler's write nests"
    );
    assert_eq!(m.ret(&1, 0x2002, 5).pop().unwrap().call.nr, 1);
    assert_eq!(m.enter(1, at(15, 0x3000), ())[0].outcome, Outcome::NoReturn);
    // After rt_sigreturn, wait4 returns where it would have, with its own value.
    let done = m.ret(&1, 0x1002, 87);
    assert_eq!(done.len(), 1);
    assert_eq!(
        (done[0].call.nr, done[0].outcome),
        (61, Outcome::Returned(87))
    );
    assert!(m.is_empty());
    // A handler that never returns to its call: the return below abandons it.
    m.enter(1, at(61, 0x1000), ());
    m.enter(1, at(0, 0x2000), ());
    let done = m.ret(&1, 0x1002, 3);
    assert_eq!(done.len(), 2);
    assert_eq!((done[0].call.nr, done[0].outcome), (0, Outcome::Abandoned));
    assert_eq!(done[1].outcome, Outcome::Returned(3));
    assert_eq!(m.len(), 0);
}

#[test]
fn matcher_limit_drops_a_pending_call() {
    let mut m: Matcher<u32> = Matcher::with_limit(2);
    let c = call(Abi::X64Syscall, 0, [0; 6]);
    assert!(m.enter(1, c, ()).is_empty());
    assert!(m.enter(2, c, ()).is_empty());
    let done = m.enter(3, c, ());
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].outcome, Outcome::Abandoned);
    assert_eq!(m.len(), 2);
}

#[test]
fn matcher_knows_where_calls_are_pending() {
    // A pseudo-random mix of entries, returns, execs and forgotten threads; after every
    // step `may_return_at` agrees with the pending calls themselves.
    let nrs = [0u64, 1, 59, 61, 231, 15, 12];
    let mut m: Matcher<u32> = Matcher::with_limit(8);
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..5000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let thread = (x % 5) as u32;
        let pc = 0x1000 + (x >> 8) % 4 * 0x10;
        match (x >> 16) % 5 {
            0 | 1 => {
                let c = RawCall {
                    pc,
                    return_pc: pc + 2,
                    ..call(Abi::X64Syscall, nrs[((x >> 24) % 7) as usize], [0; 6])
                };
                m.enter(thread, c, ());
            }
            2 | 3 => {
                m.ret(&thread, pc + 2, 0);
            }
            _ if x >> 40 & 1 == 0 => {
                m.exec_succeeded(&thread);
            }
            _ => {
                m.forget(&thread);
            }
        }
        for probe in (0..4).map(|i| 0x1002 + i * 0x10) {
            assert_eq!(
                m.may_return_at(probe),
                m.return_pcs().any(|p| p == probe),
                "at {probe:#x}"
            );
            // Only the offset in the page counts.
            assert_eq!(m.may_return_at(probe + 0x7000), m.may_return_at(probe));
        }
    }
}

// ---- hooks -------------------------------------------------------------------------

#[test]
fn typed_hooks_fire_in_both_profiles() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut hooks = SyscallHooks::new();
    let s = seen.clone();
    hooks.on_openat_enter(move |c, dfd, filename, flags, mode| {
        s.lock().unwrap().push(format!(
            "{} {dfd} {:?} {flags} {mode:o}",
            c.profile().name(),
            c.read_str(filename)
        ));
    });
    let s = seen.clone();
    hooks.on_read_return(move |c, fd, _buf, count| {
        s.lock()
            .unwrap()
            .push(format!("read {fd} {count} = {:?}", c.ret));
    });
    let s = seen.clone();
    hooks.on_all_enter(move |c| s.lock().unwrap().push(format!("all {}", c.call.nr)));
    let s = seen.clone();
    hooks.on_unknown_enter(move |c| s.lock().unwrap().push(format!("unknown {}", c.call.nr)));
    let s = seen.clone();
    hooks.on_clone_linux_x86_enter(move |_, flags, _, _, tls, _| {
        s.lock()
            .unwrap()
            .push(format!("clone32 {flags:#x} {tls:#x}"));
    });

    let mut mem = Sparse::default();
    mem.put(0x5000, b"/tmp\0");
    let calls = [
        call(
            Abi::X64Syscall,
            257,
            [(-100i64) as u64, 0x5000, 0x42, 0x1_0000 | 0o644, 0, 0],
        ),
        call(Abi::I386Int80, 295, [0xffff_ff9c, 0x5000, 0, 0o755, 0, 0]),
        call(Abi::X64Syscall, 4242, [0; 6]),
        call(Abi::I386Sysenter, 120, [0x11, 0, 0, 0x77, 0, 0]),
        call(Abi::X64Syscall, 56, [0x11, 0, 0, 0x77, 0, 0]),
    ];
    for c in &calls {
        assert!(hooks.wants_enter(c.profile(), c.nr));
        hooks.enter(&HookCtx::new(c, None, None, &mem));
    }
    let r = call(
        Abi::I386Int80,
        3,
        [4, 0x7000, 0xffff_ffff_0000_0010, 0, 0, 0],
    );
    assert!(hooks.wants_return(Profile::LinuxX86, 3));
    assert!(!hooks.wants_return(Profile::LinuxX86, 4));
    hooks.ret(&HookCtx::new(&r, Some(16), None, &mem));
    assert_eq!(
        *seen.lock().unwrap(),
        [
            "all 257",
            // mode is umode_t: 16 bits.
            "linux_x64 -100 Some(\"/tmp\") 66 644",
            "all 295",
            "linux_x86 -100 Some(\"/tmp\") 0 755",
            "all 4242",
            "unknown 4242",
            "all 120",
            "clone32 0x11 0x77",
            "all 56",
            "read 4 16 = Some(16)",
        ]
    );
}

#[test]
fn hook_ctx_decodes_arguments() {
    let mut mem = Sparse::default();
    mem.put(0x5000, b"/etc\0");
    let c = call(Abi::X64Syscall, 257, [3, 0x5000, 0, 0, 0, 0]);
    let ctx = HookCtx::new(&c, None, None, &mem);
    assert_eq!(
        ctx.decode(1),
        Some(DecodedArg::Str {
            text: "/etc".into(),
            truncated: false
        })
    );
    assert_eq!(ctx.decode(6), None);
    assert_eq!(ctx.i(0), 3);
}

#[test]
fn comm_keeps_whole_characters_inline() {
    assert_eq!(Comm::new("kworker/0:1").as_str(), "kworker/0:1");
    assert_eq!(Comm::default().as_str(), "");
    // 15 bytes of invalid UTF-8 read lossily: 15 replacement characters, 45 bytes.
    let lossy = String::from_utf8_lossy(&[0xff; 15]).into_owned();
    assert_eq!(Comm::new(&lossy).as_str(), lossy);
    // Longer than the room: cut before the character that does not fit.
    let long = "é".repeat(30);
    let cut = Comm::new(&long);
    assert_eq!(cut.len(), Comm::CAPACITY - 1);
    assert!(long.starts_with(cut.as_str()));
    assert_eq!(
        serde_json::to_string(&thread()).unwrap(),
        r#"{"pid":42,"tid":43,"comm":"cat"}"#
    );
}

#[test]
fn a_gone_processs_threads_are_forgotten_together() {
    let x64 = |nr| call(Abi::X64Syscall, nr, [0; 6]);
    // Payload: the pid of the thread's process.
    let mut m: Matcher<(u32, u32), u32> = Matcher::new();
    m.enter((1, 10), x64(0), 1);
    m.enter((1, 11), x64(7), 1);
    m.enter((2, 20), x64(0), 2);
    let done = m.forget_where(|pid| *pid == 1);
    let mut gone: Vec<_> = done.iter().map(|d| (d.thread, d.outcome)).collect();
    gone.sort_by_key(|g| g.0);
    assert_eq!(
        gone,
        [((1, 10), Outcome::Abandoned), ((1, 11), Outcome::Abandoned)]
    );
    assert_eq!(m.len(), 1);
    assert!(m.forget_where(|pid| *pid == 1).is_empty());
    assert!(
        m.may_return_at(x64(0).return_pc),
        "process 2's call still counts"
    );
    assert_eq!(m.ret(&(2, 20), x64(0).return_pc, 5).len(), 1);
    assert!(!m.may_return_at(x64(0).return_pc));
}
