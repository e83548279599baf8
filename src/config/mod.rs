//! Kernel descriptions: PANDA's `kernelinfo.conf` key files.
//!
//! [`keyfile`] reads the GLib key-file syntax and knows nothing about kernels.

pub mod keyfile;

pub use keyfile::{ConfigError, KeyFile};
