/* Cheap system calls: getppid N times (default 200000). */
#include <sys/syscall.h>
#include <unistd.h>
#include "bench.h"

int main(int argc, char **argv)
{
    long n = bench_count(argc, argv, 200000);
    long sum = 0;
    long long t0 = bench_now();
    for (long i = 0; i < n; i++)
        sum += syscall(SYS_getppid); /* no libc caching: one real system call each */
    long long t1 = bench_now();
    bench_report("syscall", n, t1 - t0);
    return sum == 0; /* keeps the loop */
}
