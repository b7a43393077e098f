"""Start, inspect and stop the local stack (the logic behind `churn up/status/down`).

>>> st = up(settings, {"prefect": 4200, "mlflow": 5000, "dashboard": 8501})   # doctest: +SKIP
>>> down(settings)                                                             # doctest: +SKIP
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from churn.stack import http, prefect_api, procs
from churn.stack.services import ServiceSpec, build, client_env
from churn.stack.state import (
    ServiceRecord,
    StackError,
    StackState,
    load,
    remove,
    save,
    state_dir,
    state_path,
)
from pipeline.config import PROJECT_ROOT, Settings

MODEL_NAME = "churn"  # = pipeline.registry.MODEL_NAME (not imported: that pulls in mlflow)
Print = Callable[[str], None]
SERVERS = ("prefect", "mlflow")


@dataclass
class ServiceStatus:
    name: str
    pid: int
    running: bool
    healthy: bool
    url: str
    log: str


def ports_of(settings: Settings, **overrides: int | None) -> dict[str, int]:
    """The ports to use: flags override settings (CHURN_*_PORT)."""
    ports = {"prefect": settings.prefect_port, "mlflow": settings.mlflow_port, "dashboard": settings.dashboard_port}
    ports.update({k: v for k, v in overrides.items() if v is not None})
    return ports


def _healthy(spec: ServiceSpec) -> bool:
    return all(http.ok(u) for u in (spec.health, *spec.extra_health) if u)


def check_ports(specs: list[ServiceSpec]) -> None:
    seen: dict[int, str] = {}
    for sp in specs:
        if sp.port is None:
            continue
        if sp.port in seen:
            raise StackError(f"port {sp.port} is given to both {seen[sp.port]} and {sp.name}; "
                             f"choose another with {sp.port_flag}")  # fmt: skip
        seen[sp.port] = sp.name
        if not procs.port_free(sp.port):
            raise StackError(f"port {sp.port} ({sp.name}) is already in use on 127.0.0.1; choose another with "
                             f"{sp.port_flag}, or stop what uses it (`churn status` shows an earlier stack)")  # fmt: skip


def running_state(settings: Settings) -> StackState | None:
    """The recorded stack if any of its processes still runs (a stale file is removed)."""
    path = state_path(settings.data_dir)
    st = load(path)
    if st is None:
        return None
    if any(procs.alive(s.pid, s.started) for s in st.services):
        return st
    remove(path)
    return None


def _died(spec: ServiceSpec, rc: int, log: Path) -> StackError:
    lines = procs.tail(log, 15) or "(empty log)"
    return StackError(f"{spec.name} exited with code {rc} while starting; last lines of {log}:\n{lines}")


def churn_command(settings: Settings, command: str) -> str:
    """``churn <command>`` as the user must type it to reach this data directory: with
    ``--data-dir`` unless it is the one a plain ``churn`` uses (``CHURN_DATA_DIR`` or ./data)."""
    default = Path(os.environ.get("CHURN_DATA_DIR") or "data").resolve()
    if Path(settings.data_dir).resolve() == default:
        return f"churn {command}"
    return f"churn --data-dir {settings.data_dir} {command}"


def up(settings: Settings, ports: Mapping[str, int], *, timeout_s: float | None = None, out: Print = print,
       children: list[subprocess.Popen[bytes]] | None = None) -> StackState:  # fmt: skip
    """Start every service, wait for each health check, record them; on any failure stop
    what was started and raise :class:`StackError`. ``children`` collects the Popen objects
    (a foreground caller reaps them)."""
    timeout_s = settings.stack_start_timeout_s if timeout_s is None else timeout_s
    if st := running_state(settings):
        pids = ", ".join(f"{s.name} {s.pid}" for s in st.services if procs.alive(s.pid, s.started))
        raise StackError(f"a stack is already running for {settings.data_dir} ({pids}); "
                         f"`{churn_command(settings, 'status')}` shows it, `{churn_command(settings, 'down')}` "
                         "stops it")  # fmt: skip
    specs = build(settings, ports)
    check_ports(specs)
    data = settings.data_dir.resolve()
    (data / "prefect").mkdir(parents=True, exist_ok=True)  # PREFECT_HOME's parent must exist
    if (uri := settings.resolved_mlflow_uri).startswith("sqlite:///"):  # MLflow does not create the folder
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    logs = state_dir(data) / "logs"
    path = state_path(data)
    state = StackState(str(data), os.getpid(), datetime.now(UTC).isoformat(timespec="seconds"),
                       env=client_env(settings, ports))  # fmt: skip
    children = [] if children is None else children
    launched: dict[str, tuple[subprocess.Popen[bytes], float, ServiceRecord]] = {}
    healthy: set[str] = set()
    try:
        while len(healthy) < len(specs):
            for sp in specs:
                if sp.name not in launched and set(sp.after) <= healthy:
                    log = logs / f"{sp.name}.log"
                    p = procs.launch(sp.argv, env=sp.env, cwd=PROJECT_ROOT, log=log)
                    children.append(p)
                    rec = ServiceRecord(sp.name, p.pid, procs.start_time(p.pid), sp.url, sp.health, str(log), sp.port)
                    launched[sp.name] = (p, time.monotonic(), rec)
                    state.services.append(rec)
                    save(path, state)
                    out(f"starting {sp.name} (pid {p.pid}, log {log}) ...")
            for sp in specs:
                if sp.name in healthy or sp.name not in launched:
                    continue
                p, t0, rec = launched[sp.name]
                if (rc := p.poll()) is not None:
                    raise _died(sp, rc, Path(rec.log))
                if _healthy(sp):
                    rec.start_s = round(time.monotonic() - t0, 1)
                    healthy.add(sp.name)
                    save(path, state)
                    out(f"{sp.name} is healthy after {rec.start_s:.1f} s")
                elif time.monotonic() - t0 > timeout_s:
                    raise StackError(f"{sp.name} did not answer {sp.health} within {timeout_s:.0f} s "
                                     f"(CHURN_STACK_START_TIMEOUT_S); last lines of {rec.log}:\n"
                                     f"{procs.tail(Path(rec.log), 15)}")  # fmt: skip
            if len(healthy) < len(specs):
                time.sleep(0.5)
    except BaseException:
        if launched:
            out("stopping what was started ...")
            procs.stop([(r.pid, r.started) for _, _, r in launched.values()], settings.stack_stop_grace_s, children)
        remove(path)
        raise
    return state


def adopt(settings: Settings, name: str, proc: subprocess.Popen[bytes], log: Path, url: str = "") -> None:
    """Record an extra process (e.g. the demo's producer) so `churn down` stops it too."""
    path = state_path(settings.data_dir)
    st = load(path)
    if st is None:
        raise StackError(f"no stack recorded in {path}; start one with `churn up`")
    st.services.append(ServiceRecord(name, proc.pid, procs.start_time(proc.pid), url, "", str(log)))
    save(path, st)


def champion_hint(state: StackState) -> str | None:
    """None if the registry has a champion; otherwise what to run."""
    mlflow = state.service("mlflow")
    base = mlflow.url if mlflow else state.env.get("CHURN_MLFLOW_TRACKING_URI", "")
    if not base.startswith("http"):
        return None
    status, body = http.request(f"{base}/api/2.0/mlflow/registered-models/alias?name={MODEL_NAME}&alias=champion")
    if status == 200 and isinstance(body, dict) and body.get("model_version"):
        return None
    return ("no champion model yet: the stream waits for one. Train it with "
            "`prefect deployment run 'train/weekly' --watch` (with the exports above) or `churn train`")  # fmt: skip


def status(settings: Settings) -> list[ServiceStatus] | None:
    """Each recorded service: process running? health check answering? (None: no stack)."""
    st = load(state_path(settings.data_dir))
    if st is None:
        return None
    out = []
    for s in st.services:
        run = procs.alive(s.pid, s.started)
        out.append(ServiceStatus(s.name, s.pid, run, run and (not s.health or http.ok(s.health)), s.url, s.log))
    return out


def down(settings: Settings, grace_s: float | None = None, out: Print = print,
         children: list[subprocess.Popen[bytes]] | None = None) -> list[str]:  # fmt: skip
    """Stop every recorded process (SIGTERM to its group and family, SIGKILL after the grace
    period), remove the state file. Returns the names that were still running.

    ``children``: the caller's own Popen objects (e.g. the demo's). They are stopped even
    when the state file is gone (wiped or removed by hand): otherwise a lost file would
    leave every service running with nothing left that knows their pids."""
    path = state_path(settings.data_dir)
    st = load(path)
    grace_s = settings.stack_stop_grace_s if grace_s is None else grace_s
    if st is None:
        return _stop_children(children or (), grace_s, out)
    live = [s for s in st.services if procs.alive(s.pid, s.started)]
    api = st.env.get("PREFECT_API_URL")
    if api and {"prefect", "serve"} <= {s.name for s in live}:
        try:  # cancelled runs end as Cancelled in Prefect (the stream drains and checkpoints)
            prefect_api.cancel_active(api, grace_s, out)
        except StackError as exc:
            out(f"could not cancel the flow runs cleanly ({exc}); stopping the processes")
    # clients first (flow runs drain while the Prefect server can still record it), then servers
    for wave in ([s for s in live if s.name not in SERVERS], [s for s in live if s.name in SERVERS]):
        if not wave:
            continue
        t = time.monotonic()
        out(f"stopping {', '.join(f'{s.name} ({s.pid})' for s in wave)} (SIGTERM, SIGKILL after {grace_s:.0f} s) ...")
        killed = procs.stop([(s.pid, s.started) for s in wave], grace_s, children or ())
        if killed:
            out(f"killed after the grace period: pids {', '.join(map(str, sorted(killed)))}")
        out(f"  stopped in {time.monotonic() - t:.1f} s")
    remove(path)
    return [s.name for s in live]


def _stop_children(children: Sequence[subprocess.Popen[bytes]], grace_s: float, out: Print) -> list[str]:
    """Stop the caller's still-running children with their families (no state file to go by).
    A child not yet reaped keeps its pid, so signalling it by pid is safe."""
    live = [c for c in children if c.poll() is None]
    if not live:
        return []
    pids = ", ".join(str(c.pid) for c in live)
    out(f"no stack state file; stopping the processes this command started: pids {pids} "
        f"(SIGTERM, SIGKILL after {grace_s:.0f} s) ...")  # fmt: skip
    killed = procs.stop([(c.pid, procs.start_time(c.pid)) for c in live], grace_s, children)
    if killed:
        out(f"killed after the grace period: pids {', '.join(map(str, sorted(killed)))}")
    return [f"pid {c.pid}" for c in live]
