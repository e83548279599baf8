//! Kernelinfo from the running kernel's memory: no image file, no argument.
//!
//! ```text
//! kernel text address ──read forward──▶ .text … .rodata (banner, kallsyms) … .BTF ─┐
//!                                                             stop at the BTF's end ┘
//!   bytes ──▶ kallsyms (run-time) ──_text──▶ KASLR slide ──▶ link-time addresses ─┐
//!         └─▶ .BTF ─────────────────────────────────────────▶ struct layouts ─────┴▶ group
//! ```
//!
//! The kernel's read-only data follows its text, and `.BTF` closes it; so from any
//! address in the kernel's text (the plugin takes the first kernel block QEMU translates)
//! the image is read forward until the end of the BTF blob. The same stages as the
//! offline generator then run over the bytes ([`profile::build`]), with addresses moved
//! back by the KASLR slide: the group is the one `vmi kernelinfo` makes from the image
//! file, and serves later runs and replays as `conf=`.

use super::GenError;
use super::btf::Btf;
use super::kallsyms;
use super::profile::{self, Generated, KernelImage};
use super::symbols::SymbolFile;
use super::types::Types;
use crate::mem::GuestMemory;

/// Bytes read at a time.
const CHUNK: usize = 64 << 10;

/// The most read before giving up: text, read-only data and BTF of Debian's 7.2 take
/// 35 MiB from `_text`. A kernel without BTF is read up to here (i386's image lies in a
/// direct map that goes on for hundreds of MiB).
const MAX_READ: usize = 96 << 20;

/// Fewer bytes readable than this from a kernel text address: the kernel is not mapped
/// here (user page tables under KPTI, a module's few pages); try from another place.
const MIN_READ: usize = 1 << 20;

/// Where reading resumes after an unmapped hole, and how many holes are crossed.
const HOLE_ALIGN: u64 = 2 << 20;
const MAX_HOLES: usize = 2;

/// `.BTF` starts with this: magic `0xeB9F`, version 1, flags 0, a 24-byte header.
const BTF_HEADER: [u8; 8] = [0x9f, 0xeb, 0x01, 0x00, 0x18, 0x00, 0x00, 0x00];

/// Why the kernelinfo could not be built from memory.
#[derive(Debug, thiserror::Error)]
pub enum FromMemoryError {
    /// Too little is readable from the address given: try from another place or time.
    #[error("only {read} bytes of kernel memory are readable from {from:#x}")]
    Unreadable {
        /// Where reading started.
        from: u64,
        /// Bytes read before the first unreadable page.
        read: usize,
    },
    /// The kernel carries no BTF (`CONFIG_DEBUG_INFO_BTF` off): its layouts must come from
    /// its debug information, offline.
    #[error(
        "no BTF in the guest kernel's memory ({symbols} kallsyms symbols found, {read} bytes read)"
    )]
    NoBtf {
        /// Symbols the kallsyms tables gave.
        symbols: usize,
        /// Bytes read.
        read: usize,
    },
    /// The kallsyms tables hold code symbols only (`CONFIG_KALLSYMS_ALL` off): no
    /// `init_task`, no `linux_banner`.
    #[error(
        "the guest kernel's kallsyms has no data symbols ({symbols} code symbols; CONFIG_KALLSYMS_ALL is off)"
    )]
    NoDataSymbols {
        /// Symbols the tables gave.
        symbols: usize,
    },
    /// `_text` is not where a kernel linked at `link` can be.
    #[error("the kernel's _text is at {text:#x}, not {link:#x} moved by whole pages")]
    Slide {
        /// Run-time `_text`.
        text: u64,
        /// Where the kernel is linked.
        link: u64,
    },
    /// A stage of the generator failed on the bytes read.
    #[error(transparent)]
    Generate(#[from] GenError),
}

/// A kernelinfo group built from memory, and how it was found.
#[derive(Debug)]
pub struct Found {
    /// The group, at link-time addresses.
    pub generated: Generated,
    /// Run-time minus link-time address.
    pub slide: u64,
    /// Bytes of guest memory read.
    pub read: usize,
    /// Size of the BTF blob.
    pub btf_len: usize,
    /// Entries of the kallsyms tables.
    pub symbols: usize,
}

