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
vmi_kallsyms linux_banner init_task entry_SYSCALL_64 _text
kill $bg $mt
vmi_mark end
