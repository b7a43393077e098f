"""The importer: accounting, dead letters, threshold, order, synthesis, idempotency, resume."""

from __future__ import annotations

import contextlib
from collections import Counter
from datetime import datetime

import pytest

from pipeline.events import decode
from pipeline.features.columns import decode_columns
from pipeline.features.state import FeatureState
from pipeline.ingest import MappingError, RejectedShareError, load_profile
from pipeline.log.partitioner import partition_for

from .helpers import DELETE, IMPORT_NOW, T0, Env, mapping, rows_to_csv, sample_rows

DAY = 86400


@pytest.fixture
def env(tmp_path):
    e = Env(tmp_path / "data")
    yield e
    e.close()


def _ts(e) -> datetime:
    return decode(e["raw"]).ts if "raw" in e else datetime.fromisoformat(e["ts"].replace("Z", "+00:00"))


def test_summary_accounts_for_every_row(env, tmp_path) -> None:
    rows = sample_rows(users=5, days=20)
    bad = [
        {"uid": "", "t": T0 + 5, "kind": "play", "minutes": 1},  # no user
        {"uid": "u1", "t": "yesterday", "kind": "play", "minutes": 1},  # bad time
        {"uid": "u1", "t": T0 + 9, "kind": "play", "minutes": 5000},  # > 1440 minutes: contract rule
        {"uid": "u1", "t": T0 + 9, "kind": "pay", "amount": 5, "plan": "gold"},  # not in values
        {"uid": "u1", "t": T0 + 9, "kind": "", "minutes": 1},  # no type
    ]
    path = rows_to_csv(rows + bad, tmp_path / "a.csv")
    s = env.run([path], mapping())
    assert s.rows_read == len(rows) + 5
    assert s.dropped == Counter({"nav": 1})
    assert s.rejected == Counter({
        "user_id: empty": 1, "timestamp: not a number": 1, "event type: empty": 1,
        "fields.payment.plan: value not in values": 1,
        "invalid session: Expected `float` <= 1440.0 at $.watch_minutes": 1,
    })
    written = env.events()
    imported = sum(s.events_by_type.values()) - sum(s.synthesized.values())
    assert imported + s.rejected_rows + sum(s.dropped.values()) == s.rows_read
    assert len(written) == s.written == sum(s.events_by_type.values())
    assert s.synthesized == Counter({"signup (first row)": 5}) and s.events_by_type["cancel"] == 1
    assert s.users == 5 and s.first_ts.startswith("2026-01-01") and s.last_ts.startswith("2026-01-20")

    dl = {d["source_offset"]: d for d in env.dead_letters()}
    n = len(rows)
    assert sorted(dl) == [n + 1, n + 2, n + 3, n + 4, n + 5]  # data row numbers (header not counted)
    assert {d["source_topic"] for d in dl.values()} == {f"file:{path}"}
    assert dl[n + 1]["reason"] == "user_id: empty" and dl[n + 1]["field"] == "user_id"
    assert dl[n + 3]["field"] == "fields.session.watch_minutes" and '"minutes": "5000"' in dl[n + 3]["value"]  # as read: text
    assert dl[n + 4]["field"] == "fields.payment.plan"
    assert dl[n + 2]["source_partition"] == partition_for(b"u1", 2)


def test_threshold_refuses_and_writes_nothing(env, tmp_path) -> None:
    rows = sample_rows(users=2, days=3)
    rows += [{"uid": "u9", "t": T0, "kind": "play", "minutes": -1}] * 3
    path = rows_to_csv(rows, tmp_path / "a.csv")
    with pytest.raises(RejectedShareError, match=r"3 of 12 rows rejected \(25.0% > max_rejected_share 10.0%\)") as exc:
        env.run([path], mapping(), max_rejected_share=0.1)
    assert exc.value.summary.status == "refused" and exc.value.summary.rejected_rows == 3
    assert env.events() == [] and env.dead_letters() == []
    s = env.run([path], mapping(), max_rejected_share=0.3)  # the same file, threshold raised: imported
    assert s.status == "imported" and s.rejected_rows == 3 and len(env.dead_letters()) == 3


