//! One body per fuzz target, two engines. [`fuzz_target!`] expands to libFuzzer's entry
//! point with the `libfuzzer` feature (the default: `cargo +nightly fuzz`), and to a `main`
//! running AFL++'s persistent loop with the `afl` feature (`cargo afl build`, stable Rust;
//! `scripts/fuzz-smoke`). Either way a panic in the body is a crash the engine records.

#[cfg(all(feature = "libfuzzer", feature = "afl"))]
compile_error!("choose one engine: the `libfuzzer` feature (default) or `afl`");
#[cfg(not(any(feature = "libfuzzer", feature = "afl")))]
compile_error!("choose an engine: the `libfuzzer` feature (default) or `afl`");

#[cfg(feature = "afl")]
#[doc(hidden)]
pub use afl;
#[cfg(feature = "libfuzzer")]
#[doc(hidden)]
pub use libfuzzer_sys;

/// `fuzz_target!(|data: &[u8]| { ... })`: the target's body, called once per input. The
/// crate root of the target carries `#![cfg_attr(feature = "libfuzzer", no_main)]`.
#[cfg(feature = "libfuzzer")]
#[macro_export]
macro_rules! fuzz_target {
    (|$data:ident: &[u8]| $body:block) => {
        $crate::libfuzzer_sys::fuzz_target!(|$data: &[u8]| $body);
    };
}

/// `fuzz_target!(|data: &[u8]| { ... })`: the target's body, called once per input. The
/// crate root of the target carries `#![cfg_attr(feature = "libfuzzer", no_main)]`.
#[cfg(feature = "afl")]
#[macro_export]
macro_rules! fuzz_target {
    (|$data:ident: &[u8]| $body:block) => {
        fn main() {
            $crate::afl::fuzz!(|$data: &[u8]| $body);
        }
    };
}
