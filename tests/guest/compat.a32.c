/* The 32-bit ARM system call paths, for tests/syscalls.rs: the counterpart of
 * compat.m32.c for ARM guests, built as /bin/compat32 by the armhf cross compiler (static).
 * On arm64 it runs in AArch32 state through the kernel's compat path; on armhf natively.
 * It makes a known set of calls (EABI: number in r7, arguments in r0-r5) twice, first
 * with `svc #0` in ARM code (4 bytes), then in Thumb code (2 bytes), and ends with
 * exit_group(7). mmap2 has six arguments: the sixth in r5. */
long svc_arm(long nr, long a1, long a2, long a3, long a4, long a5, long a6);
long svc_thumb(long nr, long a1, long a2, long a3, long a4, long a5, long a6);

/* AAPCS: nr, a1..a3 in r0-r3, a4..a6 on the stack; after pushing four registers they are
 * at sp+16, sp+20, sp+24. */
#define RAW_CALL(name, mode)                                                             \
    ".text\n.syntax unified\n." mode "\n.globl " name "\n.type " name ",%function\n"      \
    name ":\n"                                                                           \
    "push {r4, r5, r7, lr}\n"                                                            \
    "mov r7, r0\nmov r0, r1\nmov r1, r2\nmov r2, r3\n"                                   \
    "ldr r3, [sp, #16]\nldr r4, [sp, #20]\nldr r5, [sp, #24]\n"                          \
    "svc #0\n"                                                                           \
    "pop {r4, r5, r7, pc}\n"
__asm__(RAW_CALL("svc_arm", "arm") ".thumb_func\n" RAW_CALL("svc_thumb", "thumb"));

enum { NR_read = 3, NR_write = 4, NR_open = 5, NR_close = 6, NR_getpid = 20,
       NR_getppid = 64, NR_munmap = 91, NR_mmap2 = 192, NR_exit_group = 248,
       NR_openat = 322 };

#define FIRST svc_arm
#define FIRST_HOW "arm"
#define SECOND svc_thumb
#define SECOND_HOW "thumb"
#include "compat.h"