def test_unmapped_reject_rule_dead_letters_unknown_types(env, tmp_path) -> None:
    path = rows_to_csv(sample_rows(users=3, days=5), tmp_path / "a.csv")
    s = env.run([path], mapping(event_type__unmapped="reject"))
    assert s.dropped == Counter() and s.rejected == Counter({"event type: not in event_type.values (unmapped: reject)": 1})


def test_events_are_routed_by_user_and_appended_in_event_time_order(env, tmp_path) -> None:
    rows = sample_rows(users=6, days=10)
    # two files, each in reverse time order: the import sorts across files
    a = rows_to_csv(list(reversed(rows[::2])), tmp_path / "a.csv")
    b = rows_to_csv(list(reversed(rows[1::2])), tmp_path / "b.csv.gz")
    env.run([a, b], mapping())
    by_user: dict[str, list] = {}
    for p in range(2):
        values, _ = env.log.fetch_values(p, 0, max_records=100_000)
        events = [decode(v) for v in values]
        assert [e.ts for e in events] == sorted(e.ts for e in events)  # partition in time order
        for e in events:
            assert partition_for(e.user_id.encode(), 2) == p
            by_user.setdefault(e.user_id, []).append(e)
    for evs in by_user.values():
        assert evs[0].type == "signup" and evs[0].ts == evs[1].ts  # signup before the first row
        assert [e.ts for e in evs] == sorted(e.ts for e in evs)
    # the feature engine applies all of it: nothing late
    for p in range(2):
        st = FeatureState()
        cols = decode_columns(env.log.fetch_values(p, 0, max_records=100_000)[0]).columns
        assert len(st.update(cols).late) == 0


def test_inactivity_churn_gaps_returns_and_censoring(env, tmp_path) -> None:
    rows = [
        *({"uid": "a", "t": T0 + d * DAY, "kind": "play", "minutes": 5} for d in (0, 1, 2, 20, 21)),  # gap 18 d
        *({"uid": "b", "t": T0 + d * DAY, "kind": "play", "minutes": 5} for d in (0, 5, 10)),  # silent after day 10
        *({"uid": "c", "t": T0 + d * DAY, "kind": "play", "minutes": 5} for d in (0, 25, 29)),  # ends near the end
    ]
    m = mapping(event_type__values={"play": "session"}, churn={"definition": "inactivity", "inactive_days": 7})
    s = env.run([rows_to_csv(rows, tmp_path / "a.csv")], m)
    got = sorted((e["user_id"], e["type"], e["ts"][:10], e["event_id"].rsplit("-", 1)[-1])
                 for e in env.events() if e["type"] != "session")
    assert got == [
        ("a", "cancel", "2026-01-10", "inactive"), ("a", "cancel", "2026-01-29", "inactive"),
        ("a", "signup", "2026-01-01", "signup"),
        ("a", "signup", "2026-01-21", "return"),
        ("b", "cancel", "2026-01-18", "inactive"), ("b", "signup", "2026-01-01", "signup"),
        ("c", "cancel", "2026-01-08", "inactive"), ("c", "signup", "2026-01-01", "signup"),
        ("c", "signup", "2026-01-26", "return"),
    ]  # a: churned day 2+7, back day 20, churned again 21+7 <= 29 (the data end);
    # b: day 10+7; c: day 0+7, back day 25, censored after day 29 (29+7 > 29)
    assert s.synthesized == Counter({"signup (first row)": 3, "cancel (inactivity)": 4, "signup (reactivation)": 2})
    profile = load_profile(env.root, "events")
    assert profile["churn"]["definition"] == "inactivity" and profile["churn"]["inactive_days"] == 7


