#!/usr/bin/env python3
"""Generate prototypes/linux_{x64,x86,arm64,arm}_prototypes.txt from the Linux kernel's own sources.

Output format is PANDA syscalls2's, one system call per line:

    <nr> <return type> <entry point>(<type> <name>, ...);

Sources, in order of preference, for each entry point named in the syscall tables
(arch/x86/entry/syscalls/syscall_64.tbl: ABIs `common` and `64`, not `x32`;
syscall_32.tbl: ABI `i386`, the native entry point, not the `compat_` one;
arch/arm64/tools/syscall_64.tbl, the generic table: ABIs `common` and `64` and those
arch/arm64/kernel/Makefile.syscalls adds, `renameat rlimit memfd_secret`;
arch/arm/tools/syscall.tbl: ABI `common`, the EABI calls (not `oabi`), with the ARM-private
calls of arch/arm/include/uapi/asm/unistd.h at their numbers 0x0f0001..; arm64's compat
table arch/arm64/tools/syscall_32.tbl has the same numbers, so linux_arm also serves
32-bit processes on arm64):

1. `SYSCALL_DEFINEn(name, type, arg, ...)` in the kernel's .c files: it always names
   every argument, and is what the kernel actually compiles;
2. the declaration in include/linux/syscalls.h (some of which leave arguments unnamed);
3. a fallback `long sys_foo(void);`, listed in a `#` comment at the top of the file.

Both are read with a tiny preprocessor that understands `#if/#ifdef/#ifndef/#elif/#else`
over a fixed set of macros per architecture (below), so that e.g. `sys_clone`'s argument
order follows CONFIG_CLONE_BACKWARDS on i386. Unknown conditions count as true.

Table entries without an entry point or with `sys_ni_syscall` (unimplemented:
`afs_syscall`, `tuxcall`, `_sysctl`, ...) are left out, as PANDA's files do; the kernel answers them with -ENOSYS.

Usage: scripts/gen-prototypes.py [--tree DIR] [--out DIR]
The kernel source is the newest Debian has: the highest linux-source-X.Y package of
unstable (sid), looked up and downloaded through an apt configuration of its own under
${VMI_CACHE:-$HOME/.cache/vmi}/src/apt-sid (the archive's address is taken from the
machine's apt sources), once per version; only the needed files are extracted. Rerun it
when Debian has a newer kernel: the tables follow, and tests/tables.rs compares them with
that kernel's own unistd headers. Python 3.11, standard library only.
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import subprocess
import sys
import time
import warnings
from pathlib import Path

def wanted(top: str) -> list[str]:
    """What the kernel source tree must provide (GNU tar wildcards; `*` matches `/` too)."""
    return [
        f"{top}/Makefile",  # VERSION, PATCHLEVEL: the release the tables are from
        f"{top}/arch/x86/entry/syscalls/syscall_64.tbl",
        f"{top}/arch/x86/entry/syscalls/syscall_32.tbl",
        f"{top}/arch/arm64/tools/syscall_64.tbl",
        f"{top}/scripts/syscall.tbl",  # what arm64's table links to (7.x)
        f"{top}/arch/arm/tools/syscall.tbl",
        f"{top}/arch/arm64/tools/syscall_32.tbl",  # arm64's compat table: arm's numbers
        f"{top}/arch/arm/include/uapi/asm/unistd.h",  # the ARM-private calls
        f"{top}/arch/arm/include/asm/unistd.h",  # arm's __ARCH_WANT_*s
        f"{top}/include/linux/syscalls.h",
        # Directories that hold SYSCALL_DEFINEs (drivers/ and sound/ hold none).
        *(
            f"{top}/{d}/*.c"
            for d in ("kernel", "fs", "mm", "net", "ipc", "security", "arch/x86", "arch/arm64", "arch/arm",
                      "io_uring", "block")
        ),
        f"{top}/drivers/char/random.c",  # getrandom
    ]

# Macros taken as defined when evaluating `#if`s, per table. From arch/x86/Kconfig and
# arch/x86/include/asm/unistd.h of 6.12 (a typical distribution configuration).
COMMON_DEFS = {
    "CONFIG_X86", "CONFIG_MMU", "CONFIG_MULTIUSER", "CONFIG_FHANDLE", "CONFIG_ADVISE_SYSCALLS",
    "CONFIG_EPOLL", "CONFIG_SIGNALFD", "CONFIG_TIMERFD", "CONFIG_EVENTFD", "CONFIG_AIO",
    "CONFIG_IO_URING", "CONFIG_FANOTIFY", "CONFIG_INOTIFY_USER", "CONFIG_SYSVIPC",
    "CONFIG_POSIX_MQUEUE", "CONFIG_NET", "CONFIG_KEYS", "CONFIG_BPF_SYSCALL",
    "CONFIG_PERF_EVENTS", "CONFIG_SECCOMP", "CONFIG_MEMBARRIER", "CONFIG_RSEQ",
    "CONFIG_FUTEX", "CONFIG_SWAP", "CONFIG_QUOTACTL", "CONFIG_USERFAULTFD",
    "CONFIG_SECURITY_LANDLOCK", "CONFIG_CROSS_MEMORY_ATTACH", "CONFIG_KEXEC_CORE",
    "CONFIG_KEXEC", "CONFIG_MODULES", "CONFIG_NUMA", "CONFIG_SYSFS_SYSCALL",
    "CONFIG_COMPAT_32BIT_TIME", "CONFIG_FILE_LOCKING", "CONFIG_PRINTK", "CONFIG_MODULE_UNLOAD",
}
# The x86 syscall tables of both widths want these generic entry points.
X86_WANTS = {
    "__ARCH_WANT_NEW_STAT", "__ARCH_WANT_OLD_READDIR", "__ARCH_WANT_OLD_STAT",
    "__ARCH_WANT_SYS_ALARM", "__ARCH_WANT_SYS_FADVISE64", "__ARCH_WANT_SYS_GETHOSTNAME",
    "__ARCH_WANT_SYS_GETPGRP", "__ARCH_WANT_SYS_NICE", "__ARCH_WANT_SYS_OLDUMOUNT",
    "__ARCH_WANT_SYS_OLD_GETRLIMIT", "__ARCH_WANT_SYS_OLD_UNAME", "__ARCH_WANT_SYS_PAUSE",
    "__ARCH_WANT_SYS_SIGNAL", "__ARCH_WANT_SYS_SIGPENDING", "__ARCH_WANT_SYS_SIGPROCMASK",
    "__ARCH_WANT_SYS_SOCKETCALL", "__ARCH_WANT_SYS_TIME32", "__ARCH_WANT_SYS_UTIME32",
    "__ARCH_WANT_SYS_WAITPID", "__ARCH_WANT_SYS_FORK", "__ARCH_WANT_SYS_VFORK",
    "__ARCH_WANT_SYS_CLONE", "__ARCH_WANT_SYS_CLONE3", "__ARCH_WANT_SYS_TIME",
    "__ARCH_WANT_SYS_UTIME",
}
ARCH_DEFS = {
    "x64": COMMON_DEFS | X86_WANTS | {
        "CONFIG_X86_64", "CONFIG_64BIT", "CONFIG_KEXEC_FILE", "CONFIG_X86_USER_SHADOW_STACK",
        "CONFIG_ARCH_HAS_PKEYS", "CONFIG_X86_INTEL_MEMORY_PROTECTION_KEYS",
        "CONFIG_X86_X32_ABI", "CONFIG_IA32_EMULATION", "CONFIG_COMPAT",
    },
    "x86": COMMON_DEFS | X86_WANTS | {
        "CONFIG_X86_32", "CONFIG_CLONE_BACKWARDS", "CONFIG_UID16", "CONFIG_VM86",
        "CONFIG_OLD_SIGSUSPEND3", "CONFIG_ARCH_SPLIT_ARG64", "CONFIG_X86_IOPL_IOPERM", "CONFIG_MODIFY_LDT_SYSCALL", "CONFIG_HAVE_UID16",
        "CONFIG_ARCH_WANT_SYS_OLD_MMAP",
        "__ARCH_WANT_STAT64", "__ARCH_WANT_SYS_IPC", "__ARCH_WANT_SYS_OLD_MMAP",
        "__ARCH_WANT_SYS_OLD_SELECT", "__ARCH_WANT_SYS_LLSEEK",
    },
}

# arm64 (arch/arm64/include/asm/unistd.h and Kconfig): the generic table, 64-bit time, no
# 16-bit uids; compat (32-bit EL0) is another table, not generated here.
ARCH_DEFS["arm64"] = (COMMON_DEFS - {"CONFIG_X86"}) | {
    "CONFIG_ARM64", "CONFIG_64BIT", "CONFIG_COMPAT", "CONFIG_KEXEC_FILE",
    "CONFIG_ARCH_HAS_PKEYS", "CONFIG_ARM64_POE",
    "__ARCH_WANT_SYS_CLONE", "__ARCH_WANT_NEW_STAT", "__ARCH_WANT_SYS_CLONE3",
    "__ARCH_WANT_RENAMEAT", "__ARCH_WANT_SET_GET_RLIMIT", "__ARCH_WANT_MEMFD_SECRET",
}

# Macros taken as undefined. Any other macro is "unknown": both branches of an `#if` on it
# are read, and the first definition found wins (conflicts are reported).
# CONFIG_ARCH_HAS_SYSCALL_WRAPPER is set on x86, but syscalls.h keeps its prototypes under
# `#ifndef` it: they are still the prototypes, so it is taken as unset here.
COMMON_UNDEFS = {
    "CONFIG_ARCH_HAS_SYSCALL_WRAPPER", "CONFIG_CLONE_BACKWARDS2", "CONFIG_CLONE_BACKWARDS3",
    "CONFIG_OLD_SIGSUSPEND",
    "CONFIG_ARM", "CONFIG_ARM64", "CONFIG_MIPS", "CONFIG_PPC", "CONFIG_S390", "CONFIG_SPARC",
}
ARCH_UNDEFS = {
    "x64": COMMON_UNDEFS | {
        "CONFIG_X86_32", "CONFIG_CLONE_BACKWARDS", "CONFIG_UID16", "CONFIG_VM86",
        "CONFIG_ARCH_SPLIT_ARG64", "__ARCH_WANT_STAT64", "__ARCH_WANT_SYS_IPC", "__ARCH_WANT_SYS_OLD_MMAP",
        "__ARCH_WANT_SYS_OLD_SELECT", "__ARCH_WANT_SYS_LLSEEK",
    },
    "x86": COMMON_UNDEFS | {"CONFIG_X86_64", "CONFIG_64BIT", "CONFIG_X86_X32_ABI"},
    "arm64": (COMMON_UNDEFS - {"CONFIG_ARM64"}) | {
        "CONFIG_X86", "CONFIG_X86_32", "CONFIG_X86_64", "CONFIG_CLONE_BACKWARDS", "CONFIG_UID16",
        "CONFIG_ARCH_SPLIT_ARG64", "__ARCH_WANT_STAT64", "__ARCH_WANT_SYS_IPC",
        "__ARCH_WANT_SYS_OLD_MMAP", "__ARCH_WANT_SYS_OLD_SELECT", "__ARCH_WANT_SYS_LLSEEK",
        "__ARCH_WANT_SYS_TIME32", "__ARCH_WANT_TIME32_SYSCALLS", "CONFIG_X86_X32_ABI",
    },
}

# 32-bit ARM, EABI (arch/arm/Kconfig, arch/arm/include/asm/unistd.h): 16-bit uid calls
# beside the 32-bit ones, clone's backwards argument order, stat64 and llseek; not the
# OABI-only wants (time32, ipc, socketcall, ...), which EABI kernels leave out.
ARCH_DEFS["arm"] = (COMMON_DEFS - {"CONFIG_X86"}) | {
    "CONFIG_ARM", "CONFIG_AEABI", "CONFIG_CLONE_BACKWARDS", "CONFIG_UID16", "CONFIG_HAVE_UID16",
    "CONFIG_OLD_SIGSUSPEND3",
    "__ARCH_WANT_NEW_STAT", "__ARCH_WANT_STAT64", "__ARCH_WANT_SYS_GETHOSTNAME",
    "__ARCH_WANT_SYS_PAUSE", "__ARCH_WANT_SYS_GETPGRP", "__ARCH_WANT_SYS_NICE",
    "__ARCH_WANT_SYS_SIGPENDING", "__ARCH_WANT_SYS_SIGPROCMASK", "__ARCH_WANT_SYS_OLD_MMAP",
    "__ARCH_WANT_SYS_OLD_SELECT", "__ARCH_WANT_SYS_UTIME32", "__ARCH_WANT_SYS_FORK",
    "__ARCH_WANT_SYS_VFORK", "__ARCH_WANT_SYS_CLONE", "__ARCH_WANT_SYS_CLONE3",
    "__ARCH_WANT_SYS_LLSEEK",
}
ARCH_UNDEFS["arm"] = (COMMON_UNDEFS - {"CONFIG_ARM"}) | {
    "CONFIG_X86", "CONFIG_X86_32", "CONFIG_X86_64", "CONFIG_64BIT", "CONFIG_X86_X32_ABI",
    "CONFIG_OABI_COMPAT", "CONFIG_ARCH_SPLIT_ARG64", "CONFIG_COMPAT",
    "__ARCH_WANT_SYS_TIME32", "__ARCH_WANT_SYS_IPC", "__ARCH_WANT_SYS_OLDUMOUNT",
    "__ARCH_WANT_SYS_ALARM", "__ARCH_WANT_SYS_OLD_GETRLIMIT", "__ARCH_WANT_OLD_READDIR",
    "__ARCH_WANT_SYS_SOCKETCALL",
}

# arm's table names a few entry points that are assembly or take the saved registers,
# not the caller's arguments: the function whose arguments the caller passes instead
# (None: the caller passes none). `sys_mmap2` checks the page shift and goes on to
# `sys_mmap_pgoff`; the `_wrapper`s pass the registers on to the C function of the name
# without `_wrapper`; sigreturn reads the signal frame from the stack.
ARM_ENTRY_ARGS = {
    "sys_mmap2": "sys_mmap_pgoff",
    "sys_sigreturn_wrapper": None,
    "sys_rt_sigreturn_wrapper": None,
    "sys_statfs64_wrapper": "sys_statfs64",
    "sys_fstatfs64_wrapper": "sys_fstatfs64",
}

# The ARM-private calls (arch/arm/include/uapi/asm/unistd.h: __ARM_NR_BASE + 1..6), which
# the kernel serves in arm_syscall() (arch/arm/kernel/traps.c) from the registers it
# reads there: cacheflush's start, end and flags in r0..r2, set_tls's value in r0.
ARM_PRIVATE_ARGS = {
    "breakpoint": [],
    "cacheflush": ["unsigned long start", "unsigned long end", "int flags"],
    "usr26": [],
    "usr32": [],
    "set_tls": ["unsigned long val"],
    "get_tls": [],
}

TABLES = {
    "x64": ("arch/x86/entry/syscalls/syscall_64.tbl", {"common", "64"}),
    "x86": ("arch/x86/entry/syscalls/syscall_32.tbl", {"i386"}),
    "arm64": ("arch/arm64/tools/syscall_64.tbl",
              {"common", "64", "renameat", "rlimit", "memfd_secret"}),
    "arm": ("arch/arm/tools/syscall.tbl", {"common"}),
}


def cache_dir() -> Path:
    base = os.environ.get("VMI_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "vmi")
    return Path(base) / "src"


def debian_uri() -> str:
    """The Debian archive the machine's apt sources name (lab/lab reads them)."""
    lab = Path(__file__).resolve().parent.parent / "lab" / "lab"
    out = subprocess.run([str(lab), "debian-uri"], check=True, stdout=subprocess.PIPE, text=True)
    return out.stdout.strip()


