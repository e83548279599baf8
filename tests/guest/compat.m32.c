/* The 32-bit system call paths, for tests/syscalls.rs: a static 32-bit program (built
 * as /bin/compat32 with gcc -m32 -static; on amd64 guests it runs through the kernel's
 * IA-32 emulation) making a known set of calls twice, first through `int $0x80`, then
 * through the vDSO's __kernel_vsyscall (`call *%gs:0x10`, what glibc's own wrappers
 * use: sysenter or 32-bit syscall, whichever the kernel patched in), and ending with
 * exit_group(7) through `int $0x80`. mmap2 has six arguments: the sixth is ebp for
 * int 0x80 and the word at [ebp] (sysenter) or [esp] (syscall) through the vDSO. */
long int80(long nr, long a1, long a2, long a3, long a4, long a5, long a6);
long vsys(long nr, long a1, long a2, long a3, long a4, long a5, long a6);

/* cdecl: after four pushes and the return address the arguments start at 20(%esp). */
#define RAW_CALL(name, insn)                                                             \
    ".globl " name "\n.type " name ",@function\n" name ":\n"                             \
    "push %ebp\npush %edi\npush %esi\npush %ebx\n"                                       \
    "mov 20(%esp),%eax\nmov 24(%esp),%ebx\nmov 28(%esp),%ecx\nmov 32(%esp),%edx\n"      \
    "mov 36(%esp),%esi\nmov 40(%esp),%edi\nmov 44(%esp),%ebp\n" insn "\n"                \
    "pop %ebx\npop %esi\npop %edi\npop %ebp\nret\n"
__asm__(".text\n" RAW_CALL("int80", "int $0x80") RAW_CALL("vsys", "call *%gs:0x10"));

enum { NR_read = 3, NR_write = 4, NR_open = 5, NR_close = 6, NR_getpid = 20,
       NR_getppid = 64, NR_munmap = 91, NR_mmap2 = 192, NR_exit_group = 252,
       NR_openat = 295 };

#define FIRST int80
#define FIRST_HOW "int 0x80"
#define SECOND vsys
#define SECOND_HOW "vdso"
#include "compat.h"
