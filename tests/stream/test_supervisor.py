"""The supervisor without worker processes: waiting for a champion, refusing a bad one,
one supervisor per group, health derived from the store."""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime

import pytest

from pipeline.errors import ModelMismatchError, RegistryError, StreamError
from pipeline.store import StreamMetric
from pipeline.stream.champion import StaticChampion
from pipeline.stream.config import StreamConfig
from pipeline.stream.health import alert_from_store
from pipeline.stream.model import read_pointer
from pipeline.stream.supervisor import Supervisor
from pipeline.testing.stream import tiny_model


def _sup(data_dir, tmp_path, champion, **cfg) -> Supervisor:
    config = StreamConfig(group="test", model_poll_s=0.05, **cfg)
    return Supervisor(data_dir, "events", f"sqlite:///{tmp_path / 'churn.db'}", champion, config)


def test_no_champion_waits_with_a_clear_message(data_dir, tmp_path, caplog) -> None:
    sup = _sup(data_dir, tmp_path, StaticChampion())
    with caplog.at_level(logging.WARNING, logger="pipeline.stream"):
        out = sup.run(max_seconds=0.5)
    assert out["stopped"] == "stopped before a champion was available" and out["events"] == 0
    text = caplog.text
    assert "no champion model yet" in text and "'champion'" in text and "churn train" in text
    assert text.count("no champion model yet") == 1  # said once a minute, not at every poll
    assert not sup.procs  # nothing started


def test_waiting_ends_when_a_champion_is_promoted(data_dir, tmp_path) -> None:
    champion = StaticChampion()
    sup = _sup(data_dir, tmp_path, champion)
    model = tiny_model()
    threading.Timer(0.3, lambda: champion.set(model, "4")).start()
    t = time.monotonic()
    assert sup.wait_for_champion(lambda: time.monotonic() - t > 10)
    ref = read_pointer(sup.paths.champion)
    assert ref is not None and ref.version == "4" and sup.model == ref


def test_champion_with_another_feature_set_stops_the_start(data_dir, tmp_path) -> None:
    champion = StaticChampion()
    champion.set(tiny_model(), "9", feature_set_version="0000deadbeef0000")
    with pytest.raises(ModelMismatchError, match="0000deadbeef0000"):
        _sup(data_dir, tmp_path, champion).run(max_seconds=5)


def test_a_new_champion_with_another_feature_set_is_refused_while_running(
    data_dir, tmp_path, caplog
) -> None:
    champion = StaticChampion()
    champion.set(tiny_model(), "1")
    sup = _sup(data_dir, tmp_path, champion)
    assert sup.wait_for_champion(lambda: False)
    champion.set(tiny_model(), "2", feature_set_version="0000deadbeef0000")
    with caplog.at_level(logging.ERROR, logger="pipeline.stream"):
        sup.follow_champion()
    assert read_pointer(sup.paths.champion).version == "1" and "keep scoring with v1" in caplog.text
    champion.set(tiny_model(boost=1.0), "3")
    sup.follow_champion()
    assert read_pointer(sup.paths.champion).version == "3"


def test_one_supervisor_per_group(data_dir, tmp_path) -> None:
    a = _sup(data_dir, tmp_path, StaticChampion())
    a._take_lock()
    try:
        with pytest.raises(StreamError, match="already supervised"):
            _sup(data_dir, tmp_path, StaticChampion()).run(max_seconds=0.1)
    finally:
        a._release_lock()


def test_missing_topic_is_one_clear_error(tmp_path) -> None:
    with pytest.raises(StreamError, match="churn simulate"):
        Supervisor(tmp_path, "events", f"sqlite:///{tmp_path / 'x.db'}", StaticChampion())


def test_alert_level_is_derivable_from_the_store(store) -> None:
    t = datetime(2026, 1, 1, tzinfo=UTC)
    assert alert_from_store(store).reasons == ("no stream metrics yet",)
    store.set_assignment("w0", [0, 1])
    store.record_metrics(
        [
            StreamMetric(
                t, "w0", 0, lag=0, lag_seconds=0.0, status="OK", events=5_000, dead_letters=0
            ),
            StreamMetric(
                t,
                "w0",
                1,
                lag=80_000,
                lag_seconds=900.0,
                status="STALL",
                events=5_000,
                dead_letters=200,
            ),
        ]
    )
    alert = alert_from_store(store)
    assert alert.level.value == "Critical"
    joined = " ".join(alert.reasons)
    assert "STALL" in joined and "lag 80,000" in joined and "dead letters" in joined


