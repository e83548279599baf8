//! Guest memory behind one small trait, so that everything that walks guest structures
//! runs the same on QEMU's live memory and on synthetic images in tests.

/// A read of guest memory failed: the address is not mapped in the address space the
/// vCPU is using now (or paged out).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cannot read {len} bytes of guest memory at {va:#x}")]
pub struct Fault {
    /// First byte asked for.
    pub va: u64,
    /// Bytes asked for.
    pub len: usize,
}

/// Memory where nothing can be read: for work done outside any vCPU (the end of the
/// run), where QEMU has no current vCPU to read through.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoMemory;

impl GuestMemory for NoMemory {
    fn read(&self, va: u64, buf: &mut [u8]) -> Result<(), Fault> {
        Err(Fault { va, len: buf.len() })
    }
}

pub mod paging;

/// Guest physical memory: where QEMU offers it (plugin API 5 and later), the page tables
/// of any address space can be walked in software ([`paging`]).
pub trait PhysicalMemory {
    /// Fills `buf` from guest physical address `pa`, all or nothing; the fault names `pa`.
    fn read_physical(&self, pa: u64, buf: &mut [u8]) -> Result<(), Fault>;
}

/// Guest memory that refuses reads once `budget` bytes were read: bounds the work of one
/// walk over structures a hostile guest controls (a path per open file, a name per
/// component), where each read is a trip through QEMU inside a vCPU callback. Found by
/// fuzzing: 65,536 descriptors of 256-component paths took minutes.
pub struct Budgeted<'a> {
    mem: &'a dyn GuestMemory,
    left: std::cell::Cell<usize>,
}

impl<'a> Budgeted<'a> {
    /// `mem`, of which at most `budget` bytes will be read.
    pub fn new(mem: &'a dyn GuestMemory, budget: usize) -> Self {
        Budgeted {
            mem,
            left: std::cell::Cell::new(budget),
        }
    }

    /// Whether the budget is spent: a read was refused, or the next one will be.
    pub fn exhausted(&self) -> bool {
        self.left.get() == 0
    }

    /// Takes `len` bytes from the budget; `false` (and the budget spent) when they are not
    /// there.
    fn take(&self, len: usize) -> bool {
        match self.left.get().checked_sub(len) {
            Some(left) => {
                self.left.set(left);
                true
            }
            None => {
                self.left.set(0);
                false
            }
        }
    }
}

impl GuestMemory for Budgeted<'_> {
    fn read(&self, va: u64, buf: &mut [u8]) -> Result<(), Fault> {
        if !self.take(buf.len()) {
            return Err(Fault { va, len: buf.len() });
        }
        self.mem.read(va, buf)
    }

    fn read_in(&self, root: u64, va: u64, buf: &mut [u8]) -> Result<(), Fault> {
        if !self.take(buf.len()) {
            return Err(Fault { va, len: buf.len() });
        }
        self.mem.read_in(root, va, buf)
    }

    fn mapped_now(&self, va: u64) -> bool {
        self.mem.mapped_now(va)
    }
}

/// Guest virtual memory as seen by the current vCPU. One primitive; typed helpers below.
pub trait GuestMemory {
    /// Fills `buf` from guest virtual address `va`, all or nothing.
    fn read(&self, va: u64, buf: &mut [u8]) -> Result<(), Fault>;

    /// Fills `buf` from `va` in the address space whose top page table is at physical
    /// address `root` (an `asid`), not the one the vCPU uses now: another process's
    /// memory. Default: such reads are not possible (QEMU before plugin API 5).
    fn read_in(&self, root: u64, va: u64, buf: &mut [u8]) -> Result<(), Fault> {
        let _ = root;
        Err(Fault { va, len: buf.len() })
    }

    /// Whether `va` is mapped in the page tables the vCPU uses now, not counting reads
    /// an implementation makes through other tables (the kernel's under KPTI).
    fn mapped_now(&self, va: u64) -> bool {
        self.read(va, &mut [0; 1]).is_ok()
    }

    /// A little-endian `u32` at `va`.
    fn read_u32(&self, va: u64) -> Result<u32, Fault> {
        let mut b = [0; 4];
        self.read(va, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    /// A little-endian `u64` at `va`.
    fn read_u64(&self, va: u64) -> Result<u64, Fault> {
        let mut b = [0; 8];
        self.read(va, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    /// A NUL-terminated string of at most `max` bytes at `va`, without the NUL; the flag
    /// says whether it was cut at `max`. Reads in small chunks so that a string ending
    /// just before an unmapped page is still read.
    fn read_cstr(&self, va: u64, max: usize) -> Result<(Vec<u8>, bool), Fault> {
        let mut out = Vec::new();
        let cut = self.read_cstr_with(va, max, &mut |bytes| out.extend_from_slice(bytes))?;
        Ok((out, cut))
    }

    /// [`GuestMemory::read_cstr`] handing the bytes to `take` piece by piece, for a caller
    /// that keeps them in its own storage. A fault after some pieces were taken is still
    /// a fault.
    fn read_cstr_with(
        &self,
        va: u64,
        max: usize,
        take: &mut dyn FnMut(&[u8]),
    ) -> Result<bool, Fault> {
        const CHUNK: usize = 64;
        let mut done = 0;
        while done < max {
            let at = va.wrapping_add(done as u64);
            // Never let a chunk cross a page boundary: the next page may be unmapped.
            let to_page_end = (0x1000 - (at & 0xfff)) as usize;
            let n = CHUNK.min(max - done).min(to_page_end);
            let mut chunk = [0u8; CHUNK];
            self.read(at, &mut chunk[..n])?;
            if let Some(nul) = chunk[..n].iter().position(|&b| b == 0) {
                take(&chunk[..nul]);
                return Ok(false);
            }
            take(&chunk[..n]);
            done += n;
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One page of memory at 0x1000; everything else faults.
    struct OnePage(Vec<u8>);

    impl GuestMemory for OnePage {
        fn read(&self, va: u64, buf: &mut [u8]) -> Result<(), Fault> {
            let fault = Fault { va, len: buf.len() };
            let start = va.checked_sub(0x1000).ok_or(fault)? as usize;
            let src = self.0.get(start..start + buf.len()).ok_or(fault)?;
            buf.copy_from_slice(src);
            Ok(())
        }
    }

    #[test]
    fn typed_reads() {
        let mut page = vec![0u8; 0x1000];
        page[8..16].copy_from_slice(&0x1122_3344_5566_7788u64.to_le_bytes());
        page[0x100..0x106].copy_from_slice(b"hello\0");
        page[0xffc..].copy_from_slice(b"abcd");
        let mem = OnePage(page);
        assert_eq!(mem.read_u64(0x1008), Ok(0x1122_3344_5566_7788));
        assert_eq!(mem.read_u32(0x1008), Ok(0x5566_7788));
        assert_eq!(mem.read_cstr(0x1100, 100), Ok((b"hello".to_vec(), false)));
        assert_eq!(mem.read_cstr(0x1100, 3), Ok((b"hel".to_vec(), true)));
        // A string running into an unmapped page faults there, not before.
        assert_eq!(
            mem.read_cstr(0x1ffc, 100),
            Err(Fault {
                va: 0x2000,
                len: 64
            })
        );
        assert_eq!(mem.read_u64(0x5000), Err(Fault { va: 0x5000, len: 8 }));
    }
}
