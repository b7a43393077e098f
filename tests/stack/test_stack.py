"""`churn up/status/down` machinery with small stand-in services (real processes, real ports):
port in use, a service dying on start or never answering, a child that escapes its process
group, a process that ignores SIGTERM, a corrupt state file, and the CLI's one-line errors."""

from __future__ import annotations

import os
import socket
import sys
import textwrap
import time
from pathlib import Path

import pytest

from churn.cli.app import main
from churn.stack import procs, services, stack
from churn.stack.demo import MARKER, prepare_data_dir
from churn.stack.services import ServiceSpec
from churn.stack.state import StackError, load, state_path
from pipeline.config import Settings

PY = sys.executable
PORTS = {"prefect": 14200, "mlflow": 15000, "dashboard": 18501}  # only printed: the stand-ins bind their own


def churn(capsys, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(list(args))
    out, err = capsys.readouterr()
    return info.value.code, out, err


def http_service(name: str, port: int, after: tuple[str, ...] = ()) -> ServiceSpec:
    return ServiceSpec(name, [PY, "-m", "http.server", str(port), "--bind", "127.0.0.1"], {"PATH": "/usr/bin:/bin"},
                       url=f"http://127.0.0.1:{port}", health=f"http://127.0.0.1:{port}/", port=port,
                       port_flag=f"--{name}-port / CHURN_{name.upper()}_PORT", after=after)  # fmt: skip


def script_service(name: str, code: str, health: str = "http://127.0.0.1:9/never") -> ServiceSpec:
    return ServiceSpec(name, [PY, "-c", textwrap.dedent(code)], {"PATH": "/usr/bin:/bin"}, url="", health=health)


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(data_dir=tmp_path / "data", stack_stop_grace_s=2.0, stack_start_timeout_s=30.0)


@pytest.fixture
def fake_build(monkeypatch):
    """Replace the real service list; yields a setter."""
    specs: list[ServiceSpec] = []
    monkeypatch.setattr(stack, "build", lambda settings, ports: list(specs))
    return specs


def test_two_services_up_status_down_leave_no_process(settings, fake_build) -> None:
    a, b = procs.free_port(), procs.free_port()
    fake_build += [http_service("web", a), http_service("api", b, after=("web",))]
    lines: list[str] = []
    st = stack.up(settings, PORTS, out=lines.append)
    assert [s.name for s in st.services] == ["web", "api"]
    assert all(s.start_s is not None and s.start_s >= 0 for s in st.services)
    assert any("web is healthy after" in x for x in lines)
    assert load(state_path(settings.data_dir)).services[1].pid == st.services[1].pid  # recorded on disk
    rows = stack.status(settings)
    assert [(r.name, r.running, r.healthy) for r in rows] == [("web", True, True), ("api", True, True)]
    with pytest.raises(StackError, match="already running"):
        stack.up(settings, PORTS, out=lines.append)
    pids = {p for s in st.services for p in procs.family(s.pid)}
    assert stack.down(settings, out=lines.append) == ["web", "api"]
    assert not [p for p in pids if procs.alive(p)]
    assert not state_path(settings.data_dir).exists()
    assert stack.status(settings) is None


def test_port_in_use_names_the_port_and_how_to_change_it(settings, fake_build) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        fake_build.append(http_service("prefect", port))
        with pytest.raises(StackError, match=rf"port {port} \(prefect\) is already in use.*--prefect-port / CHURN_PREFECT_PORT"):
            stack.up(settings, PORTS, out=lambda _: None)
    assert not state_path(settings.data_dir).exists()


def test_same_port_twice_is_refused(settings, fake_build) -> None:
    p = procs.free_port()
    fake_build += [http_service("web", p), http_service("api", p)]
    with pytest.raises(StackError, match=f"port {p} is given to both web and api"):
        stack.up(settings, PORTS, out=lambda _: None)


def test_service_dying_on_start_shows_its_log_and_stops_the_others(settings, fake_build) -> None:
    ok = procs.free_port()
    fake_build += [http_service("web", ok),
                   script_service("mlflow", "import sys; print('OSError: cannot open the tracking store'); sys.exit(3)")]  # fmt: skip
    with pytest.raises(StackError) as info:
        stack.up(settings, PORTS, out=lambda _: None)
    msg = str(info.value)
    assert "mlflow exited with code 3 while starting" in msg and "cannot open the tracking store" in msg
    assert "mlflow.log" in msg
    assert procs.port_free(ok)  # the healthy one was stopped again
    assert not state_path(settings.data_dir).exists()


def test_service_that_never_answers_times_out_with_its_log(settings, fake_build) -> None:
    fake_build.append(script_service("dashboard", "import time; print('still warming up', flush=True); time.sleep(60)"))
    t = time.monotonic()
    with pytest.raises(StackError, match=r"(?s)dashboard did not answer .* within 2 s.*still warming up"):
        stack.up(settings, PORTS, timeout_s=2, out=lambda _: None)
    assert time.monotonic() - t < 20


def test_escaped_grandchild_and_sigterm_ignorer_are_killed(settings, fake_build) -> None:
    """A child in its own session (not in the group) and a process that ignores SIGTERM:
    both found through the process tree and SIGKILLed after the grace period."""
    port = procs.free_port()
    pidfile = settings.data_dir.parent / "grandchild.pid"
    code = f"""
        import signal, subprocess, sys, http.server, threading
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"], start_new_session=True)
        open({str(pidfile)!r}, "w").write(str(child.pid))
        http.server.HTTPServer(("127.0.0.1", {port}), http.server.SimpleHTTPRequestHandler).serve_forever()
    """
    fake_build.append(script_service("stubborn", code, health=f"http://127.0.0.1:{port}/"))
    st = stack.up(settings, PORTS, out=lambda _: None)
    grandchild = int(pidfile.read_text())
    assert grandchild in procs.family(st.services[0].pid)
    msgs: list[str] = []
    t = time.monotonic()
    stack.down(settings, grace_s=1.0, out=msgs.append)
    assert time.monotonic() - t < 15
    assert not procs.alive(st.services[0].pid) and not procs.alive(grandchild)
    assert any("killed after the grace period" in m for m in msgs)


def test_recycled_pid_is_not_signalled(settings) -> None:
    """A state file whose pid now belongs to another process (other start time) is stale."""
    import subprocess

    other = subprocess.Popen([PY, "-c", "import time; time.sleep(30)"])
    try:
        path = state_path(settings.data_dir)
        path.parent.mkdir(parents=True)
        path.write_text('{"version": 1, "data_dir": "x", "owner_pid": 1, "created_at": "t", "env": {}, "services": '
                        f'[{{"name": "web", "pid": {other.pid}, "started": 1, "url": "", "health": "", "log": "l"}}]}}')  # fmt: skip
        assert stack.down(settings, out=lambda _: None) == []
        assert other.poll() is None  # untouched
    finally:
        other.kill()
        other.wait()


@pytest.mark.parametrize("content", [b'{"version": 1, "services": [',
                                     b'{"version": 1, "data_dir": "\xff\xfe overwritten"}',  # not UTF-8
                                     b'{"version": 1, "data_dir": "x", "owner_pid": 1, "created_at": "t", "services": '
                                     b'[{"name": "web", "pid": "x", "started": 1, "url": "", "health": "", "log": "l"}]}'],
                         ids=["torn", "not-utf8", "pid-not-a-number"])
def test_corrupt_state_file_is_one_clear_error_and_forget_removes_it(settings, capsys, content) -> None:
    path = state_path(settings.data_dir)
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    for cmd in ("status", "down"):
        rc, _, err = churn(capsys, "--data-dir", str(settings.data_dir), cmd)
        assert rc == 1
        assert f"stack state file {path} is unreadable" in err and "churn down --forget" in err
        assert "Traceback" not in err
    rc, out, _ = churn(capsys, "--data-dir", str(settings.data_dir), "down", "--forget")
    assert rc == 0 and not path.exists()


def test_status_without_a_stack_and_down_without_one(settings, capsys) -> None:
    rc, out, _ = churn(capsys, "--data-dir", str(settings.data_dir), "status")
    assert rc == 1 and "no stack running" in out and f"churn --data-dir {settings.data_dir} up" in out
    rc, out, _ = churn(capsys, "--data-dir", str(settings.data_dir), "down")
    assert rc == 0 and "nothing running" in out


def test_status_reports_a_dead_service(settings, fake_build, capsys) -> None:
    a, b = procs.free_port(), procs.free_port()
    fake_build += [http_service("web", a), http_service("api", b)]
    st = stack.up(settings, PORTS, out=lambda _: None)
    try:
        procs.stop([(st.services[1].pid, st.services[1].started)], 2.0)
        rc, out, _ = churn(capsys, "--data-dir", str(settings.data_dir), "status")
        assert rc == 1
        web, api = (line.split() for line in out.splitlines()[1:3])
        assert web[:4] == ["web", str(st.services[0].pid), "running", "healthy"]
        assert api[:4] == ["api", str(st.services[1].pid), "exited", "-"]
    finally:
        stack.down(settings, out=lambda _: None)


def test_cli_up_port_in_use_exits_1_with_one_line(tmp_path, capsys) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        rc, _, err = churn(capsys, "--data-dir", str(tmp_path), "up", "--dashboard-port", str(port),
                           "--prefect-port", str(procs.free_port()), "--mlflow-port", str(procs.free_port()))  # fmt: skip
    assert rc == 1
    assert f"port {port} (dashboard) is already in use" in err and "--dashboard-port / CHURN_DASHBOARD_PORT" in err
    assert err.count("\n") == 1


def test_ports_from_env_and_flags(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("CHURN_PREFECT_PORT", "14300")
    s = Settings(data_dir=tmp_path)
    assert stack.ports_of(s, mlflow=15100) == {"prefect": 14300, "mlflow": 15100, "dashboard": 8501}


def test_real_service_list_wires_ports_home_and_urls(tmp_path) -> None:
    s = Settings(data_dir=tmp_path / "d", mlflow_tracking_uri=f"sqlite:///{tmp_path}/m/mlflow.db")
    specs = {sp.name: sp for sp in services.build(s, {"prefect": 14200, "mlflow": 15000, "dashboard": 18501}, {})}
    assert list(specs) == ["prefect", "serve", "mlflow", "dashboard"]
    assert specs["prefect"].env["PREFECT_HOME"] == str((tmp_path / "d" / "prefect").resolve())
    assert specs["serve"].env["PREFECT_API_URL"] == "http://127.0.0.1:14200/api" and specs["serve"].after == ("prefect",)
    assert specs["serve"].env["CHURN_MLFLOW_TRACKING_URI"] == f"sqlite:///{tmp_path}/m/mlflow.db"
    assert specs["serve"].health.endswith("/deployments/name/train/weekly")
    assert "--default-artifact-root" in specs["mlflow"].argv and "15000" in specs["mlflow"].argv
    # no secret on a command line (`ps` shows it): the backend URI travels in the environment
    assert not any("mlflow.db" in a for sp in specs.values() for a in sp.argv)
    assert specs["mlflow"].env["MLFLOW_BACKEND_STORE_URI"] == f"sqlite:///{tmp_path}/m/mlflow.db"
    assert specs["dashboard"].health == "http://127.0.0.1:18501/_stcore/health"
    assert specs["dashboard"].env["CHURN_MLFLOW_UI_URL"] == "http://127.0.0.1:15000"
    # an MLflow tracking *server* is used as it is, not started
    remote = Settings(data_dir=tmp_path, mlflow_tracking_uri="http://mlflow.internal:5000")
    assert "mlflow" not in {sp.name for sp in services.build(remote, {"prefect": 1, "mlflow": 2, "dashboard": 3}, {})}


def test_demo_refuses_a_data_dir_it_did_not_make(tmp_path) -> None:
    d = tmp_path / "data"
    (d / "log").mkdir(parents=True)
    with pytest.raises(StackError, match="--overwrite"):
        prepare_data_dir(d, overwrite=False)
    prepare_data_dir(d, overwrite=True)
    assert (d / MARKER).exists() and not (d / "log").exists()
    (d / "churn.db").write_text("x")
    prepare_data_dir(d, overwrite=False)  # its own leftovers are replaced
    assert [p.name for p in d.iterdir()] == [MARKER]


def test_tail_reads_the_end_of_a_log(tmp_path) -> None:
    log = tmp_path / "x.log"
    log.write_text("".join(f"line {i}\n" for i in range(1000)))
    assert procs.tail(log, 2) == "line 998\nline 999"
    assert procs.tail(tmp_path / "missing.log") == ""


def test_foreign_file_paths(tmp_path) -> None:
    assert state_path(Path(tmp_path)) == tmp_path / "stack" / "state.json"


def test_foreground_up_stops_everything_on_ctrl_c(tmp_path) -> None:
    """`churn up` in the foreground (stand-in services): SIGINT -> every service stopped, state removed."""
    import signal
    import subprocess

    data = tmp_path / "data"
    a, b = procs.free_port(), procs.free_port()
    script = textwrap.dedent(f"""
        import sys
        from churn.stack import stack
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_stack import http_service
        stack.build = lambda settings, ports: [http_service("web", {a}), http_service("api", {b})]
        from churn.cli.app import main
        main(["--data-dir", {str(data)!r}, "up", "--prefect-port", "1", "--mlflow-port", "2", "--dashboard-port", "3"])
    """)
    proc = subprocess.Popen([PY, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            st = load(state_path(data)) if state_path(data).exists() else None
            if st and len(st.services) == 2 and all(s.start_s is not None for s in st.services):
                break
            assert proc.poll() is None, proc.stdout.read()
            time.sleep(0.2)
        pids = [s.pid for s in st.services]
        time.sleep(1.5)  # into the foreground loop
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    assert "SERVICE" in out and "running; Ctrl-C stops everything" in out and "stopped" in out
    assert not any(procs.alive(p) for p in pids)
    assert not state_path(data).exists()


def test_demo_status_line_is_silent_before_the_stream_and_reads_the_store_after(settings) -> None:
    """The full demo prints this every 30 s: nothing before the stream writes, then what it does."""
    from datetime import UTC, datetime

    from churn.stack.demo import live_status
    from pipeline.store import Store
    from pipeline.store.records import StreamMetric

    assert live_status(settings) is None  # no store yet: no line, no error
    now = datetime.now(UTC)
    with Store(settings.resolved_store_url) as store:
        assert live_status(settings) is None  # a store but no metrics yet
        store.upsert_scores([
            {"user_id": "u1", "risk": 0.9, "model_version": "3", "features_time": now, "plan": "basic",
             "monthly_revenue": 10.0},
            {"user_id": "u2", "risk": 0.1, "model_version": "3", "features_time": now, "plan": "premium",
             "monthly_revenue": 20.0},
            {"user_id": "u3", "risk": 0.99, "model_version": "3", "features_time": now, "active": False},
        ])  # fmt: skip
        store.record_metrics([
            StreamMetric(time=now, worker="w0", partition=p, lag=5 * p, lag_seconds=0.5 * p, events_per_s=1_000.0)
            for p in range(2)
        ])  # fmt: skip
    from pipeline.features.registry import FEATURE_SET_VERSION
    from pipeline.stream.config import DEFAULT_GROUP, StreamPaths
    from pipeline.stream.model import ModelRef, publish

    # the champion the stream follows: "high risk" is 3x its base rate 0.1, i.e. risk >= 0.3
    publish(StreamPaths(settings.data_dir, DEFAULT_GROUP).champion, ModelRef("3", "", FEATURE_SET_VERSION, base_rate=0.1))
    line = live_status(settings)
    assert line is not None
    assert "2.00k events/s" in line and "lag 5 records (0.5 s behind)" in line
    assert "2 active users scored" in line and "1 high risk" in line  # the cancelled user is not at risk
    assert "$11.00/month at risk" in line and "drift: no check yet" in line


def test_the_quick_demo_sets_its_drift_cadence_for_itself_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """The quick demo checks drift every 20,000 rows (its processes inherit the variable);
    the caller's environment is as it was afterwards, however the demo ends."""
    from churn.stack import demo

    monkeypatch.delenv("CHURN_DRIFT_EVERY_ROWS", raising=False)
    seen = []

    def settings(*_a: object) -> None:
        seen.append(os.environ.get("CHURN_DRIFT_EVERY_ROWS"))
        raise RuntimeError("stop here")

    monkeypatch.setattr(demo, "demo_settings", settings)
    with pytest.raises(RuntimeError, match="stop here"):
        demo.run(None, {}, True, False, print, lambda *a: None)  # type: ignore[arg-type]
    assert seen == ["20000"] and "CHURN_DRIFT_EVERY_ROWS" not in os.environ
    monkeypatch.setenv("CHURN_DRIFT_EVERY_ROWS", "7")  # the user's own value is kept
    with pytest.raises(RuntimeError, match="stop here"):
        demo.run(None, {}, True, False, print, lambda *a: None)  # type: ignore[arg-type]
    assert seen[-1] == "7" and os.environ["CHURN_DRIFT_EVERY_ROWS"] == "7"


def test_hints_name_the_data_dir_the_user_must_pass(tmp_path, monkeypatch, capsys) -> None:
    """`churn up --detach` on another data dir said "`churn down` stops it": typed as shown,
    that looked at ./data, found nothing (exit 0) and left the stack running."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CHURN_DATA_DIR", raising=False)
    other = Settings(data_dir=tmp_path / "ds")
    assert stack.churn_command(other, "down") == f"churn --data-dir {tmp_path / 'ds'} down"
    assert stack.churn_command(Settings(data_dir=Path("data")), "down") == "churn down"
    monkeypatch.setenv("CHURN_DATA_DIR", str(tmp_path / "ds"))  # what a plain `churn` then uses
    assert stack.churn_command(other, "status") == "churn status"
    monkeypatch.delenv("CHURN_DATA_DIR")
    code, out, _ = churn(capsys, "--data-dir", str(tmp_path / "ds"), "status")
    assert code == 1 and f"start one with `churn --data-dir {tmp_path / 'ds'} up`" in " ".join(out.split())
