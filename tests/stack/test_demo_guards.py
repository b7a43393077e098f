"""`churn demo` / `make demo` guards from a new-user review: a second demo (or a running stack)
on the same data dir is refused before anything is wiped, any failure stops what the demo
started (full demo too), the quick demo keeps its own registry and a champion the demo cannot
be compared with is replaced, re-runs do not replay old gate lines, the train log is read
to its last line, DEMO_QUICK is read strictly, and the quick demo says what it really does.

Stand-in services (http.server) and fake Prefect answers keep these fast; every process
started here is stopped by pid."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from churn.stack import demo, prefect_api, procs, stack
from churn.stack.demo import FULL, LOCK, MARKER, QUICK, quick_from_env, run, what_to_look_at
from churn.stack.state import ServiceRecord, StackError, StackState, save, state_path
from pipeline.config import PROJECT_ROOT, Settings
from pipeline.errors import ConfigError
from pipeline.pidlock import PidLock
from tests.stack.test_stack import churn, http_service

PY = sys.executable


@pytest.fixture(autouse=True)
def _signals():
    """`churn demo` installs Ctrl-C/SIGTERM handlers in this (the test) process: put them back."""
    old = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    yield
    signal.signal(signal.SIGINT, old[0])
    signal.signal(signal.SIGTERM, old[1])


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(data_dir=tmp_path / "data", stack_stop_grace_s=2.0, stack_start_timeout_s=30.0,
                    mlflow_tracking_uri=f"sqlite:///{tmp_path}/mlruns/mlflow.db")  # fmt: skip


@pytest.fixture
def ports() -> dict[str, int]:
    return {"prefect": procs.free_port(), "mlflow": procs.free_port(), "dashboard": procs.free_port()}


@pytest.fixture
def earlier_demo(settings) -> Path:
    """A data dir an earlier demo made, with something in it the next one would wipe."""
    data = settings.data_dir.resolve()
    (data / "log").mkdir(parents=True)
    (data / MARKER).write_text("made by `churn demo`\n")
    (data / "log" / "events.bin").write_text("history")
    return data


@pytest.fixture
def no_simulation(monkeypatch) -> list[str]:
    """The steps after the guards never run in the refusal tests (or are stand-ins)."""
    calls: list[str] = []
    monkeypatch.setattr(demo, "simulate", lambda d: calls.append("simulate"))
    return calls


def _sleeper(tmp_path: Path) -> subprocess.Popen[bytes]:
    return procs.launch([PY, "-c", "import time; time.sleep(60)"], env={"PATH": "/usr/bin:/bin"}, cwd=tmp_path,
                        log=tmp_path / "sleeper.log")  # fmt: skip


def _stop(p: subprocess.Popen[bytes]) -> None:
    procs.stop([(p.pid, None)], 1.0, [p])


def _no_foreground(*_a: object) -> None:
    raise AssertionError("the foreground must not be reached")


# -- 1: a second demo, or a running stack, on the same data dir -------------------------------
def test_a_second_demo_is_refused_before_anything_is_wiped(settings, ports, earlier_demo, no_simulation) -> None:
    first = PidLock(earlier_demo / LOCK)  # what the running first demo holds for its lifetime
    assert first.try_acquire()
    try:
        with pytest.raises(StackError, match=rf"another `churn demo` \(pid {os.getpid()}\) is running on "
                                             rf"{earlier_demo}; stop it first .*make demo DATA="):  # fmt: skip
            run(settings, ports, True, False, lambda _: None, _no_foreground)
    finally:
        first.release()
    assert (earlier_demo / "log" / "events.bin").read_text() == "history" and no_simulation == []


def test_a_running_stack_is_named_with_how_to_stop_it(tmp_path, settings, ports, earlier_demo, no_simulation,
                                                      capsys) -> None:  # fmt: skip
    p = _sleeper(tmp_path)
    try:
        save(state_path(earlier_demo), StackState(str(earlier_demo), os.getpid(), "t", services=[
            ServiceRecord("prefect", p.pid, procs.start_time(p.pid), "", "", "prefect.log")]))  # fmt: skip
        with pytest.raises(StackError, match=rf"a stack is still running on {earlier_demo}: prefect \(pid {p.pid}\); "
                                             rf"stop it first with `churn --data-dir {earlier_demo} down` "
                                             rf"\(make down DATA={earlier_demo}\)"):  # fmt: skip
            run(settings, ports, False, False, lambda _: None, _no_foreground)
        probe = PidLock(earlier_demo / LOCK)
        assert probe.try_acquire()  # the refusal released the lock
        probe.release()
        # from the shell: one line, exit 1, and the running stack's files untouched
        rc, _, err = churn(capsys, "--data-dir", str(earlier_demo), "demo", "--quick")
        assert rc == 1 and err.count("\n") == 1 and "churn --data-dir" in err and "Traceback" not in err
        assert state_path(earlier_demo).exists() and (earlier_demo / "log" / "events.bin").exists()
        assert p.poll() is None and no_simulation == []
    finally:
        _stop(p)


def test_a_busy_port_is_refused_before_anything_is_wiped(settings, ports, earlier_demo, no_simulation) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        with pytest.raises(StackError, match=rf"port {taken} \(dashboard\) is already in use"):
            run(settings, ports | {"dashboard": taken}, True, False, lambda _: None, _no_foreground)
    assert (earlier_demo / "log" / "events.bin").exists() and no_simulation == []


def test_the_wipe_keeps_the_lock_the_demo_holds(earlier_demo) -> None:
    lock = PidLock(earlier_demo / LOCK)
    assert lock.try_acquire()
    try:
        demo.prepare_data_dir(earlier_demo, overwrite=False)
        assert sorted(p.name for p in earlier_demo.iterdir()) == sorted([MARKER, LOCK])
        assert not PidLock(earlier_demo / LOCK).try_acquire()  # still the same, held, lock file
    finally:
        lock.release()


# -- 2: any failure stops what the demo started, full demo included ---------------------------
@pytest.mark.parametrize("failure", [StackError("training run calm-fox ended Failed"), KeyboardInterrupt()])
def test_a_failing_step_stops_the_full_demos_stack(settings, ports, monkeypatch, no_simulation, failure) -> None:
    web = procs.free_port()
    monkeypatch.setattr(stack, "build", lambda s, p: [http_service("web", web)])

    def fail(d: demo._Demo) -> None:
        raise failure

    monkeypatch.setattr(demo, "train", fail)
    said: list[str] = []
    with pytest.raises(type(failure)):
        run(settings, ports, False, False, said.append, _no_foreground)
    assert "stopping the stack ..." in said
    assert procs.port_free(web) and not state_path(settings.data_dir).exists()
    assert PidLock(settings.data_dir / LOCK).try_acquire()


def test_down_stops_the_known_children_when_the_state_file_is_gone(settings, monkeypatch) -> None:
    web = procs.free_port()
    monkeypatch.setattr(stack, "build", lambda s, p: [http_service("web", web)])
    children: list[subprocess.Popen[bytes]] = []
    st = stack.up(settings, {"prefect": 1, "mlflow": 2, "dashboard": 3}, out=lambda _: None, children=children)
    state_path(settings.data_dir).unlink()  # e.g. wiped by an older demo
    said: list[str] = []
    assert stack.down(settings, out=said.append, children=children) == [f"pid {st.services[0].pid}"]
    assert not procs.alive(st.services[0].pid) and procs.port_free(web)
    assert "no stack state file" in said[0]
    assert stack.down(settings, out=said.append, children=children) == []  # nothing left: silent


# -- 3/4/5: the registry the demo trains into, the gate lines it says, the log it echoes ----------
def test_the_quick_demo_keeps_its_own_registry_unless_one_is_named(tmp_path) -> None:
    plain = Settings(data_dir=tmp_path / "d")
    assert demo.demo_settings(plain, QUICK, True).resolved_mlflow_uri == f"sqlite:///{tmp_path / 'd' / 'mlruns' / 'mlflow.db'}"
    assert demo.demo_settings(plain, FULL, False).resolved_mlflow_uri == f"sqlite:///{PROJECT_ROOT / 'mlruns' / 'mlflow.db'}"
    named = Settings(data_dir=tmp_path / "d", mlflow_tracking_uri="sqlite:////ci/mlruns/mlflow.db")  # what .ci/run does
    assert demo.demo_settings(named, QUICK, True).resolved_mlflow_uri == "sqlite:////ci/mlruns/mlflow.db"
    assert demo.demo_settings(plain, QUICK, True).partitions == QUICK.partitions


def test_the_horizon_the_demo_assumes_is_the_train_flows_default() -> None:
    import inspect

    from flows.train import train

    assert inspect.signature(train.fn).parameters["horizon_days"].default == demo.TRAIN_HORIZON_DAYS


def _version(client, horizon: int, decision: str, reason: str, settings: Settings) -> str:
    from pipeline.features.spec import DEFAULT_SPEC

    mv = client.create_model_version("churn", "file:///nowhere", tags={
        "horizon_days": str(horizon), "feature_set_version": DEFAULT_SPEC.version, "topic": settings.topic,
        "gate.decision": decision, "gate.reason": reason, "gate.challenger.roc_auc": "0.770000",
        "gate.challenger.lift_10": "4.100000", "gate.window": "2026-03-20..2026-04-03"})  # fmt: skip
    return str(mv.version)


def test_full_demo_after_a_14_day_champion_forces_and_says_only_its_own_gate_line(settings, monkeypatch) -> None:
    """The old quick demo left a 14-day v1 as champion in the shared registry: the full demo's
    30-day training replaces it (force, said), its echoed log waits for the last (gate) line,
    and v1's gate line from the earlier run is not said again."""
    from mlflow import MlflowClient

    (Path(settings.data_dir).parent / "mlruns").mkdir(parents=True)
    client = MlflowClient(tracking_uri=settings.resolved_mlflow_uri)
    client.create_registered_model("churn")
    v1 = _version(client, 14, "promoted", "first model: no champion yet", settings)
    client.set_registered_model_alias("churn", "champion", v1)
    assert demo.champion_mismatch(settings, 14) is None  # comparable: gated as usual
    assert demo.champion_mismatch(settings, 30) == (v1, "horizon 30 d differs from the champion's 14 d")

    sent: dict = {}

    def run_deployment(api, name, params=None):
        sent.update(params or {})
        return {"id": "r1", "name": "calm-fox"}

    def wait(api, run_id, until, timeout_s, progress=None):  # the run: registers and gates v2
        v2 = _version(client, 30, "promoted", "forced over champion v1: horizon 30 d differs", settings)
        client.set_registered_model_alias("churn", "champion", v2)
        return {"id": "r1", "name": "calm-fox", "state": {"type": "COMPLETED", "name": "Completed"}}

    from pipeline.training.report import gate_line_from_tags

    registered = "registered xgboost as churn version 2 (alias challenger)"
    polls: list[int] = []

    def log_lines(api, rid):  # Prefect has not flushed the run's last line at the first read
        polls.append(1)
        return [registered] if len(polls) == 1 else [registered, gate_line_from_tags("2", client.get_model_version(
            "churn", "2").tags)]  # fmt: skip

    monkeypatch.setattr(prefect_api, "run_deployment", run_deployment)
    monkeypatch.setattr(prefect_api, "wait", wait)
    monkeypatch.setattr(prefect_api, "log_lines", log_lines)
    monkeypatch.setattr(prefect_api.time, "sleep", lambda s: None)
    monkeypatch.setattr(prefect_api, "flow_runs", lambda api, flow: [])
    said: list[str] = []
    d = demo._Demo(settings, FULL, said.append, {}, [])
    d.state = StackState("d", 1, "t", env={"PREFECT_API_URL": "http://127.0.0.1:9/api"},
                         services=[ServiceRecord("serve", 1, None, "", "", "serve.log")])  # fmt: skip
    demo.train(d)
    assert sent == {"force": True}
    assert said[0] == ("the registry's champion v1 is not comparable with the model this demo trains (horizon 30 d "
                       "differs from the champion's 14 d): this training replaces it (force)")  # fmt: skip
    assert said[1] == "[3/5] training through the deployment: prefect deployment run 'train/weekly' -p force=True"
    assert [x for x in said if x.startswith("  | ")] == [f"  | {registered}", "  | gate: churn v2 PROMOTED: forced "
                                                         "over champion v1: horizon 30 d differs (challenger ROC-AUC "
                                                         "0.7700, lift@10% 4.10 on the test window 2026-03-20..2026-04-03)"]  # fmt: skip
    assert len(polls) == 2  # the last line, read once Prefect had it
    assert not [x for x in said if x.startswith("gate: churn v1")]  # the earlier run's decision: not news
    assert not [x for x in said if x.startswith("gate: churn v2")]  # said once, in the echoed log
    assert d.narrator.poll() == []