/// What the reader must know of the guest's architecture.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// The kernel's word size, 64 or 32.
    pub bits: u32,
    /// The machine as `uname -m` says, for the group's name.
    pub machine: &'static str,
    /// Where the kernel's `_text` may be linked, lowest first: the KASLR slide is
    /// measured from the highest that is not above the run-time `_text` (KASLR only moves
    /// a kernel up). One address on x86; arm64's `KIMAGE_VADDR` follows the size of the
    /// module area below it, which grew from 128 MiB to 2 GiB in 6.5.
    pub link_text: &'static [u64],
}

impl Target {
    /// x86_64: Debian (and the kernel's defaults) link it 16 MiB above the start of the
    /// kernel map (`CONFIG_PHYSICAL_START`).
    pub const X86_64: Target = Target {
        bits: 64,
        machine: "x86_64",
        link_text: &[0xffff_ffff_8100_0000],
    };

    /// i386, 16 MiB above Debian's 3 GiB split.
    pub const I386: Target = Target {
        bits: 32,
        machine: "i686",
        link_text: &[0xc100_0000],
    };

    /// arm64: `KIMAGE_VADDR` with 48-bit virtual addresses, above a 128 MiB module area
    /// (through 6.4) or a 2 GiB one (6.5 on).
    pub const AARCH64: Target = Target {
        bits: 64,
        machine: "aarch64",
        link_text: &[0xffff_8000_0800_0000, 0xffff_8000_8000_0000],
    };

    /// 32-bit ARM: `PAGE_OFFSET` (3G/1G) plus `TEXT_OFFSET`, 0x8000 or, with some
    /// platforms built in (Debian's armmp-lpae), 0x208000. No KASLR.
    pub const ARM: Target = Target {
        bits: 32,
        machine: "armv7l",
        link_text: &[0xc000_8000, 0xc020_8000],
    };

    /// The lowest address the kernel may be linked at.
    fn lowest_link(self) -> u64 {
        self.link_text.first().copied().unwrap_or(0)
    }

    /// Where a kernel whose `_text` runs at `text` is linked.
    fn link_of(self, text: u64) -> u64 {
        self.link_text
            .iter()
            .rev()
            .find(|&&l| l <= text)
            .copied()
            .unwrap_or_else(|| self.lowest_link())
    }

    fn pointer_size(self) -> usize {
        if self.bits == 64 { 8 } else { 4 }
    }

    /// Whether `a` is in the kernel's half of the address space.
    fn kernel_half(self, a: u64) -> bool {
        if self.bits == 64 {
            a >> 47 == 0x1_ffff
        } else {
            a >= 0x8000_0000
        }
    }
}

/// The kernel's image as read from memory: `bytes` from run-time address `base`.
struct Loaded {
    base: u64,
    bytes: Vec<u8>,
    target: Target,
    slide: u64,
}

impl KernelImage for Loaded {
    fn bits(&self) -> u32 {
        self.target.bits
    }
    fn machine(&self) -> &str {
        self.target.machine
    }
    fn at_addr(&self, addr: u64) -> Option<&[u8]> {
        let at = addr.wrapping_add(self.slide).checked_sub(self.base)?;
        self.bytes.get(usize::try_from(at).ok()?..)
    }
    fn rodata(&self) -> Option<&[u8]> {
        Some(&self.bytes)
    }
    fn virt_minus_phys(&self) -> Option<u64> {
        None
    }
}

