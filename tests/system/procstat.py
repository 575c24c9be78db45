"""What tests and benchmarks read of a process in /proc: CPU time, RSS.

Each reader takes gone_ok: True (the benchmarks' default) reads a process
that has exited as 0; False raises OSError, for a test where a child that
is gone is itself the finding (a restart, a crash)."""

import os

TICK = os.sysconf("SC_CLK_TCK")


def _read(pid, name, gone_ok):
    try:
        with open("/proc/%d/%s" % (pid, name)) as f:
            return f.read()
    except OSError:
        if gone_ok:
            return None
        raise


def cpu_s(pid, gone_ok=True):
    """User + system CPU seconds of pid so far."""
    st = _read(pid, "stat", gone_ok)
    if st is None:
        return 0.0
    parts = st.rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / TICK


def mem_kb(pid, gone_ok=True):
    """(VmRSS, VmHWM: resident now and at its peak) of pid in KiB."""
    st = _read(pid, "status", gone_ok)
    if st is None:
        return 0, 0
    v = dict(l.split(":", 1) for l in st.splitlines() if l.startswith(("VmRSS", "VmHWM")))
    return int(v["VmRSS"].split()[0]), int(v["VmHWM"].split()[0])


def hwm_kb(pid, gone_ok=True):
    """Peak resident set (VmHWM) of pid in KiB."""
    return mem_kb(pid, gone_ok)[1]
