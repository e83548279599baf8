//! `libvmi.so`: vmi's default QEMU plugin, the JSON Lines event log. It is built on the
//! plugin API exactly as a plugin of yours would be (`docs/api.md`).

vmi::export_plugin!(vmi::eventlog::LogPlugin);
