"""The one flock-with-holder-pid helper behind producer, supervisor and partition locks."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from pipeline.pidlock import PidLock, holder_if_locked


def test_a_second_taker_is_refused_and_learns_the_holders_pid(tmp_path):
    path = tmp_path / "sub" / "x.lock"
    assert holder_if_locked(path) is None and not path.exists()  # the probe creates nothing
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from pipeline.pidlock import PidLock
        lock = PidLock({str(path)!r}); assert lock.try_acquire()
        print("held", flush=True); sys.stdin.readline()
    """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        mine = PidLock(path)
        assert not mine.try_acquire() and not mine.held
        assert mine.holder() == str(holder.pid)
        assert holder_if_locked(path) == str(holder.pid)
    finally:
        holder.kill()  # a dead holder's lock is dropped by the kernel
        holder.wait()
    assert holder_if_locked(path) is None
    mine = PidLock(path)
    assert mine.try_acquire() and mine.held and mine.try_acquire()  # re-entrant for the holder
    mine.release()
    assert not mine.held and holder_if_locked(path) is None
