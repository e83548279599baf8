/* Exits with the status given as its argument: a real exec'd program (busybox applets
 * may run without exec in a forked shell). */
#include <stdlib.h>

int main(int argc, char **argv)
{
    return argc > 1 ? atoi(argv[1]) : 0;
}
