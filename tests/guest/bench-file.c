/* File system calls: open + read + close of a small file in /tmp, N times (default
 * 50000). */
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include "bench.h"

int main(int argc, char **argv)
{
    long n = bench_count(argc, argv, 50000);
    const char *path = "/tmp/bench-file.txt";
    char buf[512];
    memset(buf, 'x', 256);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || write(fd, buf, 256) != 256 || close(fd) != 0)
        return 1;
    long total = 0;
    long long t0 = bench_now();
    for (long i = 0; i < n; i++) {
        fd = open(path, O_RDONLY);
        if (fd < 0)
            return 1;
        total += read(fd, buf, sizeof buf);
        close(fd);
    }
    long long t1 = bench_now();
    unlink(path);
    bench_report("file", n, t1 - t0);
    return total != 256L * n;
}
