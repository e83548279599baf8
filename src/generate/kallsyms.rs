//! The kernel's own symbol table (`CONFIG_KALLSYMS`), found by shape in the image.
//!
//! `scripts/kallsyms.c` emits these arrays (each label aligned to the pointer size):
//!
//! | array | content |
//! |---|---|
//! | `kallsyms_num_syms` | `u32` count N |
//! | `kallsyms_names` | N entries: length (1 byte; 2 bytes `len & 0x7f | next << 7` when ≥ 0x80, since 6.1), then token indices; the first expanded character is the nm type |
//! | `kallsyms_markers` | `u32` offset into names of every 256th entry (`unsigned long` before 6.?, also tried) |
//! | `kallsyms_seqs_of_names` | 3 bytes per symbol (6.2, backported to 6.1 stable) |
//! | `kallsyms_token_table` | 256 NUL-terminated tokens |
//! | `kallsyms_token_index` | 256 `u16` offsets into the token table |
//! | `kallsyms_offsets` | N `i32` (`CONFIG_KALLSYMS_BASE_RELATIVE`, always since 6.?) |
//! | `kallsyms_relative_base` | the base the offsets are relative to (= `_text` on x86) |
//!
//! Orders seen: 6.1 (Debian 6.1.1xx): offsets, relative_base, num_syms, names, markers,
//! seqs_of_names, token_table, token_index. 6.12: num_syms, names, markers, token_table,
//! token_index, offsets, relative_base, seqs_of_names. So the search anchors on the token
//! table (recognisable: the single-character tokens `"0"`…`"9"` sit at indices 48…57), checks
//! it with the index, walks back to the markers and the count, verifies the names against
//! the markers, and then tries both places for the offsets.
//!
//! With `CONFIG_KALLSYMS_ABSOLUTE_PERCPU` (x86_64 SMP) an offset ≥ 0 is an absolute value
//! (per-CPU symbols: small offsets in the per-CPU area) and a negative one means
//! `relative_base - 1 - offset`; otherwise every address is `relative_base + (u32)offset`.
//!
//! Newer kernels (Debian's 7.2) have no `kallsyms_relative_base`: each offset is relative to
//! its own place (`offset_to_ptr(&kallsyms_offsets[i])`), so a symbol's address is the
//! link-time address of its entry plus the entry. That needs the image's file-offset →
//! address map, which [`find`] takes from its caller.

use std::collections::HashMap;

use super::{GenError, Result};

/// How far before the token table the markers and the names may start.
const MAX_BACK: usize = 64 << 20;

/// A decoded symbol table: name → (nm type, link-time address).
#[derive(Debug, Default)]
pub struct Kallsyms {
    symbols: HashMap<String, (char, u64)>,
    /// Number of entries in the table (duplicates included).
    pub count: usize,
}

impl Kallsyms {
    /// Address of `name` (the first entry of that name).
    pub fn get(&self, name: &str) -> Option<u64> {
        self.symbols.get(name).map(|s| s.1)
    }

    /// nm type letter of `name`.
    pub fn kind(&self, name: &str) -> Option<char> {
        self.symbols.get(name).map(|s| s.0)
    }

    /// Replaces every address `a` by `f(a)`: tables read from a running kernel hold
    /// run-time addresses, which the generator moves back to link-time ones.
    pub fn map_addresses(&mut self, f: impl Fn(u64) -> u64) {
        for s in self.symbols.values_mut() {
            s.1 = f(s.1);
        }
    }
}

fn u16_at(d: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(d.get(at..at + 2)?.try_into().ok()?))
}
fn u32_at(d: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(d.get(at..at + 4)?.try_into().ok()?))
}
fn u64_at(d: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(d.get(at..at + 8)?.try_into().ok()?))
}
fn align_up(x: usize, a: usize) -> usize {
    x.div_ceil(a) * a
}

