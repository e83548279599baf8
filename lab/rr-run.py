#!/usr/bin/env python3
"""Runs QEMU for `lab/lab record` and `lab/lab replay` and watches its progress.

    rr-run.py --cwd DIR --console FILE --stderr FILE --progress FILE
              [--timeout S] [--stall S] -- qemu ARGS...

QEMU runs in DIR with stdin from /dev/null, the serial console (stdout) to --console and
stderr to --stderr, plus a QMP socket (`-qmp unix:...`; QMP is outside record/replay, so
adding it changes nothing in the guest). Every half second the watcher asks QMP
`query-replay` for the instruction count and writes it to --progress.

A replay that diverges from its recording (different command line, kernel, initramfs or
QEMU) does not fail: QEMU waits forever for an event that never comes, silently. The
watcher notices that the instruction count stopped moving for --stall seconds, kills
QEMU and exits 3. Past --timeout it kills QEMU and exits 124. Otherwise it exits with
QEMU's status.
"""

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cwd", required=True)
    ap.add_argument("--console", required=True)
    ap.add_argument("--stderr", required=True)
    ap.add_argument("--progress", required=True)
    ap.add_argument("--timeout", type=float, default=300)
    ap.add_argument("--stall", type=float, default=20)
    ap.add_argument("argv", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    argv = a.argv[1:] if a.argv[:1] == ["--"] else a.argv
    sock = os.path.join(a.cwd, "qmp.sock")
    if os.path.exists(sock):
        os.unlink(sock)
    # Relative: unix socket paths are limited to about 100 bytes.
    argv = argv + ["-qmp", "unix:qmp.sock,server=on,wait=off"]
    with open(a.console, "wb") as out, open(a.stderr, "wb") as err:
        qemu = subprocess.Popen(argv, cwd=a.cwd, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=err, start_new_session=True)
    start = time.monotonic()
    qmp = None
    last, last_change = None, start
    verdict = None
    while qemu.poll() is None:
        now = time.monotonic()
        if now - start > a.timeout:
            verdict = 124
            break
        if qmp is None and os.path.exists(sock):
            qmp = connect(sock)
        if qmp is not None:
            icount = query_icount(qmp)
            if icount is None:
                qmp = None  # QEMU is going away, or QMP broke; keep waiting on QEMU
            else:
                write_progress(a.progress, icount)
                if icount != last:
                    last, last_change = icount, now
                elif now - last_change > a.stall:
                    verdict = 3
                    break
        try:
            qemu.wait(0.5)
        except subprocess.TimeoutExpired:
            pass
    if verdict is not None:
        os.killpg(qemu.pid, signal.SIGTERM)
        try:
            qemu.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(qemu.pid, signal.SIGKILL)
            qemu.wait()
        rc = verdict
    else:
        rc = qemu.returncode
        if rc < 0:
            rc = 128 - rc
    if os.path.exists(sock):
        os.unlink(sock)
    sys.exit(rc)


class Qmp:
    def __init__(self, s):
        self.s = s
        self.f = s.makefile("rw")

    def call(self, cmd):
        self.f.write(json.dumps({"execute": cmd}) + "\n")
        self.f.flush()
        while True:
            line = self.f.readline()
            if not line:
                raise OSError("QMP closed")
            r = json.loads(line)
            if "return" in r or "error" in r:
                return r


def connect(path):
    try:
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(5)
        s.connect(path)
        q = Qmp(s)
        q.f.readline()  # greeting
        q.call("qmp_capabilities")
        return q
    except (OSError, ValueError):
        return None


def query_icount(q):
    try:
        r = q.call("query-replay")
        return r.get("return", {}).get("icount")
    except (OSError, ValueError):
        return None


def write_progress(path, icount):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(f"{icount}\n")
    os.replace(tmp, path)


if __name__ == "__main__":
    main()
