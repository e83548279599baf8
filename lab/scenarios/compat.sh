# The 32-bit system call paths: /bin/compat32 (tests/guest/compat.m32.c, static, -m32)
# makes a known set of calls through int 0x80 and through the vDSO, under the guest's
# strace (on amd64 a 64-bit strace following a 32-bit process), printed after it ran.
vmi_mark scenario compat
strace -f -qq -X raw -s 256 -o /tmp/trace /bin/compat32
vmi_mark compat_status $?
while read -r l; do echo "@@VMI strace $l"; done </tmp/trace
vmi_mark end
