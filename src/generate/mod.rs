//! Offline kernelinfo generation: kernel image → ELF → BTF + kallsyms → one key-file group.
//!
//! ```text
//! bzImage ──decompress──▶ ELF vmlinux ──▶ .BTF ─────────▶ struct layouts ─┐
//!   (or ELF directly)                 └─▶ kallsyms tables ▶ link addresses ┴▶ keys ▶ text
//! ```
//!
//! Nothing here runs inside the plugin: images are scanned whole, which is fine offline.
//! Each stage is its own module, parses a `&[u8]` it borrows, and fails with a typed
//! [`GenError`] rather than a panic, whatever the input.

pub mod btf;
pub mod dwarf;
pub mod image;
pub mod kallsyms;
pub mod memory;
pub mod profile;
pub mod symbols;
pub mod types;

use std::path::PathBuf;

pub use profile::Generated;

/// Why a kernelinfo group could not be generated.
#[derive(Debug, thiserror::Error)]
pub enum GenError {
    /// An input file cannot be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The input is neither a bzImage nor an ELF vmlinux.
    #[error("not a kernel image: {0}")]
    NotAKernel(String),
    /// The bzImage payload uses a compression this tool does not read.
    #[error("unsupported kernel payload compression: {0}")]
    UnsupportedCompression(&'static str),
    /// The payload is damaged or truncated.
    #[error("cannot decompress the {format} payload: {reason}")]
    Decompress {
        /// The compression format.
        format: &'static str,
        /// What the decoder said.
        reason: String,
    },
    /// The ELF file is malformed.
    #[error("malformed ELF: {0}")]
    Elf(String),
    /// The image carries no `.BTF` section.
    #[error("no BTF in image; pass --dwarf <vmlinux-dbg> (the -dbg package's vmlinux)")]
    NoBtf,
    /// The `--dwarf` file's debug information cannot be used.
    #[error("DWARF: {0}")]
    Dwarf(String),
    /// The BTF data is malformed.
    #[error("malformed BTF at byte {offset}: {what}")]
    Btf {
        /// Byte offset in the BTF blob.
        offset: usize,
        /// What is wrong.
        what: String,
    },
    /// The kallsyms tables cannot be found or decoded.
    #[error("kallsyms: {0}")]
    Kallsyms(String),
    /// A symbol file given with `--symbols` is malformed.
    #[error("{file}:{line}: {what}")]
    Symbols {
        /// The file.
        file: PathBuf,
        /// 1-based line (0 for binary files).
        line: usize,
        /// What is wrong.
        what: String,
    },
    /// Symbols the group needs are in neither the image nor the `--symbols` file.
    #[error(
        "symbols not found: {}; pass --symbols <System.map or ELF with a symbol table>",
        .0.join(", ")
    )]
    MissingSymbols(Vec<String>),
    /// Struct members the group needs are not in the type information.
    #[error("types or members not found: {}", .0.join(", "))]
    MissingTypes(Vec<String>),
    /// The kernel's `linux_banner` cannot be read.
    #[error("cannot read linux_banner: {0}")]
    Banner(String),
    /// What was generated is not a group the plugin can read: a bug of the generator.
    #[error("the generated group is invalid: {0}")]
    Invalid(String),
}

/// Result of the generator.
pub type Result<T> = std::result::Result<T, GenError>;

/// Reads a file, naming it in the error.
pub fn read_file(path: &std::path::Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| GenError::Io {
        path: path.to_owned(),
        source,
    })
}

/// Generates the kernelinfo group of a kernel image (x86 bzImage, arm64 `Image`, 32-bit
/// ARM `zImage`, or ELF vmlinux).
///
/// `symbols`, when given, is a System.map or an ELF with a symbol table whose addresses win
/// over the image's own kallsyms. `dwarf`, when given, is an ELF with DWARF debug
/// information (the -dbg package's vmlinux) read instead of the image's `.BTF`.
pub fn generate(
    image: &[u8],
    symbols: Option<(&std::path::Path, &[u8])>,
    dwarf: Option<&[u8]>,
) -> Result<Generated> {
    let extra = match symbols {
        Some((path, bytes)) => Some(symbols::parse(path, bytes)?),
        None => None,
    };
    let dwarf = dwarf.map(dwarf::DwarfTypes::parse).transpose()?;
    if let Some(arm64) = image::arm64_image(image)? {
        return memory::from_image(
            &arm64.bytes,
            arm64.link,
            memory::Target::AARCH64,
            extra.as_ref(),
            dwarf.as_ref().map(|d| d as &dyn types::Types),
        );
    }
    if let Some(raw) = image::arm_zimage(image)? {
        let target = memory::Target::ARM;
        return memory::from_image(
            &raw,
            image::arm_link(&raw, target.link_text)?,
            target,
            extra.as_ref(),
            dwarf.as_ref().map(|d| d as &dyn types::Types),
        );
    }
    let elf_bytes = image::kernel_elf(image)?;
    let elf = image::Elf::parse(&elf_bytes)?;
    // An unstripped vmlinux (the -dbg package's) names its own symbols: no --symbols needed.
    let extra =
        extra.or_else(|| symbols::parse(std::path::Path::new("the image"), &elf_bytes).ok());
    let kallsyms = elf.kallsyms();
    match dwarf {
        Some(d) => profile::build(&elf, kallsyms, &d, extra.as_ref()),
        None => {
            let blob = elf.section(".BTF").ok_or(GenError::NoBtf)?;
            let ptr = if elf.bits == 64 { 8 } else { 4 };
            profile::build(&elf, kallsyms, &btf::Btf::parse(blob, ptr)?, extra.as_ref())
        }
    }
}
