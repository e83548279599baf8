/* What compat.m32.c (x86) and compat.a32.c (ARM) do, each through its own two ways into
 * the kernel: `FIRST` and `SECOND` (raw system call functions, number first, then six
 * arguments), named `FIRST_HOW` and `SECOND_HOW` in what the program writes. The file
 * that includes this defines them and the NR_* numbers of its table. tests/syscalls.rs
 * (check_compat) checks the calls, their arguments and results against strace. */
#include <fcntl.h>
#include <string.h>

typedef long (*raw_call)(long, long, long, long, long, long, long);

static void calls(raw_call sys, const char *how)
{
    char buf[16];
    char msg[64] = "compat: ";
    strcat(strcat(msg, how), "\n");
    sys(sys == FIRST ? NR_getpid : NR_getppid, 0, 0, 0, 0, 0, 0);
    sys(NR_open, (long)"/nonexistent", O_RDONLY, 0, 0, 0, 0);
    long fd = sys(NR_openat, AT_FDCWD, (long)"/lib.sh", O_RDONLY, 0, 0, 0);
    sys(NR_read, fd, (long)buf, sizeof buf, 0, 0, 0);
    sys(NR_write, 1, (long)msg, strlen(msg), 0, 0, 0);
    long big = sys(NR_openat, AT_FDCWD, (long)"/bin/busybox", O_RDONLY, 0, 0, 0);
    /* PROT_READ, MAP_PRIVATE, page offset 2 */
    long addr = sys(NR_mmap2, 0, 4096, 1, 2, big, 2);
    sys(NR_munmap, addr, 4096, 0, 0, 0, 0);
    sys(NR_close, big, 0, 0, 0, 0, 0);
    sys(NR_close, fd, 0, 0, 0, 0, 0);
    sys(NR_close, 99, 0, 0, 0, 0, 0); /* EBADF */
}

int main(void)
{
    calls(FIRST, FIRST_HOW);
    calls(SECOND, SECOND_HOW);
    FIRST(NR_exit_group, 7, 0, 0, 0, 0, 0);
    return 1;
}
