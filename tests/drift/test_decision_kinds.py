"""The decision kinds are spelled in three layers that do not import each other (the store
and the dashboard do not depend on pipeline.drift): a kind added to one must reach all."""

from dashboard.data import DECISION_OUTCOMES
from pipeline.drift import episodes
from pipeline.store.drift import DECISION_ORDER


def test_the_store_orders_every_decision_kind_the_drift_loop_writes() -> None:
    assert sorted(DECISION_ORDER) == sorted(episodes.DECISIONS)
    assert len(set(DECISION_ORDER)) == len(DECISION_ORDER)


def test_the_dashboard_lists_the_same_outcomes_first_as_the_drift_loop() -> None:
    assert sorted(DECISION_OUTCOMES) == sorted(episodes.OUTCOMES)
    assert set(episodes.OUTCOMES) - {episodes.GATE_PROMOTED, episodes.GATE_REJECTED} <= set(episodes.DECISIONS)