def apt_sid(src: Path, *args: str, cwd: Path | None = None) -> str:
    """Runs apt-get (or apt-cache, for `search`) on unstable's lists, kept under `src`."""
    d = src / "apt-sid"
    for sub in ("lists/partial", "cache/archives/partial"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    (d / "status").touch()
    sources = d / "sources.list"
    line = (f"deb [arch=amd64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] "
            f"{debian_uri()} sid main\n")
    if not sources.exists() or sources.read_text() != line:
        sources.write_text(line)
    opts = ["-o", "APT::Sandbox::User=root", "-o", "APT::Architecture=amd64",
            "-o", "APT::Architectures::=amd64", "-o", f"Dir::Etc::SourceList={sources}",
            "-o", "Dir::Etc::SourceParts=/nonexistent", "-o", f"Dir::State::Lists={d}/lists",
            "-o", f"Dir::State::status={d}/status", "-o", f"Dir::Cache={d}/cache"]
    tool = "apt-cache" if args[0] == "search" else "apt-get"
    out = subprocess.run([tool, "-q", *opts, *args], cwd=cwd, check=True,
                         stdout=subprocess.PIPE, text=True)
    return out.stdout


def fetch_tree() -> Path:
    """Downloads (once per version) the newest kernel source Debian has and extracts only
    what we read; returns the tree's top directory."""
    src = cache_dir()
    src.mkdir(parents=True, exist_ok=True)
    print("apt-get update (unstable's lists, kept apart from the host's)", file=sys.stderr)
    apt_sid(src, "update")
    names = re.findall(r"^(linux-source-(\d+)\.(\d+)) ", apt_sid(src, "search", "^linux-source-[0-9.]+$"),
                       flags=re.M)
    if not names:
        sys.exit("gen-prototypes: unstable has no linux-source-X.Y package")
    package = max(names, key=lambda n: (int(n[1]), int(n[2])))[0]
    top = package
    tree = src / "tree"
    stamp = "\n".join(wanted(top)) + "\n"  # re-extract when the version or list changes
    if (tree / ".wanted").exists() and (tree / ".wanted").read_text() == stamp:
        return tree / top
    debs = sorted(src.glob(f"{package}_*.deb"))
    if not debs:
        print(f"downloading {package} from unstable into {src}", file=sys.stderr)
        apt_sid(src, "download", package, cwd=src)
        debs = sorted(src.glob(f"{package}_*.deb"))
    txz = src / "usr/src" / f"{package}.tar.xz"
    if not txz.exists():
        fsys = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(debs[-1])], stdout=subprocess.PIPE)
        subprocess.run(["tar", "-x", "-C", str(src), f"./usr/src/{package}.tar.xz"],
                       stdin=fsys.stdout, check=True)
        if fsys.wait() != 0:
            sys.exit("dpkg-deb failed")
    tmp = src / "tree.partial"
    subprocess.run(["rm", "-rf", str(tmp)], check=True)
    tmp.mkdir()
    subprocess.run(["tar", "-xJf", str(txz), "-C", str(tmp), "--wildcards", *wanted(top)],
                   check=True)
    (tmp / ".wanted").write_text(stamp)
    subprocess.run(["rm", "-rf", str(tree)], check=True)
    tmp.rename(tree)
    return tree / top


