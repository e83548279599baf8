/* Kernel-like types for the fuzz seeds (fuzz/seeds/make-seeds): the members `vmi
 * kernelinfo` looks up, laid out as Linux 6.1+ has them (anonymous unions and structs,
 * typedefs, qualifiers, arrays, bitfields, a forward declaration), but far smaller.
 * Compiled with gcc -g for the DWARF seeds; pahole -J turns that DWARF into the BTF ones. */

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;
typedef int pid_t;
typedef long long loff_t;
typedef struct { int val; } kuid_t;
typedef struct { int val; } kgid_t;

struct list_head { struct list_head *next, *prev; };
struct hlist_node { struct hlist_node *next, **pprev; };
struct qstr {
	union {
		struct { u32 hash; u32 len; };
		u64 hash_len;
	};
	const unsigned char *name;
};

struct dentry;
struct vfsmount;
struct path { struct vfsmount *mnt; struct dentry *dentry; };
struct dentry_operations { char *(*d_dname)(struct dentry *, char *, int); int d_flags; };
struct dentry {
	unsigned int d_flags;
	struct hlist_node d_hash;
	struct dentry *d_parent;
	struct qstr d_name;
	void *d_inode;
	union { unsigned char d_iname[40]; struct { unsigned char string[40]; } d_shortname; };
	const struct dentry_operations *d_op;
};
struct vfsmount { struct dentry *mnt_root; void *mnt_sb; int mnt_flags; };
struct mount {
	struct hlist_node mnt_hash;
	struct mount *mnt_parent;
	struct dentry *mnt_mountpoint;
	struct vfsmount mnt;
};

struct file {
	union { struct list_head f_llist; unsigned int f_iocb_flags; };
	struct path f_path;
	void *f_inode;
	volatile unsigned int f_flags;
	loff_t f_pos;
};
struct fdtable { unsigned int max_fds; struct file **fd; unsigned long *open_fds; };
struct files_struct { int count; struct fdtable *fdt; struct fdtable fdtab; struct file *fd_array[64]; };

struct maple_tree { int ma_lock; void *ma_root; unsigned int ma_flags; };
struct maple_range_64 { void *parent; unsigned long pivot[15]; void *slot[16]; };
struct maple_arange_64 { void *parent; unsigned long pivot[9]; void *slot[10]; unsigned long gap[10]; };
struct maple_node {
	union {
		struct { void *parent; void *slot[31]; };
		struct maple_range_64 mr64;
		struct maple_arange_64 ma64;
	};
};

struct mm_struct {
	struct {
		struct maple_tree mm_mt;
		unsigned long mmap_base;
		void *pgd;
		int map_count;
		unsigned long start_code, end_code, start_data, end_data;
		unsigned long start_brk, brk, start_stack;
		unsigned long arg_start, arg_end, env_start, env_end;
		struct file *exe_file;
	};
	unsigned long cpu_bitmap[];
};

struct vm_area_struct {
	union { struct { unsigned long vm_start; unsigned long vm_end; }; };
	struct mm_struct *vm_mm;
	const unsigned long vm_flags;
	unsigned long vm_pgoff;
	struct file *vm_file;
};

struct cred { int usage; kuid_t uid; kgid_t gid; kuid_t suid; kgid_t sgid; kuid_t euid; kgid_t egid; };
struct signal_struct { int nr_threads; struct list_head thread_head; };
struct pcpu_hot { union { struct { struct task_struct *current_task; int preempt_count; int cpu_number; }; u8 pad[64]; }; };

struct task_struct {
	struct { unsigned int flags; } thread_info;
	unsigned int __state;
	void *stack;
	unsigned int flags;
	int prio;
	unsigned sched_reset_on_fork:1;
	unsigned sched_contributes_to_load:1;
	struct list_head tasks;
	struct mm_struct *mm;
	struct mm_struct *active_mm;
	int exit_code;
	pid_t pid;
	pid_t tgid;
	struct task_struct *real_parent;
	struct task_struct *parent;
	struct list_head children;
	struct task_struct *group_leader;
	struct list_head thread_node;
	u64 start_time;
	const struct cred *real_cred;
	const struct cred *cred;
	char comm[16];
	struct files_struct *files;
	struct signal_struct *signal;
};

struct module_memory { void *base; unsigned int size; };
enum mod_mem_type { MOD_TEXT, MOD_DATA, MOD_RODATA, MOD_RO_AFTER_INIT, MOD_INIT_TEXT, MOD_INIT_DATA, MOD_INIT_RODATA, MOD_MEM_NUM_TYPES };
struct module {
	int state;
	struct list_head list;
	char name[56];
	struct module_memory mem[MOD_MEM_NUM_TYPES];
};

/* Objects of each type, so that every one is in the debug information. */
struct task_struct init_task;
struct pcpu_hot pcpu_hot;
struct list_head modules;
struct mm_struct init_mm;
struct vm_area_struct a_vma;
struct file a_file;
struct files_struct init_files;
struct mount a_mount;
struct dentry_operations a_dops;
struct maple_node a_node;
struct signal_struct init_signals;
struct module a_module;
unsigned long __per_cpu_offset[8];
const char linux_banner[] = "Linux version 6.1.0-99-amd64 (fuzz@seeds) (gcc-12) #1 SMP PREEMPT_DYNAMIC Debian 6.1.999-1 (2025-01-01)\n";

void _start(void) {}