/// Token table candidate: start, the 256 tokens, and the token index position.
struct Tokens<'a> {
    start: usize,
    tokens: Vec<&'a [u8]>,
    index: usize,
}

fn token_tables(d: &[u8]) -> Vec<Tokens<'_>> {
    let digits: Vec<u8> = (b'0'..=b'9').flat_map(|c| [c, 0]).collect();
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(p) = super::image::find(&d[from..], &digits) {
        let at = from + p;
        from = at + 1;
        if let Some(t) = token_table_at(d, at) {
            out.push(t);
        }
    }
    out
}

/// Checks that `digits` (the token `"0"`) is token 48 of a real token table.
///
/// The table is found from the index that follows it, not by walking back to its start:
/// the byte before token 0 is the end of the previous array, which need not be a NUL
/// (6.1's `kallsyms_seqs_of_names` has 3-byte entries and ends without padding when their
/// count is a multiple of four).
fn token_table_at(d: &[u8], digits: usize) -> Option<Tokens<'_>> {
    // Tokens 48..=255 run forward from `digits`; the index follows them, aligned.
    let mut end = digits;
    for _ in 48..256 {
        let len = d.get(end..)?.iter().take(64).position(|&b| b == 0)?;
        if len == 0 {
            return None;
        }
        end += len + 1;
    }
    (align_up(end, 2)..end + 16)
        .step_by(2)
        .find_map(|index| tokens_indexed(d, digits, index))
}

/// The 256 tokens if the `u16` array at `index` is their index and puts token 48 at
/// `digits`: offsets start at 0 and each token ends with a NUL right before the next one.
fn tokens_indexed(d: &[u8], digits: usize, index: usize) -> Option<Tokens<'_>> {
    let start = digits.checked_sub(usize::from(u16_at(d, index + 2 * 48)?))?;
    if u16_at(d, index)? != 0 {
        return None;
    }
    let mut tokens = Vec::with_capacity(256);
    for i in 0..256 {
        let at = start + usize::from(u16_at(d, index + 2 * i)?);
        let len = d.get(at..)?.iter().take(64).position(|&b| b == 0)?;
        let next = if i < 255 {
            start + usize::from(u16_at(d, index + 2 * (i + 1))?)
        } else {
            at + len + 1
        };
        if len == 0 || at + len + 1 != next {
            return None;
        }
        tokens.push(&d[at..at + len]);
    }
    Some(Tokens {
        start,
        tokens,
        index,
    })
}

/// Markers candidate: position, element size, values.
fn markers_before(d: &[u8], end: usize, word: usize, from: usize) -> Option<(usize, Vec<u64>)> {
    let read = |at: usize| {
        if word == 4 {
            u32_at(d, at).map(u64::from)
        } else {
            u64_at(d, at)
        }
    };
    let lo = end.saturating_sub(MAX_BACK);
    let mut p = from.min(end) / word * word;
    while p >= lo + word {
        p -= word;
        if read(p) != Some(0) {
            continue;
        }
        let mut vals = vec![0u64];
        let mut q = p + word;
        while let Some(v) = read(q) {
            let last = *vals.last().unwrap_or(&0);
            if v <= last || v - last < 256 || v - last > 256 * 512 {
                break;
            }
            vals.push(v);
            q += word;
        }
        if vals.len() >= 4 {
            return Some((p, vals));
        }
    }
    None
}

/// Decodes names from `start`; checks them against the markers when given.
fn decode_names(
    d: &[u8],
    start: usize,
    n: usize,
    markers: &[u64],
    tokens: &[&[u8]],
) -> Option<(Vec<String>, usize)> {
    let mut pos = start;
    let mut names = Vec::with_capacity(n);
    for i in 0..n {
        if i % 256 == 0 && markers.get(i / 256).map(|&m| start as u64 + m) != Some(pos as u64) {
            return None;
        }
        let mut len = usize::from(*d.get(pos)?);
        pos += 1;
        if len & 0x80 != 0 {
            len = (len & 0x7f) | usize::from(*d.get(pos)?) << 7;
            pos += 1;
        }
        if len == 0 {
            return None;
        }
        let mut name = Vec::with_capacity(len * 3);
        for &t in d.get(pos..pos + len)? {
            name.extend_from_slice(tokens[usize::from(t)]);
        }
        pos += len;
        names.push(String::from_utf8_lossy(&name).into_owned());
    }
    Some((names, pos))
}