def fresh_sid_lists() -> Path:
    """The cache directory, with unstable's package lists refreshed at most daily."""
    src = cache_dir()
    src.mkdir(parents=True, exist_ok=True)
    stamp = src / "apt-sid" / "updated"
    if not stamp.exists() or time.time() - stamp.stat().st_mtime > 86400:
        apt_sid(src, "update")
        stamp.touch()
    return src


def fetch_unistd() -> Path:
    """The newest packaged kernel's own system call numbers: x86's unistd_64.h and
    unistd_32.h, arm64's unistd_64.h (as unistd_arm64.h), and 32-bit ARM's unistd-eabi.h
    and unistd.h (its private calls; as unistd_arm_eabi.h, unistd_arm.h) of unstable's linux-libc-dev
    (arch: all, every architecture's headers), downloaded (lists refreshed at most daily)
    and extracted under the cache; returns their directory. tests/tables.rs compares the
    tables with them, so that a kernel with new calls shows as a failing test."""
    src = fresh_sid_lists()
    debs = src / "libc-dev"
    debs.mkdir(exist_ok=True)
    apt_sid(src, "download", "linux-libc-dev", cwd=debs)
    deb = max(debs.glob("linux-libc-dev_*.deb"), key=lambda p: p.stat().st_mtime)
    out = src / "unistd" / deb.stem
    if not (out / "unistd_arm64.h").exists() or not (out / "unistd_arm_eabi.h").exists():
        tmp = out.with_name(out.name + ".partial")
        subprocess.run(["rm", "-rf", str(tmp)], check=True)
        tmp.mkdir(parents=True)
        subprocess.run(["dpkg-deb", "-x", str(deb), str(tmp / "root")], check=True)
        for name in ("unistd_64.h", "unistd_32.h"):
            found = sorted(tmp.glob(f"root/**/x86/asm/{name}")) or sorted(
                tmp.glob(f"root/**/x86_64-linux-gnu/asm/{name}"))
            if not found:
                sys.exit(f"gen-prototypes: no x86 {name} in {deb.name}")
            (tmp / name).write_bytes(found[0].read_bytes())
        arm64 = sorted(tmp.glob("root/**/arm64/asm/unistd_64.h"))
        if not arm64:
            sys.exit(f"gen-prototypes: no arm64 unistd_64.h in {deb.name}")
        (tmp / "unistd_arm64.h").write_bytes(arm64[0].read_bytes())
        for name, as_name in (("unistd-eabi.h", "unistd_arm_eabi.h"), ("unistd.h", "unistd_arm.h")):
            arm = sorted(tmp.glob(f"root/**/uapi/arm/asm/{name}"))
            if not arm:
                sys.exit(f"gen-prototypes: no 32-bit ARM {name} in {deb.name}")
            (tmp / as_name).write_bytes(arm[0].read_bytes())
        subprocess.run(["rm", "-rf", str(tmp / "root"), str(out)], check=True)
        tmp.rename(out)
    return out


