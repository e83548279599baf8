# Benchmark workloads (tests/guest/bench-*.c), for scripts/bench. Each prints
# "@@VMI bench <name> <ns>" with its own CLOCK_MONOTONIC time. Chosen on the kernel command
# line (lab/lab boot --append), whose name=value pairs reach /init as variables:
#   bench_only=syscall,fork    which workloads, in this order (default: all five)
#   bench_syscall=N bench_fork=N bench_file=N bench_tree=N bench_compute=N    iteration counts
#                              (default: each program's own, the numbers)
vmi_mark scenario bench
vmi_mark uname "$(uname -r)"
read -r up _ </proc/uptime
vmi_mark uptime_start "$up"
for w in $(echo "${bench_only:-syscall,fork,file,tree,compute}" | tr , ' '); do
    vmi_mark bench_start "$w"
    eval "n=\${bench_$w:-}"
    # shellcheck disable=SC2086 # an empty count means the default
    "bench-$w" $n || vmi_mark bench_failed "$w"
done
read -r up _ </proc/uptime
vmi_mark uptime_end "$up"
vmi_mark end
