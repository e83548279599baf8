//! Memory mappings of a process: the VMAs of `task->mm`.
//!
//! Kernel history: until 6.0 the VMAs are a sorted singly linked list, `mm->mmap` →
//! `vma->vm_next`. Linux 6.1 replaced it with a maple tree, `mm->mm_mt`, whose leaves hold
//! the VMA pointers in address order.
//!
//! Maple tree encoding (`lib/maple_tree.c`, `include/linux/maple_tree.h`):
//! - `ma_root` is a node when `xa_is_node`: `(entry & 3) == 2 && entry > 4096`; otherwise
//!   it is NULL or a single entry (one VMA).
//! - Child pointers in slots are `node | type << 3 | 4` (`mt_mk_node`); the root adds
//!   bit 1 (`mte_mk_root`).
//! - An encoded node pointer carries its type in bits 3..6: `(ptr >> 3) & 0xf`, with
//!   `maple_dense` = 0, `maple_leaf_64` = 1, `maple_range_64` = 2, `maple_arange_64` = 3;
//!   the node is at `ptr & !0xff` (nodes are 256-byte aligned).
//! - `maple_range_64` (also the layout of leaves) = `{ parent; pivot[S-1]; slot[S] }` with
//!   S = 16 on 64-bit (32 on 32-bit); `maple_arange_64` = `{ parent; pivot[S-1]; slot[S];
//!   gap[S]; meta }` with S = 10 (21). Slot `i` covers `(pivot[i-1], pivot[i]]`; the last
//!   slot ends at the node's max. A pivot of 0 after the first slot, or a pivot equal to
//!   the node's max, ends the node's data.
//!
//! When the `maple.*` keys are absent those ABI defaults are used.

use std::collections::HashSet;

use super::path::file_path;
use super::{Linux, MAX_LIST, at, need};
use crate::osi::{Incomplete, Listing, Mapping, OsiError};

/// Deepest maple tree walked (the kernel's `MAPLE_HEIGHT_MAX` is 31).
pub const MAX_MAPLE_DEPTH: usize = 31;

/// Node types from an encoded maple node pointer.
const MAPLE_LEAF_64: u64 = 1;
const MAPLE_RANGE_64: u64 = 2;
const MAPLE_ARANGE_64: u64 = 3;

/// Layout of one maple node type.
#[derive(Debug, Clone, Copy)]
struct NodeLayout {
    pivot: i64,
    slot: i64,
    slots: u64,
}

/// The resolved maple tree layout.
#[derive(Debug, Clone, Copy)]
struct MapleLayout {
    range64: NodeLayout,
    arange64: NodeLayout,
}

impl MapleLayout {
    fn new(linux: &Linux<'_>) -> Self {
        let m = &linux.info.maple;
        let p = linux.ptr_size() as i64;
        let (range_slots, arange_slots) = if p == 4 { (32, 21) } else { (16, 10) };
        let range_slots = m.range64_slots.unwrap_or(range_slots).clamp(1, 64);
        let arange_slots = m.arange64_slots.unwrap_or(arange_slots).clamp(1, 64);
        MapleLayout {
            range64: NodeLayout {
                pivot: m.range64_pivot_offset.unwrap_or(p),
                slot: m
                    .range64_slot_offset
                    .unwrap_or(p + p * (range_slots as i64 - 1)),
                slots: range_slots,
            },
            arange64: NodeLayout {
                pivot: m.arange64_pivot_offset.unwrap_or(p),
                slot: m
                    .arange64_slot_offset
                    .unwrap_or(p + p * (arange_slots as i64 - 1)),
                slots: arange_slots,
            },
        }
    }
}

/// `xa_is_node(entry)`.
pub fn is_node(entry: u64) -> bool {
    entry & 3 == 2 && entry > 4096
}

/// Collects the entries (VMA pointers) of the maple tree whose root pointer is `root`.
struct MapleWalk<'l, 'a> {
    linux: &'l Linux<'a>,
    layout: MapleLayout,
    seen: HashSet<u64>,
    out: Vec<u64>,
}

