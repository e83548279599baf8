//! kallsyms tables found in arbitrary bytes, as in a kernel image or its memory.
#![cfg_attr(feature = "libfuzzer", no_main)]
use vmi::generate::kallsyms;
use vmi_fuzz::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for ptr in [8, 4] {
        if let Ok(k) = kallsyms::find(data, ptr, &|off| Some(0xffff_ffff_8100_0000 + off as u64)) {
            let _ = k.get("linux_banner");
            let _ = k.get("init_task");
        }
    }
});
