//! Kernel images: the bzImage container, its compressed payload, and the ELF inside.
//!
//! An x86 bzImage is real-mode setup code followed by the protected-mode decompressor, which
//! carries the compressed `vmlinux.bin` (an ELF, stripped of symbols, sometimes followed by
//! relocations). The boot protocol header (`HdrS`, version ≥ 2.08) gives the payload's
//! offset and length; without it the payload is found by its compression magic.

use std::borrow::Cow;
use std::io::Read;

use object::read::elf::{FileHeader, ProgramHeader};
use object::{Object, ObjectSection};

use super::{GenError, Result};

const ELF_MAGIC: &[u8] = b"\x7fELF";
/// Largest decompressed kernel accepted (a guard against decompression bombs).
const MAX_KERNEL: u64 = 1 << 30;

/// The ELF vmlinux of an image: the input itself when it is an ELF, else the bzImage's
/// decompressed payload.
pub fn kernel_elf(image: &[u8]) -> Result<Cow<'_, [u8]>> {
    if image.starts_with(ELF_MAGIC) {
        return Ok(Cow::Borrowed(image));
    }
    if image.len() < 0x250 || &image[0x202..0x206] != b"HdrS" {
        return Err(GenError::NotAKernel(
            "neither an ELF file nor an x86 bzImage (no 'HdrS' boot header)".into(),
        ));
    }
    // The header's candidate comes first: its error is the one worth reporting.
    let mut first_err = None;
    for start in payload_candidates(image) {
        match decompress(&image[start..]) {
            Ok(out) if out.starts_with(ELF_MAGIC) => return Ok(Cow::Owned(out)),
            Ok(_) => {
                first_err.get_or_insert(GenError::NotAKernel(format!(
                    "the payload at byte {start} does not decompress to an ELF file"
                )));
            }
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    Err(first_err.unwrap_or_else(|| {
        GenError::NotAKernel("bzImage without a recognisable compressed payload".into())
    }))
}

/// Where the payload may start: the boot header's `payload_offset` first, then every
/// compression magic in the image.
fn payload_candidates(image: &[u8]) -> Vec<usize> {
    let mut out = Vec::new();
    let version = u16::from_le_bytes([image[0x206], image[0x207]]);
    if version >= 0x208 {
        let setup_sects = match image[0x1f1] {
            0 => 4,
            n => usize::from(n),
        };
        let pm_start = (setup_sects + 1) * 512;
        let off = u32::from_le_bytes(image[0x248..0x24c].try_into().unwrap_or_default());
        let at = pm_start.saturating_add(off as usize);
        if at < image.len() {
            out.push(at);
        }
    }
    for (magic, _) in MAGICS {
        let mut i = 0;
        while let Some(p) = find(&image[i..], magic) {
            if !out.contains(&(i + p)) {
                out.push(i + p);
            }
            i += p + 1;
        }
    }
    out
}

const MAGICS: [(&[u8], &str); 7] = [
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"\x1f\x8b\x08", "gzip"),
    (b"\x02\x21\x4c\x18", "lz4"),
    (b"\x5d\x00\x00", "lzma"),
    (b"BZh", "bzip2"),
    (b"\x89LZO", "lzo"),
];

/// The first position of `needle` in `hay`.
pub(crate) fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let (&first, rest) = needle.split_first()?;
    let mut i = 0;
    while i + needle.len() <= hay.len() {
        let p = hay[i..=hay.len() - needle.len()]
            .iter()
            .position(|&b| b == first)?;
        if hay[i + p + 1..i + p + needle.len()] == *rest {
            return Some(i + p);
        }
        i += p + 1;
    }
    None
}