class _HangingChampion(StaticChampion):
    """Answers the first lookup (the start), then hangs like an MLflow server that accepts the
    connection and never answers, until ``release`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.calls = 0

    def current(self):  # type: ignore[no-untyped-def]
        self.calls += 1
        if self.calls > 1:
            self.release.wait(20)
        return super().current()


def test_a_registry_that_never_answers_does_not_hold_the_supervision_loop(data_dir, tmp_path, monkeypatch) -> None:
    """The poll runs off the loop: before, one unanswered lookup held it (no reaping, heartbeat
    checks or autoscaling) for as long as the server kept the connection open."""
    champion = _HangingChampion()
    champion.set(tiny_model(), "1")
    sup = _sup(data_dir, tmp_path, champion)
    reaps: list[float] = []
    monkeypatch.setattr(sup, "scale_to", lambda n, reason: None)  # no worker processes in this test
    monkeypatch.setattr(sup, "reap", lambda: reaps.append(time.monotonic()))
    try:
        t = time.monotonic()
        out = sup.run(max_seconds=1.5)
        took = time.monotonic() - t
    finally:
        champion.release.set()
    assert out["stopped"] == "stopped" and took < 10, took
    assert len(reaps) >= 4 and reaps[-1] - t > 1.0  # the loop kept going while the poll hung
    assert champion.calls == 2  # one poll in flight at a time, not a new one every tick
    assert read_pointer(sup.paths.champion).version == "1"


def test_the_loops_poll_refuses_a_mismatched_champion_then_adopts_the_next(data_dir, tmp_path, monkeypatch, caplog) -> None:
    champion = StaticChampion()
    champion.set(tiny_model(), "1")
    sup = _sup(data_dir, tmp_path, champion)
    monkeypatch.setattr(sup, "scale_to", lambda n, reason: None)
    seen: list[tuple[str, str | None]] = []

    def reap() -> None:  # moves the alias by what the loop has applied, not by wall-clock timers
        seen.append((sup.model.version, sup.refused))
        if champion.current().version == "1":
            champion.set(tiny_model(), "2", feature_set_version="0000deadbeef0000")
        elif sup.refused == "2" and champion.current().version == "2":
            champion.set(tiny_model(boost=1.0), "3")

    monkeypatch.setattr(sup, "reap", reap)
    with caplog.at_level(logging.INFO, logger="pipeline.stream"):
        sup.run(should_stop=lambda: sup.model is not None and sup.model.version == "3", max_seconds=60)
    assert ("1", "2") in seen  # refused while running: workers kept v1
    assert "0000deadbeef0000" in caplog.text and "keep scoring with v1" in caplog.text
    assert read_pointer(sup.paths.champion).version == "3" and sup.refused is None
    assert "champion is churn v3" in caplog.text and "was v1" in caplog.text


class _FailingChampion(StaticChampion):
    """Answers the start, then fails like an unreadable MLflow database for ``bad`` polls."""

    def __init__(self, bad: int) -> None:
        super().__init__()
        self.bad, self.calls = bad, 0

    def current(self):  # type: ignore[no-untyped-def]
        self.calls += 1
        if 1 < self.calls <= 1 + self.bad:
            raise RegistryError("MLflow tracking store sqlite:///x.db is unusable: file is not a database")
        return super().current()


def test_a_registry_failing_under_a_running_stream_is_said_once_and_the_model_kept(data_dir, tmp_path, monkeypatch,
                                                                                    caplog) -> None:  # fmt: skip
    """Before, an exception from the lookup (here the database check's RegistryError) left
    the supervision loop and ended the whole stream; now the workers keep their model, the
    failure is logged once (not at every poll), and so is the registry's return."""
    champion = _FailingChampion(bad=4)
    champion.set(tiny_model(), "1")
    sup = _sup(data_dir, tmp_path, champion)
    monkeypatch.setattr(sup, "scale_to", lambda n, reason: None)
    with caplog.at_level(logging.INFO, logger="pipeline.stream"):
        out = sup.run(should_stop=lambda: champion.calls >= 8, max_seconds=60)
    assert out["stopped"] == "stopped" and champion.calls >= 8
    assert caplog.text.count("the champion poll found none") == 1
    assert "file is not a database" in caplog.text and "keep scoring with v1" in caplog.text
    assert caplog.text.count("answers the champion poll again (churn v1)") == 1
    assert read_pointer(sup.paths.champion).version == "1" and sup.model.version == "1"
