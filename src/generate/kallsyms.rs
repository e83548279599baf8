//! The kernel's own symbol table (`CONFIG_KALLSYMS`), found by shape in the image or in
//! guest memory, for every layout from 4.18 to 7.x.
//!
//! `scripts/kallsyms.c` emits these arrays, each label aligned to the pointer size (to 4
//! bytes since the 7.0 cycle):
//!
//! | array | content |
//! |---|---|
//! | `kallsyms_num_syms` | count N: `unsigned long` in 4.19, `u32` by 5.10 |
//! | `kallsyms_names` | N entries: length (1 byte; since 6.1 2 bytes `len & 0x7f \| 0x80, len >> 7` when ≥ 0x80), then token indices; the first expanded character is the nm type |
//! | `kallsyms_markers` | offset into names of every 256th entry: `unsigned long` in 4.19, `u32` by 5.10 |
//! | `kallsyms_seqs_of_names` | N name-sorted indices (6.2, backported to 6.1 stable; 3 bytes each) |
//! | `kallsyms_token_table` | 256 NUL-terminated tokens |
//! | `kallsyms_token_index` | 256 `u16` offsets into the token table |
//! | `kallsyms_addresses` | N pointer-sized absolute addresses, without `CONFIG_KALLSYMS_BASE_RELATIVE` (an option until 2024) |
//! | `kallsyms_offsets` | N `i32`, or (32-bit kernels that are not relocatable, since the 7.0 cycle) N absolute `u32` |
//! | `kallsyms_relative_base` | the base of the offsets, pointer-sized (until the 7.0 cycle) |
//!
//! Orders ([`Order`]), as `scripts/kallsyms.c` of each era writes them, and the real images
//! `tests/kernelinfo_gen.rs` reads in each (every entry against the -dbg package's
//! `System.map` where Debian still has one):
//!
//! | kernels | order | real images |
//! |---|---|---|
//! | 4.6 – 6.3 | addresses, or offsets and relative_base; num_syms, names, markers, (seqs_of_names,) token_table, token_index ([`Order::AddressesFirst`]) | Debian 5.10 and 6.1, amd64 and 686-pae |
//! | 6.4 – 7.x | num_syms, names, markers, token_table, token_index; addresses, or offsets (and relative_base); seqs_of_names ([`Order::AddressesLast`]) | Debian 6.12 and 7.2 amd64 |
//!
//! Address encodings ([`Layout`]):
//!
//! | layout | address of symbol i | kernels (real images) |
//! |---|---|---|
//! | [`Layout::Absolute`] | `kallsyms_addresses[i]`, or `(u32)kallsyms_offsets[i]` (KASLR-relocated in memory, but x86_64's per-CPU symbols) | no `CONFIG_KALLSYMS_BASE_RELATIVE`, until 2024; 32-bit and not relocatable, since the 7.0 cycle (none at hand: synthetic tables) |
//! | [`Layout::BaseRelative`] | `relative_base + (u32)offset` | 4.6 – 7.0 cycle, but below (Debian 5.10 and 6.1 686-pae) |
//! | [`Layout::BaseRelativePercpu`] | `offset ≥ 0`: `offset` (a per-CPU symbol); else `relative_base - 1 - offset` | `CONFIG_KALLSYMS_ABSOLUTE_PERCPU` (x86_64 SMP), 4.6 – 6.14 (Debian 5.10, 6.1, 6.12 amd64) |
//! | [`Layout::PlaceRelative`] | `&kallsyms_offsets[i] + offset` | since the 7.0 cycle, 64-bit or relocatable (Debian 7.2 amd64) |
//!
//! 4.18 and 4.19 (Debian buster's kernel) have 5.10's layouts with `unsigned long` counts
//! and markers: synthetic tables only, as Debian's archive no longer serves buster.
//!
//! The search anchors on the token table (recognisable: the single-character tokens
//! `"0"`…`"9"` sit at indices 48…57), checks it with the index, walks back to the markers
//! (`u32` or pointer-sized) and the count, verifies the names against the markers, and then
//! tries each layout where its order puts the addresses: base-relative first (a base is the
//! strongest evidence), then absolute, then place-relative. A reading is taken only if its
//! addresses are sorted (the table is sorted by address), lie in the kernel half and within
//! 512 MiB of the table itself where its address is known, but for a few; if the lowest
//! address that is not per-CPU, `_text`, is page-aligned; and, for the base-relative
//! layouts, if that address is the base (`scripts/kallsyms.c` takes the first such symbol
//! as the base). Each check keeps some wrong reading out: a place-relative reading of
//! non-negative base-relative offsets (6.15 on) is sorted and near, but its lowest address
//! is not page-aligned; an absolute reading of 32-bit place-relative offsets is far from
//! the table.
//!
//! [`find`] reads the same tables from a file or from guest memory: `va_of` gives the
//! address of a byte of `d`, the link-time address in a file, the (KASLR-relocated)
//! run-time address in memory, where `kallsyms_relative_base` and `kallsyms_addresses`
//! hold relocated values too. Place-relative offsets need it; the other layouts use it only
//! for the 512 MiB check.

