/* What `grep -r` or a build's up-to-date check does to a source tree: walk the directories
 * (getdents64), stat every entry, open, read and close every file. The tree is made first
 * in /tmp and removed at the end (20 directories of 50 files, 256 B to 16 KiB, like source files), then walked N
 * times (default 5). Only the walks are timed. Unlike the syscall and file loops, the
 * guest does some work of its own between calls (scanning what it read), as real tools do. */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "bench.h"

#define DIRS 20
#define FILES 50
#define ROOT "/tmp/bench-tree"

static char buf[65536];
static long calls;

/* Counts the newlines of everything under the directory open as `dfd` (closed here). */
static long walk(int dfd)
{
    long lines = 0;
    DIR *dir = fdopendir(dfd);
    if (!dir)
        return -1;
    struct dirent *e;
    while ((e = readdir(dir))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        struct stat st;
        calls++;
        if (fstatat(dfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
            return -1;
        calls++;
        int fd = openat(dfd, e->d_name, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            return -1;
        if (S_ISDIR(st.st_mode)) {
            long sub = walk(fd);
            if (sub < 0)
                return -1;
            lines += sub;
            continue;
        }
        ssize_t got;
        do {
            calls++;
            got = read(fd, buf, sizeof buf);
            for (ssize_t i = 0; i < got; i++)
                lines += buf[i] == '\n';
        } while (got > 0);
        calls++;
        close(fd);
    }
    calls++; /* the closedir; getdents64 calls are not counted */
    closedir(dir);
    return lines;
}

static int make_tree(void)
{
    char path[256];
    memset(buf, 'x', sizeof buf);
    for (int i = 0; i < (int)sizeof buf; i += 64)
        buf[i] = '\n';
    if (mkdir(ROOT, 0755) != 0)
        return -1;
    for (int d = 0; d < DIRS; d++) {
        snprintf(path, sizeof path, ROOT "/dir%02d", d);
        if (mkdir(path, 0755) != 0)
            return -1;
        for (int f = 0; f < FILES; f++) {
            snprintf(path, sizeof path, ROOT "/dir%02d/file%02d.c", d, f);
            int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
            size_t size = 256 + (size_t)(d * FILES + f) * 977 % 16128;
            if (fd < 0 || write(fd, buf, size) != (ssize_t)size || close(fd) != 0)
                return -1;
        }
    }
    return 0;
}

/* Removes the tree, so that the next repetition makes it afresh. */
static void remove_tree(void)
{
    char path[256];
    for (int d = 0; d < DIRS; d++) {
        for (int f = 0; f < FILES; f++) {
            snprintf(path, sizeof path, ROOT "/dir%02d/file%02d.c", d, f);
            unlink(path);
        }
        snprintf(path, sizeof path, ROOT "/dir%02d", d);
        rmdir(path);
    }
    rmdir(ROOT);
}

int main(int argc, char **argv)
{
    long n = bench_count(argc, argv, 5);
    if (make_tree() != 0)
        return 1;
    long lines = 0;
    long long t0 = bench_now();
    for (long i = 0; i < n; i++) {
        long got = walk(open(ROOT, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        if (got < 0)
            return 1;
        lines += got;
    }
    long long t1 = bench_now();
    remove_tree();
    bench_report("tree", n, t1 - t0);
    printf("@@VMI bench_calls tree %ld\n", calls);
    return lines == 0;
}
