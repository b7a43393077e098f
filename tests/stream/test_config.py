"""Stream settings: validated at construction, sized sensibly from partial options."""

from __future__ import annotations

import pytest

from pipeline.config import Settings
from pipeline.errors import ConfigError
from pipeline.stream.config import StreamConfig


@pytest.mark.parametrize(
    "bad",
    [
        {"batch_size": 0},
        {"group": "-x"},
        {"alert_threshold": 0.0},
        {"workers": 5, "max_workers": 4},
        {"reasons_method": "shap"},
        {"max_events_per_s": 0},
    ],
)
def test_invalid_values_are_named(bad) -> None:
    with pytest.raises(ConfigError) as exc:
        StreamConfig(**bad)
    assert next(iter(bad)) in str(exc.value)


def test_sizes_stretch_each_other_and_clamp_to_partitions() -> None:
    s = Settings()
    assert StreamConfig.from_settings(s, workers=6).max_workers == 6
    assert StreamConfig.from_settings(s, min_workers=3).workers == 3
    c = StreamConfig.from_settings(s, workers=3, max_workers=8).clamp_workers(partitions=2)
    assert (c.min_workers, c.workers, c.max_workers) == (1, 2, 2)


def test_settings_fields_are_picked_up_when_present() -> None:
    class WithStream(Settings):
        stream_batch_size: int = 250

    assert StreamConfig.from_settings(WithStream()).batch_size == 250
    assert StreamConfig.from_settings(WithStream(), batch_size=10).batch_size == 10


def test_history_interval_sets_the_writers_history_policy() -> None:
    from pipeline.errors import ConfigError
    from pipeline.store import HistoryPolicy
    from pipeline.stream.worker import history_policy

    assert history_policy(StreamConfig()) == HistoryPolicy(86_400.0)  # one point per user per day
    assert history_policy(StreamConfig(history_interval_s=3600)) == HistoryPolicy(3600.0)
    assert history_policy(StreamConfig(history_interval_s=0)) is None  # no history
    with pytest.raises(ConfigError, match="history_interval_s"):
        StreamConfig(history_interval_s=-1)
