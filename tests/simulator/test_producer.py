"""`produce` against its failure modes: a second producer, a full disk mid-batch.

Issue 16 items 3 and 4: two producers on one state duplicated every event; a resume
after ENOSPC re-sent records that were already in the log.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline import events as ev
from pipeline.errors import SimulatorError
from pipeline.log import open_log
from pipeline.log import writer as log_writer
from pipeline.simulator import SimConfig, Simulator
from pipeline.simulator import core as sim_core
from pipeline.simulator.history import produce_live, simulate_history
from pipeline.simulator.lock import ProducerLockedError, producer_lock


def make_history(root: Path, users: int = 300, days: int = 5) -> tuple[Path, Path]:
    log_dir, sim_dir = root / "log", root / "sim"
    log = open_log(log_dir, "events", 4)
    try:
        simulate_history(Simulator(SimConfig(users=users, days=days, seed=7)), log, sim_dir)
    finally:
        log.close()
    return log_dir, sim_dir


def values(log_dir: Path) -> dict[int, list[bytes]]:
    log = open_log(log_dir, "events")
    try:
        return {p: [r.value for r in log.iter_records(p, 0)] for p in range(log.num_partitions)}
    finally:
        log.close()


def produce(log_dir: Path, sim_dir: Path, **kw) -> int:
    log = open_log(log_dir, "events")
    try:
        return produce_live(sim_dir, log, None, **kw).events
    finally:
        log.close()


def assert_prefix_without_duplicates(got: dict[int, list[bytes]], clean: dict[int, list[bytes]]) -> None:
    """Every partition holds exactly the clean run's records, in order (no duplicate, no
    gap), up to where it stopped."""
    for p, vals in got.items():
        assert vals == clean[p][: len(vals)], f"partition {p} differs from the clean run"
    ids = [ev.decode(v).event_id for vals in got.values() for v in vals]
    assert len(ids) == len(set(ids))


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> dict[int, list[bytes]]:
    log_dir, sim_dir = make_history(tmp_path_factory.mktemp("clean"))
    produce(log_dir, sim_dir, max_days=4)
    return values(log_dir)


# -- item 3: one producer per state -----------------------------------------------------
def test_second_producer_on_the_same_state_is_refused(tmp_path):
    log_dir, sim_dir = make_history(tmp_path)
    before = values(log_dir)
    with producer_lock(sim_dir), pytest.raises(ProducerLockedError) as info:
        produce(log_dir, sim_dir, max_events=500)
    msg = str(info.value)
    assert "already producing" in msg and str(os.getpid()) in msg and "\n" not in msg
    assert values(log_dir) == before  # the refused producer wrote nothing
    assert produce(log_dir, sim_dir, max_events=500) == 500  # the lock is free again


def test_two_produce_processes_one_refused_in_one_line(tmp_path):
    data = tmp_path / "data"
    env = os.environ | {"CHURN_DATA_DIR": str(data)}
    cmd = [sys.executable, "-c", "from churn.cli.app import main; main()"]
    subprocess.run([*cmd, "simulate", "--users", "200", "--days", "3"], env=env, check=True, capture_output=True)
    first = subprocess.Popen([*cmd, "produce", "--rate", "200"], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        lock = data / "sim" / "producer.lock"
        deadline = time.monotonic() + 60
        while not (lock.exists() and lock.read_text().strip() == str(first.pid)):
            assert first.poll() is None and time.monotonic() < deadline, "first producer never started"
            time.sleep(0.05)
        second = subprocess.run([*cmd, "produce", "--rate", "0", "--max-events", "100"], env=env,
                                capture_output=True, text=True, timeout=120)  # fmt: skip
    finally:
        first.terminate()
        first.wait(timeout=30)
    assert second.returncode == 1
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1 and f"pid {first.pid}" in lines[0] and "already producing" in lines[0]
    ids = [ev.decode(v).event_id for vals in values(data / "log").values() for v in vals]
    assert len(ids) == len(set(ids))


# -- item 4: a full disk, then resume --------------------------------------------------
def test_resume_after_disk_full_mid_batch_has_no_duplicates_or_gaps(tmp_path, monkeypatch, clean):
    log_dir, sim_dir = make_history(tmp_path)
    real = log_writer._write_all
    calls = {"n": 0}

    def disk_fills(fd: int, data: bytes) -> None:
        calls["n"] += 1
        if calls["n"] == 5:  # the third partition of the first live day: half a batch lands
            real(fd, data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")
        real(fd, data)

    monkeypatch.setattr(log_writer, "_write_all", disk_fills)
    with pytest.raises(OSError, match="No space left"):
        produce(log_dir, sim_dir, max_days=4)
    monkeypatch.setattr(log_writer, "_write_all", real)
    partial = values(log_dir)
    assert_prefix_without_duplicates(partial, clean)
    produce(log_dir, sim_dir, max_days=4)  # the interrupted day and three more
    got = values(log_dir)
    assert sum(map(len, got.values())) > sum(map(len, partial.values()))
    assert_prefix_without_duplicates(got, clean)
    assert got == clean  # the resumed run ends exactly where the clean run ended


def test_resume_after_disk_full_while_saving_the_simulator_state(tmp_path, monkeypatch, clean):
    log_dir, sim_dir = make_history(tmp_path)
    real = Path.write_text
    saves = {"n": 0}

    def disk_fills(self: Path, data: str, *a, **kw):
        if self.name == "state.json.tmp":
            saves["n"] += 1
            if saves["n"] == 3:  # the population is written, the day counter is not
                raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, data, *a, **kw)

    monkeypatch.setattr(Path, "write_text", disk_fills)
    with pytest.raises(OSError, match="No space left"):
        produce(log_dir, sim_dir, max_days=4)
    monkeypatch.setattr(Path, "write_text", real)
    assert sim_core.Simulator.load(sim_dir).day == 6  # the last whole save: the day before
    produce(log_dir, sim_dir, max_days=3)  # day 6 again (all there: nothing sent), 7, 8
    assert values(log_dir) == clean


# -- crash and corruption probe: the day marker lost ------------------------------------
@pytest.mark.parametrize("damage", ["deleted", "empty", "garbage", "older"])
def test_resume_without_a_readable_day_marker_has_no_duplicates_or_gaps(tmp_path, clean, damage):
    """Repro: produce.json (where the day in progress began) deleted, emptied or overwritten
    after `churn produce` stopped mid-day; the next `churn produce` regenerated the day and
    appended it whole again: 810 duplicate events (the same event ids), exit 0."""
    log_dir, sim_dir = make_history(tmp_path)
    day = produce(log_dir, sim_dir, max_days=1)
    produce(log_dir, sim_dir, max_events=day // 2)  # stops in the middle of the second live day
    marker = sim_dir / "produce.json"
    older = '{"day": 5, "ends": [0, 0, 0, 0]}'  # a copy from an earlier day
    {"deleted": marker.unlink, "empty": lambda: marker.write_text(""),
     "garbage": lambda: marker.write_bytes(b"\xff\x00{torn"), "older": lambda: marker.write_text(older)}[damage]()
    produce(log_dir, sim_dir, max_days=3)  # the interrupted day and two more
    got = values(log_dir)
    assert_prefix_without_duplicates(got, clean)
    assert got == clean


# -- corruption probe: the saved population damaged ---------------------------------------
def _flip_middle_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", ["empty", "cut", "flipped", "deleted"])
def test_a_damaged_population_file_is_one_line_naming_it(tmp_path, capsys, damage):
    """Repro: a 0-byte population-*.npz made `churn produce` print "Aborted!" like a Ctrl-C
    (an EOFError click took for one) and name no file; a cut or flipped one was a BadZipFile
    traceback. The remedy names the file, and says what re-simulating would replace."""
    from churn.cli.app import main

    log_dir, sim_dir = make_history(tmp_path, users=60, days=2)
    (pop,) = sim_dir.glob("population-*.npz")
    {"empty": lambda: pop.write_bytes(b""), "cut": lambda: pop.write_bytes(pop.read_bytes()[:-100]),
     "flipped": lambda: _flip_middle_byte(pop), "deleted": pop.unlink}[damage]()
    before = values(log_dir)
    with pytest.raises(SimulatorError, match=rf"simulator state file {pop} is unreadable"):
        produce(log_dir, sim_dir, max_events=100)
    with pytest.raises(SystemExit) as done:
        main(["--data-dir", str(tmp_path), "produce", "--max-events", "100"])
    err = capsys.readouterr().err
    assert done.value.code == 1 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert str(pop) in err and "restore the file from a backup" in err and "churn simulate --overwrite" in err
    assert values(log_dir) == before  # nothing produced
