//! Guest page tables walked in software, over guest physical memory.
//!
//! QEMU reads guest virtual memory only through the page tables the vCPU uses now. Under
//! KPTI a user-mode callback has the user tables, which do not map the kernel; and the
//! memory of a process that is not running is in tables no vCPU uses. Both are reachable
//! through the right table root and physical reads (plugin API 5 and later), or, with the
//! kernel readable, through its direct map ([`DirectMap`]).

use super::{Fault, GuestMemory, PhysicalMemory};
use crate::arch::Arch;

/// A page-table format: x86's, or arm64's user half (`TTBR0_EL1`, 4 KiB granule).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Paging {
    /// arm64, 4 KiB granule: `va_bits` of user address (64 - `TCR_EL1.T0SZ`: 39 to 52),
    /// `lpa2` when `TCR_EL1.DS` gives entries 52-bit output addresses (bits 9:8 hold
    /// address bits 51:50).
    Arm64 {
        /// Bits of virtual address the tables translate.
        va_bits: u8,
        /// 52-bit output addresses.
        lpa2: bool,
    },
    /// 32-bit, two levels of 4-byte entries (4 KiB and 4 MiB pages).
    TwoLevel,
    /// 32-bit PAE: a 4-entry pointer table, then two levels of 8-byte entries.
    Pae,
    /// 64-bit, four levels (48-bit addresses).
    FourLevel,
    /// 64-bit, five levels (57-bit addresses, CR4.LA57).
    FiveLevel,
    /// 32-bit ARM with LPAE (`TTBCR.EAE`), the user half (`TTBR0`, `TTBCR.T0SZ` = 0):
    /// three levels of 8-byte long descriptors (4 entries of 1 GiB, then 512 of 2 MiB,
    /// then 512 of 4 KiB pages; blocks at the first two levels), 40-bit output addresses.
    ArmLpae,
    /// 32-bit ARM without LPAE, the user half (`TTBR0`, `TTBCR.N` = 0): short descriptors,
    /// 4096 first-level entries of 1 MiB (sections, 16 MiB supersections, or a table of
    /// 256 entries of 4 KiB small or 64 KiB large pages).
    ArmShort,
}

/// CR4.PAE.
const CR4_PAE: u64 = 1 << 5;
/// CR4.LA57.
const CR4_LA57: u64 = 1 << 12;
/// Present.
const P: u64 = 1;
/// Page size: this entry maps a large page.
const PS: u64 = 1 << 7;
/// Physical address bits of a 64-bit entry (bits 12..51).
const ADDR: u64 = 0x000f_ffff_ffff_f000;

/// The bit in which KPTI's user-mode table root differs from the kernel-mode one: the
/// kernel allocates the two as one 8 KiB block, user half second.
pub const KPTI_USER_BIT: u64 = 0x1000;

/// Whether the table roots `a` and `b` (asids: physical addresses of top tables) belong
/// to one address space: equal, or the two halves of one KPTI pair. Exact below the
/// page: 32-bit ARM's LPAE first-level tables are 32 bytes, many to a page.
pub fn same_address_space(a: u64, b: u64) -> bool {
    (a ^ b) & !KPTI_USER_BIT == 0
}

impl Paging {
    /// The format of arm64's user half with `TCR_EL1` = `tcr` (4 KiB granule only).
    pub fn arm64(tcr: u64) -> Option<Paging> {
        let t0sz = tcr & 0x3f;
        let tg0 = (tcr >> 14) & 3;
        let va_bits = 64 - t0sz;
        (tg0 == 0 && (25..=52).contains(&va_bits)).then_some(Paging::Arm64 {
            va_bits: va_bits as u8,
            lpa2: tcr & (1 << 59) != 0,
        })
    }