/// Decompresses one payload, recognised by its magic; trailing bytes are ignored.
pub fn decompress(data: &[u8]) -> Result<Vec<u8>> {
    let err = |format: &'static str| {
        move |e: std::io::Error| GenError::Decompress {
            format,
            reason: e.to_string(),
        }
    };
    let mut out = Vec::new();
    if data.starts_with(b"\xfd7zXZ\x00") {
        out = xz(data)?;
    } else if data.starts_with(b"\x28\xb5\x2f\xfd") {
        let mut d = zstd::stream::read::Decoder::with_buffer(data)
            .map_err(err("zstd"))?
            .single_frame();
        d.window_log_max(31).map_err(err("zstd"))?;
        d.take(MAX_KERNEL)
            .read_to_end(&mut out)
            .map_err(err("zstd"))?;
    } else if data.starts_with(b"\x1f\x8b") {
        flate2::read::GzDecoder::new(data)
            .take(MAX_KERNEL)
            .read_to_end(&mut out)
            .map_err(err("gzip"))?;
    } else if data.starts_with(b"\x02\x21\x4c\x18") {
        out = lz4_legacy(data)?;
    } else {
        let name = MAGICS
            .iter()
            .find(|(m, _)| data.starts_with(m))
            .map_or("unknown", |(_, n)| *n);
        return Err(GenError::UnsupportedCompression(match name {
            "lzma" => "lzma",
            "bzip2" => "bzip2",
            "lzo" => "lzo",
            _ => "unknown",
        }));
    }
    Ok(out)
}

/// One xz stream, driven by hand so that the kernel's trailing size word is left alone.
fn xz(data: &[u8]) -> Result<Vec<u8>> {
    use xz2::stream::{Action, Status, Stream};
    let bad = |reason: String| GenError::Decompress {
        format: "xz",
        reason,
    };
    let mut s = Stream::new_stream_decoder(u64::MAX, 0).map_err(|e| bad(e.to_string()))?;
    let mut out = Vec::with_capacity(data.len().saturating_mul(4).min(MAX_KERNEL as usize));
    loop {
        if out.len() == out.capacity() {
            if out.len() as u64 >= MAX_KERNEL {
                return Err(bad("larger than 1 GiB".into()));
            }
            out.reserve(out.len().max(1 << 20));
        }
        let (in_before, out_before) = (s.total_in(), s.total_out());
        let input = data.get(s.total_in() as usize..).unwrap_or_default();
        match s.process_vec(input, &mut out, Action::Run) {
            Ok(Status::StreamEnd) => return Ok(out),
            Ok(_)
                if s.total_in() == in_before
                    && s.total_out() == out_before
                    && out.len() < out.capacity() =>
            {
                return Err(bad("truncated stream".into()));
            }
            Ok(_) => {}
            Err(e) => return Err(bad(e.to_string())),
        }
    }
}

/// The kernel's lz4 "legacy" format (`lz4 -l`): magic, then blocks of
/// `u32 compressed length` + data, each decompressing to at most 8 MiB.
fn lz4_legacy(data: &[u8]) -> Result<Vec<u8>> {
    const BLOCK: usize = 8 << 20;
    let mut out = Vec::new();
    let mut pos = 4;
    let mut block = vec![0u8; BLOCK];
    while pos + 4 <= data.len() {
        let len = u32::from_le_bytes(data[pos..pos + 4].try_into().unwrap_or_default()) as usize;
        // The next magic (concatenated streams) or the kernel's appended size ends the data.
        if len == 0x184c_2102 || pos + 4 + len > data.len() {
            break;
        }
        let n = lz4_flex::block::decompress_into(&data[pos + 4..pos + 4 + len], &mut block)
            .map_err(|e| GenError::Decompress {
                format: "lz4",
                reason: e.to_string(),
            })?;
        out.extend_from_slice(&block[..n]);
        if out.len() as u64 > MAX_KERNEL {
            break;
        }
        pos += 4 + len;
    }
    if out.is_empty() {
        return Err(GenError::Decompress {
            format: "lz4",
            reason: "no complete block".into(),
        });
    }
    Ok(out)
}