/// Finds and decodes the kallsyms tables in an ELF vmlinux's bytes. `ptr` is the pointer
/// size (8 or 4); `va_of` gives the link-time address of a file offset, where the file
/// maps one (for place-relative offsets).
pub fn find(d: &[u8], ptr: usize, va_of: &dyn Fn(usize) -> Option<u64>) -> Result<Kallsyms> {
    let tables = token_tables(d);
    if tables.is_empty() {
        return Err(GenError::Kallsyms(
            "no token table in the image (CONFIG_KALLSYMS off?)".into(),
        ));
    }
    let mut why = String::from("token table found, but no markers/names before it");
    for t in &tables {
        for word in [4usize, ptr] {
            let mut from = t.start;
            while let Some((m, markers)) = markers_before(d, t.start, word, from) {
                from = m;
                match names_before(d, m, &markers, &t.tokens, ptr) {
                    Some((names, count_at)) => {
                        return offsets(d, &names, count_at, t.index + 512, ptr, va_of).map_err(
                            |e| {
                                GenError::Kallsyms(format!(
                                    "{} names decoded, but {e}",
                                    names.len()
                                ))
                            },
                        );
                    }
                    None => {
                        why = format!(
                            "markers at byte {m:#x} ({} entries) match no symbol count and names",
                            markers.len()
                        )
                    }
                }
            }
        }
    }
    Err(GenError::Kallsyms(why))
}

/// Finds `kallsyms_num_syms` before the markers and the names after it.
fn names_before(
    d: &[u8],
    markers_at: usize,
    markers: &[u64],
    tokens: &[&[u8]],
    ptr: usize,
) -> Option<(Vec<String>, usize)> {
    let m = markers.len() as u64;
    let last = *markers.last()? as usize;
    let lo = markers_at.saturating_sub(MAX_BACK);
    // The names end at the markers, so they start at most `last + 256 entries` before.
    let hi = markers_at.checked_sub(last)?;
    let mut q = hi / 4 * 4;
    while q >= lo + 4 {
        q -= 4;
        if hi - q > 256 * 256 * 4 {
            // Too far: the last 256 entries cannot take more than that.
            return None;
        }
        let n = u64::from(u32_at(d, q)?);
        if n <= (m - 1) * 256 || n > m * 256 {
            continue;
        }
        for start in [q + 4, align_up(q + 4, ptr)] {
            if let Some((names, end)) = decode_names(d, start, n as usize, markers, tokens)
                && end <= markers_at
            {
                return Some((names, q));
            }
        }
    }
    None
}

