/* A process with several threads that live until killed: the lab's multi-threaded
 * process for thread-list checks. Usage: threads N (default 3 extra threads). */
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
    for (;;)
        pause();
}