/// Builds the kernelinfo of the kernel whose image holds `text_va` (its text or init
/// code), reading `mem`.
pub fn from_memory(
    mem: &dyn GuestMemory,
    text_va: u64,
    target: Target,
) -> Result<Found, FromMemoryError> {
    let base = image_start(mem, text_va, target);
    let ptr = target.pointer_size();
    let (bytes, btf_at) = read_image(mem, base, ptr);
    let read = bytes.len();
    if read < MIN_READ {
        return Err(FromMemoryError::Unreadable { from: base, read });
    }
    let mut symbols = kallsyms::find(&bytes, ptr, &|off| Some(base.wrapping_add(off as u64)))?;
    if btf_at.is_none() {
        return Err(FromMemoryError::NoBtf {
            symbols: symbols.len(),
            read,
        });
    }
    if symbols.get("init_task").is_none() {
        return Err(FromMemoryError::NoDataSymbols {
            symbols: symbols.len(),
        });
    }
    let text = symbols
        .get("_text")
        .ok_or_else(|| GenError::Kallsyms("no _text symbol".into()))?;
    let link = target.link_of(text);
    let slide = text.wrapping_sub(link);
    if slide % 4096 != 0 {
        return Err(FromMemoryError::Slide { text, link });
    }
    // Per-CPU symbols kept absolute (small offsets) do not move with the kernel.
    symbols.map_addresses(|a| {
        if target.kernel_half(a) {
            a.wrapping_sub(slide)
        } else {
            a
        }
    });
    let count = symbols.len();
    let Some((at, len)) = btf_at else {
        return Err(FromMemoryError::NoBtf {
            symbols: count,
            read,
        });
    };
    let image = Loaded {
        base,
        bytes,
        target,
        slide,
    };
    let blob = &image.bytes[at..at + len];
    let types = Btf::parse(blob, ptr as u64)?;
    let generated = profile::build(&image, Ok(symbols), &types, None)?;
    Ok(Found {
        generated,
        slide,
        read,
        btf_len: len,
        symbols: count,
    })
}

/// A file that holds a kernel as it lies in memory from `base` (arm64's `Image`, linked
/// at `base`): read like the memory of a guest running it without KASLR.
struct FileAsMemory<'a> {
    base: u64,
    bytes: &'a [u8],
}

