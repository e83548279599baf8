//! Loaded kernel modules: the `modules` list, with base and size as `/proc/modules` shows
//! them (`m_show` in `kernel/module.c`, `kernel/module/procfs.c` since 5.19).
//!
//! Kernel history:
//! - 4.5 to 6.3: `struct module_layout core_layout, init_layout`; `/proc/modules` prints
//!   `core_layout.base` and `init_layout.size + core_layout.size` (both `unsigned int`;
//!   `init_layout.size` is 0 once the init sections are freed after loading).
//! - 6.4+: `struct module_memory mem[MOD_MEM_NUM_TYPES]`; it prints `mem[MOD_TEXT].base`
//!   (`MOD_TEXT` = 0) and `module_total_size()`, the sum of `mem[type].size` over every
//!   type (`for_each_mod_mem_type`, init types included).
//!
//! The 6.4+ layout is used when `module.mem_offset` is present, else the older one.

use super::list::{ListIter, collect, container_of};
use super::{Linux, MAX_LIST, at, need};
use crate::osi::{Listing, Module, OsiError};

/// `MODULE_NAME_LEN` on 64-bit (`64 - sizeof(unsigned long)`), when not given.
const DEFAULT_NAME_SIZE: u64 = 56;

/// The module whose `struct module` is at `module`.
pub fn module(linux: &Linux<'_>, module: u64) -> Result<Module, OsiError> {
    let m = &linux.info.module;
    let name_off = need(m.name_offset, "module.name_offset", "read module names")?;
    let name_size = m.name_size.unwrap_or(DEFAULT_NAME_SIZE).min(256) as usize;
    let (name, _) = linux.mem.read_cstr(at(module, name_off), name_size)?;
    let name = String::from_utf8_lossy(&name).into_owned();
    let (base, size) = if let Some(mem_off) = m.mem_offset {
        let what = "read module sizes (6.4+ layout)";
        let count = need(m.mem_count, "module.mem_count", what)?.min(32);
        let stride = need(m.memory_size, "module_memory.size", what)?;
        let base_off = need(m.memory_base_offset, "module_memory.base_offset", what)?;
        let size_off = need(m.memory_size_offset, "module_memory.size_offset", what)?;
        let mem = at(module, mem_off);
        let base = linux.read_ptr_at(mem, base_off)?;
        let mut size = 0u64;
        for i in 0..count {
            let entry = mem.wrapping_add(i.wrapping_mul(stride));
            size += u64::from(linux.read_u32_at(entry, size_off)?);
        }
        (base, size)
    } else {
        let what = "read module sizes (pre-6.4 layout)";
        let base_off = need(m.core_base_offset, "module.core_base_offset", what)?;
        let core_off = need(m.core_size_offset, "module.core_size_offset", what)?;
        let base = linux.read_ptr_at(module, base_off)?;
        let mut size = u64::from(linux.read_u32_at(module, core_off)?);
        if let Some(init_off) = m.init_size_offset {
            size += u64::from(linux.read_u32_at(module, init_off)?);
        }
        (base, size)
    };
    Ok(Module { name, base, size })
}

/// Every module on the `modules` list.
pub fn modules(linux: &Linux<'_>) -> Result<Listing<Module>, OsiError> {
    let head = need(
        linux.info.vmi.modules_addr,
        "vmi.modules_addr",
        "list modules",
    )?;
    let list_off = need(
        linux.info.module.list_offset,
        "module.list_offset",
        "list modules",
    )?;
    // The modules themselves are in the module area, which the kernel's tables map.
    linux.with_kernel_tables(|linux| {
        let (nodes, mut incomplete) = collect(ListIter::new(linux, linux.slid(head), MAX_LIST));
        let mut items = Vec::with_capacity(nodes.len());
        for node in nodes {
            match module(linux, container_of(node, list_off)) {
                Ok(m) => items.push(m),
                Err(OsiError::Fault(f)) => {
                    incomplete = Some(f.into());
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(Listing { items, incomplete })
    })
}