def test_final_log_lines_wait_for_the_last_line_or_give_up_after_the_timeout(monkeypatch) -> None:
    logs = [[], [{"message": "registered x"}], [{"message": "registered x"}, {"message": "gate: churn v1 PROMOTED"}]]
    monkeypatch.setattr(prefect_api.http, "request", lambda url, body=None, **kw: (200, logs.pop(0)))
    slept: list[float] = []
    lines = prefect_api.final_log_lines("http://127.0.0.1:1/api", "r", lambda x: x.startswith("gate: "),
                                        sleep=slept.append)  # fmt: skip
    assert lines == ["registered x", "gate: churn v1 PROMOTED"] and slept == [0.5, 0.5]
    now = [0.0]

    def sleep(s: float) -> None:
        now[0] += s

    monkeypatch.setattr(prefect_api.http, "request", lambda url, body=None, **kw: (200, [{"message": "registered x"}]))
    assert prefect_api.final_log_lines("http://127.0.0.1:1/api", "r", lambda x: x.startswith("gate: "), timeout_s=10,
                                       sleep=sleep, clock=lambda: now[0]) == ["registered x"]  # fmt: skip
    assert now[0] == pytest.approx(10.0)


# -- 6: DEMO_QUICK ---------------------------------------------------------------------------------
def test_demo_quick_values() -> None:
    assert [quick_from_env(v) for v in ("1", "true", "YES", " yes ")] == [True] * 4
    assert [quick_from_env(v) for v in ("0", "false", "No", "", None)] == [False] * 5
    with pytest.raises(ConfigError, match=r"DEMO_QUICK='maybe' is neither quick \(1, true, yes\) nor full"):
        quick_from_env("maybe")