impl MapleWalk<'_, '_> {
    fn node(&mut self, enode: u64, max: u64, depth: usize) -> Result<(), Incomplete> {
        let node = enode & !0xff;
        if depth > MAX_MAPLE_DEPTH {
            return Err(Incomplete::Corrupt {
                what: "maple tree deeper than MAPLE_HEIGHT_MAX",
                at: node,
            });
        }
        if !self.seen.insert(node) {
            return Err(Incomplete::Cycle { at: node });
        }
        let kind = (enode >> 3) & 0xf;
        let layout = match kind {
            MAPLE_LEAF_64 | MAPLE_RANGE_64 => self.layout.range64,
            MAPLE_ARANGE_64 => self.layout.arange64,
            _ => {
                return Err(Incomplete::Corrupt {
                    what: "maple node type",
                    at: node,
                });
            }
        };
        let ptr = self.linux.ptr_size();
        for i in 0..layout.slots {
            let last = i + 1 == layout.slots;
            let pivot = if last {
                max
            } else {
                let p = self
                    .linux
                    .read_ptr(at(node, layout.pivot).wrapping_add(i * ptr))?;
                if p == 0 && i > 0 {
                    break;
                }
                p
            };
            let slot = self
                .linux
                .read_ptr(at(node, layout.slot).wrapping_add(i * ptr))?;
            if kind == MAPLE_LEAF_64 {
                // NULL is a gap; other internal entries (low bits set) are not VMAs.
                if slot != 0 && slot & 3 == 0 {
                    if self.out.len() >= MAX_LIST {
                        return Err(Incomplete::Limit { max: MAX_LIST });
                    }
                    self.out.push(slot);
                }
            } else if slot != 0 {
                // Children are `node | type << 3 | MAPLE_ENODE_NULL (4)`; only the root
                // also has bit 1 (MAPLE_ROOT_NODE).
                if slot & !0xff <= 4096 {
                    return Err(Incomplete::Corrupt {
                        what: "maple child pointer",
                        at: node,
                    });
                }
                self.node(slot, pivot, depth + 1)?;
            }
            if pivot >= max {
                break;
            }
        }
        Ok(())
    }
}

/// The VMA addresses of `mm`, in address order.
pub fn vmas(linux: &Linux<'_>, mm: u64) -> Result<Listing<u64>, OsiError> {
    if let Some(mt_off) = linux.info.mm.mm_mt_offset {
        let root_off = linux.info.maple.ma_root_offset.unwrap_or(8);
        let root = linux.read_ptr(at(at(mm, mt_off), root_off))?;
        if root == 0 {
            return Ok(Listing::complete(Vec::new()));
        }
        if !is_node(root) {
            return Ok(Listing::complete(vec![root]));
        }
        let mut walk = MapleWalk {
            linux,
            layout: MapleLayout::new(linux),
            seen: HashSet::new(),
            out: Vec::new(),
        };
        let max = if linux.ptr_size() == 4 {
            u64::from(u32::MAX)
        } else {
            u64::MAX
        };
        let incomplete = walk.node(root, max, 0).err();
        return Ok(Listing {
            items: walk.out,
            incomplete,
        });
    }
    let mmap_off = need(linux.info.mm.mmap_offset, "mm.mmap_offset", "list mappings")?;
    let next_off = need(
        linux.info.vma.vm_next_offset,
        "vma.vm_next_offset",
        "list mappings",
    )?;
    let mut items = Vec::new();
    let mut seen = HashSet::new();
    let mut vma = linux.read_ptr_at(mm, mmap_off)?;
    while vma != 0 {
        if items.len() >= MAX_LIST {
            return Ok(Listing {
                items,
                incomplete: Some(Incomplete::Limit { max: MAX_LIST }),
            });
        }
        if !seen.insert(vma) {
            return Ok(Listing {
                items,
                incomplete: Some(Incomplete::Cycle { at: vma }),
            });
        }
        items.push(vma);
        match linux.read_ptr_at(vma, next_off) {
            Ok(next) => vma = next,
            Err(f) => {
                return Ok(Listing {
                    items,
                    incomplete: Some(f.into()),
                });
            }
        }
    }
    Ok(Listing::complete(items))
}

/// One VMA as a [`Mapping`].
pub fn mapping(linux: &Linux<'_>, vma: u64) -> Result<Mapping, OsiError> {
    let v = &linux.info.vma;
    let start = linux.read_ptr_at(vma, v.vm_start_offset)?;
    let end = linux.read_ptr_at(vma, v.vm_end_offset)?;
    let flags = linux.read_ptr_at(vma, v.vm_flags_offset)?;
    let file = linux.read_ptr_at(vma, v.vm_file_offset)?;
    // Like /proc/<pid>/maps: the page offset means something only for file mappings
    // (an anonymous VMA's vm_pgoff is its start page, shown there as 0).
    let offset = match v.vm_pgoff_offset {
        Some(off) if file != 0 => linux.read_ptr_at(vma, off)?.wrapping_mul(4096),
        _ => 0,
    };
    let path = if file == 0 {
        None
    } else {
        file_path(linux, file).ok()
    };
    Ok(Mapping {
        start,
        end,
        flags,
        offset,
        path,
    })
}

/// The mappings of the process whose task is `task`; empty without `mm`.
pub fn mappings(linux: &Linux<'_>, task: u64) -> Result<Listing<Mapping>, OsiError> {
    let mm = linux.read_ptr_at(task, linux.info.task.mm_offset)?;
    if mm == 0 {
        return Ok(Listing::complete(Vec::new()));
    }
    // The walk and the paths read at most READ_BUDGET bytes: beyond, the listing stops.
    let budget = crate::mem::Budgeted::new(linux.mem, super::path::READ_BUDGET);
    let linux = &Linux::new(&budget, linux.info, linux.ctx);
    let mut listing = vmas(linux, mm)?.try_map(|vma| mapping(linux, vma))?;
    if budget.exhausted() {
        listing.incomplete = Some(crate::osi::Incomplete::Limit {
            max: listing.items.len(),
        });
    }
    Ok(listing)
}
