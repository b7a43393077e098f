"""The feature spec: names, version by content, directions, the cap, round trips."""

from __future__ import annotations

import pytest

from pipeline.errors import FeatureError
from pipeline.features.kernels import ACTION_BLOCK
from pipeline.features.registry import FEATURE_NAMES, FEATURE_SET_VERSION
from pipeline.features.spec import (
    ACTION_FEATURES,
    DEFAULT_SPEC,
    MAX_ACTIONS,
    Action,
    FeatureSpec,
    direction_of,
)


def test_simulator_spec_is_exactly_todays_feature_set() -> None:
    assert DEFAULT_SPEC.names == FEATURE_NAMES and DEFAULT_SPEC.engine_columns == FEATURE_NAMES
    assert DEFAULT_SPEC.version == FEATURE_SET_VERSION == "52cc302a6a1546a9"  # the value before specs existed
    assert DEFAULT_SPEC.directions == {"payments_failed_30d": 1, "last_payment_failed": 1, "tickets_7d": 1,
                                       "tickets_30d": 1, "sessions_trend_7v7": -1, "watch_trend_7v7": -1}
    assert FeatureSpec.from_dict(DEFAULT_SPEC.document()) == DEFAULT_SPEC


def test_names_version_and_directions_follow_the_vocabulary() -> None:
    s = FeatureSpec.from_vocabulary(["view", Action("buy", -1), Action("refund", 1)], builtin=("tenure_days",))
    assert s.names[:3] == ("tenure_days", "activity_days_7d", "activity_days_30d")
    assert len(s.names) == 1 + 2 + 3 * len(ACTION_FEATURES) and len(ACTION_FEATURES) == ACTION_BLOCK
    assert s.engine_columns[: len(FEATURE_NAMES)] == FEATURE_NAMES and s.engine_columns[len(FEATURE_NAMES):] == \
        s.action_columns
    assert s.directions == {**{f"act_buy_{x}": -1 for x in ACTION_FEATURES}, "act_buy_days_since_last": 1,
                            **{f"act_refund_{x}": 1 for x in ACTION_FEATURES}, "act_refund_days_since_last": -1}
    again = FeatureSpec.from_vocabulary(["view", Action("buy", -1), Action("refund", 1)], builtin=("tenure_days",))
    assert again.version == s.version and len(s.version) == 16
    others = [FeatureSpec.from_vocabulary(["buy", "view", Action("refund", 1)], builtin=("tenure_days",)),  # order
              FeatureSpec.from_vocabulary(["view", "buy", Action("refund", 1)], builtin=("tenure_days",)),  # direction
              FeatureSpec.from_vocabulary(["view", Action("buy", -1), Action("refund", 1)])]  # built-ins
    assert len({s.version, *(o.version for o in others)}) == 4
    assert FeatureSpec.from_json(s.to_json()) == s


def test_invalid_specs_are_refused_with_the_remedy() -> None:
    with pytest.raises(FeatureError, match=f"at most {MAX_ACTIONS}"):
        FeatureSpec.from_vocabulary([f"a{i}" for i in range(MAX_ACTIONS + 1)])
    FeatureSpec.from_vocabulary([f"a{i}" for i in range(MAX_ACTIONS)])  # the cap itself is fine
    with pytest.raises(FeatureError, match="more than once"):
        FeatureSpec.from_vocabulary(["a", "a"])
    with pytest.raises(FeatureError, match="lower-case"):
        Action("Add Cart")
    with pytest.raises(FeatureError, match="unknown built-in"):
        FeatureSpec(("sessions_7d", "session_7d"))
    with pytest.raises(FeatureError, match="raises"):
        direction_of("up")
    assert direction_of("raises") == 1 and direction_of("lowers") == -1
    with pytest.raises(FeatureError, match="other per-action features"):
        FeatureSpec.from_dict({"actions": [{"name": "a"}], "action_windows": [7, 30]})


def test_candidates_naming_features_the_topic_lacks_are_reported() -> None:
    from pipeline.training.specs import parse_spec

    s = FeatureSpec.from_vocabulary(["view"], builtin=("tenure_days",))
    rule = parse_spec({"kind": "rule", "features": ["days_since_last_session"]}, "rule")
    assert rule.missing_features(list(s.names)) == ["days_since_last_session"]
    xgb = parse_spec({"kind": "xgboost", "features": "all", "monotone": {"tickets_7d": 1}}, "xgboost")
    assert xgb.missing_features(list(s.names)) == []  # a constraint on an absent feature constrains nothing
    assert xgb.resolve_features(list(s.names)) == s.names