@pytest.mark.parametrize(("value", "quick"), [("false", False), ("no", False), ("0", False), ("yes", True), ("1", True)])
def test_churn_demo_reads_demo_quick_strictly(tmp_path, monkeypatch, capsys, value, quick) -> None:
    import churn.cli.demo as cli

    got: list[bool] = []
    monkeypatch.setattr(cli, "run", lambda s, ports, q, *a: got.append(q) or {"timings": {}})
    monkeypatch.setenv("DEMO_QUICK", value)
    rc, _, _ = churn(capsys, "--data-dir", str(tmp_path), "demo")
    assert rc == 0 and got == [quick]


def test_churn_demo_refuses_an_unknown_demo_quick_in_one_line(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("DEMO_QUICK", "maybe")
    rc, _, err = churn(capsys, "--data-dir", str(tmp_path), "demo")
    assert rc == 1 and err.count("\n") == 1 and "DEMO_QUICK='maybe'" in err and "DEMO_QUICK=1 make demo" in err


@pytest.fixture
def make_dir(tmp_path) -> Path:
    """A copy of the Makefile beside a stand-in `.venv/bin/churn` that only records its call
    (the real `make clean` would delete the repository's caches)."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    root = tmp_path / "repo"
    (root / ".venv" / "bin").mkdir(parents=True)
    shutil.copy(PROJECT_ROOT / "Makefile", root / "Makefile")
    (root / "pyproject.toml").write_text("")
    os.utime(root / "pyproject.toml", (1, 1))
    (root / ".venv" / ".installed-stamp").write_text("")  # newer than pyproject.toml: no install
    fake = root / ".venv" / "bin" / "churn"
    fake.write_text(f'#!/bin/sh\necho "DEMO_QUICK=$DEMO_QUICK $*" >> {root / "calls.txt"}\n')
    fake.chmod(0o755)
    return root


def _make(root: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in ("DEMO_QUICK", "MAKEFLAGS", "MFLAGS")}
    return subprocess.run(["make", "-s", "-C", str(root), *args], env=base | (env or {}), capture_output=True,
                          text=True, timeout=60)  # fmt: skip


def test_make_demo_hands_demo_quick_to_churn_demo(make_dir) -> None:
    assert _make(make_dir, "demo", "DEMO_QUICK=false", "DATA=d").returncode == 0
    assert _make(make_dir, "demo", "DATA=d", env={"DEMO_QUICK": "no"}).returncode == 0
    assert (make_dir / "calls.txt").read_text().splitlines() == ["DEMO_QUICK=false --data-dir d demo",
                                                                 "DEMO_QUICK=no --data-dir d demo"]  # fmt: skip


def test_make_clean_refuses_a_running_demo_and_stops_a_recorded_stack(make_dir) -> None:
    data = make_dir / "d"
    (data / "stack").mkdir(parents=True)
    lock = PidLock(data / LOCK)
    assert lock.try_acquire()
    try:
        r = _make(make_dir, "clean", "DATA=d")
        assert r.returncode != 0 and f"a demo (pid {os.getpid()}) is running on d" in r.stderr and data.exists()
    finally:
        lock.release()
    (data / "stack" / "state.json").write_text("{}")
    r = _make(make_dir, "clean", "DATA=d")
    assert r.returncode == 0, r.stderr
    assert (make_dir / "calls.txt").read_text().splitlines() == ["DEMO_QUICK= --data-dir d down"]
    assert not data.exists()


# -- 7: the quick demo's "what to look at" -------------------------------------------------------
def test_the_quick_demo_promises_no_drift_story_it_does_not_show() -> None:
    st = StackState("d", 1, "t", services=[ServiceRecord(n, 1, None, f"http://127.0.0.1:{p}", "", "")
                                           for n, p in (("dashboard", 8501), ("mlflow", 5000), ("prefect", 4200))])
    quick = "\n".join(what_to_look_at(st, QUICK, "1", 30))
    assert "stops its stack by itself" in quick and "(30 simulated days): no retrain here" in quick
    assert "`make demo` (the full demo, until Ctrl-C) runs long enough for the retrain" in quick
    assert "watch the drifted share climb to Critical" not in quick and "running stream/live" not in quick
    full = "\n".join(what_to_look_at(st, FULL, "1", 30))
    assert "watch the drifted share climb to Critical" in full and "its retrain waits" in full