use std::collections::HashMap;

use super::{GenError, Result};

/// How far before the token table the markers and the names may start.
const MAX_BACK: usize = 64 << 20;

/// One entry of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Symbol {
    /// Its name.
    pub name: String,
    /// Its nm type letter (`T`, `d`, …; `A` for x86_64's absolute per-CPU symbols).
    pub kind: char,
    /// Its address (link-time in a file, run-time in memory).
    pub addr: u64,
}

/// A decoded symbol table.
#[derive(Debug)]
pub struct Kallsyms {
    /// Every entry, in the table's order (by address), duplicate names included.
    entries: Vec<Symbol>,
    /// Name → index of its first entry.
    first: HashMap<String, usize>,
    /// How the addresses were stored.
    pub layout: Layout,
    /// Where they were.
    pub order: Order,
}

impl Kallsyms {
    /// Address of `name` (the first entry of that name).
    pub fn get(&self, name: &str) -> Option<u64> {
        self.symbol(name).map(|s| s.addr)
    }

    /// nm type letter of `name`.
    pub fn kind(&self, name: &str) -> Option<char> {
        self.symbol(name).map(|s| s.kind)
    }

    /// The first entry named `name`.
    pub fn symbol(&self, name: &str) -> Option<&Symbol> {
        self.entries.get(*self.first.get(name)?)
    }

    /// Every entry, in the table's order.
    pub fn entries(&self) -> &[Symbol] {
        &self.entries
    }

