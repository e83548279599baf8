/*
 * vmi.h: the C API of vmi, for a QEMU plugin loaded next to libvmi.so (or any plugin
 * built on vmi) in the same stock QEMU:
 *
 *     qemu-system-x86_64 ... -plugin libvmi.so,conf=kernel.conf \
 *                            -plugin ./libmine.so
 *
 * Your plugin asks vmi for its function table at install (vmi_find below), registers
 * callbacks there, and asks questions (which process runs, which mapping holds an
 * address, guest memory) inside them. docs/api.md is the guide.
 *
 * Rules:
 *  - Register only during your qemu_plugin_install: vmi fixes what it follows when the
 *    guest starts. Load your plugin after libvmi.so (QEMU installs plugins in order).
 *  - A `vmi_ctx` is valid during the callback it is given to, nowhere else.
 *  - Callbacks run on vCPU threads, several at once under MTTCG: synchronise your state.
 *  - Queries return 0 or a positive count on success and a negative VMI_E* on failure;
 *    vmi_strerror names it. Nothing here aborts QEMU.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#ifndef VMI_H
#define VMI_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The version of this header. vmi refuses a table request for another version. */
#define VMI_API_VERSION 1

/* Errors of queries and registrations. */
#define VMI_ENOVCPU -1       /* asked outside a vCPU callback */
#define VMI_EKERNEL -2       /* the kernel is not known (yet): no kernelinfo, or before kernel_ready */
#define VMI_EUNMAPPED -3     /* KPTI: the kernel is not mapped at this (user-mode) point */
#define VMI_EFAULT -4        /* guest memory could not be read */
#define VMI_EOSI -5          /* the kernel was read, but this answer could not be */
#define VMI_ELATE -6         /* registration after the guest started */
#define VMI_EINVAL -7        /* a bad argument (unknown call name, NULL pointer) */
#define VMI_ERANGE -8        /* the answer does not fit the buffer given */

/* Opaque: what a callback may ask through. */
typedef struct vmi_ctx vmi_ctx;

/* The thread that made a call, or that an event is about. */
typedef struct vmi_thread {
    uint32_t pid;  /* process id (tgid) */
    uint32_t tid;  /* thread id */
    char comm[16]; /* task->comm, NUL-terminated */
} vmi_thread;

/* A system call at entry or at return. */
typedef struct vmi_syscall {
    uint64_t nr;        /* the number, in the table of the calling convention */
    const char *name;   /* e.g. "openat"; NULL for a number the tables do not know */
    uint64_t args[6];   /* raw argument registers */
    uint64_t pc;        /* address of the system call instruction */
    int32_t returned;   /* at return: 1 if ret holds the result, 0 if it never returned */
    int32_t vcpu;       /* the vCPU, -1 when the run has ended */
    int64_t ret;        /* the result (negative errno on failure), when returned */
    vmi_thread thread;  /* the caller */
} vmi_syscall;

/* What a process event says. */
typedef enum vmi_event_kind {
    VMI_PROCESS_START = 1,
    VMI_PROCESS_EXEC = 2,
    VMI_PROCESS_END = 3,
    VMI_THREAD_START = 4,
    VMI_THREAD_END = 5,
} vmi_event_kind;

typedef struct vmi_event {
    vmi_event_kind kind;
    uint32_t pid;
    uint32_t tid;
    uint32_t ppid;      /* the process's parent */
    char comm[16];
    const char *path;   /* VMI_PROCESS_EXEC: the program; else NULL */
    int32_t has_exit_code; /* VMI_PROCESS_END: exit_code is valid */
    int32_t exit_code;
} vmi_event;

/* A process. */
typedef struct vmi_process {
    uint32_t pid;
    uint32_t ppid;
    uint64_t task;      /* guest address of the leader's task_struct: the handle */
    uint64_t asid;      /* page-table root, 0 for kernel threads */
    int32_t kernel_thread;
    char comm[16];
} vmi_process;

/* A memory mapping of a process, as a line of /proc/PID/maps. */
typedef struct vmi_mapping {
    uint64_t start;
    uint64_t end;
    uint64_t flags;     /* VM_READ 1, VM_WRITE 2, VM_EXEC 4, VM_SHARED 8 */
    uint64_t offset;    /* in the file, bytes */
    char path[256];     /* the mapped file, "" for anonymous memory */
} vmi_mapping;

typedef void (*vmi_syscall_cb)(const vmi_ctx *ctx, const vmi_syscall *call, void *udata);
typedef void (*vmi_event_cb)(const vmi_ctx *ctx, const vmi_event *event, void *udata);

