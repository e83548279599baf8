/* Reaps children with waitid (not wait4) and reports like the shell scenarios do:
 * "@@VMI exited <pid> <status>", status 128+N for a child killed by signal N. */
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

static void reap(pid_t pid)
{
    siginfo_t info = {0};
    if (waitid(P_PID, (id_t)pid, &info, WEXITED) != 0)
        return;
    int status = info.si_code == CLD_EXITED ? info.si_status : 128 + info.si_status;
    printf("@@VMI exited %d %d\n", (int)info.si_pid, status);
    fflush(stdout);
}

int main(void)
{
    pid_t a = fork();
    if (a == 0)
        _exit(4);
    reap(a);
    pid_t b = fork();
    if (b == 0) {
        for (;;)
            pause();
    }
    kill(b, SIGTERM);
    reap(b);
    return 0;
}
