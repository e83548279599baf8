/*
 * A C plugin on vmi: each execve with the caller's pid and comm and the mapping that
 * holds the caller's pc, one line each in the file out= names. Loaded after libvmi.so:
 *
 *   qemu-system-x86_64 ... -plugin libvmi.so,conf=kernel.conf \
 *                          -plugin ./libexecve.so,out=execs.txt
 *
 * Build: cc -shared -fPIC -O2 -I include -o libexecve.so examples/c-execve/execve.c
 */
#define _GNU_SOURCE /* vmi.h finds vmi with dl_iterate_phdr */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "vmi.h"

VMI_QEMU_PLUGIN_VERSION

static const vmi_api *vmi;
static FILE *out;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static void on_execve(const vmi_ctx *ctx, const vmi_syscall *call, void *udata)
{
    char path[256] = "";
    vmi_process self;
    vmi_mapping map;
    const char *where = "?";
    int err;
    (void)udata;
    /* At entry the caller's memory holds the path it passed. */
    if (vmi->read_string(ctx, call->args[0], path, sizeof path) < 0) {
        strcpy(path, "?");
    }
    err = vmi->current_process(ctx, &self);
    if (err == 0) {
        err = vmi->mapping_at(ctx, self.task, call->pc, &map);
        if (err == 1) {
            where = map.path[0] ? map.path : "[anonymous]";
        } else if (err == 0) {
            where = "[none]";
        }
    }
    if (err < 0) {
        where = vmi->strerror(err);
    }
    pthread_mutex_lock(&lock);
    fprintf(out, "execve\tpid=%" PRIu32 "\tcomm=%s\tpath=%s\tpc=0x%" PRIx64 "\tmapping=%s\n",
            call->thread.pid, call->thread.comm, path, call->pc, where);
    fflush(out);
    pthread_mutex_unlock(&lock);
}

__attribute__((visibility("default"))) int qemu_plugin_install(uint64_t id, const void *info,
                                                               int argc, char **argv)
{
    const char *path = "execve.txt";
    int i;
    (void)id;
    (void)info;
    for (i = 0; i < argc; i++) {
        if (strncmp(argv[i], "out=", 4) == 0) {
            path = argv[i] + 4;
        } else {
            fprintf(stderr, "execve: unknown argument '%s': the only one is out=FILE\n", argv[i]);
            return -1;
        }
    }
    vmi = vmi_find();
    if (!vmi) {
        return -1;
    }
    out = fopen(path, "w");
    if (!out) {
        perror(path);
        return -1;
    }
    if (vmi->on_syscall_enter("execve", on_execve, NULL) != 0) {
        fprintf(stderr, "execve: vmi refused the hook\n");
        return -1;
    }
    return 0;
}