/* vmi's function table. New members are added at the end; `size` says how many exist. */
typedef struct vmi_api {
    uint32_t version;   /* VMI_API_VERSION */
    uint32_t size;      /* sizeof(struct vmi_api) of the vmi that made it */

    /* Registration (at your install). `name`: a call name ("execve"), or NULL for
     * every call. Returns 0 or VMI_ELATE / VMI_EINVAL. */
    int (*on_syscall_enter)(const char *name, vmi_syscall_cb cb, void *udata);
    int (*on_syscall_return)(const char *name, vmi_syscall_cb cb, void *udata);
    int (*on_process_event)(vmi_event_cb cb, void *udata);

    /* Queries (inside a callback). */
    int (*current_process)(const vmi_ctx *ctx, vmi_process *out);
    /* Up to `max` processes into `out`; returns how many there are (may exceed max). */
    int (*processes)(const vmi_ctx *ctx, vmi_process *out, size_t max);
    /* The mapping of process `task` (vmi_process.task) that holds `addr`: 1 found,
     * 0 none. */
    int (*mapping_at)(const vmi_ctx *ctx, uint64_t task, uint64_t addr, vmi_mapping *out);
    /* `len` bytes of the current address space at `va`. */
    int (*read_memory)(const vmi_ctx *ctx, uint64_t va, void *buf, size_t len);
    /* The NUL-terminated string at `va` into buf; returns its length, or VMI_ERANGE
     * when it was cut to len - 1 bytes. */
    int (*read_string)(const vmi_ctx *ctx, uint64_t va, char *buf, size_t len);

    /* What a negative return means, in a few words. */
    const char *(*strerror)(int err);
} vmi_api;

/* Exported by libvmi.so: the table for `version`, or NULL (and one line on stderr) when
 * this vmi does not offer it. */
const vmi_api *vmi_get_api(uint32_t version);

#ifndef VMI_NO_FIND
#ifndef _GNU_SOURCE
#error "vmi.h: vmi_find needs dl_iterate_phdr and RTLD_NOLOAD: #define _GNU_SOURCE before any #include (or compile with -D_GNU_SOURCE)"
#endif
#include <dlfcn.h>
#include <link.h>
#include <stdio.h>

struct vmi_find_state {
    const char *symbol;
    void *address;
};

static int vmi_find_one(struct dl_phdr_info *info, size_t size, void *data)
{
    struct vmi_find_state *st = (struct vmi_find_state *)data;
    void *handle;
    (void)size;
    if (!info->dlpi_name || !info->dlpi_name[0]) {
        return 0;
    }
    /* Already loaded only: QEMU opened it (with local symbol binding, so plain
     * linking cannot see it). */
    handle = dlopen(info->dlpi_name, RTLD_NOW | RTLD_NOLOAD);
    if (!handle) {
        return 0;
    }
    /* Only a vmi exports vmi_get_api; ask it for the symbol we want. */
    if (dlsym(handle, "vmi_get_api")) {
        st->address = dlsym(handle, st->symbol);
    }
    dlclose(handle); /* drops our reference only: QEMU keeps it loaded */
    return st->address != NULL;
}

/* The address of `symbol` in the vmi plugin loaded in this process, or NULL. */
static inline void *vmi_find_symbol(const char *symbol)
{
    struct vmi_find_state st = { symbol, NULL };
    dl_iterate_phdr(vmi_find_one, &st);
    return st.address;
}

/* The table of the vmi loaded in this QEMU, for this header's version; NULL, with a
 * line on stderr, when there is none. Call it from your qemu_plugin_install. */
static inline const vmi_api *vmi_find(void)
{
    const vmi_api *(*get)(uint32_t);
    *(void **)(&get) = vmi_find_symbol("vmi_get_api");
    if (!get) {
        fprintf(stderr, "vmi.h: no vmi plugin is loaded: put -plugin libvmi.so,... "
                        "before this plugin on QEMU's command line\n");
        return NULL;
    }
    return get(VMI_API_VERSION);
}

/*
 * QEMU reads a plugin's `qemu_plugin_version` before installing it and accepts only the
 * versions it speaks (QEMU 11.1 only 7, 10.0 at most 4). A plugin that registers nothing
 * with QEMU itself, only with vmi, can declare what the vmi loaded before it declared:
 * write VMI_QEMU_PLUGIN_VERSION once in your plugin, instead of QEMU_PLUGIN_EXPORT int
 * qemu_plugin_version = ...;
 */
#define VMI_QEMU_PLUGIN_VERSION                                                       \
    __attribute__((visibility("default"))) int qemu_plugin_version = 4;              \
    __attribute__((constructor)) static void vmi_copy_qemu_plugin_version(void)       \
    {                                                                                 \
        const int *v = (const int *)vmi_find_symbol("qemu_plugin_version");          \
        if (v) {                                                                      \
            qemu_plugin_version = *v;                                                 \
        }                                                                             \
    }
#endif /* VMI_NO_FIND */

#ifdef __cplusplus
}
#endif

#endif /* VMI_H */
