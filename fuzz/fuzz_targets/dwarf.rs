//! DWARF of a -dbg vmlinux: parse, then ask what the generator asks.
#![cfg_attr(feature = "libfuzzer", no_main)]
use vmi::generate::dwarf::DwarfTypes;
use vmi::generate::types::Types;
use vmi_fuzz::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(d) = DwarfTypes::parse(data) {
        for (st, member) in [
            ("task_struct", "tasks"),
            ("mm_struct", "mmap"),
            ("module", "name"),
        ] {
            if let Some((_, ty)) = d.offset_of(st, member) {
                let _ = d.size_of(ty);
                let _ = d.array(ty);
            }
            let _ = d.struct_size(st);
        }
    }
});
