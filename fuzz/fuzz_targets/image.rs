//! Whole kernel images (bzImage, compressed payloads, ELF): what `vmi kernelinfo` reads.
#![cfg_attr(feature = "libfuzzer", no_main)]
use vmi_fuzz::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = vmi::generate::generate(data, None, None);
});