def test_inactivity_counts_a_source_signup_as_activity(env, tmp_path) -> None:
    """A user who only signed up (installed and left: the commonest churn of a game) was
    never cancelled -- only non-signup rows counted as activity -- so it stayed active and
    labelled 0 forever. A signup now counts; a source signup after a gap is itself the
    reactivation (no synthesized 'return' beside it)."""
    rows = [
        {"uid": "i", "t": T0, "kind": "join"},  # installed, never played
        {"uid": "j", "t": T0, "kind": "join"}, {"uid": "j", "t": T0 + 2 * DAY, "kind": "play", "minutes": 5},
        {"uid": "j", "t": T0 + 20 * DAY, "kind": "join"}, {"uid": "j", "t": T0 + 21 * DAY, "kind": "play", "minutes": 5},
        {"uid": "k", "t": T0 + 25 * DAY, "kind": "join"},  # signed up near the end: censored
        {"uid": "z", "t": T0 + 29 * DAY, "kind": "play", "minutes": 5},  # the data end
    ]  # fmt: skip
    m = mapping(event_type__values={"play": "session", "join": "signup"}, fields__signup={"plan": {"const": "basic"}},
                churn={"definition": "inactivity", "inactive_days": 7})  # fmt: skip
    s = env.run([rows_to_csv(rows, tmp_path / "a.csv")], m)
    kind = [e["event_id"].rsplit("-", 1)[-1] for e in env.events()]
    got = sorted((e["user_id"], e["type"], e["ts"][:10], "row" if k.isdigit() else k)
                 for e, k in zip(env.events(), kind, strict=True) if e["type"] != "session")  # fmt: skip
    assert got == [
        ("i", "cancel", "2026-01-08", "inactive"), ("i", "signup", "2026-01-01", "row"),
        ("j", "cancel", "2026-01-10", "inactive"), ("j", "cancel", "2026-01-29", "inactive"),
        ("j", "signup", "2026-01-01", "row"), ("j", "signup", "2026-01-21", "row"),
        ("k", "signup", "2026-01-26", "row"), ("z", "signup", "2026-01-30", "signup"),
    ]  # i: day 0+7; j: day 2+7, back with its own signup on day 20 (no 'return'), 21+7 <= 29; k: censored
    assert s.synthesized["signup (reactivation)"] == 0


@contextlib.contextmanager
def _failing_append(monkeypatch, env, at_call: int):
    """The log's ``append`` fails (a full disk) at call ``at_call``, and works again after."""
    real, calls = env.log.append, {"n": 0}

    def crashing(p, values):
        calls["n"] += 1
        if calls["n"] == at_call:
            raise OSError("disk full (simulated)")
        return real(p, values)

    monkeypatch.setattr(env.log, "append", crashing)
    try:
        yield
    finally:
        monkeypatch.setattr(env.log, "append", real)


@pytest.mark.parametrize("cuts", [(3,), (12,), (15,), (22,), (26,), (9, 23), (5, 11, 19, 27)])
def test_inactivity_churn_split_into_runs_equals_one_run(tmp_path, cuts) -> None:
    """A source imported in time order in two runs gets the events one run gives: users
    censored at the end of the first are cancelled by the second (with or without rows of
    their own in it), gaps across the cut give a cancel and a reactivation."""
    rows = [
        *({"uid": "a", "t": T0 + d * DAY, "kind": "play", "minutes": 5} for d in (0, 1, 2, 20, 21)),
        *({"uid": "b", "t": T0 + d * DAY, "kind": "play", "minutes": 5} for d in (0, 5, 10)),
        *({"uid": "c", "t": T0 + d * DAY, "kind": "play", "minutes": 5} for d in (0, 25, 29)),
        *({"uid": "d", "t": T0 + d * DAY, "kind": "play", "minutes": 5} for d in (1, 13)),
        *({"uid": "e", "t": T0 + d * DAY, "kind": "play", "minutes": 5} for d in (2, 4, 6, 8, 12, 16, 24, 28)),
        {"uid": "f", "t": T0 + 3 * DAY, "kind": "join"},  # signed up only
        {"uid": "g", "t": T0 + 1 * DAY, "kind": "join"}, {"uid": "g", "t": T0 + 17 * DAY, "kind": "join"},  # back
    ]  # fmt: skip
    m = mapping(event_type__values={"play": "session", "join": "signup"}, fields__signup={"plan": {"const": "basic"}},
                churn={"definition": "inactivity", "inactive_days": 7})  # fmt: skip

    def events(env):
        # ids name their file and row: compare their kind (a row, or what was synthesized) instead
        kind = [e["event_id"].rsplit("-", 1)[-1] for e in env.events()]
        return sorted((e["user_id"], e["type"], e["ts"], "row" if k.isdigit() else k)
                      for e, k in zip(env.events(), kind, strict=True))  # fmt: skip

    one = Env(tmp_path / "one")
    whole = one.run([rows_to_csv(rows, tmp_path / "all.csv")], m)
    split = Env(tmp_path / "split")
    bounds = [T0, *(T0 + c * DAY for c in cuts), T0 + 100 * DAY]
    parts = [split.run([rows_to_csv([r for r in rows if lo <= r["t"] < hi], tmp_path / f"part{k}.csv")], m)
             for k, (lo, hi) in enumerate(zip(bounds, bounds[1:], strict=False))]  # fmt: skip
    try:
        assert events(split) == events(one)
        got = Counter()
        for p in parts:
            got.update(p.synthesized)
        assert got == whole.synthesized
        assert all(p.late == 0 for p in parts)
    finally:
        one.close()
        split.close()


