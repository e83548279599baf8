//! Whole kernel images (bzImage, compressed payloads, ELF): what `vmi kernelinfo` reads.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = vmi::generate::generate(data, None, None);
});