/// An arm64 kernel `Image`: the kernel as it lies in memory from `_text`, with the boot
/// header (`Documentation/arch/arm64/booting.rst`) in its first 64 bytes. Distributions
/// ship it raw (Debian), gzip'd, or in an EFI zboot container; no ELF is inside, so the
/// generator reads it as memory at its link address.
#[derive(Debug)]
pub struct Arm64Image {
    /// The image, decompressed and relocated to its link address.
    pub bytes: Vec<u8>,
    /// Where it is linked (`_text`, `KIMAGE_VADDR`).
    pub link: u64,
}

/// The boot header's magic, at byte 0x38.
const ARM64_MAGIC: &[u8] = b"ARM\x64";

/// `KIMAGE_VADDR` ends the module area, which is at least 128 MiB (2 GiB from 6.5): the
/// link address is aligned to it.
const ARM64_LINK_ALIGN: u64 = 128 << 20;

/// `R_AARCH64_RELATIVE`: what a relocatable arm64 kernel's `.rela.dyn` is made of.
const R_AARCH64_RELATIVE: u64 = 1027;

/// Whether `data` starts with an arm64 `Image` header.
pub fn is_arm64_image(data: &[u8]) -> bool {
    data.get(0x38..0x3c) == Some(ARM64_MAGIC)
}

/// The arm64 `Image` in `data` (raw, gzip'd or EFI zboot), or `None` when `data` is none of
/// these.
pub fn arm64_image(data: &[u8]) -> Result<Option<Arm64Image>> {
    let bytes = if is_arm64_image(data) {
        Cow::Borrowed(data)
    } else if data.starts_with(b"\x1f\x8b") {
        Cow::Owned(decompress(data)?)
    } else if data.starts_with(b"MZ") && data.get(4..8) == Some(b"zimg") {
        // EFI zboot: payload offset and size at 8 and 12, compression name at 0x18.
        let word = |at: usize| {
            data.get(at..at + 4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
        };
        let payload = word(8)
            .zip(word(12))
            .and_then(|(o, n)| data.get(o..o.checked_add(n)?))
            .ok_or_else(|| {
                GenError::NotAKernel("EFI zboot image with its payload out of the file".into())
            })?;
        Cow::Owned(decompress(payload)?)
    } else {
        return Ok(None);
    };
    if !is_arm64_image(&bytes) {
        return Err(GenError::NotAKernel(
            "the compressed payload is not an arm64 Image (no 'ARM\\x64' magic at byte 0x38)"
                .into(),
        ));
    }
    let mut bytes = bytes.into_owned();
    let link = arm64_relocate(&mut bytes)?;
    Ok(Some(Arm64Image { bytes, link }))
}

/// The `R_AARCH64_RELATIVE` entries (place, value) of an arm64 `Image`'s `.rela.dyn`: a
/// relocatable kernel has no other kind, and leaves their places zero in the file (the
/// value is in the entry); the kernel applies them to itself at boot, at the address it
/// runs at. Found by their shape: an 8-aligned `Elf64_Rela` with that type whose place
/// and value are kernel addresses.
fn arm64_relocations(bytes: &[u8]) -> Vec<(u64, u64)> {
    let u64_at = |at: usize| {
        bytes
            .get(at..at + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default()))
    };
    let kernel = |a: u64| a >> 48 == 0xffff;
    memchr::memmem::find_iter(bytes, &R_AARCH64_RELATIVE.to_le_bytes())
        .filter(|&at| at % 8 == 0 && at >= 8)
        .filter_map(|at| Some((u64_at(at - 8)?, u64_at(at + 8)?)))
        .filter(|&(place, value)| kernel(place) && kernel(value))
        .collect()
}