def test_interrupted_inactivity_import_resumes_from_the_state_it_started_with(env, tmp_path, monkeypatch) -> None:
    import pipeline.ingest.importer as importer

    m = mapping(event_type__values={"play": "session"}, churn={"definition": "inactivity", "inactive_days": 3})
    rows = [r for r in sample_rows(users=6, days=15) if r["kind"] == "play"]
    early, late = ([r for r in rows if (r["t"] < T0 + 8 * DAY) == first] for first in (True, False))
    a, b = rows_to_csv(early, tmp_path / "a.csv"), rows_to_csv(late, tmp_path / "b.csv")
    reference = Env(tmp_path / "ref")
    try:
        for path in (a, b):
            reference.run([path], m)
        env.run([a], m)
        monkeypatch.setattr(importer, "CHUNK", 3)
        with _failing_append(monkeypatch, env, at_call=4), pytest.raises(OSError, match="simulated"):
            env.run([b], m)
        assert env.run([b], m).status == "resumed"
        assert [e["event_id"] for e in env.events()] == [e["event_id"] for e in reference.events()]
        assert any(e["event_id"].endswith("-inactive") for e in env.events())
    finally:
        reference.close()


def test_unreadable_inactivity_state_is_a_clear_error(env, tmp_path) -> None:
    from pipeline.ingest import SourceError

    m = mapping(event_type__values={"play": "session"}, churn={"definition": "inactivity", "inactive_days": 7})
    rows = [{"uid": "a", "t": T0 + d * DAY, "kind": "play", "minutes": 5} for d in (0, 1, 2)]
    env.run([rows_to_csv(rows, tmp_path / "a.csv")], m)
    state = env.ledger.dir / env.ledger.load()["inactivity_state"]
    state.write_bytes(state.read_bytes()[:40])  # torn
    n = len(env.events())
    later = [{"uid": "a", "t": T0 + 30 * DAY, "kind": "play", "minutes": 5}]
    with pytest.raises(SourceError, match="import state .* is unreadable"):
        env.run([rows_to_csv(later, tmp_path / "b.csv")], m)
    assert len(env.events()) == n


def test_reimport_is_idempotent_and_later_files_do_not_resign(env, tmp_path) -> None:
    rows = sample_rows(users=4, days=10)
    a = rows_to_csv(rows, tmp_path / "a.csv")
    first = env.run([a], mapping())
    n = len(env.events())
    again = env.run([a], mapping())
    assert again.status == "already imported" and again.written == 0 and len(env.events()) == n
    copy = rows_to_csv(rows, tmp_path / "copy_of_a.csv")  # same content, other name: same identity
    assert env.run([copy], mapping()).status == "already imported"
    later = [{"uid": "u1", "t": T0 + 30 * DAY, "kind": "play", "minutes": 3}]
    b = rows_to_csv(later, tmp_path / "b.csv")
    s = env.run([a, b], mapping(fields__session__device={"const": "tv"}))  # a skipped: imported before
    assert s.files[0]["skipped"].startswith(f"already imported (import {first.import_id})")
    assert s.written == 1 and s.synthesized == Counter()  # u1 signed up by the first import
    ids = [e["event_id"] for e in env.events()]
    assert len(ids) == len(set(ids)) == n + 1


