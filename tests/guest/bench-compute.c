/* Pure computation, no system calls in the loop: N rounds (default 1000000000) of an
 * xorshift generator. About 1-2 s under TCG on the reference machine. */
#include <stdint.h>
#include "bench.h"

int main(int argc, char **argv)
{
    long n = bench_count(argc, argv, 1000000000);
    uint64_t x = 88172645463325252ULL, acc = 0;
    long long t0 = bench_now();
    for (long i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        acc += x;
    }
    long long t1 = bench_now();
    bench_report("compute", n, t1 - t0);
    return acc == 42; /* keeps the loop */
}