/// Finds `kallsyms_offsets` and `kallsyms_relative_base` (before the count, or after the
/// token index) and builds the table.
fn offsets(
    d: &[u8],
    names: &[String],
    count_at: usize,
    index_end: usize,
    ptr: usize,
    va_of: &dyn Fn(usize) -> Option<u64>,
) -> Result<Kallsyms> {
    let n = names.len();
    let read_ptr = |at: usize| {
        if ptr == 8 {
            u64_at(d, at)
        } else {
            u32_at(d, at).map(u64::from)
        }
    };
    let mut candidates = Vec::new();
    // Before the count: offsets, then relative_base just before kallsyms_num_syms.
    for base_at in [count_at.wrapping_sub(ptr), count_at.wrapping_sub(4)] {
        if let Some(start) = base_at.checked_sub(4 * n) {
            candidates.push((start / ptr * ptr, base_at));
            candidates.push((start, base_at));
        }
    }
    // After the token index.
    let start = align_up(index_end, ptr);
    candidates.push((start, align_up(start + 4 * n, ptr)));
    for (start, base_at) in candidates {
        let Some(base) = read_ptr(base_at) else {
            continue;
        };
        let kernel_half = if ptr == 8 {
            base >> 47 == 0x1_ffff
        } else {
            base >= 0x8000_0000
        };
        if !kernel_half || base % 4096 != 0 {
            continue;
        }
        let Some(raw) = d.get(start..start + 4 * n) else {
            continue;
        };
        let raw: Vec<i32> = raw
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let absolute_percpu = ptr == 8 && raw.iter().any(|&o| o < 0);
        let addrs: Vec<u64> = raw
            .iter()
            .map(|&o| {
                if absolute_percpu {
                    if o >= 0 {
                        o as u64
                    } else {
                        base.wrapping_sub(1).wrapping_sub(o as i64 as u64)
                    }
                } else {
                    base.wrapping_add(u64::from(o as u32))
                }
            })
            .collect();
        // The table is sorted by address: reject a candidate that is not (allowing a few
        // out-of-order entries).
        let unsorted = addrs.windows(2).filter(|w| w[1] < w[0]).count();
        if unsorted > n / 100 + 1 {
            continue;
        }
        return Ok(table(names, addrs));
    }
    // No base: offsets relative to their own place, the array ending at the count or
    // starting after the token index.
    let mut starts = Vec::new();
    for end in [count_at, count_at / ptr * ptr] {
        if let Some(start) = end.checked_sub(4 * n) {
            starts.push(start);
        }
    }
    starts.extend([align_up(index_end, 4), align_up(index_end, ptr)]);
    for start in starts {
        let (Some(raw), Some(va)) = (d.get(start..start + 4 * n), va_of(start)) else {
            continue;
        };
        let addrs: Vec<u64> = raw
            .chunks_exact(4)
            .enumerate()
            .map(|(i, c)| {
                let o = i32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                va.wrapping_add(4 * i as u64).wrapping_add(o as i64 as u64)
            })
            .collect();
        let in_kernel = |a: &u64| {
            if ptr == 8 {
                a >> 47 == 0x1_ffff
            } else {
                *a >= 0x8000_0000
            }
        };
        let unsorted = addrs.windows(2).filter(|w| w[1] < w[0]).count();
        if unsorted > n / 100 + 1 || addrs.iter().filter(|a| !in_kernel(a)).count() > n / 100 + 1 {
            continue;
        }
        return Ok(table(names, addrs));
    }
    Err(GenError::Kallsyms(
        "no kallsyms_offsets found: neither relative to kallsyms_relative_base nor to their own place (absolute kallsyms_addresses are not supported)".into(),
    ))
}