def test_reimport_with_another_mapping_is_refused_and_keeps_the_profile(env, tmp_path) -> None:
    """Files already written under another mapping: the new mapping would apply to nothing
    while its profile replaced the one the log's events were made by."""
    from pipeline.ingest import MappingChangedError

    a = rows_to_csv(sample_rows(users=4, days=10), tmp_path / "a.csv")
    first = env.run([a], mapping())
    n, before = len(env.events()), load_profile(env.root, "events")
    changed = mapping(fields__session__device={"const": "tv"})
    with pytest.raises(MappingChangedError, match=rf"already imported .* by {first.import_id} .*new topic"):
        env.run([a], changed)
    assert len(env.events()) == n and load_profile(env.root, "events") == before
    same = rows_to_csv(sample_rows(users=4, days=10), tmp_path / "same.csv")  # the same files, same mapping
    assert env.run([a, same], mapping()).written == 0


def test_new_files_under_a_mapping_of_another_meaning_are_refused_and_keep_the_profile(env, tmp_path) -> None:
    """New files under a mapping that changes the churn definition or the event types: the
    log's events so far mean what the first mapping said, and training reads the whole topic
    under one profile. It used to import them and replace the profile; now it refuses before
    writing anything. A mapping that only reads the files differently imports as usual."""
    from pipeline.ingest import MappingChangedError

    a = rows_to_csv(sample_rows(users=4, days=10), tmp_path / "a.csv")
    first = env.run([a], mapping())
    n, before = len(env.events()), load_profile(env.root, "events")
    later = [{"uid": "u1", "t": T0 + 30 * DAY, "kind": "play", "minutes": 3},
             {"uid": "u2", "t": T0 + 30 * DAY, "kind": "pay", "amount": 7.99, "plan": "b"}]  # fmt: skip
    b = rows_to_csv(later, tmp_path / "b.csv")
    inactivity = mapping(churn={"definition": "inactivity", "inactive_days": 14},
                         event_type__values={"play": "session", "pay": "payment", "help": "support_ticket"},
                         fields__cancel=DELETE)  # fmt: skip
    with pytest.raises(MappingChangedError, match=r"changes the churn definition \(cancel -> inactivity "
                                                  r"\(14 days\)\).*profile is unchanged.*new topic"):
        env.run([b], inactivity)
    no_payments = mapping(event_type__values={"play": "session", "quit": "cancel", "help": "support_ticket"})
    with pytest.raises(MappingChangedError, match=r"changes the event types \(no longer \['payment'\]\)"):
        env.run([b], no_payments)
    assert len(env.events()) == n and load_profile(env.root, "events") == before
    # the same meaning, read differently (the timestamp's column renamed in the file): imported
    renamed = rows_to_csv([{**r, "when": r["t"]} for r in later], tmp_path / "c.csv",
                          header=["uid", "when", "kind", "minutes", "amount", "plan"])  # fmt: skip
    s = env.run([renamed], mapping(timestamp={"column": "when", "epoch_unit": "s"}))
    assert s.written == 2 and len(env.events()) == n + 2 and s.import_id != first.import_id
    after = load_profile(env.root, "events")
    assert after["feature_spec"] == before["feature_spec"] and after["churn"] == before["churn"]


