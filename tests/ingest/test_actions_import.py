"""The mapping's action vocabulary: validation, activity events, undeclared actions, the
topic's feature spec in the profile (what training and the stream load)."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from pipeline.features.registry import FEATURE_NAMES
from pipeline.features.spec import DEFAULT_SPEC, MAX_ACTIONS, spec_for, spec_for_log
from pipeline.ingest import MappingError, parse_mapping

from .helpers import T0, Env, mapping_dict, rows_to_csv

DAY = 86400
HEADER = ["uid", "t", "kind", "minutes", "amount", "plan", "feature"]


def actions_mapping(**changes):
    """The base mapping plus two source actions and a generic `use` type whose action is a column."""
    d = mapping_dict(**changes)
    d["event_type"]["values"] |= {"export": "activity", "add_seat": {"type": "activity",
                                                                    "fields": {"value": {"column": "amount"}}},
                                  "use": {"type": "activity", "fields": {"action": {"column": "feature"}}}}
    d["event_type"]["unmapped"] = "reject"
    d.setdefault("actions", {"declare": ["export", {"name": "add_seat", "direction": "lowers"},
                                         {"name": "report", "direction": "raises"}]})
    return d


def parse(d):
    return parse_mapping(d, "test")


def test_declared_vocabulary_is_parsed_with_directions() -> None:
    m = parse(actions_mapping())
    assert [(a.name, a.direction) for a in m.actions] == [("export", 0), ("add_seat", -1), ("report", 1)]
    assert m.undeclared == "reject" and m.fields_for("export")["action"].const == "export"  # default: the value
    d = actions_mapping()
    d["actions"]["undeclared"] = "other"
    assert [a.name for a in parse(d).actions][-1] == "other"  # the catch-all is part of the vocabulary


@pytest.mark.parametrize(
    ("edit", "key", "hint"),
    [
        (lambda d: d.pop("actions"), "actions", "must be declared"),
        (lambda d: d["actions"].update(declare=[]), "actions.declare", "non-empty"),
        (lambda d: d["actions"].update(declare=["export", "Add Seat"]), "actions.declare[1].name", "lower-case"),
        (lambda d: d["actions"].update(declare=["export", "export"]), "actions.declare[1].name", "twice"),
        (lambda d: d["actions"].update(declare=[{"name": "export", "direction": "up"}]),
         "actions.declare[0].direction", "raises"),
        (lambda d: d["actions"].update(undeclared="keep"), "actions.undeclared", "reject"),
        (lambda d: d["actions"].update(declare=["report"]), "event_type.values.export", "not in actions.declare"),
        (lambda d: d["actions"].update(declare=[f"a{i}" for i in range(MAX_ACTIONS + 1)]), "actions.declare",
         f"at most {MAX_ACTIONS}"),
    ],
)
def test_vocabulary_mistakes_name_the_key(edit, key, hint) -> None:
    d = actions_mapping()
    edit(d)
    with pytest.raises(MappingError, match=f"^mapping: {re.escape(key)}: .*{hint}"):
        parse(d)


def test_actions_without_any_activity_mapping_is_an_error() -> None:
    d = mapping_dict()
    d["actions"] = {"declare": ["export"]}
    with pytest.raises(MappingError, match="mapping: actions: declared, but no event_type.values entry maps to activity"):
        parse(d)


def _rows():
    rows = []
    for d in range(40):
        for u in range(4):
            t = T0 + d * DAY + 3600 * (u + 1)
            rows.append({"uid": f"u{u}", "t": t, "kind": "play", "minutes": 10})
            if d % (u + 2) == 0:
                rows.append({"uid": f"u{u}", "t": t + 60, "kind": "export"})
            if d == 5:
                rows.append({"uid": f"u{u}", "t": t + 120, "kind": "add_seat", "amount": 3})
            rows.append({"uid": f"u{u}", "t": t + 180, "kind": "use", "feature": "report" if u % 2 else "teleport"})
    rows.append({"uid": "u0", "t": T0 + 41 * DAY, "kind": "quit"})
    return rows


@pytest.fixture
def env(tmp_path):
    e = Env(tmp_path / "data")
    yield e
    e.close()


def test_import_writes_activity_events_and_dead_letters_undeclared_actions(env, tmp_path) -> None:
    rows = _rows()
    s = env.run([rows_to_csv(rows, tmp_path / "a.csv", HEADER)], parse(actions_mapping()))
    teleports = sum(1 for r in rows if r.get("feature") == "teleport")
    assert s.rejected == Counter({"action: not in actions.declare (actions.undeclared: reject)": teleports})
    acts = [e for e in env.events() if e["type"] == "activity"]
    assert Counter(e["action"] for e in acts) == Counter(
        {"export": sum(r["kind"] == "export" for r in rows), "add_seat": 4, "report": 80})
    assert {e["value"] for e in acts if e["action"] == "add_seat"} == {3.0}
    assert all(e["value"] is None for e in acts if e["action"] != "add_seat")
    dl = [d for d in env.dead_letters() if d["reason"].startswith("action")]
    assert len(dl) == teleports and dl[0]["field"] == "actions.declare" and "teleport" in dl[0]["value"]

    spec = spec_for(env.root, "events")  # what training and the stream load
    assert spec_for_log(env.log) == spec  # training's default: the file log's data dir
    assert spec.action_names == ("export", "add_seat", "report")
    assert "act_report_30d" in spec.names and "payments_30d" in spec.names
    assert "downgrades_30d" not in spec.names and "downgrades_30d" in FEATURE_NAMES  # no plan_change mapped
    assert spec.directions["act_add_seat_7d"] == -1 and spec.directions["act_report_days_since_last"] == -1
    assert not any(f.startswith("act_export") for f in spec.directions)
    assert spec.version != DEFAULT_SPEC.version


def test_catch_all_counts_undeclared_actions_as_other(env, tmp_path) -> None:
    d = actions_mapping()
    d["actions"]["undeclared"] = "other"
    s = env.run([rows_to_csv(_rows(), tmp_path / "a.csv", HEADER)], parse(d))
    assert not s.rejected
    acts = Counter(e["action"] for e in env.events() if e["type"] == "activity")
    assert acts["other"] == 80 and "teleport" not in acts
    assert "act_other_30d" in spec_for(env.root, "events").names


def test_simulated_topic_has_the_default_spec(tmp_path) -> None:
    from pipeline.log import MemoryLog

    assert spec_for(tmp_path, "events") is DEFAULT_SPEC
    assert spec_for_log(MemoryLog(num_partitions=1)) is DEFAULT_SPEC


def test_spec_leaves_out_the_built_in_features_the_source_cannot_supply() -> None:
    from pipeline.features.spec import FeatureSpec
    from pipeline.ingest.profile import source_profile

    from .helpers import mapping

    p = source_profile(mapping())  # no actions: built-ins only
    spec = FeatureSpec.from_dict(p["feature_spec"])
    assert set(spec.names) == set(FEATURE_NAMES) - set(p["defaulted"]) and not spec.actions
    for f in ("payments_failed_30d", "last_payment_failed"):  # payments, no payment_failed: always 0
        assert f not in spec.names and f not in spec.directions
    assert spec.directions == {"tickets_7d": 1, "tickets_30d": 1, "sessions_trend_7v7": -1, "watch_trend_7v7": -1}
    assert spec.version == p["feature_spec"]["version"] != DEFAULT_SPEC.version
    bad = dict(p["feature_spec"], version="0" * 16)
    with pytest.raises(Exception, match="hashes to"):  # a hand-edited spec is refused
        FeatureSpec.from_dict(bad)