/// Where an arm64 `Image` is linked, and the image as it lies in memory there: the header
/// does not say where, but every relocation patches a place in `[_text, _text +
/// image_size)`, and `_text` is the lowest such place rounded down to the module area's
/// alignment. The relocations are applied (at the link address, as a kernel without KASLR
/// does), so that pointers such as `kallsyms_relative_base` read as they do in memory.
fn arm64_relocate(bytes: &mut [u8]) -> Result<u64> {
    let image_size = bytes
        .get(0x10..0x18)
        .map_or(0, |b| u64::from_le_bytes(b.try_into().unwrap_or_default()));
    let relocations = arm64_relocations(bytes);
    let not_found = |why: String| {
        GenError::NotAKernel(format!(
            "cannot find where the arm64 Image is linked: {why}"
        ))
    };
    let (Some(lo), Some(hi)) = (
        relocations.iter().map(|r| r.0).min(),
        relocations.iter().map(|r| r.0).max(),
    ) else {
        return Err(not_found(
            "no R_AARCH64_RELATIVE relocations (not a relocatable kernel)".into(),
        ));
    };
    if image_size == 0 || image_size > ARM64_LINK_ALIGN {
        return Err(not_found(format!(
            "the header's image_size is {image_size:#x}"
        )));
    }
    let base = lo & !(ARM64_LINK_ALIGN - 1);
    if hi >= base + image_size {
        return Err(not_found(format!(
            "relocations span {lo:#x}..{hi:#x}, more than image_size from {base:#x}"
        )));
    }
    for (place, value) in relocations {
        let at = (place - base) as usize;
        if let Some(slot) = bytes.get_mut(at..at + 8) {
            slot.copy_from_slice(&value.to_le_bytes());
        }
    }
    Ok(base)
}

/// A 32-bit ARM `zImage`'s magic, at byte 0x24.
const ZIMAGE_MAGIC: [u8; 4] = 0x016f_2818u32.to_le_bytes();

/// Whether `data` starts with a 32-bit ARM `zImage` header.
pub fn is_arm_zimage(data: &[u8]) -> bool {
    data.get(0x24..0x28) == Some(&ZIMAGE_MAGIC[..])
}