def fetch_newest_image() -> Path:
    """The newest amd64 kernel image Debian has: unstable's linux-binary-unsigned-X-amd64
    (the bzImage, lib/modules/<release>/vmlinuz.unsigned), downloaded once per version;
    returns the image's path. tests/kernelinfo_gen.rs generates its kernelinfo."""
    src = fresh_sid_lists()
    found = re.findall(r"^(linux-binary-unsigned-([0-9][^ ]*)-amd64) ",
                       apt_sid(src, "search", "^linux-binary-unsigned-[0-9].*-amd64$"), flags=re.M)
    if not found:
        sys.exit("gen-prototypes: unstable has no linux-binary-unsigned-*-amd64 package")
    key = lambda f: [int(x) for x in re.findall(r"\d+", f[1])]
    package = max(found, key=key)[0]
    out = src / "image" / package
    images = sorted(out.glob("lib/modules/*/vmlinuz*")) + sorted(out.glob("usr/lib/modules/*/vmlinuz*"))
    if not images:
        debs = src / "image-debs"
        debs.mkdir(exist_ok=True)
        apt_sid(src, "download", package, cwd=debs)
        deb = max(debs.glob(f"{package}_*.deb"), key=lambda p: p.stat().st_mtime)
        tmp = out.with_name(out.name + ".partial")
        subprocess.run(["rm", "-rf", str(tmp)], check=True)
        tmp.mkdir(parents=True)
        subprocess.run(["dpkg-deb", "-x", str(deb), str(tmp)], check=True)
        subprocess.run(["rm", "-rf", str(out)], check=True)
        tmp.rename(out)
        images = sorted(out.glob("lib/modules/*/vmlinuz*")) + sorted(out.glob("usr/lib/modules/*/vmlinuz*"))
    if not images:
        sys.exit(f"gen-prototypes: no vmlinuz in {package}")
    return images[0]


