# System calls under strace: the guest's own trace of a small workload, printed after it
# ran, to compare with the plugin's syscall records of the same processes.
vmi_mark scenario syscalls
strace -f -qq -X raw -s 256 -o /tmp/trace sh -c '
    cat /proc/version >/dev/null
    ls /nonexistent 2>/dev/null
    echo hello >/tmp/x
    cat /tmp/x >/dev/null
    (exit 3)
    true'
while read -r l; do echo "@@VMI strace $l"; done </tmp/trace
vmi_mark end