/// The raw kernel inside a 32-bit ARM `zImage` (a self-decompressing loader around the
/// compressed kernel, `arch/arm/boot/compressed`), or `None` when `data` is no zImage.
/// The payload is found by its compression magic, as in a bzImage without a usable
/// header: the first candidate that decompresses to a kernel (one holding the banner's
/// "Linux version ") wins.
pub fn arm_zimage(data: &[u8]) -> Result<Option<Vec<u8>>> {
    if !is_arm_zimage(data) {
        return Ok(None);
    }
    let mut first_err = None;
    for (magic, _) in MAGICS {
        for at in memchr::memmem::find_iter(data, magic) {
            match decompress(&data[at..]) {
                Ok(out) if memchr::memmem::find(&out, b"Linux version ").is_some() => {
                    return Ok(Some(out));
                }
                Ok(_) => {}
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
    }
    Err(first_err.unwrap_or_else(|| {
        GenError::NotAKernel("zImage without a compressed kernel inside".into())
    }))
}

/// Where a raw 32-bit ARM kernel is linked, among `candidates`: the one most of its
/// words agree with. A kernel holds thousands of pointers to themselves (statically
/// initialised empty lists), and such a word minus its offset in the image is the link
/// address.
pub fn arm_link(raw: &[u8], candidates: &[u64]) -> Result<u64> {
    let votes = |base: u64| {
        raw.chunks_exact(4)
            .enumerate()
            .filter(|(i, w)| {
                u64::from(u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
                    == base.wrapping_add(*i as u64 * 4)
            })
            .count()
    };
    candidates
        .iter()
        .map(|&c| (votes(c), c))
        .filter(|&(n, _)| n > 0)
        .max()
        .map(|(_, c)| c)
        .ok_or_else(|| {
            GenError::NotAKernel(
                "cannot find where the 32-bit ARM kernel is linked: no word points at itself"
                    .into(),
            )
        })
}

/// One section of the ELF file.
#[derive(Debug, Clone)]
pub struct Section {
    /// Its name (`.rodata`, `.BTF`, …).
    pub name: String,
    /// Link-time address (0 for per-CPU data on x86_64).
    pub addr: u64,
    /// Size in memory (`NOBITS` sections too).
    pub size: u64,
    /// File range, `None` for `NOBITS`.
    pub file: Option<(usize, usize)>,
}

/// A parsed ELF vmlinux: its bytes and what the generator needs from its headers.
#[derive(Debug)]
pub struct Elf<'a> {
    /// The whole file.
    pub data: &'a [u8],
    /// 64 or 32.
    pub bits: u32,
    /// `x86_64`, `i686`, `aarch64` or `armv7l`, as `uname -m` says.
    pub machine: &'static str,
    /// Sections with file contents.
    pub sections: Vec<Section>,
    /// `p_vaddr - p_paddr` of the first loadable segment (the direct-map base on i386).
    pub virt_minus_phys: Option<u64>,
}

impl<'a> Elf<'a> {
    /// Parses the headers of an ELF vmlinux.
    pub fn parse(data: &'a [u8]) -> Result<Self> {
        let file = object::File::parse(data).map_err(|e| GenError::Elf(e.to_string()))?;
        let (bits, machine) = match file.architecture() {
            object::Architecture::X86_64 => (64, "x86_64"),
            object::Architecture::I386 => (32, "i686"),
            object::Architecture::Aarch64 => (64, "aarch64"),
            object::Architecture::Arm => (32, "armv7l"),
            other => {
                return Err(GenError::NotAKernel(format!(
                    "architecture {other:?} is not supported (x86_64, i386, aarch64 and arm are)"
                )));
            }
        };
        let sections = file
            .sections()
            .map(|s| Section {
                name: s.name().unwrap_or_default().to_owned(),
                addr: s.address(),
                size: s.size(),
                file: s
                    .file_range()
                    .map(|(o, n)| (o as usize, n as usize))
                    .filter(|(o, n)| o.checked_add(*n).is_some_and(|e| e <= data.len())),
            })
            .collect();
        let virt_minus_phys = if bits == 32 {
            first_load_delta::<object::elf::FileHeader32<object::Endianness>>(data)
        } else {
            first_load_delta::<object::elf::FileHeader64<object::Endianness>>(data)
        };
        Ok(Elf {
            data,
            bits,
            machine,
            sections,
            virt_minus_phys,
        })
    }

    /// The contents of the section named `name`.
    pub fn section(&self, name: &str) -> Option<&'a [u8]> {
        let s = self.sections.iter().find(|s| s.name == name)?;
        let (o, n) = s.file?;
        self.data.get(o..o + n)
    }

    /// The file bytes from link-time address `addr` to the end of its section.
    pub fn at_addr(&self, addr: u64) -> Option<&'a [u8]> {
        self.sections.iter().find_map(|s| {
            let (o, n) = s.file?;
            if s.addr == 0 || addr < s.addr || addr - s.addr >= n as u64 {
                return None;
            }
            self.data.get(o + (addr - s.addr) as usize..o + n)
        })
    }

    /// The kallsyms tables found in the file, at link-time addresses.
    pub fn kallsyms(&self) -> Result<super::kallsyms::Kallsyms> {
        let ptr = if self.bits == 64 { 8 } else { 4 };
        super::kallsyms::find(self.data, ptr, &|off| self.addr_of_offset(off))
    }

    /// The link-time address of file offset `off`, if a section maps it.
    pub fn addr_of_offset(&self, off: usize) -> Option<u64> {
        self.sections.iter().find_map(|s| {
            let (o, n) = s.file?;
            (s.addr != 0 && off >= o && off < o + n).then(|| s.addr + (off - o) as u64)
        })
    }
}