def fetch_newest_modules(wanted: list) -> Path:
    """Some modules of the newest amd64 kernel (`wanted`: paths under kernel/ without the
    .ko suffix, e.g. drivers/block/loop), from unstable's linux-modules-<release> of the
    image fetch_newest_image returns: the package is downloaded once per version, only
    those files are kept, and the .deb is deleted. Returns the root they are under
    (<root>/usr/lib/modules/<release>/kernel/...). lab/lab puts them in its initramfs."""
    image = fetch_newest_image()
    release = image.parent.name
    src = cache_dir()
    package = f"linux-modules-{release}"
    out = src / "modules" / package
    stamp = "\n".join(sorted(wanted)) + "\n"
    if (out / ".wanted").exists() and (out / ".wanted").read_text() == stamp:
        return out
    debs = src / "modules-debs"
    debs.mkdir(parents=True, exist_ok=True)
    print(f"downloading {package} from unstable (only {len(wanted)} modules are kept)", file=sys.stderr)
    apt_sid(src, "download", package, cwd=debs)
    deb = max(debs.glob(f"{package}_*.deb"), key=lambda p: p.stat().st_mtime)
    tmp = out.with_name(out.name + ".partial")
    subprocess.run(["rm", "-rf", str(tmp)], check=True)
    tmp.mkdir(parents=True)
    patterns = [f"*/modules/{release}/kernel/{m}.ko*" for m in wanted]
    fsys = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE)
    # tar fails when a pattern matches nothing: a module this kernel builds in is fine.
    subprocess.run(["tar", "-x", "-C", str(tmp), "--wildcards", *patterns],
                   stdin=fsys.stdout, stderr=subprocess.DEVNULL)
    fsys.wait()
    (tmp / ".wanted").write_text(stamp)
    subprocess.run(["rm", "-rf", str(out)], check=True)
    tmp.rename(out)
    deb.unlink()
    return out


