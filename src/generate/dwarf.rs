//! Struct layouts from DWARF (`--dwarf`: the -dbg package's vmlinux), for kernels built
//! without BTF (Debian's i386 686-pae).
//!
//! One pass over all units indexes the struct and union *definitions* by name (the first
//! complete one wins: every unit has its own copy of `task_struct`); members are then read
//! on demand from the defining unit. Anonymous members are searched like in [`super::btf`].

use std::collections::HashMap;

use gimli::{AttributeValue, EndianSlice, LittleEndian, UnitHeader, UnitOffset};
use object::{Object, ObjectSection};

use super::types::Types;
use super::{GenError, Result};

type R<'a> = EndianSlice<'a, LittleEndian>;

/// Bound on typedef chains and anonymous nesting.
const MAX_DEPTH: usize = 32;

/// Bound on the structs and unions one member lookup reads (a real kernel's deepest
/// anonymous nesting needs a few dozen).
const MEMBER_BUDGET: usize = 1_000;

/// DWARF type information of a vmlinux. Type references are `.debug_info` offsets.
pub struct DwarfTypes<'a> {
    dwarf: gimli::Dwarf<R<'a>>,
    /// Unit headers, in section order.
    headers: Vec<UnitHeader<R<'a>>>,
    by_name: HashMap<String, u64>,
    pointer_size: u64,
}

fn err(e: impl std::fmt::Display) -> GenError {
    GenError::Dwarf(e.to_string())
}

fn header_offset(h: &UnitHeader<R<'_>>) -> u64 {
    h.offset().0 as u64
}

