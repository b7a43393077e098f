"""The two example sources with their own action vocabularies (docs/examples/make_*_sample.py):
seeded, importable with their mappings, and churn depends on the actions as documented."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from pipeline.config import PROJECT_ROOT
from pipeline.features.spec import spec_for
from pipeline.log import open_log
from pipeline.training.data import build_dataset

EXAMPLES = PROJECT_ROOT / "docs" / "examples"


def _generator(name: str):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _import(tmp: Path, csv: Path, mapping: str) -> dict:
    from churn.cli.app import app

    r = CliRunner().invoke(app, ["--data-dir", str(tmp / "data"), "--partitions", "2", "import", str(csv),
                                 "--mapping", str(EXAMPLES / mapping), "--json"])
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def _churned_within(df: pd.DataFrame, user: str, when: str, churn_users: set[str]) -> pd.Series:
    return df.groupby(user)[when].first().index.isin(churn_users)


@pytest.mark.parametrize(("name", "kw", "mapping", "actions"), [
    ("make_saas_sample", {"accounts": 700, "days": 120}, "saas_mapping.yaml",
     ("dashboard_view", "report_export", "integration_sync", "invite_sent", "error_shown", "seat_removed",
      "billing_page_view", "api_call")),
    ("make_shop_sample", {"customers": 700, "days": 120}, "shop_mapping.yaml", ("view", "cart", "purchase", "return")),
])
def test_example_source_imports_with_its_vocabulary_and_trains_on_it(tmp_path, name, kw, mapping, actions) -> None:
    gen = _generator(name)
    a, b = gen.generate(**kw), gen.generate(**kw)
    pd.testing.assert_frame_equal(a, b)  # seeded: same seed, same log
    csv = gen.write(a, tmp_path / f"{name}.csv.gz")
    summary = _import(tmp_path, csv, mapping)
    assert summary["status"] == "imported" and summary["rejected"] == 0
    assert summary["events_by_type"]["activity"] > 10_000 and summary["events_by_type"]["cancel"] > 30

    spec = spec_for(tmp_path / "data", "events")
    assert spec.action_names == actions
    assert summary["feature_spec"] == {"version": spec.version, "features": len(spec.names),
                                       "built_in": len(spec.builtin), "actions": list(actions)}
    with open_log(tmp_path / "data" / "log", "events") as log:
        ds = build_dataset(log, horizon_days=14, every_days=3)
    assert ds.spec == spec and ds.features == list(spec.names) and ds.feature_set_version == spec.version
    assert ds.registry_doc["feature_spec"]["version"] == spec.version
    for act in actions:  # every declared action is seen by the features
        assert ds.table[f"act_{act}_30d"].sum() > 0, act
    assert 0.01 < ds.table.label.mean() < 0.3


def test_saas_mechanisms_hold_in_the_generated_data() -> None:
    df = _generator("make_saas_sample").generate(accounts=1500, days=150)
    churned = set(df.loc[df.event == "subscription_cancelled", "account_id"])
    per = df.pivot_table(index="account_id", columns="event", values="ts", aggfunc="size", fill_value=0)
    y = per.index.isin(churned)
    days = df.groupby("account_id").ts.agg(lambda t: (t.max() - t.min()) / 86400 + 1)
    rate = per.div(days, axis=0)
    # raises: errors and seat removals are more frequent among churners; lowers: syncs and invites less
    for action, sign in [("error_shown", 1), ("seat_removed", 1), ("integration_sync", -1), ("invite_sent", -1)]:
        diff = rate.loc[y, action].mean() - rate.loc[~y, action].mean()
        assert np.sign(diff) == sign, (action, diff)


def test_shop_return_effect_depends_on_tenure() -> None:
    df = _generator("make_shop_sample").generate(customers=2500, days=150)
    t = pd.to_datetime(df.time)
    first = t.groupby(df.customer).transform("min")
    last = t.groupby(df.customer).max()
    lapsed = last[last < t.max() - pd.Timedelta(days=30)].index  # quiet for 30 days at the end
    early = df[(df.action == "return") & (t - first < pd.Timedelta(days=30))].customer.unique()
    late = df[(df.action == "return") & (t - first >= pd.Timedelta(days=60))].customer.unique()
    new = first.groupby(df.customer).first() > t.min() + pd.Timedelta(days=1)  # joined inside the window
    early = [c for c in early if new[c]]
    share = lambda users: np.isin(users, lapsed).mean()  # noqa: E731
    assert share(early) > share(late) + 0.1  # a return in the first month loses the customer


def test_stream_and_batch_give_identical_per_action_vectors_on_the_saas_source(tmp_path) -> None:
    """The imported SaaS log, some records delayed (a few beyond the lateness), streamed in random
    micro-batches with a checkpoint restore, equals the batch replay read at the same times."""
    from datetime import timedelta

    from pipeline.events import event_time
    from pipeline.features.engine import FeatureEngine
    from pipeline.features.replay import replay_partition
    from pipeline.features.state import FeatureState
    from pipeline.features.timebase import HOUR_US, to_us
    from pipeline.log import MemoryLog

    gen = _generator("make_saas_sample")
    _import(tmp_path, gen.write(gen.generate(accounts=300, days=90), tmp_path / "s.csv.gz"), "saas_mapping.yaml")
    spec = spec_for(tmp_path / "data", "events")
    rng = np.random.default_rng(3)
    with open_log(tmp_path / "data" / "log", "events") as src:
        values, _ = src.fetch_values(0, 0, max_records=10**7, max_bytes=1 << 40)
    ts = np.array([to_us(event_time(v)) for v in values], dtype=np.int64)
    delay = np.where(rng.random(len(ts)) < 0.02, rng.integers(0, 30 * HOUR_US, len(ts)), 0)
    log = MemoryLog(num_partitions=1)
    log.append(0, [values[i] for i in np.argsort(ts + delay, kind="stable").tolist()])

    late = timedelta(hours=24)
    engine = FeatureEngine(1, late, spec=spec)
    end, offset, reads = log.end_offset(0), 0, []
    restore_at = int(rng.integers(end // 4, 3 * end // 4))
    while offset < end:
        batch, nxt = log.fetch_values(0, offset, max_records=int(rng.integers(1, 3000)))
        out = engine.process(0, batch, first_offset=offset)
        following, _ = log.fetch_values(0, nxt, max_records=1)
        if out.touched and (not following or event_time(following[0]) > out.watermark):
            reads.append(engine.read(0, out.watermark, out.touched))
        if offset <= restore_at < nxt:
            blob = engine.snapshot(0)
            engine = FeatureEngine(1, late, spec=spec)
            engine.restore(0, blob)
        offset = nxt
    assert len(reads) > 10 and engine.state(0).late_total > 0
    batch_state, got = FeatureState(late, spec=spec), []
    replay_partition(log, 0, batch_state, [to_us(r.t) for r in reads],
                     on_cutoff=lambda t, st: got.append(st.read(t, reads[len(got)].users)), batch=4096)
    action_cols = [spec.engine_columns.index(c) for c in spec.action_columns]
    assert any(r.values[:, action_cols].any() for r in reads)  # the action block is exercised
    for s, b in zip(reads, got, strict=True):
        assert s.users == b.users and np.array_equal(s.values, b.values)
    assert batch_state.snapshot() == engine.snapshot(0)
