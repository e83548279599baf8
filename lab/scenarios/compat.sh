# The 32-bit system call paths: /bin/compat32 makes a known set of calls under the
# guest's strace, printed after it ran. On x86 it is tests/guest/compat.m32.c (static,
# -m32: int 0x80 and the vDSO; on amd64 a 64-bit strace following a 32-bit process); on
# arm64 and armhf tests/guest/compat.a32.c (static, armhf: svc in ARM and in Thumb code;
# on arm64 through the kernel's compat path, strace:arm64 following it).
vmi_mark scenario compat
strace -f -qq -X raw -s 256 -o /tmp/trace /bin/compat32
vmi_mark compat_status $?
while read -r l; do echo "@@VMI strace $l"; done </tmp/trace
vmi_mark end
