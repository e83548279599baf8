# The plugin API's examples (examples/), against the guest's own account: strace's view
# of the files opened and the programs executed, and the maps of a dynamically linked
# program (strace itself) read while it runs.
vmi_mark scenario api
vmi_mark sh_exe "$(readlink /proc/$$/exe)"
strace -f -qq -X raw -s 256 -e trace=open,openat,execve -o /tmp/trace sh -c '
    cat /proc/version >/dev/null
    cat /nonexistent 2>/dev/null
    echo hello >/tmp/x
    exitcode 0
    passthru </tmp/x >/dev/null'
while read -r l; do echo "@@VMI strace $l"; done </tmp/trace
strace -o /dev/null sh -c 'cat /proc/$PPID/maps >/tmp/maps; echo $PPID >/tmp/strace.pid'
read -r p </tmp/strace.pid
vmi_mark strace_pid "$p"
while read -r l; do echo "@@VMI strace_maps $l"; done </tmp/maps
vmi_mark end
