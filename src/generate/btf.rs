//! A small zero-copy reader of the kernel's BTF (`.BTF` section, `CONFIG_DEBUG_INFO_BTF`).
//!
//! Only what kernelinfo needs: find a struct or union by name, find a member by name (also
//! inside anonymous nested structs and unions, as `task_struct.tasks` and
//! `mm_struct.mm_mt` are in 6.x), follow typedef/const/volatile/restrict/type-tag chains,
//! and compute sizes and array lengths. The blob is borrowed; only an index of type
//! offsets and a name map are built. Written here rather than taken from `btfparse`
//! because that crate parses every type into owned structures up front (several hundred
//! thousand allocations for a vmlinux) and does not offer the anonymous-member walk that
//! is the one operation we need.
//!
//! Format: `include/uapi/linux/btf.h` (header, then `struct btf_type` records of 12 bytes
//! followed by kind-specific data, then a string section).

use std::collections::HashMap;

use super::{GenError, Result};

const MAGIC: u16 = 0xeb9f;
/// Bound on typedef chains and anonymous nesting (real kernels need < 10).
const MAX_DEPTH: usize = 32;

/// The kinds of BTF type this reader distinguishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `BTF_KIND_INT`.
    Int,
    /// `BTF_KIND_PTR`.
    Ptr,
    /// `BTF_KIND_ARRAY`.
    Array,
    /// `BTF_KIND_STRUCT`.
    Struct,
    /// `BTF_KIND_UNION`.
    Union,
    /// `BTF_KIND_ENUM` and `BTF_KIND_ENUM64`.
    Enum,
    /// `BTF_KIND_FWD`.
    Fwd,
    /// `BTF_KIND_TYPEDEF`.
    Typedef,
    /// `BTF_KIND_VOLATILE`, `CONST`, `RESTRICT`, `TYPE_TAG`: qualifiers to look through.
    Qualifier,
    /// Everything else (functions, variables, data sections, floats, tags).
    Other,
}

/// A member of a struct or union.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member<'a> {
    /// Its name; empty for anonymous members.
    pub name: &'a str,
    /// Its type id.
    pub type_id: u32,
    /// Offset from the start of the struct, in bits.
    pub bit_offset: u64,
    /// Width of a bitfield, 0 otherwise.
    pub bitfield_size: u32,
}

/// A parsed `.BTF` blob.
#[derive(Debug)]
pub struct Btf<'a> {
    types: &'a [u8],
    strings: &'a [u8],
    /// Byte offset in `types` of type id `i + 1`.
    index: Vec<u32>,
    /// Struct and union ids by name (the first complete one).
    by_name: HashMap<&'a str, u32>,
    pointer_size: u64,
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn bad(offset: usize, what: impl Into<String>) -> GenError {
    GenError::Btf {
        offset,
        what: what.into(),
    }
}

impl<'a> Btf<'a> {
    /// Parses a BTF blob; `pointer_size` is 8 or 4 (BTF does not record it).
    pub fn parse(blob: &'a [u8], pointer_size: u64) -> Result<Self> {
        if blob.len() < 24 {
            return Err(bad(0, "shorter than the BTF header"));
        }
        let magic = u16::from_le_bytes([blob[0], blob[1]]);
        if magic != MAGIC {
            if magic.swap_bytes() == MAGIC {
                return Err(bad(0, "big-endian BTF is not supported"));
            }
            return Err(bad(0, format!("bad magic {magic:#06x}")));
        }
        if blob[2] != 1 {
            return Err(bad(2, format!("unsupported BTF version {}", blob[2])));
        }
        let field = |at| u32_at(blob, at).unwrap_or(0) as usize;
        let hdr_len = field(4);
        let (type_off, type_len, str_off, str_len) = (field(8), field(12), field(16), field(20));
        let slice = |off: usize, len: usize, what: &str| {
            hdr_len
                .checked_add(off)
                .and_then(|s| Some((s, s.checked_add(len)?)))
                .and_then(|(s, e)| blob.get(s..e))
                .ok_or_else(|| bad(4, format!("{what} section out of bounds")))
        };
        let types = slice(type_off, type_len, "type")?;
        let strings = slice(str_off, str_len, "string")?;
        let mut btf = Btf {
            types,
            strings,
            index: Vec::new(),
            by_name: HashMap::new(),
            pointer_size,
        };
        let base = hdr_len + type_off;
        let mut pos = 0usize;
        while pos < types.len() {
            let info = u32_at(types, pos + 4).ok_or_else(|| bad(base + pos, "truncated type"))?;
            let vlen = (info & 0xffff) as usize;
            let extra = match (info >> 24) & 0x1f {
                1 | 14 | 17 => 4,              // INT, VAR, DECL_TAG
                3 => 12,                       // ARRAY
                4 | 5 => 12 * vlen,            // STRUCT, UNION
                6 | 13 => 8 * vlen,            // ENUM, FUNC_PROTO
                15 | 19 => 12 * vlen,          // DATASEC, ENUM64
                0 | 2 | 7..=12 | 16 | 18 => 0, // VOID?, PTR, FWD, TYPEDEF, VOLATILE, CONST, RESTRICT, FUNC, FLOAT, TYPE_TAG
                k => return Err(bad(base + pos, format!("unknown type kind {k}"))),
            };
            let end = pos + 12 + extra;
            if end > types.len() {
                return Err(bad(base + pos, "type runs past the type section"));
            }
            btf.index.push(pos as u32);
            pos = end;
        }
        for id in 1..=btf.index.len() as u32 {
            if matches!(btf.kind(id), Some(Kind::Struct | Kind::Union))
                && let Some(name) = btf.name(id).filter(|n| !n.is_empty())
            {
                // Prefer a definition with members over an empty one of the same name.
                let has_members = btf.members(id).next().is_some();
                match btf.by_name.get(name) {
                    Some(&old) if !has_members || btf.members(old).next().is_some() => {}
                    _ => {
                        btf.by_name.insert(name, id);
                    }
                }
            }
        }
        Ok(btf)
    }