    /// Number of entries (duplicate names included).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the table has no entries (never, for a table [`find`] returns).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Replaces every address `a` by `f(a)`: tables read from a running kernel hold
    /// run-time addresses, which the generator moves back to link-time ones.
    pub fn map_addresses(&mut self, f: impl Fn(u64) -> u64) {
        for s in &mut self.entries {
            s.addr = f(s.addr);
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
    // `n` comes from the input: reserve for what a real kernel has at most.
    let mut names = Vec::with_capacity(n.min(1 << 18));
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

/// How a kernel stores its symbol addresses (the table in the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Pointer-sized absolute addresses: `kallsyms_addresses`, or, on 32-bit kernels that
    /// are not relocatable since the 7.0 cycle, `kallsyms_offsets` holding the same.
    Absolute,
    /// `kallsyms_offsets` from `kallsyms_relative_base`, unsigned.
    BaseRelative,
    /// `kallsyms_offsets` from `kallsyms_relative_base`, negative, with per-CPU symbols'
    /// absolute (zero-based) addresses as the non-negative entries
    /// (`CONFIG_KALLSYMS_ABSOLUTE_PERCPU`).
    BaseRelativePercpu,
    /// `kallsyms_offsets` relative to each entry's own address.
    PlaceRelative,
}

/// Where the address array sits (the table in the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Before `kallsyms_num_syms` (until 6.3).
    AddressesFirst,
    /// After `kallsyms_token_index` (since 6.4).
    AddressesLast,
}

/// The kernel image and this table lie within this distance of each other.
const NEAR: u64 = 512 << 20;

/// Finds and decodes the kallsyms tables in `d`, the bytes of an ELF vmlinux or of guest
/// memory. `ptr` is the pointer size (8 or 4); `va_of` gives the address of an offset in
/// `d` where known: the link-time address in a file, the run-time one in memory.
pub fn find(d: &[u8], ptr: usize, va_of: &dyn Fn(usize) -> Option<u64>) -> Result<Kallsyms> {
    if ptr != 4 && ptr != 8 {
        return Err(GenError::Kallsyms(format!("pointer size {ptr} (4 or 8)")));
    }
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
                        let at = Place {
                            count_at,
                            index_end: t.index + 512,
                        };
                        return addresses(d, names.len(), at, ptr, va_of)
                            .map(|(layout, order, addrs)| table(&names, addrs, layout, order))
                            .map_err(|e| {
                                GenError::Kallsyms(format!(
                                    "{} names decoded, but {e}",
                                    names.len()
                                ))
                            });
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
///
/// The markers found may run on into the following bytes by an entry or two (what follows
/// can happen to look like larger offsets), so the count may need fewer markers than were
/// found; [`decode_names`] checks the ones it needs.
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
        if n == 0 || n > m * 256 || n <= m.saturating_sub(3) * 256 {
            continue;
        }
        // After the count: right after it (labels aligned to 4: 32-bit kernels, and all
        // since the 7.0 cycle), or at the next pointer-aligned place (before that; and
        // after 4.19's `unsigned long` count).
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

/// Where the arrays around the addresses are: the count and the end of the token index.
#[derive(Debug, Clone, Copy)]
struct Place {
    count_at: usize,
    index_end: usize,
}

/// A place the address array may start at, in one layout.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    layout: Layout,
    order: Order,
    start: usize,
    /// Where `kallsyms_relative_base` is, for the base-relative layouts.
    base_at: Option<usize>,
}

/// Every place `scripts/kallsyms.c` of some era puts the addresses of `n` symbols at, in
/// this order: base-relative first (the base is the strongest evidence), then absolute,
/// then place-relative.
fn candidates(n: usize, at: Place, ptr: usize) -> Vec<Candidate> {
    let mut out = Vec::new();
    let first = Order::AddressesFirst;
    let last = Order::AddressesLast;
    let relative = |order, start, base_at| Candidate {
        layout: Layout::BaseRelative,
        order,
        start,
        base_at: Some(base_at),
    };
    // Until 6.3: offsets, relative_base (aligned), num_syms right after.
    if let Some(base_at) = at.count_at.checked_sub(ptr)
        && let Some(start) = base_at.checked_sub(4 * n)
    {
        // The offsets start aligned: when 4n is not, padding follows them.
        out.push(relative(first, start / ptr * ptr, base_at));
        if start % ptr != 0 {
            out.push(relative(first, start, base_at));
        }
    }
    // Since 6.4: offsets after the token index, relative_base after them, aligned.
    let after = align_up(at.index_end, ptr);
    out.push(relative(last, after, align_up(after + 4 * n, ptr)));
    // Absolute addresses: before the count (until 6.3), after the token index (6.4 on).
    if let Some(start) = at.count_at.checked_sub(ptr * n) {
        out.push(Candidate {
            layout: Layout::Absolute,
            order: first,
            start,
            base_at: None,
        });
    }
    out.push(Candidate {
        layout: Layout::Absolute,
        order: last,
        start: after,
        base_at: None,
    });
    // The 7.0 cycle: offsets after the token index, aligned to 4, with no base.
    for start in [align_up(at.index_end, 4), after] {
        if !out
            .iter()
            .any(|c| c.layout == Layout::PlaceRelative && c.start == start)
        {
            out.push(Candidate {
                layout: Layout::PlaceRelative,
                order: last,
                start,
                base_at: None,
            });
        }
    }
    out
}

/// The addresses of `n` symbols, in the first layout that gives plausible ones.
fn addresses(
    d: &[u8],
    n: usize,
    at: Place,
    ptr: usize,
    va_of: &dyn Fn(usize) -> Option<u64>,
) -> Result<(Layout, Order, Vec<u64>)> {
    for c in candidates(n, at, ptr) {
        if let Some((layout, addrs)) = decode(d, n, c, ptr, va_of) {
            return Ok((layout, c.order, addrs));
        }
    }
    Err(GenError::Kallsyms(
        "no address array fits: neither kallsyms_addresses nor kallsyms_offsets (relative to \
         kallsyms_relative_base, to their own place, or absolute) before the count or after \
         the token index"
            .into(),
    ))
}

fn read_ptr(d: &[u8], at: usize, ptr: usize) -> Option<u64> {
    if ptr == 8 {
        u64_at(d, at)
    } else {
        u32_at(d, at).map(u64::from)
    }
}

/// Whether `a` is in the kernel's half of the address space (32-bit: the 3G/1G and 2G/2G
/// splits).
fn kernel_half(a: u64, ptr: usize) -> bool {
    if ptr == 8 {
        a >> 47 == 0x1_ffff
    } else {
        (0x8000_0000..=0xffff_ffff).contains(&a)
    }
}

/// Decodes candidate `c`, and returns its addresses if they are plausible.
fn decode(
    d: &[u8],
    n: usize,
    c: Candidate,
    ptr: usize,
    va_of: &dyn Fn(usize) -> Option<u64>,
) -> Option<(Layout, Vec<u64>)> {
    let width = if c.layout == Layout::Absolute { ptr } else { 4 };
    let raw = d.get(c.start..c.start.checked_add(width.checked_mul(n)?)?)?;
    let near = va_of(c.start);
    let offsets = || {
        raw.chunks_exact(4)
            .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    // Per-CPU entries (absolute, zero-based) are exempt from the address checks.
    let (layout, addrs, percpu): (Layout, Vec<u64>, Vec<bool>) = match c.layout {
        Layout::BaseRelative | Layout::BaseRelativePercpu => {
            let base = read_ptr(d, c.base_at?, ptr)?;
            if !kernel_half(base, ptr) {
                return None;
            }
            // KALLSYMS_ABSOLUTE_PERCPU makes every relative entry negative.
            let percpu_layout = ptr == 8 && offsets().any(|o| o < 0);
            let mut addrs = Vec::with_capacity(n);
            let mut percpu = Vec::with_capacity(n);
            for o in offsets() {
                let (a, p) = if !percpu_layout {
                    (base.wrapping_add(u64::from(o as u32)), false)
                } else if o >= 0 {
                    (o as u64, true)
                } else {
                    (base.wrapping_sub(1).wrapping_sub(o as i64 as u64), false)
                };
                addrs.push(a);
                percpu.push(p);
            }
            // The base is the first relative symbol's address.
            let lowest = addrs
                .iter()
                .zip(&percpu)
                .filter(|(_, p)| !**p)
                .map(|(a, _)| *a)
                .min();
            if lowest != Some(base) {
                return None;
            }
            let layout = if percpu_layout {
                Layout::BaseRelativePercpu
            } else {
                Layout::BaseRelative
            };
            (layout, addrs, percpu)
        }
        Layout::Absolute => {
            let addrs: Vec<u64> = raw
                .chunks_exact(ptr)
                .filter_map(|b| read_ptr(b, 0, ptr))
                .collect();
            // x86_64's per-CPU symbols keep their zero-based addresses.
            let percpu = addrs.iter().map(|&a| ptr == 8 && a >> 32 == 0).collect();
            (Layout::Absolute, addrs, percpu)
        }
        Layout::PlaceRelative => {
            let va = near?;
            let addrs = offsets()
                .enumerate()
                .map(|(i, o)| va.wrapping_add(4 * i as u64).wrapping_add(o as i64 as u64))
                .collect();
            (Layout::PlaceRelative, addrs, vec![false; n])
        }
    };
    plausible(&addrs, &percpu, ptr, near).then_some((layout, addrs))
}

/// Sorted, in the kernel half and near the table (where its address is known), but for a
/// few entries; and the lowest address that is not per-CPU, the image's start (`_text`),
/// page-aligned (on x86, in every era, KASLR or not): what tells a 32-bit absolute table
/// from a place-relative one where the table's own address is unknown, and a base from a
/// stray word.
fn plausible(addrs: &[u64], percpu: &[bool], ptr: usize, near: Option<u64>) -> bool {
    let tolerance = addrs.len() / 100 + 1;
    let unsorted = addrs.windows(2).filter(|w| w[1] < w[0]).count();
    let mut lowest = None::<u64>;
    let mut bad = 0;
    for (&a, &p) in addrs.iter().zip(percpu) {
        if p {
            continue;
        }
        lowest = Some(lowest.map_or(a, |l| l.min(a)));
        if !kernel_half(a, ptr) || near.is_some_and(|t| a.abs_diff(t) > NEAR) {
            bad += 1;
        }
    }
    lowest.is_some_and(|l| l % 4096 == 0) && unsorted <= tolerance && bad <= tolerance
}

/// The symbol table of `names` (nm type first) at `addrs`.
fn table(names: &[String], addrs: Vec<u64>, layout: Layout, order: Order) -> Kallsyms {
    let mut entries = Vec::with_capacity(names.len());
    let mut first = HashMap::with_capacity(names.len());
    for (name, addr) in names.iter().zip(addrs) {
        let mut chars = name.chars();
        let kind = chars.next().unwrap_or('?');
        let name = chars.as_str().to_owned();
        first.entry(name.clone()).or_insert(entries.len());
        entries.push(Symbol { name, kind, addr });
    }
    Kallsyms {
        entries,
        first,
        layout,
        order,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_an_error() {
        assert!(find(b"", 8, &|_| None).is_err());
        assert!(find(&[0u8; 4096], 8, &|_| None).is_err());
        assert!(find(&[0u8; 4096], 3, &|_| None).is_err());
        let digits: Vec<u8> = (b'0'..=b'9').flat_map(|c| [c, 0]).collect();
        let mut d = vec![b'a'; 100];
        d.extend_from_slice(&digits);
        assert!(find(&d, 8, &|_| None).is_err());
    }

    /// What one era of `scripts/kallsyms.c` emits, for [`build`].
    #[derive(Debug, Clone, Copy)]
    struct Era {
        ptr: usize,
        layout: Layout,
        order: Order,
        /// `kallsyms_num_syms` and `kallsyms_markers` as `unsigned long` (4.19).
        long_words: bool,
        /// Label alignment: the pointer size, or 4 (the 7.0 cycle).
        align: usize,
        /// `kallsyms_seqs_of_names` (3 bytes per symbol, 6.1 stable and 6.2 on).
        seqs: bool,
        /// Leading per-CPU symbols at zero-based addresses (x86_64).
        percpu: usize,
        /// A name longer than 127 tokens (2-byte length, 6.1 on).
        big_name: bool,
        n: usize,
    }

    /// 4.19 on x86_64 (Debian buster's kind): `unsigned long` count and markers.
    const V4_19_X86_64: Era = Era {
        ptr: 8,
        layout: Layout::BaseRelativePercpu,
        order: Order::AddressesFirst,
        long_words: true,
        align: 8,
        seqs: false,
        percpu: 3,
        big_name: false,
        n: 1100,
    };

    /// Where [`build`] puts the tables: the bytes' address, and the image's text.
    const MAPPED: u64 = 0xffff_ffff_8200_0000;
    const TEXT: u64 = 0xffff_ffff_8100_0000;
    const MAPPED_32: u64 = 0xc200_0000;
    const TEXT_32: u64 = 0xc100_0000;

    /// The name (without its nm type) and address of symbol `i`: per-CPU symbols first,
    /// then text, some at the same address as the one before (aliases).
    fn symbol(era: &Era, i: usize) -> (String, u64) {
        let text = if era.ptr == 8 { TEXT } else { TEXT_32 };
        let name = if era.big_name && i == era.n / 2 {
            format!("init_{}", "x".repeat(200))
        } else {
            format!("init_s{i}")
        };
        if i < era.percpu {
            return (name, 0x1000 + 8 * i as u64);
        }
        let k = (i - era.percpu) as u64;
        (name, text + 16 * (k - k / 7))
    }

    fn pad(d: &mut Vec<u8>, align: usize) {
        while !d.len().is_multiple_of(align) {
            d.push(0);
        }
    }

    fn word(d: &mut Vec<u8>, v: u64, width: usize) {
        d.extend_from_slice(&v.to_le_bytes()[..width]);
    }

    /// The tables of `era.n` symbols as that era's `scripts/kallsyms.c` lays them out, in
    /// a section linked at `mapped`; `slide` is added to what the kernel relocates (a
    /// KASLR-relocated copy in memory).
    fn build(era: &Era, mapped: u64, slide: u64) -> Vec<u8> {
        // Tokens: each byte stands for itself, but 0 ("in") and 1 ("it_").
        let mut tokens: Vec<Vec<u8>> = (0..=255u8).map(|c| vec![c]).collect();
        tokens[0] = b"in".to_vec();
        tokens[1] = b"it_".to_vec();
        let names: Vec<Vec<u8>> = (0..era.n)
            .map(|i| {
                let (name, _) = symbol(era, i);
                let kind = if i < era.percpu { b'A' } else { b'T' };
                let mut v = vec![kind, 0, 1];
                v.extend_from_slice(&name.as_bytes()[5..]);
                v
            })
            .collect();
        let mut d = vec![0xeeu8; 64];
        let count_width = if era.long_words { era.ptr } else { 4 };
        let addresses = |d: &mut Vec<u8>| {
            pad(d, era.align);
            let start = d.len();
            let base = symbol(era, era.percpu).1;
            for i in 0..era.n {
                let (_, a) = symbol(era, i);
                let percpu = i < era.percpu;
                let relocated = if percpu { a } else { a + slide };
                match era.layout {
                    Layout::Absolute => word(d, relocated, era.ptr),
                    Layout::BaseRelative => word(d, a - base, 4),
                    Layout::BaseRelativePercpu => {
                        let o = if percpu {
                            a
                        } else {
                            base.wrapping_sub(a).wrapping_sub(1)
                        };
                        word(d, o, 4)
                    }
                    Layout::PlaceRelative => {
                        let place = mapped + (start + 4 * i) as u64;
                        word(d, a.wrapping_sub(place), 4)
                    }
                }
            }
            if matches!(
                era.layout,
                Layout::BaseRelative | Layout::BaseRelativePercpu
            ) {
                pad(d, era.align);
                word(d, base + slide, era.ptr);
            }
        };
        if era.order == Order::AddressesFirst {
            addresses(&mut d);
        }
        pad(&mut d, era.align);
        word(&mut d, era.n as u64, count_width);
        pad(&mut d, era.align);
        let names_at = d.len();
        let mut markers = Vec::new();
        for (i, n) in names.iter().enumerate() {
            if i % 256 == 0 {
                markers.push((d.len() - names_at) as u64);
            }
            if n.len() < 0x80 {
                d.push(n.len() as u8);
            } else {
                d.push((n.len() & 0x7f) as u8 | 0x80);
                d.push((n.len() >> 7) as u8);
            }
            d.extend_from_slice(n);
        }
        pad(&mut d, era.align);
        for &m in &markers {
            word(&mut d, m, count_width);
        }
        let seqs = |d: &mut Vec<u8>| {
            pad(d, era.align);
            // Non-zero bytes, as a real permutation's mostly are.
            d.resize(d.len() + 3 * era.n, 0x5a);
        };
        if era.seqs && era.order == Order::AddressesFirst {
            seqs(&mut d);
        }
        pad(&mut d, era.align);
        let mut index = Vec::new();
        let mut off = 0u16;
        for t in &tokens {
            index.push(off);
            d.extend_from_slice(t);
            d.push(0);
            off += t.len() as u16 + 1;
        }
        pad(&mut d, era.align);
        for i in index {
            word(&mut d, u64::from(i), 2);
        }
        if era.order == Order::AddressesLast {
            addresses(&mut d);
            if era.seqs {
                seqs(&mut d);
            }
        }
        d.extend_from_slice(&[0; 64]);
        d
    }

    /// Builds `era`'s tables, linked at `mapped` and moved with what the kernel relocates by
    /// `slide`, and checks every symbol `find` reads from them.
    fn check_at(era: Era, mapped: u64, slide: u64) -> Kallsyms {
        let d = build(&era, mapped, slide);
        let va_of = |off: usize| Some(mapped + slide + off as u64);
        let k = find(&d, era.ptr, &va_of).unwrap_or_else(|e| panic!("{era:?}: {e}"));
        assert_eq!((k.layout, k.order), (era.layout, era.order), "{era:?}");
        assert_eq!(k.len(), era.n, "{era:?}");
        for i in 0..era.n {
            let (name, a) = symbol(&era, i);
            let s = &k.entries()[i];
            let want = if i < era.percpu { a } else { a + slide };
            assert_eq!(
                (s.name.as_str(), s.addr),
                (name.as_str(), want),
                "{era:?}: entry {i}"
            );
            assert_eq!(s.kind, if i < era.percpu { 'A' } else { 'T' });
        }
        assert_eq!(k.get("init_s1"), Some(k.entries()[1].addr));
        k
    }

    fn check(era: Era) {
        let (mapped, slide) = if era.ptr == 8 {
            (MAPPED, 0x2a0_0000)
        } else {
            (MAPPED_32, 0x120_0000)
        };
        check_at(era, mapped, 0);
        // A copy in guest memory, KASLR-relocated: its address and what the kernel
        // relocates (the base, absolute addresses) move by the slide.
        check_at(era, mapped, slide);
        // Truncations never panic.
        let d = build(&era, mapped, 0);
        for cut in (0..d.len()).step_by(97) {
            let _ = find(&d[..cut], era.ptr, &|off| Some(mapped + off as u64));
        }
    }

    #[test]
    fn v4_19_x86_64_offsets_with_absolute_percpu_and_long_words() {
        check(V4_19_X86_64);
    }

    #[test]
    fn v4_19_i386_offsets() {
        check(Era {
            ptr: 4,
            layout: Layout::BaseRelative,
            percpu: 0,
            align: 4,
            ..V4_19_X86_64
        });
    }

    /// Without `CONFIG_KALLSYMS_BASE_RELATIVE`: `kallsyms_addresses` before the count,
    /// x86_64's per-CPU symbols unrelocated among them.
    #[test]
    fn absolute_addresses_first() {
        check(Era {
            layout: Layout::Absolute,
            ..V4_19_X86_64
        });
        check(Era {
            ptr: 4,
            layout: Layout::Absolute,
            percpu: 0,
            align: 4,
            ..V4_19_X86_64
        });
    }

    /// 5.10: `u32` count and markers.
    #[test]
    fn v5_10_offsets() {
        let era = Era {
            long_words: false,
            ..V4_19_X86_64
        };
        check(era);
        check(Era {
            ptr: 4,
            layout: Layout::BaseRelative,
            percpu: 0,
            align: 4,
            ..era
        });
    }

    /// 6.1 stable: `kallsyms_seqs_of_names` between the markers and the token table, ending
    /// without padding (3 × 1096 bytes), so that no NUL precedes token 0; a 2-byte length.
    #[test]
    fn v6_1_stable() {
        check(Era {
            long_words: false,
            seqs: true,
            big_name: true,
            n: 1096,
            ..V4_19_X86_64
        });
    }

    /// 6.4 – 6.10 without `CONFIG_KALLSYMS_BASE_RELATIVE`: `kallsyms_addresses` after the
    /// token index.
    #[test]
    fn absolute_addresses_last() {
        let era = Era {
            layout: Layout::Absolute,
            order: Order::AddressesLast,
            long_words: false,
            seqs: true,
            ..V4_19_X86_64
        };
        check(era);
        check(Era {
            ptr: 4,
            percpu: 0,
            align: 4,
            ..era
        });
    }

    /// 6.4 – 6.14 (Debian's 6.12): offsets and base after the token index.
    #[test]
    fn v6_12_offsets_last() {
        check(Era {
            order: Order::AddressesLast,
            long_words: false,
            seqs: true,
            big_name: true,
            ..V4_19_X86_64
        });
    }

    /// 6.15 – 7.0 cycle: no absolute per-CPU symbols, so every offset is ≥ 0; read as
    /// place-relative ones they would give sorted kernel addresses near the table too (but
    /// the base, tried first, and the page-aligned `_text` tell them apart).
    #[test]
    fn v6_15_offsets_without_percpu() {
        check(Era {
            layout: Layout::BaseRelative,
            order: Order::AddressesLast,
            long_words: false,
            seqs: true,
            percpu: 0,
            ..V4_19_X86_64
        });
    }

    /// The 7.0 cycle (Debian's 7.2): no base, each offset relative to its own place; labels
    /// aligned to 4.
    #[test]
    fn v7_place_relative() {
        let era = Era {
            layout: Layout::PlaceRelative,
            order: Order::AddressesLast,
            long_words: false,
            align: 4,
            seqs: true,
            percpu: 0,
            big_name: true,
            ..V4_19_X86_64
        };
        check(era);
        // Relocatable i386: read as absolute addresses these would be far from the table
        // (and unsorted where symbols share an address).
        check(Era { ptr: 4, ..era });
        // Without the table's address the offsets cannot be read.
        let d = build(&era, MAPPED, 0);
        assert!(find(&d, 8, &|_| None).is_err());
    }

    /// The 7.0 cycle, 32-bit and not relocatable: absolute 32-bit values in
    /// `kallsyms_offsets`, the same bytes as 32-bit `kallsyms_addresses`; read with and
    /// without the table's address.
    #[test]
    fn v7_i386_not_relocatable() {
        let era = Era {
            ptr: 4,
            layout: Layout::Absolute,
            order: Order::AddressesLast,
            long_words: false,
            align: 4,
            seqs: true,
            percpu: 0,
            big_name: false,
            n: 1100,
        };
        check_at(era, MAPPED_32, 0);
        // Without the table's address too.
        let d = build(&era, MAPPED_32, 0);
        let k = find(&d, 4, &|_| None).unwrap();
        assert_eq!(k.layout, Layout::Absolute);
        assert_eq!(k.get("init_s1099"), Some(symbol(&era, 1099).1));
    }

    /// A base that is not page-aligned is no base: the table is refused rather than read
    /// wrong.
    #[test]
    fn a_wrong_base_is_refused() {
        let era = Era {
            long_words: false,
            ..V4_19_X86_64
        };
        let mut d = build(&era, MAPPED, 0);
        let count_at = 64 + 4 * era.n + 8;
        let count_at = count_at.next_multiple_of(8);
        assert_eq!(u32_at(&d, count_at), Some(era.n as u32));
        d[count_at - 8..count_at].copy_from_slice(&(TEXT + 0x10).to_le_bytes());
        let e = find(&d, 8, &|off| Some(MAPPED + off as u64)).unwrap_err();
        assert!(e.to_string().contains("no address array fits"), "{e}");
    }

    /// Addresses far from the table's own (another mapping's) are refused.
    #[test]
    fn addresses_far_from_the_table_are_refused() {
        let d = build(&V4_19_X86_64, MAPPED, 0);
        assert!(find(&d, 8, &|off| Some(MAPPED + off as u64)).is_ok());
        let far = |off: usize| Some(MAPPED + (1 << 30) + off as u64);
        assert!(find(&d, 8, &far).is_err());
    }
}
