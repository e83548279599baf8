/* Shared by the bench-*.c guest workloads (scripts/bench, lab/scenarios/bench.sh): each
 * times its loop with CLOCK_MONOTONIC and prints "@@VMI bench <name> <ns>" on stdout. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static inline long long bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* The iteration count: argv[1] when given, else the default (the number). */
static inline long bench_count(int argc, char **argv, long dflt)
{
    long n = argc > 1 ? atol(argv[1]) : dflt;
    return n > 0 ? n : dflt;
}

static inline void bench_report(const char *name, long n, long long ns)
{
    printf("@@VMI bench %s %lld\n", name, ns);
    printf("@@VMI bench_n %s %ld\n", name, n);
    fflush(stdout);
}