def release_of(root: Path) -> str:
    """`X.Y` from the tree's Makefile."""
    text = (root / "Makefile").read_text(errors="replace")
    v = re.search(r"^VERSION = (\d+)", text, flags=re.M)
    p = re.search(r"^PATCHLEVEL = (\d+)", text, flags=re.M)
    return f"{v.group(1)}.{p.group(1)}" if v and p else "?"


# ---------------------------------------------------------------------------------------
# A tiny preprocessor: strips comments, joins continued lines, tracks #if conditions.

def strip_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def eval_cond(expr: str, defs: set[str], undefs: set[str]) -> bool | None:
    """Evaluates a #if expression: True/False, or None if it depends on unknown macros."""

    def value(unknown: str) -> bool | None:
        def sym(name: str) -> str:
            return "1" if name in defs else "0" if name in undefs else unknown

        e = re.sub(r"defined\s*\(\s*(\w+)\s*\)|defined\s+(\w+)",
                   lambda m: sym(m.group(1) or m.group(2)), expr)
        e = re.sub(r"IS_ENABLED\s*\(\s*(\w+)\s*\)", lambda m: sym(m.group(1)), e)
        e = re.sub(r"\b[A-Za-z_]\w*\b", lambda m: sym(m.group(0)), e)
        e = e.replace("&&", " and ").replace("||", " or ").replace("!", " not ")
        if not re.fullmatch(r"[01()\s]*(?:(?:and|or|not)[01()\s]*)*", e):
            return None
        try:
            warnings.simplefilter("ignore", SyntaxWarning)  # `1 (0)` from function-like macros
            return bool(eval(e, {"__builtins__": {}}, {}))  # only 0/1/and/or/not/() remain
        except Exception:
            return None

    a, b = value("0"), value("1")
    return a if a == b else None


def active_text(text: str, defs: set[str], undefs: set[str]) -> str:
    """The source with known-inactive #if branches and all directives blanked out.
    A branch whose condition is unknown is kept, and so are the branches after it."""
    text = strip_comments(text).replace("\\\n", " ")
    out = []
    # Each frame: [a branch was surely taken, an earlier branch was unknown, parent active]
    stack: list[list[bool]] = []
    active = True
    for line in text.split("\n"):
        m = re.match(r"\s*#\s*(\w+)\s*(.*)", line)
        if m:
            d, rest = m.group(1), m.group(2).strip()
            word = rest.split()[0] if rest.split() else ""
            if d in ("if", "ifdef", "ifndef", "elif"):
                if d == "ifdef":
                    c = True if word in defs else False if word in undefs else None
                elif d == "ifndef":
                    c = False if word in defs else True if word in undefs else None
                else:
                    c = eval_cond(rest, defs, undefs)
                if d == "elif":
                    if not stack:
                        continue
                    f = stack[-1]
                    if f[0]:
                        c = False
                else:
                    f = [False, False, active]
                    stack.append(f)
                active = f[2] and c is not False
                f[0] = f[0] or (c is True and not f[1])
                f[1] = f[1] or c is None
            elif d == "else" and stack:
                f = stack[-1]
                active = f[2] and not f[0]
                f[0] = True
            elif d == "endif" and stack:
                active = stack.pop()[2]
            out.append("")
            continue
        out.append(line if active else "")
    return "\n".join(out)


