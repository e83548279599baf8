//! kernelinfo files: every group read as the plugin reads it, and written back.
#![cfg_attr(feature = "libfuzzer", no_main)]
use vmi::config::{KernelInfo, KeyFile};
use vmi_fuzz::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(file) = KeyFile::parse(text, std::path::Path::new("fuzz.conf")) else {
        return;
    };
    for group in file.groups() {
        if let Ok(info) = KernelInfo::from_keyfile(&file, &group) {
            let _ = info.to_keyfile_text(&group);
        }
    }
});