/// The symbol table of `names` (nm type first) at `addrs`.
fn table(names: &[String], addrs: Vec<u64>) -> Kallsyms {
    let mut symbols = HashMap::with_capacity(names.len());
    for (name, addr) in names.iter().zip(addrs) {
        let mut chars = name.chars();
        let kind = chars.next().unwrap_or('?');
        symbols
            .entry(chars.as_str().to_owned())
            .or_insert((kind, addr));
    }
    Kallsyms {
        symbols,
        count: names.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_an_error() {
        assert!(find(b"", 8, &|_| None).is_err());
        assert!(find(&[0u8; 4096], 8, &|_| None).is_err());
        let digits: Vec<u8> = (b'0'..=b'9').flat_map(|c| [c, 0]).collect();
        let mut d = vec![b'a'; 100];
        d.extend_from_slice(&digits);
        assert!(find(&d, 8, &|_| None).is_err());
    }

    /// A synthetic table in the 6.12 order decodes.
    #[test]
    fn synthetic_table() {
        synthetic(0);
    }

    /// As in 6.1 stable: `kallsyms_seqs_of_names` between the markers and the token table,
    /// ending without padding, so that no NUL precedes token 0.
    #[test]
    fn synthetic_table_after_unpadded_bytes() {
        synthetic(3 * 1096);
    }

    /// Builds a table of 1100 symbols, `seqs` non-zero bytes before the token table, and
    /// decodes it.
    fn synthetic(seqs: usize) {
        synthetic_with(seqs, false)
    }

    /// As Debian's 7.2: no `kallsyms_relative_base`, each offset relative to its own
    /// place (the file mapped at 0xffffffff82000000).
    #[test]
    fn synthetic_place_relative_table() {
        synthetic_with(0, true);
    }

    fn synthetic_with(seqs: usize, place_relative: bool) {
        let mut tokens: Vec<Vec<u8>> = (0..=255u8).map(|c| vec![c]).collect();
        tokens[0] = b"in".to_vec();
        tokens[1] = b"it_".to_vec();
        for t in tokens.iter_mut() {
            if t == &[0] {
                *t = b"z".to_vec();
            }
        }
        // 1100 symbols so that there are 5 markers.
        let names: Vec<Vec<u8>> = (0..1100)
            .map(|i| {
                let mut v = vec![if i == 0 { b'D' } else { b'T' }, 0, 1];
                v.extend_from_slice(format!("s{i}").as_bytes());
                v
            })
            .collect();
        let mut d = vec![0xeeu8; 64];
        d.extend_from_slice(&1100u32.to_le_bytes());
        while !d.len().is_multiple_of(8) {
            d.push(0);
        }
        let names_at = d.len();
        let mut markers = Vec::new();
        for (i, n) in names.iter().enumerate() {
            if i % 256 == 0 {
                markers.push((d.len() - names_at) as u32);
            }
            d.push(n.len() as u8);
            d.extend_from_slice(n);
        }
        while !d.len().is_multiple_of(8) {
            d.push(0);
        }
        for m in &markers {
            d.extend_from_slice(&m.to_le_bytes());
        }
        while !d.len().is_multiple_of(8) {
            d.push(0);
        }
        d.resize(d.len() + seqs, 0x5a);
        let mut index = Vec::new();
        let mut off = 0u16;
        for t in &tokens {
            index.push(off);
            d.extend_from_slice(t);
            d.push(0);
            off += t.len() as u16 + 1;
        }
        while !d.len().is_multiple_of(8) {
            d.push(0);
        }
        for i in index {
            d.extend_from_slice(&i.to_le_bytes());
        }
        let base = 0xffff_ffff_8100_0000u64;
        let mapped = 0xffff_ffff_8200_0000u64;
        let va_of = |off: usize| Some(mapped + off as u64);
        if place_relative {
            // Symbol i at base + i * 16, written relative to its own entry.
            let at = d.len();
            for i in 0..1100u64 {
                let entry = mapped + (at as u64) + 4 * i;
                let o = (base + i * 16).wrapping_sub(entry) as i64 as i32;
                d.extend_from_slice(&o.to_le_bytes());
            }
        } else {
            for i in 0..1100i32 {
                let o: i32 = if i == 0 { 0x1000 } else { -1 - i * 16 };
                d.extend_from_slice(&o.to_le_bytes());
            }
            d.extend_from_slice(&base.to_le_bytes());
        }
        d.extend_from_slice(&[0; 64]);
        let k = find(&d, 8, &va_of).unwrap();
        assert_eq!(k.count, 1100);
        if place_relative {
            assert_eq!(k.get("init_s0"), Some(base));
        } else {
            assert_eq!(k.get("init_s0"), Some(0x1000));
        }
        assert_eq!(k.kind("init_s0"), Some('D'));
        assert_eq!(k.get("init_s1099"), Some(base + 1099 * 16));
        // Truncations never panic.
        for cut in (0..d.len()).step_by(97) {
            let _ = find(&d[..cut], 8, &va_of);
        }
    }
}
