"""Corruption probes of the import profile (``import/<topic>/profile.json``), the topic's
feature spec for training and the stream.

Repro: the profile deleted while the ledger stayed made `churn train` use the simulator's
feature set on the imported events without a word; a damaged one said "re-run `churn
import`", which only answered "already imported" and left it broken. Now both are refused
with a remedy that works: the same import again rebuilds the profile, from the mapping the
imports used and only when that gives the feature spec the ledger recorded."""

from __future__ import annotations

import json

import pytest

from pipeline.errors import FeatureError
from pipeline.features.spec import DEFAULT_SPEC, spec_for
from pipeline.ingest import load_mapping
from pipeline.ingest.errors import SourceError

from .helpers import DELETE, T0, Env, rows_to_csv, sample_rows, write_mapping


@pytest.fixture
def env(tmp_path):
    e = Env(tmp_path / "data")
    yield e
    e.close()


@pytest.fixture
def imported(env, tmp_path):
    """One finished import under a mapping file: (csv, mapping, the profile as written)."""
    a = rows_to_csv(sample_rows(users=4, days=10), tmp_path / "a.csv")
    m = load_mapping(write_mapping(tmp_path / "mapping.yaml"))
    env.run([a], m)
    assert spec_for(env.root, "events", env.log) != DEFAULT_SPEC  # no plan_change events: not the simulator's
    return a, m, json.loads(env.ledger.profile_path.read_text())


def _features_cli(env, capsys) -> str:
    from churn.cli.app import main

    with pytest.raises(SystemExit) as done:
        main(["--data-dir", str(env.root), "features"])
    err = capsys.readouterr().err
    assert done.value.code == 1 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    return err


def test_a_deleted_profile_is_refused_then_rebuilt_by_the_same_import(env, imported, capsys) -> None:
    a, m, profile = imported
    spec = spec_for(env.root, "events", env.log)
    env.ledger.profile_path.unlink()
    with pytest.raises(FeatureError) as exc:
        spec_for(env.root, "events", env.log)
    message = str(exc.value)
    for text in (f"import profile {env.ledger.profile_path} is missing", str(env.ledger.path),
                 "1 finished import(s) into topic 'events'", "simulator's feature set", "restore it from a backup",
                 f"`churn --data-dir {env.root} --topic events import {a} --mapping {m.file}`", spec.version):
        assert text in message, text
    assert "profile.json is missing" in _features_cli(env, capsys)  # the command line: one line, exit 1
    held = len(env.events())
    again = env.run([a], m)  # what the message says to do
    assert again.status == "already imported" and again.profile_restored == str(env.ledger.profile_path)
    assert again.feature_spec["version"] == spec.version
    assert json.loads(env.ledger.profile_path.read_text()) == profile  # as the import wrote it
    assert spec_for(env.root, "events", env.log) == spec and len(env.events()) == held


@pytest.mark.parametrize("damage", [b'{"mapping": "test", "feature_sp', b"\xff\xfe\x00garbage", b"[]",
                                    b'{"feature_spec": [1]}', "edited"],
                         ids=["torn", "not-utf8", "list", "spec-not-object", "spec-edited"])
def test_a_damaged_profile_names_a_remedy_that_works(env, imported, damage) -> None:
    a, m, profile = imported
    if damage == "edited":  # a declared built-in dropped by hand: its content no longer hashes to its version
        edited = json.loads(json.dumps(profile))
        edited["feature_spec"]["builtin"] = edited["feature_spec"]["builtin"][1:]
        damage = json.dumps(edited).encode()
    env.ledger.profile_path.write_bytes(damage)
    with pytest.raises(FeatureError, match=rf"import profile {env.ledger.profile_path} is unreadable") as exc:
        spec_for(env.root, "events", env.log)
    assert "re-run `churn import`" not in str(exc.value) and f"--mapping {m.file}" in str(exc.value)
    assert env.run([a], m).profile_restored
    assert json.loads(env.ledger.profile_path.read_text()) == profile


def test_a_new_file_under_the_same_mapping_rebuilds_the_lost_profile_and_imports(env, imported, tmp_path) -> None:
    a, m, profile = imported
    env.ledger.profile_path.unlink()
    b = rows_to_csv([{"uid": "n1", "t": T0 + 40 * 86400, "kind": "play", "minutes": 3}], tmp_path / "b.csv")
    s = env.run([b], m)
    assert s.status == "imported" and s.written == 2 and s.profile_restored  # the row and its synthesized signup
    assert json.loads(env.ledger.profile_path.read_text()) == profile | {"last_import": s.import_id}


def test_a_rebuild_from_another_mapping_is_refused_and_writes_nothing(env, imported, tmp_path) -> None:
    """Another mapping would give the topic another meaning (here: no support tickets): its
    profile is not the one the topic's events were made by."""
    a, _, _ = imported
    env.ledger.profile_path.unlink()
    other = load_mapping(write_mapping(tmp_path / "other.yaml", fields__support_ticket=DELETE,
                                       event_type__values={"play": "session", "pay": "payment", "quit": "cancel"}))
    held = len(env.events())
    b = rows_to_csv([{"uid": "n1", "t": T0 + 40 * 86400, "kind": "play", "minutes": 3}], tmp_path / "b.csv")
    for paths in ([a], [b]):
        with pytest.raises(SourceError, match=rf"nothing imported: the import profile {env.ledger.profile_path} is "
                                              r"missing, and it cannot be rebuilt from this import: this import's "
                                              r"mapping 'other' .* is not one the topic's imports used"):
            env.run(paths, other)
    assert not env.ledger.profile_path.exists() and len(env.events()) == held


def test_without_a_recorded_spec_the_remedy_is_a_backup_or_a_new_topic(env, imported) -> None:
    """A ledger written before imports recorded their feature spec holds nothing to check a
    rebuilt profile against: the remedy says so instead of promising a rebuild (and does not
    say to move the import state aside: that would leave the events to the default spec)."""
    a, m, _ = imported
    doc = env.ledger.load()
    for e in doc["imports"].values():
        del e["summary"]["feature_spec"]
    env.ledger.save(doc)
    env.ledger.profile_path.unlink()
    with pytest.raises(FeatureError, match=r"restore it from a backup \(the ledger .* records too little to "
                                           rf"rebuild it\), or import the source files into a new topic \(`churn "
                                           rf"--data-dir {env.root} --topic NEW import"):
        spec_for(env.root, "events", env.log)
    with pytest.raises(SourceError, match="the ledger records no feature spec version to check a rebuilt profile"):
        env.run([a], m)
    assert not env.ledger.profile_path.exists()
