"""A real Prefect server and served deployments for slow tests, in subprocesses.

:class:`LocalPrefect` starts ``prefect server start`` on a free 127.0.0.1 port with its own
``PREFECT_HOME`` (a temporary SQLite database), then whatever serves deployments against it
(``python -m flows.serve ...``, given by the caller as a command line); on exit it stops
every process it started, by its pid, newest first. Both write into one log file, whose tail
goes into every failure message. It talks to the API over HTTP (``httpx``) and runs the
``prefect`` executable beside the running interpreter: the library imports no orchestrator
(``tests/test_layers.py``).

    with LocalPrefect(tmp_path / "prefect", env={"CHURN_DATA_DIR": ...}) as pf:
        pf.start_when_ready([sys.executable, "-m", "flows.serve", ...], cwd=ROOT)  # returns at once
        ...                                       # meanwhile: simulate, train, ...
        pf.wait_deployment("train/weekly")
        state = pf.wait_run(flow_run_id)          # "COMPLETED", "FAILED", ...
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

TERMINAL = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")
QUIET = {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "true", "MLFLOW_DISABLE_TELEMETRY": "true"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what: str, ok: Callable[[], Any], timeout: float, procs: Iterable[subprocess.Popen] = (),
             every: float = 1.0, log: Callable[[], str] = lambda: "") -> Any:  # fmt: skip
    """Poll ``ok()`` until it returns something truthy (returned); AssertionError after
    ``timeout`` seconds, or as soon as one of ``procs`` exits, with ``log()`` appended."""
    end = time.monotonic() + timeout
    procs = list(procs)
    while True:
        for p in procs:
            if p.poll() is not None:
                raise AssertionError(f"{' '.join(map(str, p.args[:4]))} exited ({p.returncode}) while waiting for "
                                     f"{what}\n{log()}")  # fmt: skip
        got = ok()
        if got:
            return got
        if time.monotonic() >= end:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{log()}")
        time.sleep(every)


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL after 30 s; waits for the process."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def http_ok(url: str) -> bool:
    import httpx

    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


class LocalPrefect:
    """A Prefect server of its own (``home``: its PREFECT_HOME) plus processes served against it."""

    def __init__(self, home: Path, env: Mapping[str, str] | None = None, port: int | None = None) -> None:
        self.home = Path(home)
        self.port = port or free_port()
        self.api = f"http://127.0.0.1:{self.port}/api"
        self.env = dict(os.environ) | QUIET | {"PREFECT_HOME": str(self.home), "PREFECT_API_URL": self.api} | dict(
            env or {})  # fmt: skip
        self.log_path = self.home / "processes.log"
        self.procs: list[subprocess.Popen] = []
        self._out: Any = None
        self.server: subprocess.Popen | None = None
        self._later: list[threading.Thread] = []
        self.errors: list[str] = []  # why a process to start once the server was ready was not started

    # -- lifecycle -----------------------------------------------------------------------
    def __enter__(self) -> LocalPrefect:
        self.home.mkdir(parents=True, exist_ok=True)
        self._out = open(self.log_path, "ab")  # noqa: SIM115 - closed in __exit__
        prefect = Path(sys.executable).parent / "prefect"
        if not prefect.exists():
            self.__exit__(None, None, None)
            raise FileNotFoundError(f"no prefect executable beside {sys.executable}: install the project (make install)")
        self.server = self.start([str(prefect), "server", "start", "--host", "127.0.0.1", "--port", str(self.port)],
                                 cwd=self.home)  # fmt: skip
        return self

    def __exit__(self, *exc: object) -> None:
        for t in self._later:  # nothing may be started after this
            t.join()
        for p in reversed(self.procs):
            stop(p)
        self.procs.clear()
        if self._out is not None:
            self._out.close()
            self._out = None

    def start(self, argv: Sequence[str], cwd: Path, env: Mapping[str, str] | None = None) -> subprocess.Popen:
        """Start a process with the server's environment (plus ``env``); stopped on exit."""
        p = subprocess.Popen(list(argv), env=self.env | dict(env or {}), stdout=self._out, stderr=subprocess.STDOUT,
                             cwd=cwd)  # fmt: skip
        self.procs.append(p)
        return p

    def start_when_ready(self, argv: Sequence[str], cwd: Path, env: Mapping[str, str] | None = None,
                         timeout: float = 180) -> None:  # fmt: skip
        """Start a process once the server answers (``prefect serve`` exits if it does not),
        from a thread, so the caller goes on meanwhile; :meth:`wait_deployment` says if it failed."""

        def later() -> None:
            try:
                self.wait_ready(timeout)
                self.start(argv, cwd, env)
            except Exception as exc:  # noqa: BLE001 - reported by wait_deployment
                self.errors.append(f"{' '.join(map(str, argv[:4]))} not started: {exc}")

        t = threading.Thread(target=later, name="start-when-ready", daemon=True)
        self._later.append(t)
        t.start()

    def log_tail(self, chars: int = 4_000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""

    # -- waiting -------------------------------------------------------------------------
    def wait_ready(self, timeout: float = 180) -> None:
        wait_for("the Prefect server", lambda: http_ok(f"{self.api}/health"), timeout, self.procs, log=self.log_tail)

    def _client(self) -> Any:
        import httpx

        return httpx.Client(base_url=self.api, timeout=10)

    def wait_deployment(self, name: str, timeout: float = 120) -> dict[str, Any]:
        """``flow/deployment`` once it is served (waits for the server first)."""
        self.wait_ready()
        for t in self._later:  # the server answers: the process that serves it has been started
            t.join()
        if self.errors:
            raise AssertionError("; ".join(self.errors) + "\n" + self.log_tail())

        def found() -> dict[str, Any] | None:
            with self._client() as c:
                r = c.get(f"/deployments/name/{name}")
            return r.json() if r.status_code == 200 else None

        return wait_for(f"the served {name} deployment", found, timeout, self.procs, log=self.log_tail)

    def flow_run(self, run_id: str) -> dict[str, Any]:
        with self._client() as c:
            r = c.get(f"/flow_runs/{run_id}")
        r.raise_for_status()
        return r.json()

    def runs(self, deployment: str) -> list[dict[str, Any]]:
        """Flow runs of the deployment called ``deployment`` (its name without the flow's)."""
        with self._client() as c:
            r = c.post("/flow_runs/filter", json={"deployments": {"name": {"any_": [deployment]}}})
        return r.json() if r.status_code == 200 else []

    def wait_run(self, run_id: str, timeout: float = 600) -> str:
        """The flow run's final state type (one of :data:`TERMINAL`), once it has one."""

        def final() -> str | None:
            state = self.flow_run(run_id).get("state_type")
            return state if state in TERMINAL else None

        return wait_for(f"flow run {run_id} to finish", final, timeout, self.procs, every=1.0, log=self.log_tail)