impl<'a> DwarfTypes<'a> {
    /// Reads the DWARF sections of ELF file `data` and indexes its structs.
    pub fn parse(data: &'a [u8]) -> Result<Self> {
        let file = object::File::parse(data).map_err(|e| GenError::Elf(e.to_string()))?;
        if file.section_by_name(".debug_info").is_none() {
            return Err(GenError::Dwarf("no .debug_info section".into()));
        }
        let pointer_size = if file.is_64() { 8 } else { 4 };
        let dwarf = gimli::Dwarf::load(|id| -> Result<R<'a>> {
            let bytes = file
                .section_by_name(id.name())
                .map(|s| s.data().map_err(err))
                .transpose()?
                .unwrap_or_default();
            Ok(EndianSlice::new(bytes, LittleEndian))
        })?;
        let mut headers = Vec::new();
        let mut by_name = HashMap::new();
        let mut units = dwarf.units();
        while let Some(header) = units.next().map_err(err)? {
            let unit = dwarf.unit(header).map_err(err)?;
            let mut cursor = unit.entries();
            while let Some(e) = cursor.next_dfs().map_err(err)? {
                if !matches!(
                    e.tag(),
                    gimli::DW_TAG_structure_type | gimli::DW_TAG_union_type
                ) || e.has_attr(gimli::DW_AT_declaration)
                    || !e.has_children()
                {
                    continue;
                }
                let Some(name) = e.attr_value(gimli::DW_AT_name) else {
                    continue;
                };
                let Ok(name) = dwarf.attr_string(&unit, name) else {
                    continue;
                };
                let Ok(name) = std::str::from_utf8(name.slice()) else {
                    continue;
                };
                if !by_name.contains_key(name) {
                    let off = header_offset(&header) + e.offset().0 as u64;
                    by_name.insert(name.to_owned(), off);
                }
            }
            headers.push(header);
        }
        if by_name.is_empty() {
            return Err(GenError::Dwarf(
                "no struct definitions in .debug_info".into(),
            ));
        }
        Ok(DwarfTypes {
            dwarf,
            headers,
            by_name,
            pointer_size,
        })
    }

    /// The unit holding global offset `off`, and `off` within it.
    fn locate(&self, off: u64) -> Option<(gimli::Unit<R<'a>>, UnitOffset)> {
        let i = self
            .headers
            .partition_point(|h| header_offset(h) <= off)
            .checked_sub(1)?;
        let h = self.headers[i];
        let unit = self.dwarf.unit(h).ok()?;
        Some((unit, UnitOffset((off - header_offset(&h)) as usize)))
    }

    /// A type reference attribute as a global offset.
    fn type_ref(&self, unit: &gimli::Unit<R<'a>>, v: AttributeValue<R<'a>>) -> Option<u64> {
        match v {
            AttributeValue::UnitRef(o) => Some(header_offset(&unit.header) + o.0 as u64),
            AttributeValue::DebugInfoRef(o) => Some(o.0 as u64),
            _ => None,
        }
    }

    /// Tag, name, byte size, `DW_AT_type` of the DIE at `off`.
    fn die(&self, off: u64) -> Option<(gimli::DwTag, Option<u64>, Option<u64>)> {
        let (unit, uo) = self.locate(off)?;
        let e = unit.entry(uo).ok()?;
        let size = e
            .attr_value(gimli::DW_AT_byte_size)
            .and_then(|v| v.udata_value());
        let ty = e
            .attr_value(gimli::DW_AT_type)
            .and_then(|v| self.type_ref(&unit, v));
        Some((e.tag(), size, ty))
    }

    fn resolve(&self, mut off: u64) -> Option<u64> {
        for _ in 0..MAX_DEPTH {
            let (tag, _, ty) = self.die(off)?;
            match tag {
                gimli::DW_TAG_typedef
                | gimli::DW_TAG_const_type
                | gimli::DW_TAG_volatile_type
                | gimli::DW_TAG_restrict_type
                | gimli::DW_TAG_atomic_type => off = ty?,
                _ => return Some(off),
            }
        }
        None
    }

    /// Members of the struct or union at `off`: (name, byte offset, type).
    fn members(&self, off: u64) -> Option<Vec<(String, u64, Option<u64>)>> {
        let (unit, uo) = self.locate(off)?;
        let mut tree = unit.entries_tree(Some(uo)).ok()?;
        let root = tree.root().ok()?;
        let mut children = root.children();
        let mut out = Vec::new();
        while let Some(child) = children.next().ok()? {
            let e = child.entry();
            if e.tag() != gimli::DW_TAG_member {
                continue;
            }
            let name = e
                .attr_value(gimli::DW_AT_name)
                .and_then(|v| self.dwarf.attr_string(&unit, v).ok())
                .map(|s| String::from_utf8_lossy(s.slice()).into_owned())
                .unwrap_or_default();
            let loc = match e.attr_value(gimli::DW_AT_data_member_location) {
                None => 0, // union members
                Some(v) => match v.udata_value() {
                    Some(n) => n,
                    // Old compilers: DW_OP_plus_uconst N.
                    None => {
                        let expr = v.exprloc_value()?;
                        let mut ops = expr.operations(unit.encoding());
                        match ops.next().ok()? {
                            Some(gimli::Operation::PlusConstant { value }) => value,
                            _ => return None,
                        }
                    }
                },
            };
            let ty = e
                .attr_value(gimli::DW_AT_type)
                .and_then(|v| self.type_ref(&unit, v));
            out.push((name, loc, ty));
        }
        Some(out)
    }

    /// `sizeof` the type at `ty`, through at most `depth` array element types: an array
    /// may be given itself as its element type, which recursed without end (a stack
    /// overflow).
    fn size_within(&self, ty: u64, depth: usize) -> Option<u64> {
        let ty = self.resolve(ty)?;
        let (tag, size, _) = self.die(ty)?;
        match tag {
            gimli::DW_TAG_pointer_type => Some(size.unwrap_or(self.pointer_size)),
            gimli::DW_TAG_array_type => {
                let (elem, n) = Types::array(self, ty)?;
                self.size_within(elem, depth.checked_sub(1)?)?
                    .checked_mul(u64::from(n))
            }
            _ => size,
        }
    }

    /// Member `name` of the struct or union at `off`, also inside anonymous members: its
    /// offset and type. `budget` bounds the whole search: anonymous members whose types
    /// lead back to their own struct make it exponential in the depth (found by fuzzing:
    /// two such members, 2^32 lookups).
    fn member(&self, off: u64, name: &str, depth: usize, budget: &mut usize) -> Option<(u64, u64)> {
        *budget = budget.checked_sub(1)?;
        if depth > MAX_DEPTH {
            return None;
        }
        let members = self.members(self.resolve(off)?)?;
        if let Some((_, loc, ty)) = members.iter().find(|m| m.0 == name) {
            return Some((*loc, (*ty)?));
        }
        members
            .iter()
            .filter(|m| m.0.is_empty())
            .find_map(|(_, loc, ty)| {
                let (o, t) = self.member((*ty)?, name, depth + 1, budget)?;
                // Offsets are the file's eight-byte numbers: their sum may not fit.
                Some((loc.checked_add(o)?, t))
            })
    }
}

