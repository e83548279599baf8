//! The Linux provider of [`Introspect`]: reads kernel structures through
//! [`GuestMemory`] using the offsets of a [`KernelInfo`] and the run-time facts of a
//! [`KernelContext`].
//!
//! Every walk is bounded and cycle-guarded ([`list`]); a fault or a corrupt link ends a
//! walk with a flagged partial [`Listing`], or fails a single-object query with a typed
//! [`OsiError`]. Nothing here panics on guest data.
//!
//! Submodules by kernel area: [`list`] (`list_head`), [`task`] (processes, threads, current
//! task), [`mm`] (mappings: maple tree and `vm_next`), [`path`] (`d_path`, file descriptors),
//! [`modules`].

pub mod list;
pub mod mm;
pub mod modules;
pub mod path;
pub mod task;
pub mod validate;

#[cfg(test)]
pub(crate) mod testmem;
#[cfg(test)]
mod tests;

use crate::config::KernelInfo;
use crate::mem::{Fault, GuestMemory};
use crate::osi::{
    FileDescriptor, Introspect, Listing, Mapping, Module, OsiError, Process, ProcessHandle, Thread,
};

/// Upper bound of every list walk (tasks, threads, modules, VMAs).
pub const MAX_LIST: usize = 65_536;

/// What the plugin finds out at run time about the running kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelContext {
    /// Run-time minus link-time address of the kernel image (0 without KASLR); added to
    /// every `*_addr` of the kernelinfo (except x86_64's zero-based per-CPU offsets).
    pub kaslr_slide: u64,
    /// Base of the current CPU's per-CPU area: on x86_64 the `gs_base` value while in
    /// kernel mode; on i386 `__per_cpu_offset[cpu]` ([`task::per_cpu_base_from_table`]).
    pub per_cpu_base: Option<u64>,
    /// Start of the kernel's direct map (`PAGE_OFFSET`, `page_offset_base` on x86_64 with
    /// KASLR): `pa = va - page_offset` for direct-map addresses such as `mm->pgd`.
    pub page_offset: u64,
    /// Pointer size in bytes: 4 or 8.
    pub pointer_width: u8,
    /// The page-table root the vCPU is using now (CR3 without PCID/flag bits), if known.
    /// User memory (argv) is read only for the process whose `asid` matches it, because a
    /// user address read in another address space would silently return its data.
    pub current_asid: Option<u64>,
    /// The user half's table format where user memory may have to be read by walking the
    /// tables through the direct map (arm64: QEMU applies PAN to kernel-mode reads of user
    /// memory, and reads no physical memory before plugin API 5).
    pub user_paging: Option<crate::mem::paging::Paging>,
}

impl KernelContext {
    /// A context for a 64-bit kernel without KASLR (tests, `nokaslr` guests).
    pub fn x86_64(page_offset: u64) -> Self {
        KernelContext {
            kaslr_slide: 0,
            per_cpu_base: None,
            page_offset,
            pointer_width: 8,
            current_asid: None,
            user_paging: None,
        }
    }
}

/// The Linux provider. Cheap to build: make one per vCPU callback, since `mem` reads through
/// the vCPU that is stopped there.
pub struct Linux<'a> {
    mem: &'a dyn GuestMemory,
    info: &'a KernelInfo,
    ctx: KernelContext,
}

impl<'a> Linux<'a> {
    /// A provider reading `mem`, described by `info` and `ctx`.
    pub fn new(mem: &'a dyn GuestMemory, info: &'a KernelInfo, ctx: KernelContext) -> Self {
        Linux { mem, info, ctx }
    }

    /// The kernel description.
    pub fn info(&self) -> &KernelInfo {
        self.info
    }

    /// The run-time context.
    pub fn context(&self) -> &KernelContext {
        &self.ctx
    }

    /// The guest memory.
    pub fn memory(&self) -> &dyn GuestMemory {
        self.mem
    }

    /// Runs `f` over the user memory of the address space at `asid` read by walking its
    /// tables through the kernel's direct map, where the context says how
    /// ([`KernelContext::user_paging`]: arm64, whose kernel-mode reads of user memory meet
    /// PAN, and 32-bit ARM); `None` elsewhere.
    pub fn with_user_memory<R>(
        &self,
        asid: u64,
        f: impl FnOnce(&dyn GuestMemory) -> R,
    ) -> Option<R> {
        use crate::mem::paging::{AddressSpace, DirectMap};
        let paging = self.ctx.user_paging?;
        let phys = DirectMap {
            mem: self.mem,
            page_offset: self.ctx.page_offset,
        };
        let space = AddressSpace {
            phys: &phys,
            paging,
            root: paging.root(asid),
        };
        Some(f(&space))
    }

