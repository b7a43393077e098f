"""The few Prefect REST calls the stack and the demo need (stdlib HTTP, no Prefect import).

The same as ``prefect deployment run 'train/weekly'`` / ``prefect flow-run cancel`` from a
shell with ``PREFECT_API_URL`` set.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from churn.stack import http
from churn.stack.state import StackError
from pipeline.humanize import duration

FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
ACTIVE = ["RUNNING", "PENDING", "CANCELLING"]


RETRY_STATUS = {429, 502, 503}  # what Prefect's own client retries: the server is busy (e.g. its database locked)
RETRY_WAITS_S = (1.0, 2.0, 4.0, 8.0)


def _request(url: str, body: Any = None, sleep: Callable[[float], None] | None = None) -> tuple[int, Any]:
    """One API call; a busy server (429/502/503: a fresh server's SQLite database is often
    locked by its own services) is asked again after 1, 2, 4, 8 s, as Prefect's client does."""
    status, data = http.request(url, body, timeout=15)
    for wait in RETRY_WAITS_S:
        if status not in RETRY_STATUS:
            break
        (sleep or time.sleep)(wait)
        status, data = http.request(url, body, timeout=15)
    return status, data


def _call(url: str, body: Any = None, what: str = "", sleep: Callable[[float], None] | None = None) -> Any:
    status, data = _request(url, body, sleep)
    if not 200 <= status < 300:
        raise StackError(f"Prefect API {url} answered {status or 'nothing'} {what}: {str(data)[:200]}")
    return data


def run_deployment(api: str, name: str, parameters: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Create a flow run of deployment ``flow/deployment``; returns the flow run (``id``, ``name``)."""
    flow, _, dep = name.partition("/")
    status, d = _request(f"{api}/deployments/name/{flow}/{dep}")
    if status == 404:
        raise StackError(f"deployment {name!r} is not known to {api}; is the serve process up (`churn status`)?")
    if status != 200:
        raise StackError(f"Prefect API {api} answered {status or 'nothing'} for deployment {name!r}")
    return _call(f"{api}/deployments/{d['id']}/create_flow_run", {"parameters": dict(parameters or {})}, name)


def flow_run(api: str, run_id: str) -> dict[str, Any]:
    return _call(f"{api}/flow_runs/{run_id}")


def state_of(run: Mapping[str, Any]) -> tuple[str, str]:
    st = run.get("state") or {}
    return st.get("type", "?"), st.get("name", "?")


def wait(api: str, run_id: str, until: set[str], timeout_s: float, progress: Callable[[str], None] | None = None,
         every_s: float = 15.0) -> dict[str, Any]:  # fmt: skip
    """Poll the flow run until its state type is in ``until`` (or final); report progress."""
    t0 = time.monotonic()
    last = ("", 0.0)
    while True:
        run = flow_run(api, run_id)
        typ, name = state_of(run)
        if typ in until or typ in FINAL:
            return run
        elapsed = time.monotonic() - t0
        if progress and (name != last[0] or elapsed - last[1] >= every_s):
            progress(f"  {run.get('name', run_id)}: {name} ({duration(elapsed)})")
            last = (name, elapsed)
        if elapsed > timeout_s:
            raise StackError(f"flow run {run.get('name', run_id)} still {name} after {timeout_s:.0f} s; "
                             f"see the serve log (`churn status`) or the Prefect UI")  # fmt: skip
        time.sleep(1.0)


def cancel_active(api: str, timeout_s: float, out: Callable[[str], None]) -> int:
    """Ask every running flow run to cancel (the runner then stops it; the stream drains) and
    wait up to ``timeout_s`` for them to finish. Returns how many were asked."""
    status, runs = http.request(f"{api}/flow_runs/filter", {"flow_runs": {"state": {"type": {"any_": ACTIVE}}}})
    if status != 200 or not runs:
        return 0
    out(f"cancelling flow run(s) {', '.join(r.get('name', r['id']) for r in runs)} ...")
    for r in runs:
        http.request(f"{api}/flow_runs/{r['id']}/set_state",
                     {"state": {"type": "CANCELLING", "name": "Cancelling"}, "force": True})  # fmt: skip
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        states = [state_of(flow_run(api, r["id"]))[0] for r in runs]
        if all(s in FINAL for s in states):
            out(f"flow runs ended ({', '.join(states)}) after {time.monotonic() - t0:.1f} s")
            break
        time.sleep(0.5)
    else:
        out(f"flow runs still active after {timeout_s:.0f} s; stopping their processes")
    return len(runs)


def log_lines(api: str, run_id: str, limit: int = 200) -> list[str]:
    """The informative log messages of a flow run and its tasks (oldest first)."""
    status, logs = http.request(f"{api}/logs/filter", {"logs": {"flow_run_id": {"any_": [run_id]}},
                                                        "sort": "TIMESTAMP_ASC", "limit": limit})  # fmt: skip
    if status != 200 or not isinstance(logs, list):
        return []
    noise = ("Finished in state", "Downloading flow code", "Beginning flow run", "View at ", "Created task run", "Executing ")
    return [lg["message"] for lg in logs if not any(n in lg.get("message", "") for n in noise)]


def final_log_lines(api: str, run_id: str, last: Callable[[str], bool], timeout_s: float = 10.0,
                    every_s: float = 0.5, sleep: Callable[[float], None] | None = None,
                    clock: Callable[[], float] | None = None) -> list[str]:  # fmt: skip
    """:func:`log_lines` of a finished run, polled until a line satisfies ``last`` (its final
    line) or ``timeout_s`` passes: Prefect sends logs in batches, so right after the run is
    COMPLETED its last lines are often not stored yet. On timeout, what is there."""
    sleep, clock = sleep or time.sleep, clock or time.monotonic
    end = clock() + timeout_s
    lines = log_lines(api, run_id)
    while not any(last(x) for x in lines) and clock() < end:
        sleep(every_s)
        lines = log_lines(api, run_id)
    return lines


def flow_runs(api: str, flow_name: str, limit: int = 20) -> list[dict[str, Any]]:
    """The newest runs of flow ``flow_name`` (state, name, ``created_by``); [] if the API does not answer."""
    status, runs = http.request(f"{api}/flow_runs/filter", {"flows": {"name": {"any_": [flow_name]}},
                                                            "sort": "EXPECTED_START_TIME_DESC", "limit": limit})  # fmt: skip
    return list(runs) if status == 200 and isinstance(runs, list) else []
