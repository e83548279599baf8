/* Process creation: fork + exec /bin/bench-true + wait, N times (default 2000). */
#include <sys/wait.h>
#include <unistd.h>
#include "bench.h"

int main(int argc, char **argv)
{
    long n = bench_count(argc, argv, 2000);
    char *const child_argv[] = {"bench-true", NULL};
    char *const envp[] = {NULL};
    long long t0 = bench_now();
    for (long i = 0; i < n; i++) {
        pid_t pid = fork();
        if (pid < 0)
            return 1;
        if (pid == 0) {
            execve("/bin/bench-true", child_argv, envp);
            _exit(127);
        }
        int status;
        if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status))
            return 1;
    }
    long long t1 = bench_now();
    bench_report("fork", n, t1 - t0);
    return 0;
}
