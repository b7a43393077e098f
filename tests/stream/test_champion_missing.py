"""A missing champion (alias deleted, mistyped tracking URI) is a bounded wait and then one
line, never a registry created by reading, never a closing line that names a champion the
run did not load (issue 16 item 8); a broken MLflow database or checkpoint is one `error:`
line, not tracebacks (item 9)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline.errors import CheckpointCorruptError, RegistryError, StreamError
from pipeline.mlflow_store import check_readable
from pipeline.stream import supervisor as supervisor_module
from pipeline.stream.champion import RegistryChampion, StaticChampion
from pipeline.stream.config import StreamConfig, StreamPaths
from pipeline.stream.preflight import preflight
from pipeline.stream.report import stream_report
from pipeline.stream.supervisor import Supervisor

from .test_report import _scores


def _supervisor(data_dir, champion, **cfg) -> Supervisor:
    return Supervisor(data_dir, "events", f"sqlite:///{data_dir / 'churn.db'}", champion,
                      StreamConfig(group="test", model_poll_s=0.1, **cfg))  # fmt: skip


def test_until_caught_up_gives_up_after_the_configured_wait(data_dir) -> None:
    sup = _supervisor(data_dir, StaticChampion(), champion_wait_s=0.5)
    with pytest.raises(StreamError, match=r"no champion model after \d+ s: no version of the registered model "
                                          r"'churn' has the alias 'champion'.*--champion-wait"):  # fmt: skip
        sup.run(until_caught_up=True, max_seconds=30)
    assert sup.current() == 0  # no worker was started


def test_until_caught_up_has_a_default_bound(data_dir, monkeypatch) -> None:
    monkeypatch.setattr(supervisor_module, "CAUGHT_UP_CHAMPION_WAIT_S", 0.3)
    with pytest.raises(StreamError, match="no champion model after"):
        _supervisor(data_dir, StaticChampion()).run(until_caught_up=True, max_seconds=30)
    # without --until-caught-up the live stream keeps waiting (here: until max_seconds)
    summary = _supervisor(data_dir, StaticChampion()).run(max_seconds=0.5)
    assert summary["stopped"] == "stopped before a champion was available" and summary["model_version"] is None


def test_a_mistyped_tracking_uri_is_never_created_and_says_so(tmp_path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlrnus' / 'mlflow.db'}"
    champion = RegistryChampion(uri)
    assert champion.current() is None
    assert champion.missing.startswith(f"there is no MLflow database at {tmp_path / 'mlrnus' / 'mlflow.db'}")
    assert "CHURN_MLFLOW_TRACKING_URI" in champion.missing
    assert not (tmp_path / "mlrnus").exists()  # reading created nothing


def test_the_wait_names_the_mistyped_database(data_dir, tmp_path) -> None:
    uri = f"sqlite:///{tmp_path / 'typo' / 'mlflow.db'}"
    sup = _supervisor(data_dir, RegistryChampion(uri), champion_wait_s=0.2)
    with pytest.raises(StreamError, match=r"no champion model after \d+ s: there is no MLflow database at .*typo"):
        sup.run(until_caught_up=True, max_seconds=30)
    assert not (tmp_path / "typo").exists()


def test_the_closing_line_never_names_a_champion_the_run_did_not_load(log, store) -> None:
    _scores(store)  # an earlier run scored with v4
    r = stream_report(store, log, "g", {}, seconds=1.0, stopped="stopped before a champion was available",
                      model_version=None, version_from_scores=False)  # fmt: skip
    assert "no champion loaded" in r.lines()[0] and "v4" not in r.lines()[0]
    after_ctrl_c = stream_report(store, log, "g", {}, seconds=1.0, stopped="interrupted (Ctrl-C)")
    assert "champion v4" in after_ctrl_c.lines()[0]  # then the scores say which version ran


@pytest.mark.parametrize("content", [b"garbage" * 100, b"SQLite format 3\x00" + b"\x07" * 2000])
def test_a_garbage_mlflow_database_is_one_line(tmp_path, content) -> None:
    db = tmp_path / "mlflow.db"
    db.write_bytes(content)
    with pytest.raises(RegistryError, match=rf"{db} is not (a readable )?an? MLflow database|{db} is not"):
        check_readable(f"sqlite:///{db}")
    with pytest.raises(RegistryError) as info:
        RegistryChampion(f"sqlite:///{db}").current()
    assert "\n" not in str(info.value) and "CHURN_MLFLOW_TRACKING_URI" in str(info.value)
    from pipeline import registry

    with pytest.raises(RegistryError, match="CHURN_MLFLOW_TRACKING_URI"):  # training refuses it too
        registry.configure(f"sqlite:///{db}")
    assert db.read_bytes() == content  # untouched


def test_preflight_finds_a_corrupt_checkpoint_before_anything_starts(tmp_path) -> None:
    ckpt = StreamPaths(tmp_path, "churn-stream").checkpoint(1)
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointCorruptError, match=rf"checkpoint {ckpt} of partition 1 .*\(rm '{ckpt}'"):
        preflight(tmp_path, "events", "churn-stream", 2, f"sqlite:///{tmp_path / 'm.db'}")
    preflight(tmp_path, "events", "other-group", 2, f"sqlite:///{tmp_path / 'm.db'}")  # other groups: fine


def test_churn_stream_with_a_corrupt_checkpoint_prints_one_error_line_and_no_traceback(data_dir, log) -> None:
    from churn.cli.app import app

    ckpt = StreamPaths(data_dir, "churn-stream").checkpoint(0)
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    ckpt.write_bytes(b"torn")
    result = CliRunner().invoke(app, ["--data-dir", str(data_dir), "stream", "--until-caught-up",
                                      "--tracking-uri", f"sqlite:///{data_dir / 'nothing' / 'm.db'}"])  # fmt: skip
    assert result.exit_code == 1
    assert result.output.count("error:") == 1 and f"rm '{ckpt}'" in result.output
    assert "Traceback" not in result.output
    assert not (data_dir / "nothing").exists()


def test_churn_stream_on_a_data_dir_it_cannot_write_prints_one_error_line(data_dir, log, monkeypatch) -> None:
    """A read-only data directory failed inside the flow (the supervisor's lock): a Prefect
    task traceback came before the one-line error. The preflight now meets it first."""
    import errno

    from churn.cli.app import app

    real = Path.write_bytes

    def read_only(self, data):
        if self.name.startswith(".write-probe-"):
            raise OSError(errno.EROFS, "Read-only file system", str(self))
        return real(self, data)

    monkeypatch.setattr(Path, "write_bytes", read_only)
    result = CliRunner().invoke(app, ["--data-dir", str(data_dir), "stream", "--until-caught-up",
                                      "--tracking-uri", f"sqlite:///{data_dir / 'nothing' / 'm.db'}"])  # fmt: skip
    assert result.exit_code == 1, result.output
    assert result.output.count("error:") == 1 and "Read-only file system" in result.output
    assert "Traceback" not in result.output and "--data-dir" in result.output


def test_a_tracking_uri_mlflow_cannot_use_is_said_at_once_not_waited_on(data_dir, log) -> None:
    """`bogus://x` read as "no champion yet": the stream waited for a model that could never
    come, then blamed the missing alias."""
    from churn.cli.app import app

    with pytest.raises(RegistryError, match="unsupported URI scheme 'bogus'"):
        check_readable("bogus://x")
    for ok in ("http://127.0.0.1:5000", "postgresql+psycopg://u@h/db", "/some/path", "file:///some/path"):
        assert check_readable(ok) is None
    result = CliRunner().invoke(app, ["--data-dir", str(data_dir), "stream", "--until-caught-up",
                                      "--tracking-uri", "bogus://x"])  # fmt: skip
    assert result.exit_code == 1 and result.output.count("error:") == 1
    assert "unsupported URI scheme 'bogus'" in result.output and "Traceback" not in result.output


def test_prefect_run_logs_show_a_churn_error_as_one_line(caplog) -> None:
    from flows.logs import one_line_errors

    one_line_errors()
    logger = logging.getLogger("prefect.task_runs")
    try:
        raise StreamError("no champion model after 60 s: ...")
    except StreamError:
        logger.error("Task run failed with exception", exc_info=True)
    try:
        raise ValueError("a bug")
    except ValueError:
        logger.error("Task run failed with exception", exc_info=True)
    expected, bug = caplog.records[-2:]
    assert expected.exc_info is None and bug.exc_info is not None  # a bug keeps its traceback


def test_churn_train_with_a_garbage_mlflow_database_is_one_error_line(data_dir, tmp_path) -> None:
    from churn.cli.app import app

    db = tmp_path / "mlruns" / "mlflow.db"
    db.parent.mkdir()
    db.write_bytes(b"\x00garbage" * 500)
    result = CliRunner().invoke(app, ["--data-dir", str(data_dir), "train", "--tracking-uri", f"sqlite:///{db}"])
    assert result.exit_code == 1
    assert result.output.count("error:") == 1 and f"{db} is not an MLflow database" in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) <= 3


def test_an_emptied_mlflow_database_is_refused_by_train_and_stream(data_dir, log, monkeypatch) -> None:
    """Repro: a 0-byte `<data>/mlruns/mlflow.db` (truncated) let `churn train` build a new
    registry into it and promote "v1 - first model, no champion yet": the champion, the gate
    history and the version numbers gone without a word; `churn stream` said "no MLflow
    database" about a file that exists."""
    from churn.cli.app import app
    from pipeline import mlflow_store, registry

    monkeypatch.setattr(mlflow_store, "CREATING_GRACE_S", 0.2)
    monkeypatch.delenv("CHURN_MLFLOW_TRACKING_URI", raising=False)
    db = data_dir / "mlruns" / "mlflow.db"
    db.parent.mkdir()
    db.write_bytes(b"")
    said = rf"{db} is empty \(0 bytes\): the MLflow registry there was emptied or damaged; restore it from a backup"
    with pytest.raises(RegistryError, match=said):
        check_readable(f"sqlite:///{db}")
    with pytest.raises(RegistryError, match=said):
        registry.configure(f"sqlite:///{db}")
    for command in (["train"], ["stream", "--until-caught-up"]):  # the data dir's own registry, as resolved
        result = CliRunner().invoke(app, ["--data-dir", str(data_dir), *command])
        assert result.exit_code == 1, result.output
        assert result.output.count("error:") == 1 and "Traceback" not in result.output
        assert f"{db.resolve()} is empty (0 bytes)" in result.output and "move it aside" in result.output
    assert db.read_bytes() == b""  # nothing was built into it


def test_an_mlflow_database_being_created_is_not_taken_for_an_emptied_one(tmp_path, monkeypatch) -> None:
    """SQLite creates the file empty and MLflow writes its tables moments later: a stream
    polling in between must not stop on "emptied or damaged"."""
    import sqlite3
    import threading

    from pipeline import mlflow_store

    monkeypatch.setattr(mlflow_store, "CREATING_GRACE_S", 10.0)
    db = tmp_path / "mlflow.db"
    db.write_bytes(b"")

    def create() -> None:
        conn = sqlite3.connect(db)
        conn.execute("CREATE TABLE registered_models (name TEXT)")
        conn.commit()
        conn.close()

    timer = threading.Timer(0.2, create)
    timer.start()
    try:
        assert check_readable(f"sqlite:///{db}") is None
    finally:
        timer.join()
