# The default scenario: a little ordinary activity, then the guest's own view.
vmi_mark scenario default
vmi_mark uname "$(uname -r)"
for m in /modules/*.ko; do insmod "$m" 2>/dev/null; done
ls -l / >/dev/null
cat /proc/version >/dev/null
echo hello >/tmp/hello && cat /tmp/hello >/dev/null
# A program named vmi-snapshot asks the plugin for a snapshot (busybox just exits 127).
ln -s /bin/busybox /bin/vmi-snapshot
vmi-snapshot 2>/dev/null
vmi_procs
vmi_modules
vmi_maps 1
vmi_fds 1
vmi_kallsyms linux_banner init_task entry_SYSCALL_64 _text
vmi_mark end