impl Types for DwarfTypes<'_> {
    fn offset_of(&self, st: &str, path: &str) -> Option<(u64, u64)> {
        let mut id = *self.by_name.get(st)?;
        let mut total = 0;
        for part in path.split('.') {
            let mut budget = MEMBER_BUDGET;
            let (o, t) = self.member(id, part, 0, &mut budget)?;
            total = o.checked_add(total)?;
            id = t;
        }
        Some((total, id))
    }

    fn size_of(&self, ty: u64) -> Option<u64> {
        self.size_within(ty, MAX_DEPTH)
    }

    fn array(&self, ty: u64) -> Option<(u64, u32)> {
        let ty = self.resolve(ty)?;
        let (unit, uo) = self.locate(ty)?;
        let mut tree = unit.entries_tree(Some(uo)).ok()?;
        let root = tree.root().ok()?;
        if root.entry().tag() != gimli::DW_TAG_array_type {
            return None;
        }
        let elem = root
            .entry()
            .attr_value(gimli::DW_AT_type)
            .and_then(|v| self.type_ref(&unit, v))?;
        let mut children = root.children();
        while let Some(child) = children.next().ok()? {
            let e = child.entry();
            if e.tag() != gimli::DW_TAG_subrange_type {
                continue;
            }
            if let Some(n) = e
                .attr_value(gimli::DW_AT_count)
                .and_then(|v| v.udata_value())
            {
                return Some((elem, u32::try_from(n).ok()?));
            }
            let ub = e.attr_value(gimli::DW_AT_upper_bound)?.udata_value()?;
            return Some((elem, u32::try_from(ub + 1).ok()?));
        }
        None
    }

    fn struct_size(&self, name: &str) -> Option<u64> {
        self.die(*self.by_name.get(name)?)?.1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// fuzz/seeds/far.c compiled by gcc -g (DWARF 5): `struct far_out`'s anonymous member
    /// lies 0x123456789c bytes in, an offset DWARF gives in eight bytes; `struct twice` has
    /// two anonymous members.
    const FAR: &[u8] = include_bytes!("../../fuzz/corpus/dwarf/far-member-x86_64.elf");

    #[test]
    fn offsets_through_anonymous_members() {
        let d = DwarfTypes::parse(FAR).unwrap();
        let (off, ty) = d.offset_of("far_out", "deep").unwrap();
        assert_eq!(off, 0x123456789c + 4);
        assert_eq!(d.size_of(ty), Some(4));
        assert_eq!(d.offset_of("far_out", "nope"), None);
    }

    /// An anonymous member's offset plus the member's own overflowed (a panic under
    /// overflow checks, as fuzz builds have, and a wrong offset without): now no offset.
    #[test]
    fn offsets_that_overflow_are_none() {
        let at = FAR
            .windows(8)
            .position(|w| w == 0x123456789c_u64.to_le_bytes())
            .unwrap();
        let mut patched = FAR.to_vec();
        patched[at..at + 8].copy_from_slice(&(u64::MAX - 1).to_le_bytes());
        let d = DwarfTypes::parse(&patched).unwrap();
        assert_eq!(d.offset_of("far_out", "deep"), None);
        assert_eq!(d.offset_of("far_out", "a").map(|m| m.0), Some(u64::MAX - 1));
    }

    /// `struct twice` with the types of its two anonymous members pointed back at itself
    /// (their `DW_FORM_ref4` rewritten): a lookup of a name it lacks went 32 levels down
    /// both, 2^32 lookups (found by fuzzing: a 10-second timeout). Now bounded.
    #[test]
    fn anonymous_members_that_lead_back_are_bounded() {
        let d = DwarfTypes::parse(FAR).unwrap();
        assert_eq!(d.offset_of("twice", "b").map(|m| m.0), Some(4));
        let twice = d.by_name["twice"];
        let (unit, at) = d.locate(twice).unwrap();
        let base = header_offset(&unit.header);
        let mut tree = unit.entries_tree(Some(at)).unwrap();
        let root = tree.root().unwrap();
        let mut children = root.children();
        let mut refs = Vec::new();
        while let Some(child) = children.next().unwrap() {
            let e = child.entry();
            if let (None, Some(AttributeValue::UnitRef(ty))) = (
                e.attr_value(gimli::DW_AT_name),
                e.attr_value(gimli::DW_AT_type),
            ) {
                refs.push((base + e.offset().0 as u64, ty.0 as u32));
            }
        }
        assert_eq!(refs.len(), 2);
        let file = object::File::parse(FAR).unwrap();
        let info = file.section_by_name(".debug_info").unwrap();
        let info_at = info.file_range().unwrap().0 as usize;
        let mut patched = FAR.to_vec();
        let itself = ((twice - base) as u32).to_le_bytes();
        for (die, ty) in refs {
            // The reference follows the entry's abbreviation code.
            let at = info_at + die as usize;
            let i = patched[at..at + 8]
                .windows(4)
                .position(|w| w == ty.to_le_bytes())
                .unwrap();
            patched[at + i..at + i + 4].copy_from_slice(&itself);
        }
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let d = DwarfTypes::parse(&patched).unwrap();
            let _ = tx.send((d.offset_of("twice", "nope"), d.offset_of("twice", "b")));
        });
        let found = rx.recv_timeout(std::time::Duration::from_secs(30));
        // `b` is gone with the member that held it.
        assert_eq!(found, Ok((None, None)), "a lookup that should end at once");
    }

    /// `struct arrays`'s `row` with its array type made its own element type (the
    /// `DW_FORM_ref4` rewritten): `sizeof` recursed until the stack overflowed.
    #[test]
    fn an_array_of_itself_has_no_size() {
        let d = DwarfTypes::parse(FAR).unwrap();
        let (_, row) = d.offset_of("arrays", "row").unwrap();
        assert_eq!(d.size_of(row), Some(16));
        let (unit, at) = d.locate(row).unwrap();
        let base = header_offset(&unit.header);
        let elem = match unit.entry(at).unwrap().attr_value(gimli::DW_AT_type) {
            Some(AttributeValue::UnitRef(t)) => t.0 as u32,
            other => panic!("row's element type: {other:?}"),
        };
        let file = object::File::parse(FAR).unwrap();
        let info = file.section_by_name(".debug_info").unwrap();
        let at = info.file_range().unwrap().0 as usize + row as usize;
        let mut patched = FAR.to_vec();
        let i = patched[at..at + 8]
            .windows(4)
            .position(|w| w == elem.to_le_bytes())
            .unwrap();
        patched[at + i..at + i + 4].copy_from_slice(&((row - base) as u32).to_le_bytes());
        let d = DwarfTypes::parse(&patched).unwrap();
        assert_eq!(d.array(row), Some((row, 4)));
        assert_eq!(d.size_of(row), None);
    }
}