impl GuestMemory for FileAsMemory<'_> {
    fn read(&self, va: u64, buf: &mut [u8]) -> Result<(), crate::mem::Fault> {
        let fault = crate::mem::Fault { va, len: buf.len() };
        let at = usize::try_from(va.checked_sub(self.base).ok_or(fault)?).map_err(|_| fault)?;
        let src = at
            .checked_add(buf.len())
            .and_then(|end| self.bytes.get(at..end))
            .ok_or(fault)?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

/// Builds the group of a kernel image file that holds the kernel as memory does, linked
/// at `base` (arm64's `Image`): the same stages as [`from_memory`] at slide 0. `extra`
/// (a System.map, or the -dbg vmlinux's symbols) supplies what kallsyms lacks, `dwarf`
/// replaces the image's BTF.
pub fn from_image(
    bytes: &[u8],
    base: u64,
    target: Target,
    extra: Option<&SymbolFile>,
    dwarf: Option<&dyn Types>,
) -> Result<Generated, GenError> {
    let ptr = target.pointer_size();
    let (bytes, btf_at) = read_image(&FileAsMemory { base, bytes }, base, ptr);
    let symbols = kallsyms::find(&bytes, ptr, &|off| Some(base.wrapping_add(off as u64)));
    let image = Loaded {
        base,
        bytes,
        target,
        slide: 0,
    };
    if let Some(types) = dwarf {
        return profile::build(&image, symbols, types, extra);
    }
    let (at, len) = btf_at.ok_or(GenError::NoBtf)?;
    let types = Btf::parse(&image.bytes[at..at + len], ptr as u64)?;
    profile::build(&image, symbols, &types, extra)
}

/// arm64: the run-time `_text` of the kernel whose text holds `va`, found by the boot
/// header at its start (magic `ARM\x64` at byte 0x38, `image_size` covering `va`), page
/// by page down from `va`. This places a kernel described by `conf=` under KASLR, which
/// on arm64 moves it by any multiple of 64 KiB across terabytes; `None` when a page on
/// the way is unreadable or no header is found within 128 MiB.
pub fn arm64_text(mem: &dyn GuestMemory, va: u64) -> Option<u64> {
    const MAX_IMAGE: u64 = 128 << 20;
    let mut page = va & !0xfff;
    let lowest = va.saturating_sub(MAX_IMAGE);
    while page >= lowest {
        let mut header = [0u8; 64];
        mem.read(page, &mut header).ok()?;
        if header[0x38..0x3c] == *b"ARM\x64" {
            let image_size = u64::from_le_bytes(header[0x10..0x18].try_into().ok()?);
            if va - page < image_size {
                return Some(page);
            }
        }
        page = page.checked_sub(0x1000)?;
    }
    None
}

/// Where to start reading for the kernel whose image holds `va`: its `_text`, the lowest
/// of the readable 2 MiB steps below `va` where KASLR can put it (at or above where it is
/// linked). The first kernel code to run may be init code (`x86_64_start_kernel` after a
/// PVH boot), which lies after the read-only data; and the kernel maps nothing below its
/// image in the kernel map.
fn image_start(mem: &dyn GuestMemory, va: u64, target: Target) -> u64 {
    let page = va & !0xfff;
    let lowest = target.link_of(va);
    if va < lowest {
        return page;
    }
    let mut start = page;
    let mut candidate = lowest + (va - lowest) / HOLE_ALIGN * HOLE_ALIGN;
    while candidate >= lowest && mem.read(candidate, &mut [0; 8]).is_ok() {
        start = start.min(candidate);
        match candidate.checked_sub(HOLE_ALIGN) {
            Some(c) => candidate = c,
            None => break,
        }
    }
    start
}

/// Reads forward from `base` until the end of the kernel's BTF blob, the first unreadable
/// page past a hole, or [`MAX_READ`]; returns the bytes (holes as zeros) and where the
/// BTF blob is in them.
///
/// A hole: once booted, a KPTI kernel unmaps the unused pages between its text and its
/// read-only data (`free_kernel_image_pages`); the data starts at the next 2 MiB boundary
/// (`HPAGE_SIZE` alignment of x86_64's linker script).
fn read_image(mem: &dyn GuestMemory, base: u64, ptr: usize) -> (Vec<u8>, Option<(usize, usize)>) {
    let mut bytes: Vec<u8> = Vec::with_capacity(32 << 20);
    let mut scanned = 0;
    let mut candidate: Option<(usize, usize)> = None;
    let mut holes = 0;
    let mut end = false;
    while bytes.len() < MAX_READ && !end {
        let old = bytes.len();
        bytes.resize(old + CHUNK, 0);
        if mem.read(base + old as u64, &mut bytes[old..]).is_err() {
            // Keep the readable pages of the chunk.
            let mut ok = old;
            while ok < old + CHUNK
                && mem
                    .read(base + ok as u64, &mut bytes[ok..ok + 4096])
                    .is_ok()
            {
                ok += 4096;
            }
            let resume = (base + ok as u64).next_multiple_of(HOLE_ALIGN);
            let skip = (resume - base) as usize;
            bytes.truncate(ok);
            if holes == MAX_HOLES || ok < MIN_READ || mem.read(resume, &mut [0; 8]).is_err() {
                // The last pages read are still searched for the BTF's end.
                end = true;
            } else {
                holes += 1;
                bytes.resize(skip, 0);
                continue;
            }
        }
        loop {
            if let Some((at, len)) = candidate {
                if at + len > bytes.len() {
                    break;
                }
                if is_vmlinux_btf(&bytes[at..at + len], ptr) {
                    bytes.truncate(at + len);
                    return (bytes, Some((at, len)));
                }
                candidate = None;
                scanned = at + 1;
            }
            match next_btf_header(&bytes, scanned) {
                Some(c) => candidate = Some(c),
                None => {
                    scanned = bytes.len().saturating_sub(BTF_HEADER.len());
                    break;
                }
            }
        }
    }
    (bytes, None)
}

/// The next BTF header at or after `from` in `bytes` whose header is complete: its
/// position and the blob's length.
fn next_btf_header(bytes: &[u8], mut from: usize) -> Option<(usize, usize)> {
    loop {
        let at = from + memchr::memmem::find(bytes.get(from..)?, &BTF_HEADER)?;
        let word = |i: usize| {
            bytes
                .get(at + 8 + 4 * i..at + 12 + 4 * i)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
        };
        let (Some(type_off), Some(type_len), Some(str_off), Some(str_len)) =
            (word(0), word(1), word(2), word(3))
        else {
            return None;
        };
        let body = (type_off.checked_add(type_len)).max(str_off.checked_add(str_len));
        match body {
            Some(b) if b <= 64 << 20 => return Some((at, 24 + b)),
            _ => from = at + 1,
        }
    }
}

/// Whether `blob` is a whole kernel's BTF (it describes `task_struct`), not a stray
/// header-like pattern.
fn is_vmlinux_btf(blob: &[u8], ptr: usize) -> bool {
    Btf::parse(blob, ptr as u64).is_ok_and(|b| b.find_struct("task_struct").is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linux::testmem::SparseMemory;

    const X86_64: Target = Target::X86_64;

    #[test]
    fn the_link_address_is_the_highest_candidate_below_the_kernel() {
        let arm64 = Target::AARCH64;
        assert_eq!(arm64.link_of(0xffff_8000_0800_0000), 0xffff_8000_0800_0000);
        assert_eq!(arm64.link_of(0xffff_8000_8000_0000), 0xffff_8000_8000_0000);
        assert_eq!(arm64.link_of(0xffff_a1b2_c000_0000), 0xffff_8000_8000_0000);
        assert_eq!(arm64.link_of(0x1000), 0xffff_8000_0800_0000);
    }

    /// Memory holding `bytes` at `base`, nothing elsewhere.
    fn flat(base: u64, bytes: &[u8]) -> SparseMemory {
        let mut mem = SparseMemory::default();
        mem.write(base, bytes);
        mem
    }

    #[test]
    fn too_little_readable_memory_is_unreadable_not_a_verdict() {
        let mem = flat(0xffff_ffff_81c0_0000, &[0x90; 3 * 4096]);
        match from_memory(&mem, 0xffff_ffff_81c0_0080, X86_64) {
            Err(FromMemoryError::Unreadable { read, .. }) => assert_eq!(read, 3 * 4096),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn memory_without_kallsyms_says_so() {
        let mem = flat(0xffff_ffff_81c0_0000, &vec![0x90; 2 << 20]);
        let err = from_memory(&mem, 0xffff_ffff_81c0_0080, X86_64)
            .unwrap_err()
            .to_string();
        assert!(err.contains("kallsyms"), "{err}");
    }

    #[test]
    fn arm64_text_is_the_boot_header_below() {
        let text = 0xffff_a1b2_c3d4_0000u64;
        let mut image = vec![0u8; 3 << 20];
        image[0x10..0x18].copy_from_slice(&(3u64 << 20).to_le_bytes());
        image[0x38..0x3c].copy_from_slice(b"ARM\x64");
        let mem = flat(text, &image);
        assert_eq!(arm64_text(&mem, text + (2 << 20) + 0x123), Some(text));
        assert_eq!(arm64_text(&mem, text), Some(text));
        // Past image_size: not inside this image.
        let mem = flat(text, &image[..]);
        let mut short = image.clone();
        short[0x10..0x18].copy_from_slice(&0x1000u64.to_le_bytes());
        assert_eq!(arm64_text(&flat(text, &short), text + 0x2000), None);
        // Unreadable on the way down: not found (tried again from elsewhere).
        assert_eq!(arm64_text(&mem, text - 0x1000), None);
    }

    #[test]
    fn a_btf_blob_that_ends_the_readable_memory_is_found() {
        // The fuzzing seeds' BTF (kernel-like structs, task_struct among them).
        let btf = include_bytes!("../../fuzz/corpus/btf/kernel-x86_64.btf");
        let base = 0xffff_8000_0800_0000u64;
        let mut bytes = vec![0u8; (2 << 20) + 0x123];
        bytes.extend_from_slice(btf);
        let (read, at) = read_image(&flat(base, &bytes), base, 8);
        assert_eq!(at, Some(((2 << 20) + 0x123, btf.len())));
        assert_eq!(read.len(), bytes.len());
    }

    #[test]
    fn btf_headers_are_found_with_their_length() {
        let mut bytes = vec![0u8; 100];
        bytes.extend_from_slice(&BTF_HEADER);
        for w in [0u32, 40, 40, 10] {
            bytes.extend_from_slice(&w.to_le_bytes());
        }
        assert_eq!(next_btf_header(&bytes, 0), Some((100, 24 + 50)));
        assert_eq!(next_btf_header(&bytes, 101), None);
        // A header whose sizes overflow is skipped.
        let mut bad = BTF_HEADER.to_vec();
        for w in [u32::MAX, u32::MAX, 0, 0] {
            bad.extend_from_slice(&w.to_le_bytes());
        }
        assert_eq!(next_btf_header(&bad, 0), None);
    }
}