    /// The format of 32-bit ARM's user half with `TTBCR` = `ttbcr`: long descriptors when
    /// `EAE` (bit 31) is set, short ones otherwise. `None` for a split Linux does not use
    /// (`T0SZ` or `N` not 0: `TTBR0` then covers less than the walk's first level assumes).
    pub fn arm(ttbcr: u64) -> Option<Paging> {
        let format = if ttbcr & (1 << 31) != 0 {
            Paging::ArmLpae
        } else {
            Paging::ArmShort
        };
        (ttbcr & 7 == 0).then_some(format)
    }

    /// The format an `arch` vCPU uses with CR4 = `cr4`; `None` for a guest that is not
    /// x86 ([`Paging::arm64`] for arm64).
    pub fn x86(arch: Arch, cr4: u64) -> Option<Paging> {
        Some(match arch {
            Arch::X86_64 if cr4 & CR4_LA57 != 0 => Paging::FiveLevel,
            Arch::X86_64 => Paging::FourLevel,
            Arch::I386 if cr4 & CR4_PAE != 0 => Paging::Pae,
            Arch::I386 => Paging::TwoLevel,
            Arch::Aarch64 | Arch::Arm => return None,
        })
    }

    /// The physical address of the top table that CR3 = `cr3` names (without the PCID
    /// and flag bits).
    pub fn root(self, cr3: u64) -> u64 {
        match self {
            Paging::TwoLevel => cr3 & 0xffff_f000,
            Paging::Pae => cr3 & 0xffff_ffe0,
            Paging::FourLevel | Paging::FiveLevel => cr3 & ADDR,
            Paging::Arm64 { lpa2, .. } => {
                let high = if lpa2 { ((cr3 >> 2) & 0xf) << 48 } else { 0 };
                (cr3 & 0x0000_ffff_ffff_ffc0) | high
            }
            // TTBR0: bits 39:5 (the ASID above), or bits 31:14 (walk attributes below).
            Paging::ArmLpae => cr3 & 0x0000_00ff_ffff_ffe0,
            Paging::ArmShort => cr3 & 0xffff_c000,
        }
    }

    /// The physical address `va` maps to under the tables at `root`, or the fault of the
    /// first table entry that is not present (or not readable).
    pub fn translate(self, phys: &dyn PhysicalMemory, root: u64, va: u64) -> Result<u64, Fault> {
        let fault = Fault { va, len: 1 };
        let entry8 = |table: u64, index: u64| -> Result<u64, Fault> {
            let mut b = [0; 8];
            phys.read_physical(table + index * 8, &mut b)
                .map_err(|_| fault)?;
            let e = u64::from_le_bytes(b);
            if e & P == 0 { Err(fault) } else { Ok(e) }
        };
        match self {
            Paging::Arm64 { va_bits, lpa2 } => {
                long_descriptor_translate(phys, root, va, va_bits, lpa2, ARM64_OA)
            }
            Paging::ArmLpae => long_descriptor_translate(phys, root, va, 32, false, LPAE_OA),
            Paging::ArmShort => arm_short_translate(phys, root, va),
            Paging::TwoLevel => {
                let entry4 = |table: u64, index: u64| -> Result<u64, Fault> {
                    let mut b = [0; 4];
                    phys.read_physical(table + index * 4, &mut b)
                        .map_err(|_| fault)?;
                    let e = u64::from(u32::from_le_bytes(b));
                    if e & P == 0 { Err(fault) } else { Ok(e) }
                };
                let va = va & 0xffff_ffff;
                let pde = entry4(root, va >> 22)?;
                if pde & PS != 0 {
                    return Ok((pde & 0xffc0_0000) | (va & 0x003f_ffff));
                }
                let pte = entry4(pde & 0xffff_f000, (va >> 12) & 0x3ff)?;
                Ok((pte & 0xffff_f000) | (va & 0xfff))
            }
            Paging::Pae => {
                let va = va & 0xffff_ffff;
                let pdpte = entry8(root, va >> 30)?;
                let pde = entry8(pdpte & ADDR, (va >> 21) & 0x1ff)?;
                if pde & PS != 0 {
                    return Ok((pde & ADDR & !0x1f_ffff) | (va & 0x1f_ffff));
                }
                let pte = entry8(pde & ADDR, (va >> 12) & 0x1ff)?;
                Ok((pte & ADDR) | (va & 0xfff))
            }
            Paging::FourLevel | Paging::FiveLevel => {
                let mut table = root;
                if self == Paging::FiveLevel {
                    table = entry8(table, (va >> 48) & 0x1ff)? & ADDR;
                }
                let pml4e = entry8(table, (va >> 39) & 0x1ff)?;
                let pdpte = entry8(pml4e & ADDR, (va >> 30) & 0x1ff)?;
                if pdpte & PS != 0 {
                    return Ok((pdpte & ADDR & !0x3fff_ffff) | (va & 0x3fff_ffff));
                }
                let pde = entry8(pdpte & ADDR, (va >> 21) & 0x1ff)?;
                if pde & PS != 0 {
                    return Ok((pde & ADDR & !0x1f_ffff) | (va & 0x1f_ffff));
                }
                let pte = entry8(pde & ADDR, (va >> 12) & 0x1ff)?;
                Ok((pte & ADDR) | (va & 0xfff))
            }
        }
    }