def test_refusals_tell_two_mappings_of_one_name_apart(env, tmp_path) -> None:
    """Both files were mapping.yaml, so the refusal read "imported with mapping 'mapping', and
    mapping 'mapping' changes ...". Each is now named by its file, and one file edited in
    place as it was then."""
    from pipeline.ingest import MappingChangedError, load_mapping

    from .helpers import write_mapping

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first_file = write_mapping(tmp_path / "a" / "mapping.yaml")
    a = rows_to_csv(sample_rows(users=4, days=10), tmp_path / "a.csv")
    first = env.run([a], load_mapping(first_file))
    b = rows_to_csv([{"uid": "u1", "t": T0 + 30 * DAY, "kind": "play", "minutes": 3}], tmp_path / "b.csv")
    inactivity = {"churn": {"definition": "inactivity", "inactive_days": 14}, "fields__cancel": DELETE,
                  "event_type__values": {"play": "session", "pay": "payment", "help": "support_ticket"}}  # fmt: skip
    other = load_mapping(write_mapping(tmp_path / "b" / "mapping.yaml", **inactivity))
    with pytest.raises(MappingChangedError) as exc:
        env.run([b], other)
    assert (f"holds events imported by import {first.import_id} with mapping 'mapping' from "
            f"{tmp_path / 'a' / 'mapping.yaml'}, and this import's mapping 'mapping' from "
            f"{tmp_path / 'b' / 'mapping.yaml'} changes the churn definition") in str(exc.value)
    edited = load_mapping(write_mapping(first_file, **inactivity))  # the same file, edited in place
    with pytest.raises(MappingChangedError) as exc:
        env.run([b], edited)
    assert (f"with mapping 'mapping' from {first_file} as it was then, and this import's mapping 'mapping' from "
            f"{first_file} changes") in str(exc.value)
    with pytest.raises(MappingChangedError) as exc:  # every file imported before, under the earlier version
        env.run([a], load_mapping(write_mapping(first_file, fields__session__device={"const": "tv"})))
    assert (f"already imported into topic 'events' by {first.import_id} with mapping 'mapping' from {first_file} "
            f"as it was then, not with this import's mapping 'mapping' from {first_file}.") in str(exc.value)
    assert "import into a new topic" in str(exc.value)


@pytest.mark.parametrize("older", ["spec_derived_otherwise", "no_spec_recorded"])
def test_a_profile_from_older_code_is_kept_not_rederived_or_refused(env, tmp_path, older) -> None:
    """A topic's feature spec is fixed by its first import. A profile written by older code
    (a spec derived otherwise, or none recorded: the default spec) is neither a reason to
    refuse a mapping that only reads files differently, nor rewritten by a later import
    with the same mapping -- the topic's champion was trained on it."""
    import json

    a = rows_to_csv(sample_rows(users=4, days=10), tmp_path / "a.csv")
    env.run([a], mapping())
    path = env.root / "import" / "events" / "profile.json"
    stored = json.loads(path.read_text())
    stored.pop("event_types")  # older code did not record them
    if older == "no_spec_recorded":
        stored.pop("feature_spec")
    else:  # as before 374f07b: a built-in feature more (always 0 where no payment ever fails)
        from pipeline.features.registry import FEATURE_NAMES
        from pipeline.features.spec import FeatureSpec

        spec = FeatureSpec.from_dict(stored["feature_spec"])
        more = set(spec.names) | {"last_payment_failed"}
        stored["feature_spec"] = FeatureSpec(tuple(f for f in FEATURE_NAMES if f in more), spec.actions).document()
    path.write_text(json.dumps(stored))
    later = [{"uid": "u1", "t": T0 + 30 * DAY, "kind": "play", "minutes": 3}]
    same = env.run([rows_to_csv(later, tmp_path / "b.csv")], mapping())
    renamed = env.run([rows_to_csv([{**r, "when": r["t"]} for r in later[:1]] and
                                   [{"uid": "u2", "when": T0 + 31 * DAY, "kind": "play", "minutes": 4}],
                                   tmp_path / "c.csv", header=["uid", "when", "kind", "minutes", "amount", "plan"]),
                       ], mapping(timestamp={"column": "when", "epoch_unit": "s"}))  # fmt: skip
    assert same.written == 1 and renamed.written == 1
    after = json.loads(path.read_text())
    assert after.get("feature_spec") == stored.get("feature_spec")  # kept, not re-derived


def test_interrupted_import_resumes_without_duplicates(env, tmp_path, monkeypatch) -> None:
    import pipeline.ingest.importer as importer

    monkeypatch.setattr(importer, "CHUNK", 7)  # many appends
    path = rows_to_csv(sample_rows(users=6, days=15), tmp_path / "a.csv")
    with _failing_append(monkeypatch, env, at_call=5), pytest.raises(OSError, match="simulated"):
        env.run([path], mapping())
    partial = env.events()
    assert len(partial) > 0
    assert env.ledger.entry(next(iter(env.ledger.load()["imports"])))["state"] == "writing"
    s = env.run([path], mapping())
    assert s.status == "resumed" and s.already_present == len(partial)
    reference = Env(tmp_path / "ref")
    try:
        full = reference.run([path], mapping())
        got = env.events()
        assert len(got) == full.written == s.written + s.already_present
        assert [e["event_id"] for e in got] == [e["event_id"] for e in reference.events()]  # same order too
    finally:
        reference.close()
    assert env.run([path], mapping()).status == "already imported"


