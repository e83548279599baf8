# Many processes at once, for measuring a snapshot's cost (run with log=info: the plugin
# logs each snapshot's host time).
vmi_mark scenario many
i=0
while [ $i -lt 80 ]; do
    sleep 600 &
    i=$((i + 1))
done
vmi_wait_for $! sleep 1
ln -s /bin/busybox /bin/vmi-snapshot
vmi-snapshot
kill $(jobs -p) 2>/dev/null
vmi_mark end