    /// Bytes of one top-table entry.
    fn entry_size(self) -> usize {
        if self == Paging::TwoLevel { 4 } else { 8 }
    }

    /// Entries of the top table that map user space (below the kernel's split: 3 GiB on
    /// i386, the lower canonical half on x86_64).
    fn user_entries(self) -> usize {
        match self {
            Paging::TwoLevel => 768,
            Paging::Pae => 3,
            Paging::FourLevel | Paging::FiveLevel => 256,
            // arm64's and ARM's user halves have tables of their own: KPTI pairs are an
            // x86 matter.
            Paging::Arm64 { .. } | Paging::ArmLpae | Paging::ArmShort => 0,
        }
    }

    /// The kernel-mode table root KPTI pairs with the user-mode `root`, if `root` is
    /// one: it has the user bit set, and the table one page below maps user space through
    /// the very same lower-level tables (KPTI keeps the two tables' user halves equal, the
    /// kernel's copies with NX set). Anything else (no KPTI, or a page below that is
    /// something else) gives `None`, so that no unrelated page is taken for a page table.
    pub fn kpti_kernel_root(self, phys: &dyn PhysicalMemory, root: u64) -> Option<u64> {
        if root & KPTI_USER_BIT == 0 {
            return None;
        }
        let kernel = root & !KPTI_USER_BIT;
        let (size, n) = (self.entry_size(), self.user_entries());
        let mut user_half = vec![0; size * n];
        let mut kernel_half = vec![0; size * n];
        phys.read_physical(root, &mut user_half).ok()?;
        phys.read_physical(kernel, &mut kernel_half).ok()?;
        let entry = |half: &[u8], i: usize| {
            let mut b = [0; 8];
            b[..size].copy_from_slice(&half[i * size..(i + 1) * size]);
            u64::from_le_bytes(b)
        };
        let mut shared = 0;
        for i in 0..n {
            let (u, k) = (entry(&user_half, i), entry(&kernel_half, i));
            // Present in one and not the other, or pointing elsewhere: not a KPTI pair.
            if (u ^ k) & P != 0 || (u & P != 0 && u & ADDR != k & ADDR) {
                return None;
            }
            shared += usize::from(u & P != 0);
        }
        (shared > 0).then_some(kernel)
    }
}

/// Output-address bits of a long descriptor: arm64's 48 (without LPA2), LPAE's 40.
const ARM64_OA: u64 = 0x0000_ffff_ffff_f000;
const LPAE_OA: u64 = 0x0000_00ff_ffff_f000;

