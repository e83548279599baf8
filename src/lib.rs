//! `vmi`: introspection of a running Linux guest from inside a QEMU TCG plugin.
//!
//! The crate is both the plugin (`libvmi.so`, loaded with `-plugin`) and a library.
//! Data flows one way:
//!
//! ```text
//! QEMU callbacks (ffi) → plugin state (plugin) → guest understanding (arch, config, …)
//!                      → records (output) → JSON Lines sink
//! ```
//!
//! Everything except [`ffi`](crate) is safe, QEMU-free Rust, testable on synthetic input.

#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod api;
pub mod arch;
pub mod args;
pub mod config;
pub mod cpu;
pub mod error;
pub mod eventlog;
pub mod events;
pub mod generate;
pub mod linux;
pub mod mem;
pub mod osi;
pub mod output;
pub mod plugin;
pub mod qemu;
pub mod report;
pub mod syscalls;

// The QEMU entry points reference `qemu_plugin_*` symbols that exist only inside QEMU, so
// they are left out of unit-test builds (which would otherwise fail to link).
#[cfg(not(test))]
#[allow(unsafe_code)]
mod ffi;

/// What [`export_plugin!`] calls: QEMU's install, for a plugin built on vmi.
#[cfg(not(test))]
#[doc(hidden)]
pub use ffi::install;

/// The plugin's version, as recorded in every run's `run_start` record.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
