# The guest's own link-time addresses (nokaslr) of every symbol `vmi kernelinfo` emits, for
# tests/kernelinfo_gen.rs to compare with what the generator recovers from the image.
vmi_mark scenario kallsyms
vmi_mark uname "$(uname -r)"
vmi_mark banner "$(cat /proc/version)"
case $vmi_machine in
    # arm64: the image's bounds (the lab's vmlinux puts _text at its link address:
    # 6.1's kallsyms lacks _text, _stext is _text + 64 KiB), the exception vectors and EL0
    # system call path, the task switch, and the data symbols a kernelinfo needs (only
    # with KALLSYMS_ALL: 6.12 has them, 6.1 not).
    aarch64) vmi_kallsyms linux_banner init_task _text _stext _etext _end __per_cpu_offset \
        swapper_pg_dir kimage_voffset sys_call_table vectors el0t_64_sync el0_svc \
        invoke_syscall do_el0_svc cpu_switch_to __switch_to modules ;;
    # 32-bit ARM: the image's bounds (_text at PAGE_OFFSET + 0x8000), the SVC vector and
    # system call return, the task switch, and the data symbols a kernelinfo needs (none
    # listed on Debian's armmp kernels: no KALLSYMS_ALL).
    armv7l) vmi_kallsyms linux_banner init_task _text _stext _etext _end __per_cpu_offset \
        swapper_pg_dir sys_call_table __entry_task vector_swi ret_fast_syscall \
        __switch_to __ret_from_fork modules ;;
    *) vmi_kallsyms linux_banner init_task entry_SYSCALL_64 _text __per_cpu_offset current_task \
        pcpu_hot entry_INT80_compat entry_SYSENTER_compat entry_INT80_32 entry_SYSENTER_32 \
        page_offset_base modules _stext asm_int80_emulation ;;
esac
vmi_mark end