    /// Runs `f` over a provider whose reads that fail are made again through the kernel's
    /// own page tables (`swapper_pg_dir`) walked in its direct map, where the kernelinfo
    /// names them and the context says their format: 32-bit ARM, whose module area is in
    /// the user half's table and mapped in a process's tables only once it touched it.
    /// Elsewhere `f` gets this provider.
    pub fn with_kernel_tables<R>(&self, f: impl FnOnce(&Linux<'_>) -> R) -> R {
        use crate::mem::paging::{AddressSpace, DirectMap};
        let (Some(paging), Some(tables)) =
            (self.ctx.user_paging, self.info.vmi.swapper_pg_dir_addr)
        else {
            return f(self);
        };
        let mut root = self.slid(tables).wrapping_sub(self.ctx.page_offset);
        if self.ctx.pointer_width == 4 {
            root &= 0xffff_ffff;
        }
        let phys = DirectMap {
            mem: self.mem,
            page_offset: self.ctx.page_offset,
        };
        let kernel = KernelTables {
            mem: self.mem,
            tables: AddressSpace {
                phys: &phys,
                paging,
                root,
            },
        };
        f(&Linux::new(&kernel, self.info, self.ctx))
    }

    /// A link-time kernel address moved by the KASLR slide.
    pub fn slid(&self, link_time: u64) -> u64 {
        link_time.wrapping_add(self.ctx.kaslr_slide)
    }

    /// A pointer (`unsigned long`) of the guest's width at `va`.
    pub fn read_ptr(&self, va: u64) -> Result<u64, Fault> {
        if self.ctx.pointer_width == 4 {
            self.mem.read_u32(va).map(u64::from)
        } else {
            self.mem.read_u64(va)
        }
    }

    /// The pointer width in bytes, as `u64` for address arithmetic.
    pub fn ptr_size(&self) -> u64 {
        if self.ctx.pointer_width == 4 { 4 } else { 8 }
    }

    /// A `u32` at `base + offset`.
    pub fn read_u32_at(&self, base: u64, offset: i64) -> Result<u32, Fault> {
        self.mem.read_u32(at(base, offset))
    }

    /// A pointer at `base + offset`.
    pub fn read_ptr_at(&self, base: u64, offset: i64) -> Result<u64, Fault> {
        self.read_ptr(at(base, offset))
    }
}

/// Memory read as the vCPU reads it, else through the kernel's own tables
/// ([`Linux::with_kernel_tables`]).
struct KernelTables<'a> {
    mem: &'a dyn GuestMemory,
    tables: crate::mem::paging::AddressSpace<'a>,
}

impl GuestMemory for KernelTables<'_> {
    fn read(&self, va: u64, buf: &mut [u8]) -> Result<(), Fault> {
        self.mem
            .read(va, buf)
            .or_else(|_| self.tables.read(va, buf))
    }

    fn read_in(&self, root: u64, va: u64, buf: &mut [u8]) -> Result<(), Fault> {
        self.mem.read_in(root, va, buf)
    }

    fn mapped_now(&self, va: u64) -> bool {
        self.mem.mapped_now(va)
    }
}

/// `base + offset` with a signed offset, wrapping like the guest's address arithmetic.
pub fn at(base: u64, offset: i64) -> u64 {
    base.wrapping_add_signed(offset)
}

/// An optional kernelinfo key, or the error naming it.
pub(crate) fn need<T>(
    value: Option<T>,
    key: &'static str,
    what: &'static str,
) -> Result<T, OsiError> {
    value.ok_or(OsiError::MissingKey { key, what })
}

impl Introspect for Linux<'_> {
    fn processes(&self) -> Result<Listing<Process>, OsiError> {
        task::processes(self)
    }

    fn current_process(&self) -> Result<Process, OsiError> {
        let current = task::current_task(self)?;
        let leader = task::group_leader(self, current)?;
        task::process(self, leader)
    }

    fn current_thread(&self) -> Result<Thread, OsiError> {
        let current = task::current_task(self)?;
        task::thread(self, current)
    }

    fn process(&self, handle: ProcessHandle) -> Result<Process, OsiError> {
        task::process(self, handle.0)
    }

    fn threads(&self, handle: ProcessHandle) -> Result<Listing<Thread>, OsiError> {
        task::threads(self, handle.0)
    }

    fn modules(&self) -> Result<Listing<Module>, OsiError> {
        modules::modules(self)
    }

    fn mappings(&self, handle: ProcessHandle) -> Result<Listing<Mapping>, OsiError> {
        mm::mappings(self, handle.0)
    }

    fn fds(&self, handle: ProcessHandle) -> Result<Listing<FileDescriptor>, OsiError> {
        path::fds(self, handle.0)
    }
}