def test_import_into_a_kafka_topic(tmp_path) -> None:
    """The same import against librdkafka's in-process mock cluster (the Kafka backend)."""
    from pipeline.clock import FakeClock
    from pipeline.ingest import Ledger, run_import
    from pipeline.log.kafka import KafkaLog
    from pipeline.testing.kafka import MOCK_AUTO_PARTITIONS, MockCluster

    rows = sample_rows(users=4, days=5) + [{"uid": "", "t": T0, "kind": "play", "minutes": 1}]
    path = rows_to_csv(rows, tmp_path / "a.csv")
    with MockCluster(num_brokers=1) as mock:
        n = 2 if mock.exact_partitions else MOCK_AUTO_PARTITIONS
        for topic in ("events", "events.dlq"):
            mock.create_topic(topic, n)
        log = KafkaLog(mock.bootstrap, "events", n, create=False, timeout_s=10)
        ledger = Ledger(tmp_path / "import" / "events")
        try:
            s = run_import([path], mapping(), log, ledger, FakeClock(IMPORT_NOW))
            assert s.rejected_rows == 1 and s.written == sum(s.events_by_type.values())
            got = [decode(v) for p in range(n) for v in log.fetch_values(p, 0, max_records=10_000)[0]]
            assert len(got) == s.written
            for p in range(n):
                evs = [decode(v) for v in log.fetch_values(p, 0, max_records=10_000)[0]]
                assert all(partition_for(e.user_id.encode(), n) == p for e in evs)
                assert [e.ts for e in evs] == sorted(e.ts for e in evs)
            assert run_import([path], mapping(), log, ledger, FakeClock(IMPORT_NOW)).status == "already imported"
            dlq = log.sibling("events.dlq", create=False)
            try:
                dead = [v for p in range(n) for v in dlq.fetch_values(p, 0, max_records=100)[0]]
                assert len(dead) == 1 and b"user_id: empty" in dead[0]
            finally:
                dlq.close()
        finally:
            log.close()


def test_user_ids_equal_but_for_case_or_unicode_form_are_counted_and_named(env, tmp_path) -> None:
    """`chloé@société.fr` three ways (case, a decomposed é) were three users with three
    risks, silently. They stay the source's ids, but the summary counts and names them."""
    import unicodedata

    nfd = unicodedata.normalize("NFD", "chloé@société.fr")
    rows = [{"uid": u, "t": T0 + i * DAY, "kind": "play", "minutes": 5}
            for i, u in enumerate(["chloé@société.fr", "Chloé@Société.fr", nfd, "ann", "bob"])]  # fmt: skip
    s = env.run([rows_to_csv(rows, tmp_path / "a.csv")], mapping())
    d = s.as_dict()
    assert s.users == 5 and d["similar_user_ids"] == 3
    assert sorted(d["similar_user_id_examples"][0]) == sorted(["chloé@société.fr", "Chloé@Société.fr", nfd])


def test_a_byte_order_mark_before_the_first_json_line_is_not_a_rejected_row(env, tmp_path) -> None:
    import json

    rows = [{"uid": u, "t": T0 + i * DAY, "kind": "play", "minutes": 5, "amount": None, "plan": None}
            for i, u in enumerate(["u1", "u2"])]  # fmt: skip
    path = tmp_path / "a.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + b"\n".join(json.dumps(r).encode() for r in rows) + b"\n")
    s = env.run([path], mapping())
    assert s.rejected_rows == 0 and s.events_by_type["session"] == 2


