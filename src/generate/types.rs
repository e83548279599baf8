//! What kernelinfo asks of type information, whichever format it comes from (BTF, DWARF).
//! Type references are opaque `u64`s of the implementation.

/// Struct layouts.
pub trait Types {
    /// Byte offset of a dotted member path (`"f_path.dentry"`) in struct or union `st`, also
    /// through anonymous nested members, and the type of the last member; `None` when the
    /// struct or a member does not exist.
    fn offset_of(&self, st: &str, path: &str) -> Option<(u64, u64)>;
    /// `sizeof` a type.
    fn size_of(&self, ty: u64) -> Option<u64>;
    /// Element type and length of an array type.
    fn array(&self, ty: u64) -> Option<(u64, u32)>;
    /// `sizeof(struct name)`.
    fn struct_size(&self, name: &str) -> Option<u64>;
}

impl Types for super::btf::Btf<'_> {
    fn offset_of(&self, st: &str, path: &str) -> Option<(u64, u64)> {
        super::btf::Btf::offset_of(self, st, path).map(|(o, t)| (o, u64::from(t)))
    }
    fn size_of(&self, ty: u64) -> Option<u64> {
        super::btf::Btf::size_of(self, u32::try_from(ty).ok()?)
    }
    fn array(&self, ty: u64) -> Option<(u64, u32)> {
        super::btf::Btf::array(self, u32::try_from(ty).ok()?).map(|(e, n)| (u64::from(e), n))
    }
    fn struct_size(&self, name: &str) -> Option<u64> {
        super::btf::Btf::struct_size(self, name)
    }
}
