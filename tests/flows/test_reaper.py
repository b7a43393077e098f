"""Prefect's temporary API server dies with the process that started it, even a SIGKILLed one
(flows.reaper): before, every killed `churn stream` left a uvicorn server running for good."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flows import reaper

ROOT = Path(__file__).resolve().parents[2]


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has ended


def _gone_within(pid: int, seconds: float) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if not _alive(pid):
            return True
        time.sleep(0.05)
    return False


def _sleeper() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])


def test_a_killed_owner_takes_its_server_with_it() -> None:
    owner, server = _sleeper(), _sleeper()
    dog = reaper.spawn(owner.pid, server.pid)
    try:
        time.sleep(0.3)
        assert _alive(server.pid)
        owner.send_signal(signal.SIGKILL)
        assert server.wait(timeout=10) == -signal.SIGTERM
        assert dog.wait(timeout=10) == 0
    finally:
        for p in (owner, server, dog):
            p.kill()
            p.wait()


def test_a_server_stopped_by_its_owner_releases_the_watchdog_and_spares_the_owner() -> None:
    owner, server = _sleeper(), _sleeper()
    dog = reaper.spawn(owner.pid, server.pid)
    try:
        time.sleep(0.3)
        server.terminate()
        server.wait(timeout=10)
        assert dog.wait(timeout=10) == 0
        assert owner.poll() is None
    finally:
        for p in (owner, server, dog):
            p.kill()
            p.wait()


def test_an_owner_killed_before_its_watchdog_starts_is_not_missed() -> None:
    owner, server = _sleeper(), _sleeper()
    try:
        dog = reaper.spawn(owner.pid, server.pid)
        owner.send_signal(signal.SIGKILL)  # at once: the watchdog holds pidfds opened before this
        assert server.wait(timeout=10) == -signal.SIGTERM
        assert dog.wait(timeout=10) == 0
    finally:
        for p in (owner, server):
            p.kill()
            p.wait()


def test_a_watchdog_for_processes_already_gone_exits_at_once() -> None:
    gone = _sleeper()
    gone.kill()
    gone.wait()
    assert reaper.watch(gone.pid, gone.pid) == 1


CHILD = """
import os, sys, time
os.environ.pop("PREFECT_API_URL", None)
from flows.env import local_defaults
local_defaults()
from prefect.server.api.server import SubprocessASGIServer
server = SubprocessASGIServer()
server.start(timeout=120)
print(server.server_process.pid, flush=True)
time.sleep(300)
"""


@pytest.mark.slow
def test_sigkill_of_a_process_running_flows_on_a_temporary_server_stops_that_server(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env |= {"PREFECT_HOME": str(tmp_path / "prefect"), "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen([sys.executable, "-c", CHILD], env=env, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    server_pid = None
    try:
        line = child.stdout.readline() if child.stdout else ""
        assert line.strip().isdigit(), f"the child did not start a temporary server (exit {child.poll()})"
        server_pid = int(line)
        assert _alive(server_pid)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
        assert _gone_within(server_pid, 15), "the temporary Prefect server outlived its SIGKILLed owner"
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        if server_pid is not None and _alive(server_pid):
            os.kill(server_pid, signal.SIGKILL)


def test_without_pidfds_the_server_still_starts_and_a_warning_says_it_is_not_tied(monkeypatch, caplog) -> None:
    """The watchdog is best effort: a kernel or sandbox without pidfds must not fail every flow."""
    import prefect.server.api.server as prefect_server

    sleeper = _sleeper()

    class FakeServer:
        def start(self, timeout=None):
            self.server_process = sleeper

    monkeypatch.setattr(prefect_server, "SubprocessASGIServer", FakeServer)
    from types import SimpleNamespace

    import prefect.settings

    # no API URL configured (the suite's Prefect harness may have set one for this process)
    monkeypatch.setattr(prefect.settings, "get_current_settings", lambda: SimpleNamespace(api=SimpleNamespace(url=None)))

    def no_pidfd(_pid):
        raise OSError(38, "Function not implemented")

    monkeypatch.setattr(os, "pidfd_open", no_pidfd)
    try:
        assert reaper.tie_to_owner()
        server = FakeServer()
        with caplog.at_level("WARNING", logger="flows.reaper"):
            server.start()
        assert server.server_process is sleeper
        assert f"pid {sleeper.pid}) is not tied to this process" in caplog.text
    finally:
        sleeper.kill()
        sleeper.wait()
