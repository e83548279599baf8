# Helpers for lab scenarios: the guest's own view of itself, printed on the serial
# console as "@@VMI <kind> ..." lines that the tests parse. The /proc walks use shell
# builtins only (glob, read, echo), so reading does not add processes of its own.

vmi_mark() { echo "@@VMI $*"; }

# The guest's architecture as uname -m says it (x86_64, i686, aarch64, armv7l), read with a
# builtin so that no process is added; empty on a kernel without kernel.arch.
read -r vmi_machine </proc/sys/kernel/arch 2>/dev/null || vmi_machine=

# Every process ("stat <raw /proc/pid/stat>") and every thread ("task <pid> <tid>").
vmi_procs() {
    for d in /proc/[0-9]*; do
        read -r l <"$d/stat" 2>/dev/null || continue
        echo "@@VMI stat $l"
        for t in "$d"/task/[0-9]*; do echo "@@VMI task ${d#/proc/} ${t##*/}"; done
    done
}

# Every user process's command line: "cmdline <pid> <arguments joined by spaces>" (the
# NULs of /proc/PID/cmdline as spaces; tr runs after the listing, so it is not in it).
vmi_cmdlines() {
    local d args
    for d in /proc/[0-9]*; do
        args=$(tr '\000' ' ' <"$d/cmdline" 2>/dev/null) || continue
        [ -n "$args" ] && echo "@@VMI cmdline ${d#/proc/} ${args% }"
    done
}

# /proc/modules, one "module <line>" each.
vmi_modules() {
    while read -r l; do echo "@@VMI module $l"; done </proc/modules
}

# /proc/PID/maps of one process.
vmi_maps() {
    while read -r l; do echo "@@VMI maps $1 $l"; done <"/proc/$1/maps"
}

# /proc/PID/fd of one process: "fd <pid> <n> <target>" (readlink is a busybox applet).
vmi_fds() {
    for f in /proc/$1/fd/*; do echo "@@VMI fd $1 ${f##*/} $(readlink "$f")"; done
}

# Chosen /proc/kallsyms lines: "kallsyms <addr> <type> <name>" (needs nokaslr to be
# link-time addresses).
vmi_kallsyms() {
    local pattern
    pattern=$(echo "$@" | sed 's/ /|/g')
    grep -E " ($pattern)\$" /proc/kallsyms | while read -r a t n; do
        echo "@@VMI kallsyms $a $t $n"
    done
}

# Waits (with builtins) until process $1 runs program $2 (its comm) and has at least $3
# threads, so that a snapshot taken next sees it settled.
vmi_wait_for() {
    local stat
    while :; do
        read -r stat <"/proc/$1/stat" 2>/dev/null || return 1
        case $stat in *"($2)"*) ;; *) continue ;; esac
        set -- "$1" "$2" "${3:-1}" /proc/"$1"/task/*
        [ $(($# - 3)) -ge "$3" ] && return 0
    done
}