/// The long-descriptor walk of arm64 (4 KiB granule) and of 32-bit ARM's LPAE (its user
/// half, `T0SZ` = 0: `va_bits` 32, output bits 39:12): from the level that covers `va_bits`
/// down to level 3, nine bits a level (the top level takes what is left). Bit 0 of an
/// entry says valid; bit 1 says table (page at level 3), clear for a block, which ends the
/// walk at levels 1 and 2 (and 0 with LPA2). `oa_mask` keeps the output address's bits
/// (LPA2 adds bits 51:50 from the entry's bits 9:8).
fn long_descriptor_translate(
    phys: &dyn PhysicalMemory,
    root: u64,
    va: u64,
    va_bits: u8,
    lpa2: bool,
    oa_mask: u64,
) -> Result<u64, Fault> {
    let fault = Fault { va, len: 1 };
    if va_bits < 64 && va >> va_bits != 0 {
        return Err(fault);
    }
    let out = |e: u64| {
        let low = e & 0x0003_ffff_ffff_f000;
        if lpa2 {
            low | ((e >> 8) & 3) << 50
        } else {
            low & oa_mask
        }
    };
    // Levels: 3 translates bits 20:12, 2 bits 29:21, 1 bits 38:30, 0 bits 47:39, -1 51:48.
    let levels = (i32::from(va_bits) - 12 + 8) / 9;
    let mut table = root;
    for level in (4 - levels)..=3 {
        let shift = 12 + 9 * (3 - level) as u32;
        let index = (va >> shift) & 0x1ff;
        let mut b = [0; 8];
        phys.read_physical(table + index * 8, &mut b)
            .map_err(|_| fault)?;
        let e = u64::from_le_bytes(b);
        if e & 1 == 0 {
            return Err(fault);
        }
        let is_table = e & 2 != 0;
        if level == 3 {
            if !is_table {
                return Err(fault);
            }
            return Ok(out(e) | (va & 0xfff));
        }
        if !is_table {
            if level < 1 && !lpa2 {
                return Err(fault);
            }
            let size = 1u64 << shift;
            return Ok((out(e) & !(size - 1)) | (va & (size - 1)));
        }
        table = out(e);
    }
    Err(fault)
}

/// 32-bit ARM's short-descriptor walk (`N` = 0): the first level by bits 31:20 (type in
/// bits 1:0: 1 a second-level table at bits 31:10; 2 a section at bits 31:20, or with bit
/// 18 a supersection at bits 31:24, output bits 35:32 from bits 23:20 and 39:36 from bits
/// 8:5), the second by bits 19:12 (type 1 a 64 KiB large page at bits 31:16, 2 or 3 a 4 KiB
/// small page at bits 31:12).
fn arm_short_translate(phys: &dyn PhysicalMemory, root: u64, va: u64) -> Result<u64, Fault> {
    let fault = Fault { va, len: 1 };
    if va >> 32 != 0 {
        return Err(fault);
    }
    let entry = |at: u64| -> Result<u64, Fault> {
        let mut b = [0; 4];
        phys.read_physical(at, &mut b).map_err(|_| fault)?;
        Ok(u64::from(u32::from_le_bytes(b)))
    };
    let first = entry(root + (va >> 20) * 4)?;
    match first & 3 {
        1 => {
            let second = entry((first & 0xffff_fc00) + ((va >> 12) & 0xff) * 4)?;
            match second & 3 {
                0 => Err(fault),
                1 => Ok((second & 0xffff_0000) | (va & 0xffff)),
                _ => Ok((second & 0xffff_f000) | (va & 0xfff)),
            }
        }
        2 if first & (1 << 18) != 0 => {
            let high = ((first >> 20) & 0xf) << 32 | ((first >> 5) & 0xf) << 36;
            Ok(high | (first & 0xff00_0000) | (va & 0x00ff_ffff))
        }
        2 => Ok((first & 0xfff0_0000) | (va & 0x000f_ffff)),
        _ => Err(fault),
    }
}

/// Guest physical memory read through the kernel's direct map (`pa + page_offset`), for
/// walks where QEMU reads no physical memory (plugin API 4) but the kernel is readable.
pub struct DirectMap<'a> {
    /// Memory where the direct map is readable.
    pub mem: &'a dyn GuestMemory,
    /// Where the direct map starts: `va = pa + page_offset`.
    pub page_offset: u64,
}

