//! BTF blobs: parse, then ask what the generator asks.
#![cfg_attr(feature = "libfuzzer", no_main)]
use vmi::generate::btf::Btf;
use vmi_fuzz::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(btf) = Btf::parse(data, 8) {
        for (st, member) in [
            ("task_struct", "tasks"),
            ("mm_struct", "mm_mt"),
            ("file", "f_path.dentry"),
        ] {
            if let Some((_, ty)) = btf.offset_of(st, member) {
                let _ = btf.size_of(ty);
                let _ = btf.array(ty);
            }
            let _ = btf.struct_size(st);
        }
    }
});
