"""One Ctrl-C on `churn stream` drains, prints the closing report and exits, with no
traceback and no process left behind (flows.reaper starts Prefect's temporary server in its
own session).

Before: the terminal's SIGINT reached the whole foreground process group, so the temporary
Prefect API server (a child in the same group) died at once while `churn stream` was still
draining; the run's last API calls then failed with `httpx.ConnectError` tracebacks and
retried for minutes, and the report was never printed."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest

from flows import reaper

ROOT = Path(__file__).resolve().parents[2]
_SCRIPT = Path(sys.executable).with_name("churn")  # the installed command, as a user runs it
CHURN = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "churn.cli"]

SETUP = """
import sys
from pathlib import Path
from pipeline.testing.registry import register_tiny_champion
from pipeline.testing.stream import simulated_log

data, uri = Path(sys.argv[1]), sys.argv[2]
simulated_log(data / "log", users=300, days=20, partitions=2, seed=3).close()
print(register_tiny_champion(uri))
"""


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (state first); None if gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None


def _alive(pid: int) -> bool:
    st = _stat(pid)
    return st is not None and st[0] != "Z"  # a zombie has ended


def _group(pgid: int) -> list[int]:
    """Live processes in process group ``pgid``."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            st = _stat(int(entry.name))
            if st is not None and st[0] != "Z" and int(st[2]) == pgid:
                out.append(int(entry.name))
    return out


def _children(pid: int) -> dict[int, str]:
    """Live children of ``pid``: {pid: command line}."""
    out = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            st = _stat(int(entry.name))
            if st is not None and st[0] != "Z" and int(st[1]) == pid:
                with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                    out[int(entry.name)] = Path(f"/proc/{entry.name}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    return out


def _wait_for(path: Path, text: str, proc: subprocess.Popen[bytes], timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end and proc.poll() is None:
        if text in path.read_text(errors="replace"):
            return True
        time.sleep(0.5)
    return False


def test_the_server_module_starts_its_processes_in_their_own_session_out_of_the_terminals_group() -> None:
    module = types.SimpleNamespace(subprocess=subprocess)  # as prefect.server.api.server imports it
    assert reaper._own_session(module) and reaper._own_session(module)  # idempotent
    assert module.subprocess.TimeoutExpired is subprocess.TimeoutExpired  # the rest is the real module
    child = module.subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert isinstance(child, subprocess.Popen)
        assert os.getsid(child.pid) == child.pid and os.getpgid(child.pid) != os.getpgrp()
    finally:
        child.kill()
        child.wait()
    assert not reaper._own_session(types.SimpleNamespace())  # a module that does not use subprocess


@pytest.mark.slow
@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_one_ctrl_c_or_sigterm_on_churn_stream_drains_reports_and_leaves_nothing_behind(tmp_path: Path,
                                                                                      how: str) -> None:
    """Ctrl-C reaches the terminal's whole process group; SIGTERM (`kill`, a service
    manager) the process alone. SIGTERM used to end `churn stream` at once: no drain, no report."""
    data, uri = tmp_path / "data", f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "CHURN_"))}
    env |= {"PREFECT_HOME": str(tmp_path / "prefect"), "CHURN_MLFLOW_TRACKING_URI": uri,
            "CHURN_DRIFT_ENABLED": "false", "PYTHONPATH": str(ROOT)}  # fmt: skip
    (tmp_path / "prefect").mkdir()
    setup = subprocess.run([sys.executable, "-c", SETUP, str(data), uri], env=env, cwd=tmp_path,
                           capture_output=True, text=True, timeout=300)  # fmt: skip
    assert setup.returncode == 0 and setup.stdout.split()[-1] == "1", setup.stderr[-3000:]

    out = tmp_path / "stream.out"
    with out.open("wb") as sink:  # its own session and process group, as a terminal's job
        proc = subprocess.Popen([*CHURN, "--data-dir", str(data), "stream", "--no-autoscale"], env=env,
                                cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip
    helpers: dict[int, str] = {}  # the temporary Prefect server and its watchdog
    try:
        assert _wait_for(out, "scoring with champion", proc, 240), (
            f"the stream did not start (exit {proc.poll()}):\n{out.read_text(errors='replace')[-4000:]}")
        helpers = {p: cmd for p, cmd in _children(proc.pid).items() if "uvicorn" in cmd or "flows.reaper" in cmd}
        assert any("uvicorn" in cmd for cmd in helpers.values()), "no temporary Prefect server found"

        if how == "ctrl-c":
            os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in its terminal does
        else:
            os.kill(proc.pid, signal.SIGTERM)
        t0 = time.monotonic()
        try:
            rc = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            rc = None
        text = out.read_text(errors="replace")
        assert rc is not None, f"still running 60 s after one Ctrl-C:\n{text[-4000:]}"
        assert rc in (0, 130), text[-4000:]
        assert "checkpointed" in text  # the worker drained
        said = "interrupted (Ctrl-C)" if how == "ctrl-c" else "stopped (SIGTERM)"
        assert said in text and "final lag" in text and "top 10 at-risk" in text, text[-4000:]
        assert "Traceback" not in text and "ConnectError" not in text, text[-6000:]
        # the supervisor was asked to drain: the run ends stopped, not as a crash Prefect reports
        assert "Crash detected" not in text and "Crashed" not in text, text[-6000:]
        end = time.monotonic() + 15  # the watchdog notices the server's end within moments
        while time.monotonic() < end and (_group(proc.pid) or any(_alive(p) for p in helpers)):
            time.sleep(0.2)
        assert _group(proc.pid) == [], f"left in the process group: {_group(proc.pid)}"
        assert [p for p in helpers if _alive(p)] == [], f"left behind: {helpers}"
        assert time.monotonic() - t0 < 75
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        for pid in helpers:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        for pid in _group(proc.pid):
            os.kill(pid, signal.SIGKILL)