def test_users_left_without_a_signup_are_counted(env, tmp_path) -> None:
    """`signup: {synthesize: none}`: a user whose signup row was rejected (here: no time)
    had 35 workouts and was silently never subscribed -- not scored, not labelled."""
    rows = [
        {"uid": "u1", "t": T0, "kind": "join"}, {"uid": "u1", "t": T0 + DAY, "kind": "play", "minutes": 5},
        {"uid": "u2", "t": "", "kind": "join"}, {"uid": "u2", "t": T0 + DAY, "kind": "play", "minutes": 5},
    ]  # fmt: skip
    m = mapping(event_type__values={"play": "session", "join": "signup", "quit": "cancel"},
                fields__signup={"plan": {"const": "basic"}}, signup={"synthesize": "none"},
                max_rejected_share=0.5)  # fmt: skip
    s = env.run([rows_to_csv(rows, tmp_path / "a.csv")], m)
    assert s.rejected_rows == 1 and s.as_dict()["never_signed_up"] == 1
    later = [{"uid": "u1", "t": T0 + 2 * DAY, "kind": "play", "minutes": 5}]  # signed up by the earlier import
    assert env.run([rows_to_csv(later, tmp_path / "b.csv")], m).never_signed_up == 0


def test_a_decimal_comma_file_reads_its_number_fields(env, tmp_path) -> None:
    """A European spreadsheet export: `;` between fields, `,` as the decimal mark. The
    `csv:` section took only a delimiter, so 3,5 minutes was 'not a number' on every row."""
    path = tmp_path / "eu.csv"
    path.write_text("uid;t;kind;minutes;amount;plan\n"
                    f"u1;{T0};pay;;7,99;b\n"
                    f"u1;{T0 + 60};play;3,5;;\n"
                    f"u1;{T0 + 120};play;12;;\n"
                    f"u1;{T0 + 180};play;1.234,5;;\n")  # fmt: skip
    m = mapping(csv={"delimiter": ";", "decimal": ","})
    s = env.run([path], m)
    got = [(e["type"], e.get("watch_minutes", e.get("amount"))) for e in env.events() if e["type"] != "signup"]
    assert got == [("payment", 7.99), ("session", 3.5), ("session", 12.0)]
    assert s.rejected_rows == 1 and "not a number" in next(iter(s.rejected))
    with pytest.raises(MappingError, match="a decimal comma needs another delimiter"):
        mapping(csv={"decimal": ","})


def test_the_same_rows_gzipped_again_are_the_same_file(env, tmp_path) -> None:
    """q1.csv.gz and q2.csv.gz held the same rows, compressed at different times (the gzip
    header holds the time): the file hash was of the compressed bytes, so both were
    imported and every event was written twice."""
    import gzip

    plain = rows_to_csv(sample_rows(users=3, days=5), tmp_path / "a.csv").read_bytes()
    first, again = tmp_path / "q1.csv.gz", tmp_path / "q2.csv.gz"
    first.write_bytes(gzip.compress(plain, mtime=1))
    again.write_bytes(gzip.compress(plain, mtime=2, compresslevel=1))
    assert first.read_bytes() != again.read_bytes()
    one = env.run([first], mapping())
    n = len(env.events())
    s = env.run([again], mapping())
    assert s.status == "already imported" and s.import_id == one.import_id and s.written == 0
    plain_copy = tmp_path / "plain.csv"
    plain_copy.write_bytes(plain)
    assert env.run([plain_copy], mapping()).written == 0 and len(env.events()) == n


def test_a_gzip_file_an_older_import_knew_by_its_bytes_is_not_imported_again(env, tmp_path) -> None:
    import gzip
    import json

    from pipeline.ingest.readers import bytes_key

    path = tmp_path / "a.csv.gz"
    path.write_bytes(gzip.compress(rows_to_csv(sample_rows(users=3, days=5), tmp_path / "a.csv").read_bytes()))
    env.run([path], mapping())
    n = len(env.events())
    ledger = env.root / "import" / "events" / "ledger.json"
    doc = json.loads(ledger.read_text())
    for entry in doc["imports"].values():  # as an older version recorded it: the compressed bytes' hash
        for f in entry["files"]:
            f["key"] = bytes_key(path)
            f.pop("bytes_key", None)
    ledger.write_text(json.dumps(doc))
    assert env.run([path], mapping()).written == 0 and len(env.events()) == n