impl super::profile::KernelImage for Elf<'_> {
    fn bits(&self) -> u32 {
        self.bits
    }
    fn machine(&self) -> &str {
        self.machine
    }
    fn at_addr(&self, addr: u64) -> Option<&[u8]> {
        Elf::at_addr(self, addr)
    }
    fn rodata(&self) -> Option<&[u8]> {
        self.section(".rodata")
    }
    fn virt_minus_phys(&self) -> Option<u64> {
        self.virt_minus_phys
    }
}

fn first_load_delta<H: FileHeader<Endian = object::Endianness>>(data: &[u8]) -> Option<u64> {
    let h = H::parse(data).ok()?;
    let endian = h.endian().ok()?;
    h.program_headers(endian, data)
        .ok()?
        .iter()
        .find(|p| p.p_type(endian) == object::elf::PT_LOAD)
        .map(|p| {
            let v: u64 = p.p_vaddr(endian).into();
            let ph: u64 = p.p_paddr(endian).into();
            v.wrapping_sub(ph)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arm_zimages_are_recognised_and_their_link_address_voted() {
        let mut z = vec![0u8; 0x100];
        assert_eq!(arm_zimage(&z).unwrap(), None, "no magic: not a zImage");
        z[0x24..0x28].copy_from_slice(&0x016f_2818u32.to_le_bytes());
        assert!(is_arm_zimage(&z));
        assert!(arm_zimage(&z).is_err(), "a zImage with nothing inside");
        // Two words point at themselves if linked at 0xc0208000, one if at 0xc0008000.
        let mut raw = vec![0u8; 0x40];
        for (at, v) in [
            (0x10, 0xc020_8010u32),
            (0x20, 0xc020_8020),
            (0x30, 0xc000_8030),
        ] {
            raw[at..at + 4].copy_from_slice(&v.to_le_bytes());
        }
        assert_eq!(
            arm_link(&raw, &[0xc000_8000, 0xc020_8000]).unwrap(),
            0xc020_8000
        );
        assert!(arm_link(&[0u8; 16], &[0xc000_8000]).is_err());
    }

    #[test]
    fn garbage_is_not_a_kernel() {
        assert!(matches!(kernel_elf(b"hello"), Err(GenError::NotAKernel(_))));
        let mut rng = 0x1234_5678_u64;
        let random: Vec<u8> = (0..100_000)
            .map(|_| {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                rng as u8
            })
            .collect();
        assert!(kernel_elf(&random).is_err());
    }

    #[test]
    fn bzimage_with_truncated_payload_is_an_error() {
        let mut img = vec![0u8; 0x1000];
        img[0x202..0x206].copy_from_slice(b"HdrS");
        img[0x206] = 0x0f;
        img[0x207] = 0x02;
        img[0x1f1] = 1;
        // payload_offset 0 → right at 0x400: a truncated xz stream.
        img[0x400..0x406].copy_from_slice(b"\xfd7zXZ\x00");
        assert!(matches!(
            kernel_elf(&img),
            Err(GenError::Decompress { format: "xz", .. })
        ));
        img[0x400..0x404].copy_from_slice(b"\x28\xb5\x2f\xfd");
        assert!(kernel_elf(&img).is_err());
        img[0x400..0x404].copy_from_slice(b"BZh9");
        assert!(kernel_elf(&img).is_err());
    }

    #[test]
    fn gzip_payload_round_trips() {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(b"\x7fELF and the rest").unwrap();
        let gz = enc.finish().unwrap();
        let mut img = vec![0u8; 0x400];
        img[0x202..0x206].copy_from_slice(b"HdrS");
        img[0x206] = 0x0f;
        img[0x207] = 0x02;
        img[0x1f1] = 1;
        img.extend_from_slice(&gz);
        img.extend_from_slice(&[1, 2, 3, 4]);
        assert_eq!(&*kernel_elf(&img).unwrap(), b"\x7fELF and the rest");
    }

    #[test]
    fn lz4_legacy_round_trips() {
        let block = lz4_flex::block::compress(b"\x7fELF lz4 payload payload payload");
        let mut data = b"\x02\x21\x4c\x18".to_vec();
        data.extend_from_slice(&(block.len() as u32).to_le_bytes());
        data.extend_from_slice(&block);
        data.extend_from_slice(&1234u32.to_le_bytes());
        assert_eq!(
            decompress(&data).unwrap(),
            b"\x7fELF lz4 payload payload payload"
        );
    }

    /// A 64 KiB arm64 `Image` linked at `link`: the boot header and two relocations.
    fn arm64(link: u64) -> Vec<u8> {
        let mut img = vec![0u8; 0x1_0000];
        img[0x10..0x18].copy_from_slice(&0x1_0000u64.to_le_bytes());
        img[0x38..0x3c].copy_from_slice(b"ARM\x64");
        for (i, (place, value)) in [(0x100, 0x4242), (0x8000, 0x10)].into_iter().enumerate() {
            let at = 0x4000 + 24 * i;
            img[at..at + 8].copy_from_slice(&(link + place).to_le_bytes());
            img[at + 8..at + 16].copy_from_slice(&R_AARCH64_RELATIVE.to_le_bytes());
            img[at + 16..at + 24].copy_from_slice(&(link + value).to_le_bytes());
        }
        img
    }

    #[test]
    fn arm64_images_are_placed_by_their_relocations_and_relocated() {
        for link in [0xffff_8000_0800_0000, 0xffff_8000_8000_0000] {
            let image = arm64_image(&arm64(link)).unwrap().unwrap();
            assert_eq!(image.link, link);
            assert_eq!(image.bytes[0x100..0x108], (link + 0x4242).to_le_bytes());
            assert_eq!(image.bytes[0x8000..0x8008], (link + 0x10).to_le_bytes());
        }
    }

    #[test]
    fn compressed_arm64_images_are_read_and_other_payloads_refused() {
        use std::io::Write;
        let gz = |data: &[u8]| {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            enc.write_all(data).unwrap();
            enc.finish().unwrap()
        };
        let link = 0xffff_8000_0800_0000;
        let image = arm64_image(&gz(&arm64(link))).unwrap().unwrap();
        assert_eq!(image.link, link);
        // EFI zboot: the payload's offset and size at 8 and 12.
        let payload = gz(&arm64(link));
        let mut zboot = vec![0u8; 0x40];
        zboot[..2].copy_from_slice(b"MZ");
        zboot[4..8].copy_from_slice(b"zimg");
        zboot[8..12].copy_from_slice(&0x40u32.to_le_bytes());
        zboot[12..16].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        zboot.extend_from_slice(&payload);
        assert_eq!(arm64_image(&zboot).unwrap().unwrap().link, link);
        zboot[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(arm64_image(&zboot), Err(GenError::NotAKernel(_))));
        assert!(matches!(
            arm64_image(&gz(b"not a kernel")),
            Err(GenError::NotAKernel(_))
        ));
        assert!(arm64_image(b"\x7fELF").unwrap().is_none());
    }

    #[test]
    fn arm64_images_without_relocations_say_so() {
        let mut img = arm64(0xffff_8000_0800_0000);
        img[0x4000..0x4030].fill(0);
        let err = arm64_image(&img).unwrap_err().to_string();
        assert!(err.contains("no R_AARCH64_RELATIVE"), "{err}");
        // Relocations beyond image_size: not this image's.
        let mut img = arm64(0xffff_8000_0800_0000);
        img[0x10..0x18].copy_from_slice(&0x1000u64.to_le_bytes());
        let err = arm64_image(&img).unwrap_err().to_string();
        assert!(err.contains("more than image_size"), "{err}");
    }

    #[test]
    fn find_works() {
        assert_eq!(find(b"abcabd", b"abd"), Some(3));
        assert_eq!(find(b"ab", b"abc"), None);
        assert_eq!(find(b"", b"a"), None);
    }
}
