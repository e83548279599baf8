# The default scenario: a little ordinary activity, then the guest's own view.
vmi_mark scenario default
vmi_mark uname "$(uname -r)"
for m in /modules/*.ko; do insmod "$m" 2>/dev/null; done
# A long-lived process with known open files, and a multi-threaded one.
sleep 600 </dev/null >/tmp/sleep.out 2>&1 3</init &
bg=$!
threads 3 &
mt=$!
vmi_wait_for $bg sleep 1
vmi_wait_for $mt threads 4
ls -l / >/dev/null
cat /proc/version >/dev/null
echo hello >/tmp/hello && cat /tmp/hello >/dev/null
# A program named vmi-snapshot asks the plugin for a snapshot (busybox just exits 127).
ln -s /bin/busybox /bin/vmi-snapshot
vmi-snapshot
vmi_procs
vmi_cmdlines
vmi_modules
vmi_mark chosen $bg
vmi_maps $bg
vmi_fds $bg
vmi_mark threaded $mt
case $vmi_machine in
    # arm64: the exception vectors and the EL0 system call path instead of x86's entry
    # (6.1's kallsyms has no _text and, without KALLSYMS_ALL, no data symbols).
    aarch64) vmi_kallsyms linux_banner init_task _text _stext vectors el0t_64_sync el0_svc \
        invoke_syscall cpu_switch_to __switch_to ;;
    # 32-bit ARM: the SWI/SVC vector, the fast return to user space and the task switch
    # (no KALLSYMS_ALL on Debian's armmp kernels either: no data symbols).
    armv7l) vmi_kallsyms linux_banner init_task _text _stext vector_swi ret_fast_syscall \
        __switch_to ;;
    *) vmi_kallsyms linux_banner init_task entry_SYSCALL_64 _text ;;
esac
kill $bg $mt
vmi_mark end