def split_top(s: str) -> list[str]:
    parts, depth, cur = [], 0, []
    for ch in s:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return [" ".join(p.split()) for p in parts]


def find_close(text: str, open_at: int) -> int:
    depth = 0
    for i in range(open_at, len(text)):
        if text[i] == "(":
            depth += 1
        elif text[i] == ")":
            depth -= 1
            if depth == 0:
                return i
    return -1


def norm_type(t: str) -> str:
    t = " ".join(t.split())
    t = re.sub(r"\s*\*\s*", " *", t).replace("* *", "**")
    return t.strip()


def join_arg(t: str, n: str) -> str:
    t = norm_type(t)
    return f"{t}{n}" if t.endswith("*") else f"{t} {n}"


def syscall_defines(root: Path, defs: set[str], undefs: set[str]) -> dict[str, list[str]]:
    """`name` → ["type arg", ...] from every active SYSCALL_DEFINEn(name, ...)."""
    found: dict[str, list[str]] = {}
    files = sorted(glob.glob(str(root / "**/*.c"), recursive=True))
    # User-mode Linux and the tools have their own, unrelated definitions.
    files = [f for f in files if "/arch/x86/um/" not in f and "/tools/" not in f]
    conflicts: dict[str, set[str]] = {}
    for path in files:
        raw = Path(path).read_text(errors="replace")
        if "SYSCALL_DEFINE" not in raw:
            continue
        text = active_text(raw, defs, undefs)
        for m in re.finditer(r"\bSYSCALL(?:32)?_DEFINE(\d)\s*\(", text):
            close = find_close(text, m.end() - 1)
            if close < 0:
                continue
            parts = split_top(text[m.end():close])
            n = int(m.group(1))
            name = parts[0]
            if len(parts) != 1 + 2 * n or not re.fullmatch(r"\w+", name):
                continue
            args = [join_arg(parts[1 + 2 * i], parts[2 + 2 * i]) for i in range(n)]
            if name in found and found[name] != args:
                conflicts.setdefault(name, set()).add(path)
            found.setdefault(name, args)
    for name, paths in sorted(conflicts.items()):
        print(f"note: SYSCALL_DEFINE({name}) differs in {sorted(paths)}; kept the first", file=sys.stderr)
    return found


def header_decls(path: Path, defs: set[str], undefs: set[str]) -> dict[str, list[str]]:
    """`sys_name` → ["type arg", ...] from `asmlinkage long sys_name(...);` declarations."""
    text = active_text(path.read_text(errors="replace"), defs, undefs)
    found: dict[str, list[str]] = {}
    for m in re.finditer(r"\b(?:asmlinkage\s+)?long\s+(sys_\w+)\s*\(", text):
        close = find_close(text, m.end() - 1)
        if close < 0 or not text[close + 1:].lstrip().startswith(";"):
            continue
        inner = " ".join(text[m.end():close].split())
        args = [] if inner in ("", "void") else [norm_type(a) for a in split_top(inner)]
        found.setdefault(m.group(1), args)
    return found


def named(arg: str) -> bool:
    """Whether a C parameter declaration names its parameter (`int fd`, not `int`)."""
    last = re.split(r"[\s*]+", arg.strip())[-1]
    return bool(last) and last not in TYPE_WORDS and not arg.rstrip().endswith("*")


TYPE_WORDS = {
    "int", "long", "short", "char", "unsigned", "signed", "void", "const", "__user",
    "size_t", "u32", "u64", "__u32", "__u64", "umode_t", "pid_t", "loff_t", "off_t",
}


def read_table(path: Path, abis: set[str]) -> list[tuple[int, str, str]]:
    rows = []
    for line in path.read_text().splitlines():
        f = line.split()
        if not f or f[0].startswith("#"):
            continue
        # `sys_ni_syscall` entries (e.g. x86_64's `_sysctl`) are unimplemented too.
        if f[1] in abis and len(f) >= 4 and f[3] != "sys_ni_syscall":
            rows.append((int(f[0]), f[2], f[3]))
    return rows


def arm_definitions(root: Path) -> dict[str, list[str]]:
    """`sys_name` → ["type arg", ...] from arm's own C entry points (`asmlinkage long
    sys_arm_fadvise64_64(...) {`), which are not SYSCALL_DEFINEs."""
    found: dict[str, list[str]] = {}
    text = active_text((root / "arch/arm/kernel/sys_arm.c").read_text(errors="replace"),
                       ARCH_DEFS["arm"], ARCH_UNDEFS["arm"])
    for m in re.finditer(r"\basmlinkage\s+long\s+(sys_\w+)\s*\(", text):
        close = find_close(text, m.end() - 1)
        if close < 0 or not text[close + 1:].lstrip().startswith("{"):
            continue
        inner = " ".join(text[m.end():close].split())
        found[m.group(1)] = [] if inner in ("", "void") else [norm_type(a) for a in split_top(inner)]
    return found


