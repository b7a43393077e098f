"""Secrets never reach a worker's command line, where `ps` shows them (issue 16 item 12)."""

from __future__ import annotations

import json
import subprocess

from pipeline.stream.champion import StaticChampion
from pipeline.stream.config import StreamPaths
from pipeline.stream.supervisor import Supervisor
from pipeline.stream.worker import STORE_URL_ENV, WorkerSpec, main
from pipeline.testing.stream import simulated_log


def test_the_store_url_travels_in_the_environment_not_on_the_command_line(tmp_path, monkeypatch) -> None:
    simulated_log(tmp_path / "log", users=20, days=2, partitions=2, seed=1).close()
    url = f"sqlite:///{tmp_path / 'pa55word-in-the-url' / 'x.db'}"
    (tmp_path / "pa55word-in-the-url").mkdir()
    sup = Supervisor(tmp_path, "events", url, StaticChampion())
    started = []
    monkeypatch.setattr(subprocess, "Popen", lambda args, env: started.append((args, env)))
    try:
        sup._spawn("w0")
    finally:
        sup.log.close()
        sup.store.close()
    args, env = started[0]
    assert not any("pa55word" in a for a in args), args
    assert env[STORE_URL_ENV] == url
    spec = WorkerSpec(**json.loads(args[-1]))  # the worker still gets everything else
    assert spec.worker_id == "w0" and spec.topic == "events"


def test_a_worker_started_without_the_store_url_says_how_to_start_it(tmp_path, monkeypatch, caplog) -> None:
    simulated_log(tmp_path / "log", users=20, days=2, partitions=2, seed=1).close()
    monkeypatch.delenv(STORE_URL_ENV, raising=False)
    spec = {"worker_id": "w0", "data_dir": str(tmp_path), "topic": "events", "config": {}}
    assert main([json.dumps(spec)]) != 0
    fatal = (StreamPaths(tmp_path, "churn-stream").workers / "w0.fatal").read_text()
    assert STORE_URL_ENV in fatal and "churn stream" in fatal
