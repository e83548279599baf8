# The 32-bit system call paths: /bin/compat32 (tests/guest/compat.m32.c, static, -m32)
# makes a known set of calls through int 0x80 and through the vDSO, under the guest's
# strace (on amd64 a 64-bit strace following a 32-bit process), printed after it ran.
# arm64 and armhf have no such program (IA-32 code): the scenario says so and ends.
vmi_mark scenario compat
if [ "$vmi_machine" = aarch64 ] || [ "$vmi_machine" = armv7l ]; then
    vmi_mark skipped "compat: /bin/compat32 is IA-32 code, not built for $vmi_machine"
else
    strace -f -qq -X raw -s 256 -o /tmp/trace /bin/compat32
    vmi_mark compat_status $?
    while read -r l; do echo "@@VMI strace $l"; done </tmp/trace
fi
vmi_mark end