impl PhysicalMemory for DirectMap<'_> {
    fn read_physical(&self, pa: u64, buf: &mut [u8]) -> Result<(), Fault> {
        self.mem
            .read(pa.wrapping_add(self.page_offset), buf)
            .map_err(|_| Fault {
                va: pa,
                len: buf.len(),
            })
    }
}

/// Guest virtual memory of the address space whose tables are at `root`, read through
/// physical memory: for a process that is not running, or the kernel under KPTI.
pub struct AddressSpace<'a> {
    /// Guest physical memory.
    pub phys: &'a dyn PhysicalMemory,
    /// The table format.
    pub paging: Paging,
    /// Physical address of the top table.
    pub root: u64,
}

impl GuestMemory for AddressSpace<'_> {
    fn read(&self, va: u64, buf: &mut [u8]) -> Result<(), Fault> {
        let fault = Fault { va, len: buf.len() };
        let mut done = 0;
        while done < buf.len() {
            let at = va.wrapping_add(done as u64);
            let in_page = (0x1000 - (at & 0xfff)) as usize;
            let n = in_page.min(buf.len() - done);
            let pa = self
                .paging
                .translate(self.phys, self.root, at)
                .map_err(|_| fault)?;
            self.phys
                .read_physical(pa, &mut buf[done..done + n])
                .map_err(|_| fault)?;
            done += n;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// Sparse guest physical memory.
    #[derive(Default)]
    struct Ram(BTreeMap<u64, u8>);

    impl Ram {
        fn put(&mut self, pa: u64, bytes: &[u8]) {
            for (i, b) in bytes.iter().enumerate() {
                self.0.insert(pa + i as u64, *b);
            }
        }
        fn put64(&mut self, pa: u64, v: u64) {
            self.put(pa, &v.to_le_bytes());
        }
        fn put32(&mut self, pa: u64, v: u32) {
            self.put(pa, &v.to_le_bytes());
        }
    }

    impl PhysicalMemory for Ram {
        fn read_physical(&self, pa: u64, buf: &mut [u8]) -> Result<(), Fault> {
            let fault = Fault {
                va: pa,
                len: buf.len(),
            };
            for (i, b) in buf.iter_mut().enumerate() {
                *b = *self.0.get(&(pa + i as u64)).ok_or(fault)?;
            }
            Ok(())
        }
    }

    const KERNEL_VA: u64 = 0xffff_8880_0123_4567;

    /// 32-bit ARM, LPAE: TTBR0's table at 0x1000 (ASID 0x2a above it); 0x0001_0123 in a
    /// 4 KiB page at 0x4_5678_9000 (above 4 GiB: 40-bit output), 0x0060_0042 in a 2 MiB
    /// block at 0x7_0000_0000, 0x8000_0010 in a 1 GiB block at 0x1_4000_0000.
    #[test]
    fn arm_lpae_pages_and_blocks() {
        let mut ram = Ram::default();
        let l1 = 0x1000u64;
        ram.put64(l1, 0x2000 | 3); // 0..1 GiB: a table
        ram.put64(l1 + 2 * 8, 0x1_4000_0000 | 1); // 2..3 GiB: a 1 GiB block
        ram.put64(0x2000, 0x3000 | 3); // 0..2 MiB: a table
        ram.put64(0x2000 + 3 * 8, 0x7_0000_0000 | 1); // 6..8 MiB: a 2 MiB block
        ram.put64(0x3000 + 0x10 * 8, 0x4_5678_9000 | 3 | 0x700); // a page, with attributes
        let p = Paging::arm(0x8000_0000 | 2 << 16).unwrap();
        assert_eq!(p, Paging::ArmLpae);
        let root = p.root(0x002a_0000_0000_1000);
        assert_eq!(root, 0x1000);
        assert_eq!(p.translate(&ram, root, 0x0001_0123), Ok(0x4_5678_9123));
        assert_eq!(p.translate(&ram, root, 0x0060_0042), Ok(0x7_0000_0042));
        assert_eq!(p.translate(&ram, root, 0x8000_0010), Ok(0x1_4000_0010));
        // Not mapped: a missing level-3 entry, an invalid level-1 entry, past 32 bits.
        assert!(p.translate(&ram, root, 0x0001_1000).is_err());
        assert!(p.translate(&ram, root, 0x4000_0000).is_err());
        assert!(p.translate(&ram, root, 0x1_0000_0000).is_err());
        // A split Linux does not use is refused.
        assert_eq!(Paging::arm(0x8000_0001), None);
    }

    /// 32-bit ARM, short descriptors: tables at 0x4000; a small page, a large page, a
    /// section and a supersection.
    #[test]
    fn arm_short_pages_and_sections() {
        let mut ram = Ram::default();
        let l1 = 0x4000u64;
        ram.put32(l1, 0x8000 | 1); // 0..1 MiB: a second-level table at 0x8000
        ram.put32(l1 + 0x123 * 4, 0x4560_0000 | 2 | 0xc00); // 0x123xxxxx: a section
        // A supersection (output bits 35:32 = 3, 39:36 = 1), repeated over its 16 MiB.
        for i in 0x200..0x210 {
            ram.put32(l1 + i * 4, 0x4700_0000 | 1 << 18 | 2 | 3 << 20 | 1 << 5);
        }
        ram.put32(0x8000 + 0x10 * 4, 0x5555_5000 | 2 | 0x30); // a small page
        // A large page: its entry repeats over the 16 entries of its 64 KiB.
        for i in 0x20..0x30 {
            ram.put32(0x8000 + i * 4, 0x6666_0000 | 1);
        }
        let p = Paging::arm(0).unwrap();
        assert_eq!(p, Paging::ArmShort);
        let root = p.root(0x4000 | 0x59);
        assert_eq!(root, 0x4000);
        assert_eq!(p.translate(&ram, root, 0x0001_0abc), Ok(0x5555_5abc));
        assert_eq!(p.translate(&ram, root, 0x0002_1abc), Ok(0x6666_1abc));
        assert_eq!(p.translate(&ram, root, 0x1234_5678), Ok(0x4564_5678));
        assert_eq!(p.translate(&ram, root, 0x2012_3456), Ok(0x13_4712_3456));
        assert!(p.translate(&ram, root, 0x0003_0000).is_err());
        assert!(p.translate(&ram, root, 0x3000_0000).is_err());
    }

    /// Four-level tables at 0x10000 mapping KERNEL_VA's 4 KiB page to 0x9000, and a 2 MiB
    /// page at 0x4020_0000 -> 0x60_0000.
    fn four_level() -> Ram {
        let mut ram = Ram::default();
        let (pml4, pdpt, pd, pt) = (0x10000, 0x11000, 0x12000, 0x13000);
        ram.put64(pml4 + ((KERNEL_VA >> 39) & 0x1ff) * 8, pdpt | 3);
        ram.put64(pdpt + ((KERNEL_VA >> 30) & 0x1ff) * 8, pd | 3);
        ram.put64(pd + ((KERNEL_VA >> 21) & 0x1ff) * 8, pt | 3);
        ram.put64(pt + ((KERNEL_VA >> 12) & 0x1ff) * 8, 0x9000 | 3);
        ram.put(0x9000, &[0; 0x1000]);
        ram.put(0x9567, b"kernel!\0");
        // A large page: PDPT index 1, PD index 1.
        ram.put64(pml4, 0x14000 | 3);
        ram.put64(0x14000 + 8, 0x15000 | 3);
        ram.put64(0x15000 + 8, 0x60_0000 | PS | 3);
        ram
    }

    #[test]
    fn four_level_small_and_large_pages() {
        let ram = four_level();
        let p = Paging::x86(Arch::X86_64, 0).unwrap();
        assert_eq!(p, Paging::FourLevel);
        assert_eq!(p.translate(&ram, 0x10000, KERNEL_VA), Ok(0x9567));
        assert_eq!(p.translate(&ram, 0x10000, 0x4020_1234), Ok(0x60_1234));
        assert!(p.translate(&ram, 0x10000, 0x7fff_0000_0000).is_err());
        let space = AddressSpace {
            phys: &ram,
            paging: p,
            root: p.root(0x8000_0000_0001_0001),
        };
        assert_eq!(space.read_cstr(KERNEL_VA, 64).unwrap().0, b"kernel!");
    }

    #[test]
    fn reads_cross_pages_and_fail_whole() {
        let mut ram = four_level();
        // The next virtual page maps to 0x20000.
        let next = (KERNEL_VA & !0xfff) + 0x1000;
        ram.put64(0x13000 + ((next >> 12) & 0x1ff) * 8, 0x20000 | 3);
        ram.put(0x9ffe, b"ab");
        ram.put(0x20000, b"cd");
        let space = AddressSpace {
            phys: &ram,
            paging: Paging::FourLevel,
            root: 0x10000,
        };
        let mut buf = [0; 4];
        space.read(next - 2, &mut buf).unwrap();
        assert_eq!(&buf, b"abcd");
        let mut long = [0; 0x1004];
        assert!(space.read(next - 2, &mut long).is_err());
    }

    #[test]
    fn pae_and_two_level() {
        let mut ram = Ram::default();
        // PAE: PDPT at 0x1000 (32-byte aligned root), va 0xc123_4567.
        let va = 0xc123_4567u64;
        ram.put64(0x1000 + (va >> 30) * 8, 0x2000 | 1);
        ram.put64(0x2000 + ((va >> 21) & 0x1ff) * 8, 0x3000 | 3);
        ram.put64(0x3000 + ((va >> 12) & 0x1ff) * 8, 0x7000 | 3);
        let pae = Paging::x86(Arch::I386, CR4_PAE).unwrap();
        assert_eq!(pae, Paging::Pae);
        assert_eq!(pae.translate(&ram, pae.root(0x1000 | 0x18), va), Ok(0x7567));
        // Two-level: PD at 0x8000, a 4 MiB page for 0xc040_0000.
        ram.put32(0x8000 + (0xc040_0000u64 >> 22) * 4, 0x0080_0000 | 0x83);
        let two = Paging::x86(Arch::I386, 0).unwrap();
        assert_eq!(two.translate(&ram, 0x8000, 0xc041_2345), Ok(0x0081_2345));
        assert!(two.translate(&ram, 0x8000, 0x1000).is_err());
    }

    #[test]
    fn a_kpti_pair_is_one_address_space() {
        assert!(same_address_space(0x4000_0000, 0x4000_1000));
        assert!(same_address_space(0x4000_1000, 0x4000_0000));
        assert!(!same_address_space(0x4000_0000, 0x4000_2000));
        assert!(!same_address_space(0x4000_0000, 0x5000_0000));
        assert!(
            !same_address_space(0x4254_1280, 0x4254_1200),
            "two LPAE tables"
        );
    }

    #[test]
    fn kpti_root_only_when_the_user_halves_agree() {
        let mut ram = Ram::default();
        let (kernel, user) = (0x40000u64, 0x41000u64);
        ram.put(kernel, &[0; 0x1000]);
        ram.put(user, &[0; 0x1000]);
        let at = ((0x7ffd_1234_5000u64 >> 39) & 0x1ff) * 8;
        // The kernel's copy has NX and accessed set; the kernel half differs freely.
        ram.put64(kernel + at, 0x30000 | 7 | 0x20 | 1 << 63);
        ram.put64(user + at, 0x30000 | 7);
        ram.put64(kernel + 511 * 8, 0x50000 | 3);
        ram.put64(user + 511 * 8, 0x51000 | 3);
        let p = Paging::FourLevel;
        assert_eq!(p.kpti_kernel_root(&ram, user), Some(kernel));
        // Not a user root (bit clear): no.
        assert_eq!(p.kpti_kernel_root(&ram, kernel), None);
        // The page below maps user space elsewhere, or not at all: no.
        ram.put64(kernel + at, 0x31000 | 7);
        assert_eq!(p.kpti_kernel_root(&ram, user), None);
        ram.put64(kernel + at, 0);
        assert_eq!(p.kpti_kernel_root(&ram, user), None);
        // Both user halves empty: nothing shows they are a pair.
        ram.put64(user + at, 0);
        assert_eq!(p.kpti_kernel_root(&ram, user), None);
        // PAE: three user entries of eight bytes.
        let mut ram = Ram::default();
        ram.put(0x2000, &[0; 32]);
        ram.put(0x3000, &[0; 32]);
        ram.put64(0x2000 + 16, 0x9000 | 1);
        ram.put64(0x3000 + 16, 0x9000 | 1);
        ram.put64(0x3000 + 24, 0xa000 | 1);
        assert_eq!(Paging::Pae.kpti_kernel_root(&ram, 0x3000), Some(0x2000));
    }

    #[test]
    fn arm64_user_tables_are_walked_at_48_and_52_bits() {
        let mut ram = Ram::default();
        let va = 0x0000_aaaa_c123_4567u64;
        // 48 bits: four levels from level 0.
        let (l0, l1, l2, l3) = (0x4000_0000u64, 0x4000_1000, 0x4000_2000, 0x4000_3000);
        ram.put64(l0 + ((va >> 39) & 0x1ff) * 8, l1 | 3);
        ram.put64(l1 + ((va >> 30) & 0x1ff) * 8, l2 | 3);
        ram.put64(l2 + ((va >> 21) & 0x1ff) * 8, l3 | 3);
        ram.put64(l3 + ((va >> 12) & 0x1ff) * 8, 0x4567_8000 | 0x703);
        ram.put(0x4567_8567, b"argv");
        let tcr48 = 16; // T0SZ = 16, TG0 = 4 KiB
        let p = Paging::arm64(tcr48).unwrap();
        assert_eq!(
            p,
            Paging::Arm64 {
                va_bits: 48,
                lpa2: false
            }
        );
        assert_eq!(p.translate(&ram, p.root(l0 | 1), va), Ok(0x4567_8567));
        let space = AddressSpace {
            phys: &ram,
            paging: p,
            root: l0,
        };
        let mut b = [0; 4];
        space.read(va, &mut b).unwrap();
        assert_eq!(&b, b"argv");
        // A 2 MiB block at level 2.
        let vb = 0x0000_aaaa_c1e0_0042u64;
        ram.put64(l2 + ((vb >> 21) & 0x1ff) * 8, 0x4880_0000 | 1);
        assert_eq!(p.translate(&ram, l0, vb), Ok(0x4880_0042));
        // Nothing mapped, or an address past the user half.
        assert!(p.translate(&ram, l0, 0x0000_1111_0000_0000).is_err());
        assert!(p.translate(&ram, l0, 0x0001_0000_0000_0000).is_err());
        // 52 bits with LPA2: five levels from level -1, output bits 51:50 in bits 9:8.
        let tcr52 = 12 | (1 << 59);
        let p = Paging::arm64(tcr52).unwrap();
        let va = 0x000a_aaaa_c123_4567u64;
        let top = 0x5000_0000u64;
        ram.put64(top + ((va >> 48) & 0xf) * 8, l0 | 3);
        ram.put64(l0 + ((va >> 39) & 0x1ff) * 8, l1 | 3);
        ram.put64(l3 + ((va >> 12) & 0x1ff) * 8, 0x4567_8000 | 0x100 | 3);
        assert_eq!(p.translate(&ram, top, va), Ok((1 << 50) | 0x4567_8567));
        // 64 KiB granules are not walked.
        assert_eq!(Paging::arm64(16 | (1 << 14)), None);
    }
}