    /// Number of types (ids run from 1 to this).
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether there are no types.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    fn record(&self, id: u32) -> Option<&'a [u8]> {
        let at = *self.index.get((id as usize).checked_sub(1)?)? as usize;
        self.types.get(at..)
    }

    fn info(&self, id: u32) -> Option<u32> {
        u32_at(self.record(id)?, 4)
    }

    fn string(&self, off: u32) -> Option<&'a str> {
        let s = self.strings.get(off as usize..)?;
        let end = s.iter().position(|&b| b == 0)?;
        std::str::from_utf8(&s[..end]).ok()
    }

    /// The kind of type `id`.
    pub fn kind(&self, id: u32) -> Option<Kind> {
        Some(match (self.info(id)? >> 24) & 0x1f {
            1 => Kind::Int,
            2 => Kind::Ptr,
            3 => Kind::Array,
            4 => Kind::Struct,
            5 => Kind::Union,
            6 | 19 => Kind::Enum,
            7 => Kind::Fwd,
            8 => Kind::Typedef,
            9 | 10 | 11 | 18 => Kind::Qualifier,
            _ => Kind::Other,
        })
    }

    /// The name of type `id` (empty for anonymous types).
    pub fn name(&self, id: u32) -> Option<&'a str> {
        self.string(u32_at(self.record(id)?, 0)?)
    }

    /// The struct or union named `name`.
    pub fn find_struct(&self, name: &str) -> Option<u32> {
        self.by_name.get(name).copied()
    }

    /// Type `id` with typedefs and qualifiers looked through.
    pub fn resolve(&self, mut id: u32) -> Option<u32> {
        for _ in 0..MAX_DEPTH {
            match self.kind(id)? {
                Kind::Typedef | Kind::Qualifier => id = u32_at(self.record(id)?, 8)?,
                _ => return Some(id),
            }
        }
        None
    }

    /// The members of struct or union `id` (empty for other kinds).
    pub fn members(&self, id: u32) -> impl Iterator<Item = Member<'a>> + '_ {
        let rec = self.record(id).unwrap_or_default();
        let info = u32_at(rec, 4).unwrap_or(0);
        let n = if matches!(self.kind(id), Some(Kind::Struct | Kind::Union)) {
            (info & 0xffff) as usize
        } else {
            0
        };
        let kind_flag = info >> 31 == 1;
        (0..n).filter_map(move |i| {
            let at = 12 + 12 * i;
            let off = u32_at(rec, at + 8)?;
            let (bit_offset, bitfield_size) = if kind_flag {
                (off & 0xff_ffff, off >> 24)
            } else {
                (off, 0)
            };
            Some(Member {
                name: self.string(u32_at(rec, at)?)?,
                type_id: u32_at(rec, at + 4)?,
                bit_offset: u64::from(bit_offset),
                bitfield_size,
            })
        })
    }

    /// Member `name` of struct or union `id`, also when it sits inside anonymous nested
    /// structs or unions; its `bit_offset` is from the start of `id`.
    pub fn member(&self, id: u32, name: &str) -> Option<Member<'a>> {
        let mut budget = 10_000usize;
        self.member_at(id, name, 0, &mut budget)
    }

    /// `budget` bounds the whole walk: malformed BTF could nest a struct in itself.
    fn member_at(
        &self,
        id: u32,
        name: &str,
        depth: usize,
        budget: &mut usize,
    ) -> Option<Member<'a>> {
        *budget = budget.checked_sub(1)?;
        if depth > MAX_DEPTH {
            return None;
        }
        let id = self.resolve(id)?;
        for m in self.members(id) {
            if m.name == name {
                return Some(m);
            }
        }
        // Not directly: look inside the anonymous members.
        let anonymous: Vec<Member<'a>> = self.members(id).filter(|m| m.name.is_empty()).collect();
        anonymous.into_iter().find_map(|m| {
            if !m.name.is_empty() {
                return None;
            }
            let inner = self.member_at(m.type_id, name, depth + 1, budget)?;
            Some(Member {
                bit_offset: m.bit_offset + inner.bit_offset,
                ..inner
            })
        })
    }

    /// Byte offset of a dotted member path (`"f_path.dentry"`) in struct `name`, and the
    /// type of the last member. `None` when the struct or a member does not exist.
    pub fn offset_of(&self, name: &str, path: &str) -> Option<(u64, u32)> {
        let mut id = self.find_struct(name)?;
        let mut bits = 0u64;
        for part in path.split('.') {
            let m = self.member(id, part)?;
            bits += m.bit_offset;
            id = m.type_id;
        }
        bits.is_multiple_of(8).then_some((bits / 8, id))
    }

    /// `sizeof` type `id`.
    pub fn size_of(&self, id: u32) -> Option<u64> {
        let id = self.resolve(id)?;
        let rec = self.record(id)?;
        match self.kind(id)? {
            Kind::Int | Kind::Struct | Kind::Union | Kind::Enum => Some(u64::from(u32_at(rec, 8)?)),
            Kind::Ptr => Some(self.pointer_size),
            Kind::Array => {
                let (elem, n) = self.array(id)?;
                // Arrays of arrays recurse through size_of; bounded by the id chain depth.
                self.size_of_bounded(elem, MAX_DEPTH)?
                    .checked_mul(u64::from(n))
            }
            _ => None,
        }
    }

    fn size_of_bounded(&self, id: u32, depth: usize) -> Option<u64> {
        let id = self.resolve(id)?;
        if self.kind(id)? == Kind::Array {
            let (elem, n) = self.array(id)?;
            return self
                .size_of_bounded(elem, depth.checked_sub(1)?)?
                .checked_mul(u64::from(n));
        }
        self.size_of(id)
    }

    /// Element type and length of array type `id` (after typedefs).
    pub fn array(&self, id: u32) -> Option<(u32, u32)> {
        let id = self.resolve(id)?;
        if self.kind(id)? != Kind::Array {
            return None;
        }
        let rec = self.record(id)?;
        Some((u32_at(rec, 12)?, u32_at(rec, 20)?))
    }

    /// `sizeof(struct name)`.
    pub fn struct_size(&self, name: &str) -> Option<u64> {
        self.size_of(self.find_struct(name)?)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds BTF blobs for tests.
    #[derive(Default)]
    pub(crate) struct Builder {
        types: Vec<u8>,
        strings: Vec<u8>,
        next: u32,
    }

    impl Builder {
        pub(crate) fn new() -> Self {
            Builder {
                types: Vec::new(),
                strings: vec![0],
                next: 1,
            }
        }
        fn str(&mut self, s: &str) -> u32 {
            if s.is_empty() {
                return 0;
            }
            let at = self.strings.len() as u32;
            self.strings.extend_from_slice(s.as_bytes());
            self.strings.push(0);
            at
        }
        fn head(&mut self, name: &str, kind: u32, vlen: u32, flag: bool, st: u32) -> u32 {
            let n = self.str(name);
            let info = (kind << 24) | vlen | (u32::from(flag) << 31);
            for w in [n, info, st] {
                self.types.extend_from_slice(&w.to_le_bytes());
            }
            self.next += 1;
            self.next - 1
        }
        pub(crate) fn int(&mut self, name: &str, size: u32) -> u32 {
            let id = self.head(name, 1, 0, false, size);
            self.types.extend_from_slice(&(size * 8).to_le_bytes());
            id
        }
        pub(crate) fn ptr(&mut self, to: u32) -> u32 {
            self.head("", 2, 0, false, to)
        }
        pub(crate) fn typedef(&mut self, name: &str, to: u32) -> u32 {
            self.head(name, 8, 0, false, to)
        }
        pub(crate) fn konst(&mut self, to: u32) -> u32 {
            self.head("", 10, 0, false, to)
        }
        pub(crate) fn array(&mut self, elem: u32, n: u32) -> u32 {
            let id = self.head("", 3, 0, false, 0);
            for w in [elem, elem, n] {
                self.types.extend_from_slice(&w.to_le_bytes());
            }
            id
        }
        /// `members`: (name, type, bit offset).
        pub(crate) fn composite(
            &mut self,
            union: bool,
            name: &str,
            size: u32,
            members: &[(&str, u32, u32)],
        ) -> u32 {
            let id = self.head(
                name,
                if union { 5 } else { 4 },
                members.len() as u32,
                false,
                size,
            );
            for &(n, t, off) in members {
                let n = self.str(n);
                for w in [n, t, off] {
                    self.types.extend_from_slice(&w.to_le_bytes());
                }
            }
            id
        }
        pub(crate) fn build(&self) -> Vec<u8> {
            let mut b = Vec::new();
            b.extend_from_slice(&MAGIC.to_le_bytes());
            b.extend_from_slice(&[1, 0]);
            for w in [
                24u32,
                0,
                self.types.len() as u32,
                self.types.len() as u32,
                self.strings.len() as u32,
            ] {
                b.extend_from_slice(&w.to_le_bytes());
            }
            b.extend_from_slice(&self.types);
            b.extend_from_slice(&self.strings);
            b
        }
    }

    fn sample() -> Vec<u8> {
        let mut b = Builder::new();
        let int = b.int("int", 4);
        let u8t = b.int("char", 1);
        let pid_t = b.typedef("pid_t", int);
        let cpid = b.konst(pid_t);
        let list = b.composite(false, "list_head", 16, &[]);
        let list_ptr = b.ptr(list);
        let _ = b.composite(
            false,
            "list_head",
            16,
            &[("next", list_ptr, 0), ("prev", list_ptr, 64)],
        );
        let comm = b.array(u8t, 16);
        let inner = b.composite(false, "", 24, &[("tasks", list, 0), ("pid", cpid, 128)]);
        let anon_union = b.composite(true, "", 24, &[("", inner, 0), ("raw", int, 0)]);
        b.composite(
            false,
            "task_struct",
            64,
            &[("state", int, 0), ("", anon_union, 64), ("comm", comm, 256)],
        );
        b.build()
    }

    #[test]
    fn members_through_anonymous_nesting() {
        let blob = sample();
        let btf = Btf::parse(&blob, 8).unwrap();
        assert_eq!(btf.offset_of("task_struct", "tasks").unwrap().0, 8);
        assert_eq!(btf.offset_of("task_struct", "pid").unwrap().0, 24);
        assert_eq!(btf.offset_of("task_struct", "tasks.prev"), None); // first list_head is empty
        let (off, comm) = btf.offset_of("task_struct", "comm").unwrap();
        assert_eq!(off, 32);
        assert_eq!(btf.array(comm).map(|a| a.1), Some(16));
        assert_eq!(btf.size_of(comm), Some(16));
        assert_eq!(btf.struct_size("task_struct"), Some(64));
        let (_, pid) = btf.offset_of("task_struct", "pid").unwrap();
        assert_eq!(btf.size_of(pid), Some(4));
        assert!(btf.offset_of("task_struct", "nope").is_none());
        assert!(btf.offset_of("nope", "pid").is_none());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(Btf::parse(b"", 8).is_err());
        assert!(Btf::parse(&[0u8; 100], 8).is_err());
        let blob = sample();
        for cut in 0..blob.len() {
            let _ = Btf::parse(&blob[..cut], 8);
        }
        let mut be = blob.clone();
        be.swap(0, 1);
        assert!(Btf::parse(&be, 8).is_err());
    }

    /// Random byte mutations of a valid blob never panic, and whatever parses answers
    /// queries without panicking either.
    #[test]
    fn quick_fuzz_mutations() {
        let blob = sample();
        let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        for _ in 0..20_000 {
            let mut m = blob.clone();
            for _ in 0..1 + next() % 4 {
                let i = (next() as usize) % m.len();
                m[i] = next() as u8;
            }
            if let Ok(btf) = Btf::parse(&m, 8) {
                for id in 0..btf.len() as u32 + 2 {
                    let _ = btf.size_of(id);
                    let _ = btf.members(id).count();
                }
                let _ = btf.offset_of("task_struct", "pid");
                let _ = btf.offset_of("task_struct", "comm");
            }
        }
    }
}