def arm_private(root: Path) -> list[tuple[int, str]]:
    """The ARM-private calls: (number, name) from `#define __ARM_NR_name (__ARM_NR_BASE+n)`."""
    text = (root / "arch/arm/include/uapi/asm/unistd.h").read_text(errors="replace")
    base = re.search(r"#define\s+__ARM_NR_BASE\s+\(__NR_SYSCALL_BASE\s*\+\s*(0x[0-9a-fA-F]+)\)", text)
    if not base:
        sys.exit("gen-prototypes: no __ARM_NR_BASE in arch/arm/include/uapi/asm/unistd.h")
    out = []
    for m in re.finditer(r"#define\s+__ARM_NR_(\w+)\s+\(__ARM_NR_BASE\s*\+\s*(\d+)\)", text):
        if m.group(1) not in ARM_PRIVATE_ARGS:
            sys.exit(f"gen-prototypes: ARM-private call {m.group(1)} has no arguments listed")
        out.append((int(base.group(1), 16) + int(m.group(2)), m.group(1)))
    return out


def generate(root: Path, arch: str) -> str:
    defs = ARCH_DEFS[arch]
    table, abis = TABLES[arch]
    undefs = ARCH_UNDEFS[arch]
    defines = syscall_defines(root, defs, undefs)
    decls = header_decls(root / "include/linux/syscalls.h", defs, undefs)
    if arch == "arm":
        decls = {**arm_definitions(root), **decls}
    lines, fallbacks, from_define, unnamed = [], [], [], []
    for nr, name, entry in read_table(root / table, abis):
        if not entry.startswith("sys_"):
            sys.exit(f"{table}: {nr} {name}: unexpected entry point {entry}")
        if arch == "arm" and entry in ARM_ENTRY_ARGS:
            real = ARM_ENTRY_ARGS[entry]
            entry = entry.removesuffix("_wrapper")
            if real is None:
                lines.append(f"{nr} long {entry}(void);")
                continue
            args = decls.get(real) or defines.get(real[len("sys_"):])
            if not args or not all(named(a) for a in args):
                sys.exit(f"gen-prototypes: no prototype of {real} for arm's {entry}")
            lines.append(f"{nr} long {entry}({', '.join(args)});")
            continue
        short = entry[len("sys_"):]
        if entry in decls and all(named(a) for a in decls[entry]):
            args = decls[entry]
        elif short in defines:
            args = defines[short]
            if entry not in decls:
                from_define.append(entry)
        elif entry in decls:
            args = decls[entry]
            unnamed.append(entry)
        else:
            args = []
            fallbacks.append(entry)
        lines.append(f"{nr} long {entry}({', '.join(args) if args else 'void'});")
    if arch == "arm":
        for nr, name in arm_private(root):
            args = ARM_PRIVATE_ARGS[name]
            lines.append(f"{nr} long sys_{name}({', '.join(args) if args else 'void'});")
    head = [
        f"# Linux {release_of(root)} {arch} system calls, generated by scripts/gen-prototypes.py from",
        f"# {table} and the kernel's SYSCALL_DEFINEs / include/linux/syscalls.h.",
        "# Do not edit: rerun the script. Format: PANDA syscalls2 prototypes.",
        "# Prototypes come from include/linux/syscalls.h, or from SYSCALL_DEFINEn where the",
        "# header leaves arguments unnamed or lacks the call.",
        f"# Not in syscalls.h (from SYSCALL_DEFINEn): {' '.join(from_define) or 'none'}",
        f"# Unnamed arguments (no SYSCALL_DEFINEn found): {' '.join(unnamed) or 'none'}",
        f"# Fallbacks (no prototype found, arguments unknown): {' '.join(fallbacks) or 'none'}",
    ]
    return "\n".join(head + lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tree", type=Path, help="an extracted kernel tree (skips the download)")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "prototypes")
    ap.add_argument("--unistd", action="store_true",
                    help="only fetch the newest kernel's unistd headers and print their directory")
    ap.add_argument("--newest-image", action="store_true",
                    help="only fetch the newest amd64 kernel image and print its path")
    ap.add_argument("--newest-modules", nargs="+", metavar="PATH",
                    help="only fetch these modules of the newest amd64 kernel (kernel/ paths "
                         "without .ko) and print the root they are under")
    a = ap.parse_args()
    if a.newest_modules:
        print(fetch_newest_modules(a.newest_modules))
        return
    if a.unistd:
        print(fetch_unistd())
        return
    if a.newest_image:
        print(fetch_newest_image())
        return
    root = a.tree or fetch_tree()
    a.out.mkdir(parents=True, exist_ok=True)
    for arch in ("x64", "x86", "arm64", "arm"):
        out = a.out / f"linux_{arch}_prototypes.txt"
        out.write_text(generate(root, arch))
        print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
