/* The least any system call tracer built on QEMU's plugin API can cost: for scripts/callcost.
 *
 *   floor=load   registers a translation callback and instruments nothing;
 *   floor=calls  one callback at each `syscall` instruction and one at the block it returns
 *                to, each reading rax through qemu_plugin_read_register (the number at the
 *                entry, the result at the return) and nothing else;
 *   floor=returns  one callback per call only, at the block it returns to, reading what a
 *                tracer that makes the whole record there would: rax and the six x86_64
 *                argument registers (which survive the call). The floor of a design without
 *                an entry callback.
 *
 * Not part of the plugin: a yardstick. It declares the few API functions it uses itself
 * (QEMU 10.0, plugin API v4) so that it builds with gcc and GLib's headers alone. */
#include <glib.h>
#include <stdint.h>
#include <string.h>

typedef uint64_t qemu_plugin_id_t;
struct qemu_plugin_tb;
struct qemu_plugin_insn;
struct qemu_plugin_register;
typedef struct {
    struct qemu_plugin_register *handle;
    const char *name;
    const char *feature;
} reg_descriptor;
enum { CB_NO_REGS, CB_R_REGS };

void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t,
                                           void (*)(qemu_plugin_id_t, struct qemu_plugin_tb *));
void qemu_plugin_register_vcpu_init_cb(qemu_plugin_id_t, void (*)(qemu_plugin_id_t, unsigned));
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *);
uint64_t qemu_plugin_tb_vaddr(const struct qemu_plugin_tb *);
struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *, size_t);
size_t qemu_plugin_insn_data(const struct qemu_plugin_insn *, void *, size_t);
uint64_t qemu_plugin_insn_vaddr(const struct qemu_plugin_insn *);
void qemu_plugin_register_vcpu_insn_exec_cb(struct qemu_plugin_insn *,
                                            void (*)(unsigned, void *), int, void *);
GArray *qemu_plugin_get_registers(void);
int qemu_plugin_read_register(struct qemu_plugin_register *, GByteArray *);

__attribute__((visibility("default"))) int qemu_plugin_version = 4;

/* Return addresses announced by translated `syscall` instructions (open addressing). */
#define SLOTS 4096
static uint64_t returns[SLOTS];
static int instrument, returns_only;
static struct qemu_plugin_register *rax;
static const char *const arg_names[] = {"rdi", "rsi", "rdx", "r10", "r8", "r9"};
static struct qemu_plugin_register *args[6];
static GByteArray *scratch;
static volatile uint64_t sink;

static int is_return(uint64_t va, int add)
{
    for (unsigned i = (unsigned)(va ^ (va >> 12)) % SLOTS, n = 0; n < SLOTS; i = (i + 1) % SLOTS, n++) {
        if (returns[i] == va)
            return 1;
        if (returns[i] == 0) {
            if (add)
                returns[i] = va;
            return add;
        }
    }
    return 0;
}

static void read_rax(unsigned vcpu, void *udata)
{
    (void)vcpu;
    (void)udata;
    if (!rax)
        return;
    g_byte_array_set_size(scratch, 0);
    if (qemu_plugin_read_register(rax, scratch) == 8)
        sink += *(uint64_t *)scratch->data;
}

static void read_all(unsigned vcpu, void *udata)
{
    read_rax(vcpu, udata);
    for (int i = 0; i < 6; i++)
        if (args[i] && qemu_plugin_read_register(args[i], scratch) == 8)
            sink += *(uint64_t *)(scratch->data + scratch->len - 8);
}

static void on_init(qemu_plugin_id_t id, unsigned vcpu)
{
    (void)id;
    (void)vcpu;
    GArray *regs = qemu_plugin_get_registers();
    for (guint i = 0; regs && i < regs->len; i++) {
        reg_descriptor *d = &g_array_index(regs, reg_descriptor, i);
        if (strcmp(d->name, "rax") == 0)
            rax = d->handle;
        for (int a = 0; a < 6; a++)
            if (strcmp(d->name, arg_names[a]) == 0)
                args[a] = d->handle;
    }
    if (regs)
        g_array_free(regs, TRUE);
    scratch = g_byte_array_new();
}

static void on_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    (void)id;
    if (!instrument)
        return;
    size_t n = qemu_plugin_tb_n_insns(tb);
    for (size_t i = 0; i < n; i++) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        uint64_t va = qemu_plugin_insn_vaddr(insn);
        unsigned char b[2] = {0, 0};
        int at_return = i == 0 && is_return(va, 0);
        int syscall = qemu_plugin_insn_data(insn, b, 2) == 2 && b[0] == 0x0f && b[1] == 0x05;
        if (syscall)
            is_return(va + 2, 1);
        if (returns_only) {
            if (at_return)
                qemu_plugin_register_vcpu_insn_exec_cb(insn, read_all, CB_R_REGS, NULL);
        } else if (syscall || at_return) {
            qemu_plugin_register_vcpu_insn_exec_cb(insn, read_rax, CB_R_REGS, NULL);
        }
    }
}

__attribute__((visibility("default"))) int qemu_plugin_install(qemu_plugin_id_t id, const void *info,
                                                               int argc, char **argv)
{
    (void)info;
    for (int i = 0; i < argc; i++)
        if (strcmp(argv[i], "floor=calls") == 0)
            instrument = 1;
        else if (strcmp(argv[i], "floor=returns") == 0)
            instrument = returns_only = 1;
    qemu_plugin_register_vcpu_init_cb(id, on_init);
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_trans);
    return 0;
}
