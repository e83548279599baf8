/* A process with several threads that live until killed: the lab's multi-threaded
 * process for thread-list checks. Usage: threads [N [READY]]: N extra threads (default
 * 3); READY, a file created once every pthread_create has returned. A thread shows in
 * /proc/PID/task while the clone that makes it has yet to return to its caller: a
 * scenario that kills the process then may kill it inside that clone, and a tracer
 * never sees the clone return. */
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

static void *idle(void *arg)
{
    (void)arg;
    for (;;)
        pause();
    return NULL;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 3;
    for (int i = 0; i < n; i++) {
        pthread_t t;
        if (pthread_create(&t, NULL, idle, NULL) != 0)
            return 1;
    }
    if (argc > 2) {
        int fd = open(argv[2], O_WRONLY | O_CREAT, 0644);
        if (fd < 0)
            return 1;
        close(fd);
    }
    for (;;)
        pause();
}
