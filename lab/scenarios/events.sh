# Process lifecycle (busybox applets may run without exec, so exec'd programs are the
# lab's own): forks, execs, threads, a pipeline, known exit codes, a signal and a
# fork storm. The guest's own account: pids from $!, exit statuses from wait.
vmi_mark scenario events
sh -c 'exit 3' &
p=$!; wait $p; vmi_mark exited "$p $?"
(exit 5) &
p=$!; wait $p; vmi_mark exited "$p $?"
exitcode 9 &
p=$!; wait $p; vmi_mark exited "$p $?"; vmi_mark execd "$p exitcode"
sleep 100 &
p=$!; vmi_wait_for $p sleep 1; kill $p; wait $p; vmi_mark exited "$p $?"
threads 2 /tmp/threads.ready &
p=$!; until [ -e /tmp/threads.ready ] || ! kill -0 $p 2>/dev/null; do :; done
vmi_wait_for $p threads 3; vmi_mark threaded "$p 3"; kill $p; wait $p; vmi_mark exited "$p $?"
echo pipeline | passthru | passthru >/dev/null
waiter
i=0
while [ $i -lt 500 ]; do
    (exit 7) &
    vmi_mark storm $!
    i=$((i + 1))
done
wait
vmi_mark storm_done 500
ln -s /bin/busybox /bin/vmi-snapshot
vmi-snapshot
vmi_mark end
