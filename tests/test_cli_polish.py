"""A new user's review of the command line: each finding as one focused test.

`churn up` ends when `churn down` stops the stack from another terminal; `churn dashboard`
on a busy port is one line; an expected error of a flow run is one `error:` line, not four
Prefect log lines as well; wide titles and help texts read well; an empty dead-letter
topic and "no drift check yet" are plain facts, not errors; a bad CHURN_CURRENCY is one
clear line."""

from __future__ import annotations

import io
import logging
import os
import signal
import socket
import sys
import textwrap
import threading
import time

import pytest
from rich.console import Console

from churn.cli.app import main
from churn.stack import procs, stack
from churn.stack.services import ServiceSpec
from churn.stack.state import ServiceRecord, StackState, save, state_path
from pipeline.config import Settings, load_settings
from pipeline.errors import ConfigError, StreamError

PY = sys.executable
PORTS = {"prefect": 14200, "mlflow": 15000, "dashboard": 18501}  # only printed: the stand-ins bind their own


def churn(capsys, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(list(args))
    out, err = capsys.readouterr()
    return info.value.code, out, err


def _service(name: str, port: int, code: str = "") -> ServiceSpec:
    """An HTTP stand-in on ``port``; ``code`` runs in a thread beside the server (e.g. a crash)."""
    extra = textwrap.indent(code or "pass", "    ")
    body = (f"import http.server, os, threading, time\ndef extra():\n{extra}\n"
            "threading.Thread(target=extra, daemon=True).start()\n"
            f"http.server.HTTPServer(('127.0.0.1', {port}), http.server.SimpleHTTPRequestHandler).serve_forever()\n")
    return ServiceSpec(name, [PY, "-c", body], {"PATH": "/usr/bin:/bin"}, url=f"http://127.0.0.1:{port}",
                       health=f"http://127.0.0.1:{port}/", port=port)  # fmt: skip


# -- 1. foreground `churn up` ends after `churn down` from another terminal -------------------

def test_foreground_up_ends_after_churn_down_and_still_reports_a_crash(tmp_path, monkeypatch) -> None:
    """A service that crashes (exit 3) is reported at once; `churn down` from elsewhere then
    stops the rest: no "error: ... exited" for those, and the loop ends with one line."""
    from churn.cli.stack import foreground

    settings = Settings(data_dir=tmp_path / "data", stack_stop_grace_s=2.0, stack_start_timeout_s=30.0)
    specs = [_service("web", procs.free_port()),
             _service("crasher", procs.free_port(), "time.sleep(2.0)\nos._exit(3)")]  # fmt: skip
    monkeypatch.setattr(stack, "build", lambda _settings, _ports: list(specs))
    children: list = []
    state = stack.up(settings, PORTS, out=lambda _: None, children=children)
    pids = [s.pid for s in state.services]
    out, err = io.StringIO(), io.StringIO()

    def other_terminal() -> None:
        deadline = time.monotonic() + 30
        while "crasher" not in err.getvalue() and time.monotonic() < deadline:
            time.sleep(0.1)
        stack.down(settings, out=lambda _: None)  # as `churn down` does; it does not know our children
        if not returned.wait(30):  # a foreground that never ends is interrupted (and fails below)
            os.kill(os.getpid(), signal.SIGINT)

    returned = threading.Event()
    watcher = threading.Thread(target=other_terminal, daemon=True)
    watcher.start()
    t = time.monotonic()
    try:
        foreground(settings, state, children, Console(file=out, width=1000), Console(file=err, width=1000))
    finally:
        returned.set()
        watcher.join(60)
    assert time.monotonic() - t < 25
    assert "crasher (pid" in err.getvalue() and "exited" in err.getvalue()
    assert "web (pid" not in err.getvalue()  # stopped by `churn down`: no error
    assert out.getvalue().rstrip().endswith("stack stopped (churn down)")
    assert not any(procs.alive(p) for p in pids)


# -- 2. `churn dashboard` on a busy port ------------------------------------------------------

def test_dashboard_on_a_busy_port_is_one_line_before_streamlit_starts(tmp_path, capsys) -> None:
    data = tmp_path / "data"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, out, err = churn(capsys, "--data-dir", str(data), "dashboard", "--port", str(port))
        assert code == 1 and "dashboard on" not in out
        assert err.strip() == (f"error: port {port} is in use on 127.0.0.1 (another program, or a `churn up` stack "
                               "of another data dir: `churn status`); choose another with --port")  # fmt: skip
        # the usual culprit: this data dir's own stack serves the dashboard there
        me = os.getpid()
        save(state_path(data), StackState(str(data), me, "2026-01-01T00:00:00+00:00", services=[
            ServiceRecord("dashboard", me, procs.start_time(me), f"http://127.0.0.1:{port}", "", "x.log", port)]))
        code, out, err = churn(capsys, "--data-dir", str(data), "dashboard", "--port", str(port))
    assert code == 1 and "dashboard on" not in out
    assert err.strip() == (f"error: port {port} is in use (a `churn up` stack serves the dashboard there: "
                           "`churn status`); choose another with --port")  # fmt: skip


def test_the_port_check_speaks_only_for_a_busy_port_of_any_address_family() -> None:
    from churn.cli.dashboard import _in_use

    with socket.socket(socket.AF_INET6) as busy:
        busy.bind(("::1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert _in_use("::1", port)  # IPv6 (the old IPv4-only check called every v6 address busy)
    assert not _in_use("::1", port)
    assert not _in_use("192.0.2.1", port)  # not an address of this host: Streamlit says so, not "in use"


# -- 3. an expected error of a flow run is the command's one line -------------------------------

def _engine_failure(logger: logging.Logger, exc: Exception, run_id: str) -> None:
    """The two records Prefect's engine logs for a failed run (task_engine / flow_engine)."""
    extra = {"task_run_id": run_id, "flow_run_id": "f1"} if logger.name.endswith("task_runs") else {"flow_run_id": run_id}
    try:
        raise exc
    except type(exc):
        logger.error("Task run failed with exception: %r", exc, exc_info=True, extra=extra)
    logger.error("Finished in state Failed('Task run encountered an exception')", extra=extra)


def test_expected_failures_leave_no_prefect_lines_and_a_bug_keeps_its_traceback(caplog) -> None:
    from flows.logs import quiet_expected_failures

    logger = logging.getLogger("prefect.task_runs")
    with caplog.at_level(logging.INFO):
        with quiet_expected_failures():
            _engine_failure(logger, StreamError("another stream supervises group churn-stream"), "t1")
            _engine_failure(logger, RuntimeError("a bug"), "t2")
            logger.error("Finished in state Failed('...')", extra={"task_run_id": "t3", "flow_run_id": "f1"})
        _engine_failure(logger, StreamError("after the command's flow run"), "t4")  # the filter is gone
    records = [r for r in caplog.records if r.name == "prefect.task_runs"]
    assert [getattr(r, "task_run_id", None) for r in records] == ["t2", "t2", "t3", "t4", "t4"]
    assert records[0].exc_info is not None  # the bug's traceback
    assert not any(type(f).__name__ == "ExpectedFailures" for f in logger.filters)


def test_a_task_failure_logged_only_by_its_state_is_quiet_for_a_churn_error(caplog) -> None:
    """The train flow's task failures come as one "Finished in state Failed('Task run
    encountered an exception FeatureError: ...')" record, with no "failed with" record
    before it: the command printed the message twice, once as Prefect's ERROR line."""
    from flows.logs import quiet_expected_failures

    logger = logging.getLogger("prefect.task_runs")
    ids = {"flow_run_id": "f1"}
    with caplog.at_level(logging.INFO), quiet_expected_failures():
        logger.error("Finished in state Failed('Task run encountered an exception FeatureError: import profile "
                     "is unreadable')", extra={"task_run_id": "t1", **ids})  # fmt: skip
        logger.error("Finished in state Failed('Task run encountered an exception KeyError: 'x'')",
                     extra={"task_run_id": "t2", **ids})  # fmt: skip
        logger.info("Finished in state Completed()", extra={"task_run_id": "t3", **ids})
    assert [r.task_run_id for r in caplog.records if r.name == "prefect.task_runs"] == ["t2", "t3"]


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.mark.slow
def test_a_flow_failing_with_a_churn_error_logs_nothing_itself(prefect_harness) -> None:
    """Through Prefect's real engine: its messages are the ones the filter knows."""
    from prefect import flow, task

    from flows.logs import quiet_expected_failures

    @task(persist_result=False)
    def supervise(kind: str) -> None:
        raise StreamError("no champion model after 60 s") if kind == "expected" else RuntimeError("a bug")

    @flow(name="polish-flow")
    def run(kind: str) -> None:
        supervise(kind)

    seen = _Collect()  # on the run loggers themselves: what passes their filters (Prefect re-configures root)
    loggers = [logging.getLogger(n) for n in ("prefect.task_runs", "prefect.flow_runs")]
    for lg in loggers:
        lg.addHandler(seen)
    try:
        with quiet_expected_failures(), pytest.raises(StreamError):
            run("expected")
        expected = [r.getMessage() for r in seen.records if r.levelno >= logging.ERROR or "Failed" in r.getMessage()]
        seen.records.clear()
        with quiet_expected_failures(), pytest.raises(RuntimeError):
            run("bug")
    finally:
        for lg in loggers:
            lg.removeHandler(seen)
    assert expected == []
    bug = seen.records
    assert sum(bool(r.exc_info) for r in bug) == 2  # task and flow: the traceback of a bug stays
    assert sum(r.getMessage().startswith("Finished in state Failed") for r in bug) == 2


# -- 4./5. readable output and help --------------------------------------------------------------

def test_simulate_title_is_its_own_line_never_wrapped(tmp_path, capsys, monkeypatch) -> None:
    from churn.cli.common import console

    monkeypatch.setattr(console, "width", 60)
    data = tmp_path / ("a-rather-long-directory-name-" * 2) / "data"
    code, out, _ = churn(capsys, "--data-dir", str(data), "simulate", "--users", "40", "--days", "3")
    assert code == 0
    assert f"history written to {data / 'log' / 'events'} (4 partitions)" in out.splitlines()


def test_help_shows_names_not_types_and_no_repeats(capsys, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    code, out, _ = churn(capsys, "train", "--help")
    assert code == 0 and "--candidate NAME" in out and "list[str]" not in out
    code, out, _ = churn(capsys, "demo", "--help")
    assert code == 0 and out.count("DEMO_QUICK") == 1 and "[env var" not in out


# -- 6. an empty dead-letter topic ------------------------------------------------------------------

def test_tail_dlq_of_an_empty_dead_letter_topic_says_so(tmp_path, capsys) -> None:
    from pipeline.log import open_log

    data = tmp_path / "data"
    open_log(data / "log", "events", 2).close()
    code, out, err = churn(capsys, "--data-dir", str(data), "tail", "--dlq")  # no dead letter yet: no topic
    assert code == 0 and err.strip() == "events.dlq is empty (nothing was dead-lettered)"
    open_log(data / "log", "events.dlq", 2).close()
    code, out, err = churn(capsys, "--data-dir", str(data), "tail", "--dlq")
    assert code == 0 and out == ""
    assert err.strip() == "events.dlq is empty (nothing was dead-lettered)"
    with open_log(data / "log", "events.dlq") as dlq:
        dlq.append(0, [b'{"reason": "future"}'])
    code, out, err = churn(capsys, "--data-dir", str(data), "tail", "--dlq", "-p", "1")
    assert code == 0 and err.strip() == "no records at that position"  # another partition holds one


# -- 7. `churn drift` before the first check ---------------------------------------------------------

def test_drift_before_the_first_check_is_normal_and_names_the_warm_up(tmp_path, capsys, monkeypatch) -> None:
    from pipeline.store import Store

    data = tmp_path / "data"
    data.mkdir()
    with Store(Settings(data_dir=data).resolved_store_url):
        pass
    for name in ("CHURN_DRIFT_EVERY_ROWS", "CHURN_DRIFT_EVERY_MINUTES", "CHURN_DRIFT_OBSERVE"):
        monkeypatch.delenv(name, raising=False)  # the defaults (an in-process quick demo sets EVERY_ROWS)
    monkeypatch.setenv("CHURN_DRIFT_WARMUP_DAYS", "7")
    code, out, err = churn(capsys, "--data-dir", str(data), "drift")
    assert code == 0 and err == ""
    assert out.count("\n") == 1 and "no drift checks in" in out
    assert "7 days of event time (warm-up, CHURN_DRIFT_WARMUP_DAYS)" in out
    assert "every active user at an event-time midnight" in out and "50,000 scored rows" in out


# -- 8. configuration ---------------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["euro", "12", "E R", "US"])
def test_a_currency_that_is_no_iso_4217_code_is_one_clear_error(value, monkeypatch) -> None:
    monkeypatch.setenv("CHURN_CURRENCY", value)
    with pytest.raises(ConfigError, match=r"currency=.*: not an ISO 4217 currency code \(three letters, e\.g\. "
                                          r"USD, EUR, GBP\) \(env CHURN_CURRENCY\)"):  # fmt: skip
        load_settings()


def test_currency_is_upper_cased_and_observe_is_described_the_right_way_round(monkeypatch) -> None:
    monkeypatch.setenv("CHURN_CURRENCY", " eur ")
    assert load_settings().currency == "EUR"
    desc = Settings.model_fields["drift_observe"].description
    assert desc.index("day_snapshot") < desc.index("every active user at each event-time midnight")
    assert desc.index("scored") > desc.index("midnight")


def test_an_error_line_prints_bracketed_text_as_it_is(tmp_path, capsys) -> None:
    """Error messages are text, not rich markup: a path with ``[old]`` in it (or a log
    line's ``[INFO]``) used to lose the brackets and their contents."""
    missing = tmp_path / "[old]" / "m.yaml"
    code, _, err = churn(capsys, "--data-dir", str(tmp_path / "data"), "import", str(tmp_path / "x.csv"),
                         "--mapping", str(missing))  # fmt: skip
    assert code == 1 and f"{missing}" in err.replace("\n", ""), err
