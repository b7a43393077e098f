"""The import ledger belongs to the topic instance it was written for.

A topic deleted and recreated (or another log under the same data directory) while the
ledger survived: every file counted as "already imported", the re-import wrote nothing and
the data never reached the new topic. Now the import refuses, naming the ledger and the
way out, and after that way out the files are imported into the new topic."""

from __future__ import annotations

import json
import shutil

import pytest

from pipeline.clock import FakeClock
from pipeline.ingest import Ledger, StaleLedgerError, run_import
from pipeline.log import MemoryLog, open_log

from .helpers import IMPORT_NOW, T0, Env, mapping, rows_to_csv, sample_rows


@pytest.fixture
def env(tmp_path):
    e = Env(tmp_path / "data")
    yield e
    e.close()


def _recreate(env: Env, partitions: int = 2) -> None:
    """``rm -rf <data>/log/events``; the next command creates the topic again."""
    env.log.close()
    shutil.rmtree(env.root / "log" / "events")
    env.log = open_log(env.root / "log", "events", partitions)


def test_a_recreated_topic_is_refused_with_the_way_out_then_imported(env, tmp_path) -> None:
    path = rows_to_csv(sample_rows(users=4, days=10), tmp_path / "a.csv")
    first = env.run([path], mapping())
    expected = sorted(e["event_id"] for e in env.events())
    _recreate(env)
    with pytest.raises(StaleLedgerError) as exc:
        env.run([path], mapping())
    message = str(exc.value)
    for text in (str(env.ledger.path), f"1 finished import(s) into topic 'events' (the last, {first.import_id}",
                 "partition 0 ends at offset 0", "deleted and recreated", "already imported",
                 f"`mv {env.ledger.dir} {env.ledger.dir}.old`"):
        assert text in message, text
    assert env.events() == []
    env.ledger.dir.rename(f"{env.ledger.dir}.old")  # what the message says to do
    again = env.run([path], mapping())
    assert again.status == "imported" and again.written == first.written
    assert sorted(e["event_id"] for e in env.events()) == expected  # the same events, synthesized signups too


def test_a_recreated_topic_refilled_past_the_old_end_is_told_by_its_records(env, tmp_path) -> None:
    """Offsets alone cannot tell: the new topic already holds more records than the old one
    did (another import, a simulation). The record the last import left at its end can."""
    a = rows_to_csv(sample_rows(users=4, days=10), tmp_path / "a.csv")
    env.run([a], mapping())
    ends = [env.log.end_offset(p) for p in range(2)]
    _recreate(env)
    for p in range(2):
        env.log.append(p, [json.dumps({"other": i}).encode() for i in range(ends[p] + 3)])
    with pytest.raises(StaleLedgerError, match=r"the record at offset \d+ of partition 0 is not the one the last "
                                               r"import left there"):
        env.run([a], mapping())


def test_another_partition_count_is_another_topic(env, tmp_path) -> None:
    a = rows_to_csv(sample_rows(users=4, days=10), tmp_path / "a.csv")
    env.run([a], mapping())
    _recreate(env, partitions=3)
    with pytest.raises(StaleLedgerError, match="written for a topic of 2 partitions, and this one has 3"):
        env.run([a], mapping())


def test_a_ledger_written_before_the_stamp_is_checked_by_its_counts(env, tmp_path) -> None:
    a = rows_to_csv(sample_rows(users=4, days=10), tmp_path / "a.csv")
    first = env.run([a], mapping())
    doc = env.ledger.load()
    del doc["log"]  # as older code wrote it
    env.ledger.save(doc)
    assert env.run([a], mapping()).status == "already imported"  # the same topic: trusted
    _recreate(env)
    with pytest.raises(StaleLedgerError, match=rf"end offsets add up to 0, but reached at least "
                                               rf"{first.written:,} after import {first.import_id}"):
        env.run([a], mapping())


def test_another_log_under_the_same_data_directory_is_refused(env, tmp_path) -> None:
    """Pointing the data directory at another backend (CHURN_LOG_BACKEND, another Kafka
    cluster) keeps the ledger, not the topic."""
    a = rows_to_csv(sample_rows(users=4, days=10), tmp_path / "a.csv")
    env.run([a], mapping())
    with pytest.raises(StaleLedgerError, match="ends at offset 0"):
        run_import([a], mapping(), MemoryLog("events", num_partitions=2), env.ledger, FakeClock(IMPORT_NOW))


def test_the_same_topic_grown_by_others_or_trimmed_by_retention_is_trusted(tmp_path) -> None:
    """Records appended after an import, and retention deleting the record the stamp names,
    are what happens to the same topic: the ledger is still trusted."""
    log = MemoryLog("events", num_partitions=2)
    ledger = Ledger(tmp_path / "import" / "events")
    a = rows_to_csv(sample_rows(users=4, days=10), tmp_path / "a.csv")
    run_import([a], mapping(), log, ledger, FakeClock(IMPORT_NOW))
    log.append(0, [b'{"later": 1}'])
    later = rows_to_csv([{"uid": "u1", "t": T0 + 30 * 86400, "kind": "play", "minutes": 3}], tmp_path / "b.csv")
    assert run_import([later], mapping(), log, ledger, FakeClock(IMPORT_NOW)).written == 1
    for p in range(2):
        log.delete_before(p, log.end_offset(p))  # retention took every record, offsets stay
    for path in (a, later):
        assert run_import([path], mapping(), log, ledger, FakeClock(IMPORT_NOW)).status == "already imported"


def test_a_profile_left_by_an_import_is_not_applied_to_a_topic_refilled_since(env, tmp_path) -> None:
    """Training and the stream read the topic's feature spec from its import profile: after
    the topic was deleted and refilled (``churn simulate`` into the same name), that spec --
    another source's churn definition and actions -- is refused, not applied."""
    from pipeline.errors import FeatureError
    from pipeline.features.spec import DEFAULT_SPEC, spec_for, spec_for_log

    env.run([rows_to_csv(sample_rows(users=4, days=10), tmp_path / "a.csv")], mapping())
    imported = spec_for(env.root, "events", env.log)  # the same topic: its profile's spec
    env.log.append(0, [json.dumps({"more": 1}).encode()])  # another producer: still that topic
    assert spec_for(env.root, "events", env.log) == imported == spec_for_log(env.log)
    _recreate(env)
    for p in range(2):
        env.log.append(p, [json.dumps({"simulated": i}).encode() for i in range(50)])
    for call in (lambda: spec_for(env.root, "events", env.log), lambda: spec_for_log(env.log)):
        with pytest.raises(FeatureError, match="describes events topic 'events' does not hold") as exc:
            call()
        assert f"`mv {env.ledger.dir} {env.ledger.dir}.old`" in str(exc.value)
    env.ledger.dir.rename(f"{env.ledger.dir}.old")  # the way out: the topic as it is
    assert spec_for_log(env.log) == DEFAULT_SPEC
