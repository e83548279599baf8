//! Kernel descriptions: PANDA's `kernelinfo.conf` key files.
//!
//! [`keyfile`] reads the GLib key-file syntax and knows nothing about kernels;
//! [`kernelinfo`] turns one group into typed offsets ([`KernelInfo`]) and back into text.

pub mod kernelinfo;
pub mod keyfile;

pub use kernelinfo::{
    CredOffsets, FsOffsets, KernelInfo, MapleOffsets, MmOffsets, ModuleOffsets, PathOffsets,
    QstrOffsets, SignalOffsets, TaskOffsets, Version, VmaOffsets, VmiSymbols,
};
pub use keyfile::{ConfigError, KeyFile};
