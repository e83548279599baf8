# The guest's own link-time addresses (nokaslr) of every symbol `vmi kernelinfo` emits, for
# tests/kernelinfo_gen.rs to compare with what the generator recovers from the image.
vmi_mark scenario kallsyms
vmi_mark uname "$(uname -r)"
vmi_mark banner "$(cat /proc/version)"
vmi_kallsyms linux_banner init_task entry_SYSCALL_64 _text __per_cpu_offset current_task \
    pcpu_hot entry_INT80_compat entry_SYSENTER_compat entry_INT80_32 entry_SYSENTER_32 \
    page_offset_base modules _stext asm_int80_emulation
vmi_mark end
