"""Scoring: one risk per user, reasons only at or above the threshold, plan and revenue."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from pipeline.features.registry import FEATURE_INDEX, FEATURE_NAMES, FEATURE_SET_VERSION
from pipeline.features.state import FeatureFrame
from pipeline.stream.model import load_export
from pipeline.stream.scorer import Scorer, to_columns
from pipeline.testing.stream import publish_tiny_champion

T = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.fixture
def model(paths):
    return load_export(publish_tiny_champion(paths, version="3"))


def _frame(n: int = 200, seed: int = 0) -> FeatureFrame:
    rng = np.random.default_rng(seed)
    values = rng.gamma(1.5, 3.0, (n, len(FEATURE_NAMES)))
    values[:, FEATURE_INDEX["plan_tier"]] = rng.integers(-1, 3, n)
    active = rng.random(n) < 0.8
    return FeatureFrame(T, [f"u{i}" for i in range(n)], values, active)


def test_reasons_only_for_high_risk_top3_largest_first(model) -> None:
    frame = _frame()
    chunk = Scorer(threshold=0.5, top_k=3).score(1, frame, model)
    hot = (chunk.risk >= 0.5) & frame.active  # a cancelled user is not "at risk"
    assert 0 < hot.sum() < len(hot) and ((chunk.risk >= 0.5) & ~frame.active).any()
    assert chunk.active.tolist() == frame.active.tolist()
    for is_hot, reasons in zip(hot, chunk.reasons, strict=True):
        if not is_hot:
            assert reasons is None
            continue
        assert len(reasons) == 3 and all(
            set(x) == {"feature", "value", "contribution"} for x in reasons
        )
        c = [x["contribution"] for x in reasons]
        assert c == sorted(c, reverse=True) and c[0] > 0
    assert chunk.model_version == "3" and chunk.partition == 1 and chunk.features_time == T


@pytest.mark.parametrize("exact", [False, True])
def test_contributions_add_up_to_the_models_log_odds(model, exact) -> None:
    frame = _frame(50)
    risk = model.predict(frame.values)
    c = model.contributions(frame.values, exact=exact)
    import xgboost as xgb

    dm = xgb.DMatrix(model.matrix(frame.values), feature_names=list(model.features))
    margin = model.booster.predict(dm, output_margin=True)
    bias = margin - c.sum(axis=1)
    assert np.allclose(bias, bias[0], atol=1e-3)  # one constant bias: contributions are additive
    assert np.allclose(1 / (1 + np.exp(-margin)), risk, atol=1e-6)


def test_inactive_users_get_no_plan_and_no_revenue(model) -> None:
    frame = _frame()
    chunk = Scorer().score(0, frame, model)
    tier = frame.values[:, FEATURE_INDEX["plan_tier"]]
    for i, active in enumerate(frame.active):
        if not active:
            assert chunk.plan[i] is None and chunk.monthly_revenue[i] == 0.0
        elif tier[i] >= 0:
            assert chunk.plan[i] in ("basic", "standard", "premium")
            assert chunk.monthly_revenue[i] == frame.values[i, FEATURE_INDEX["plan_price"]]


def test_to_columns_keeps_every_row_and_the_store_keeps_each_users_newest(model) -> None:
    s = Scorer()
    a = s.score(0, _frame(5, seed=1), model)
    b = s.score(
        0,
        FeatureFrame(
            datetime(2026, 3, 2, tzinfo=UTC),
            ["u1", "u9"],
            _frame(2, seed=2).values,
            np.array([True, True]),
        ),
        model,
    )
    df = to_columns([a, b])
    assert sorted(df["user_id"]) == ["u0", "u1", "u1", "u2", "u3", "u4", "u9"]  # u1's two days
    assert df["features_time"].dtype == "datetime64[us]" and df["active"].dtype == bool
    assert len({len(v) for v in df.values()}) == 1  # every column one value per row
    from pipeline.store import Store

    with Store("sqlite://") as store:
        store.upsert_scores(df)
        cur = store.current_scores(top_k=None, active_only=False).set_index("user_id")
        assert sorted(cur.index) == ["u0", "u1", "u2", "u3", "u4", "u9"]
        assert cur.loc["u1", "features_time"] == b.features_time and cur.loc["u9", "active"]
        assert len(store.score_history(["u1"])) == 2  # one point per day: a's and b's


def test_export_records_the_feature_set(model) -> None:
    assert model.ref.feature_set_version == FEATURE_SET_VERSION and model.features == FEATURE_NAMES


def test_coalesce_keeps_each_users_newest_row_per_history_interval(model) -> None:
    """The writer's coalescing may drop a row only if the store would not keep it: not
    the newest of its user in its history interval."""
    from datetime import timedelta

    from pipeline.store import HistoryPolicy
    from pipeline.stream.scorer import coalesce

    s = Scorer()
    chunks = []
    for k, hours in enumerate((0, 1, 25, 26)):
        f = _frame(3, seed=k)
        chunks.append(s.score(0, FeatureFrame(T + timedelta(hours=hours), f.users, f.values, f.active), model))
    daily = coalesce(chunks, HistoryPolicy(86_400))
    assert [(c.features_time - T, c.user_id) for c in daily] == [
        (timedelta(hours=1), ["u0", "u1", "u2"]), (timedelta(hours=26), ["u0", "u1", "u2"])
    ]  # fmt: skip
    assert [c.features_time - T for c in coalesce(chunks)] == [timedelta(hours=26)]


@pytest.mark.parametrize("seed", range(6))
def test_coalesce_by_slots_keeps_exactly_the_rows_coalesce_by_ids_keeps(seed: int) -> None:
    """The stream's chunks carry their users' state slots and that state's serial, and
    are coalesced column-wise. Random flushes -- several partitions and days, users in
    many chunks, and (odd seeds) a partition's feature state replaced mid-flush: another
    state's slot k may be another user, or the same users come with other slots' serial
    -- keep exactly the rows the id-set path keeps, or more where two states hold the
    same user (the store deduplicates those); never fewer. A rule on slots alone (no
    serial) drops rows of the replaced state's other users and fails this."""
    from datetime import timedelta

    from pipeline.store import HistoryPolicy
    from pipeline.stream.scorer import ScoreChunk, coalesce

    reuse = seed % 2 == 1  # odd seeds: slot k is user k in some chunks, user k+1000 in others

    def chunks(with_slots: bool) -> list[ScoreChunk]:
        r = np.random.default_rng(seed)
        one = {}  # a feature state hands out one string object per user id
        out = []
        for k in range(40):
            n = int(r.integers(1, 30))
            slots = r.choice(60, n, replace=False).astype(np.int64)
            other = reuse and k % 7 == 3
            part = int(r.integers(0, 3))  # a user lives in one partition
            users = [one.setdefault(u, u) for u in (f"p{part}-u{s + 1000 if other else s}" for s in slots.tolist())]
            space = 2 if other else 1  # another state gave slot k to user k + 1000
            if reuse and k % 11 == 5:  # the same users from a third state (other string objects)
                users, space = ["".join(u) for u in users], 3
            out.append(ScoreChunk(part, T + timedelta(hours=int(r.integers(0, 72)) + k), "1", users,
                                  r.random(n), [None] * n, ["basic"] * n, np.full(n, 9.99), np.ones(n, bool),
                                  slots=slots if with_slots else None,
                                  slot_space=space if with_slots else None))  # fmt: skip
        return out

    def rows(kept: list[ScoreChunk]) -> set[tuple]:
        return {(c.partition, c.features_time, u) for c in kept for u in c.user_id}

    for policy in (None, HistoryPolicy(86_400)):
        by_id, by_slot = coalesce(chunks(False), policy), coalesce(chunks(True), policy)
        assert rows(by_id) <= rows(by_slot)
        if not reuse:
            assert rows(by_slot) == rows(by_id)
            assert [len(c) for c in by_slot] == [len(c) for c in by_id]


@pytest.mark.parametrize("seed", range(6))
def test_superseded_reasons_by_slot_keep_what_the_id_rule_keeps(seed: int) -> None:
    """Chunks with slots drop superseded pending reasons by slot: exactly the id rule's
    rows (a row keeps its reasons iff it is at its user's newest time in the write), or
    more where two states hold the same user (odd seeds: a state replaced mid-write);
    never fewer. Chunks in any time order, ties included, slots growing past earlier ones."""
    from datetime import timedelta

    from pipeline.stream.scorer import Explain, ScoreChunk, drop_superseded_reasons

    reuse = seed % 2 == 1

    def chunks(with_slots: bool) -> list[ScoreChunk]:
        r = np.random.default_rng(seed)
        out = []
        for k in range(50):
            n = int(r.integers(1, 25))
            top = 30 + 2 * k  # later chunks reach slots the first ones never had
            slots = r.choice(top, n, replace=False).astype(np.int64)
            other = reuse and k % 7 == 3
            part = int(r.integers(0, 2))
            users = [f"p{part}-u{s + 1000 if other else s}" for s in slots.tolist()]
            rows = np.flatnonzero(r.random(n) < 0.4).astype(np.int64)
            pending = Explain(rows, np.zeros((len(rows), 1)), lambda v: [None] * len(v), (0, 0)) if len(rows) else None
            out.append(ScoreChunk(part, T + timedelta(hours=int(r.integers(0, 30))), "1", users, r.random(n),
                                  [None] * n, ["basic"] * n, np.full(n, 9.99), np.ones(n, bool), pending,
                                  slots=slots if with_slots else None,
                                  slot_space=(2 if other else 1) if with_slots else None))  # fmt: skip
        return out

    def kept(cs: list[ScoreChunk]) -> set[tuple]:
        return {(k, c.user_id[i]) for k, c in enumerate(cs) if c.pending is not None for i in c.pending.rows.tolist()}

    by_id, by_slot = chunks(False), chunks(True)
    newest: dict[str, object] = {}
    for c in by_id:
        for u in c.user_id:
            newest[u] = max(newest.get(u, c.features_time), c.features_time)
    want = {(k, c.user_id[i]) for k, c in enumerate(by_id) if c.pending is not None
            for i in c.pending.rows.tolist() if c.features_time == newest[c.user_id[i]]}  # fmt: skip
    drop_superseded_reasons(by_id)
    drop_superseded_reasons(by_slot)
    assert kept(by_id) == want and len(want) > 0
    assert want <= kept(by_slot)
    if not reuse:
        assert kept(by_slot) == want


def _eager_and_deferred(model, hours: tuple[int, ...]) -> tuple:
    """Two scorers over the same frames (one per offset in ``hours``): reasons computed in
    the batch (eager) and deferred to the writer; returns (eager scorer, deferred scorer,
    eager chunks, deferred chunks)."""
    from datetime import timedelta

    eager_s, lazy_s = Scorer(threshold=0.3), Scorer(threshold=0.3)
    eager, lazy = [], []
    for k, h in enumerate(hours):
        f = _frame(60, seed=k)
        f = FeatureFrame(T + timedelta(hours=h), f.users, f.values, f.active)
        eager.append(eager_s.score(0, f, model))
        lazy.append(lazy_s.score(0, f, model, defer=True))
    return eager_s, lazy_s, eager, lazy


def test_deferred_reasons_equal_eager_ones_for_the_rows_kept(model) -> None:
    """The stream defers reasons to its writer (computed after coalescing, for the rows it
    writes); they must be exactly the reasons the batch would have computed."""

    from pipeline.store import HistoryPolicy
    from pipeline.stream.scorer import coalesce, resolve_reasons

    eager_s, lazy_s, eager, lazy = _eager_and_deferred(model, (0, 1, 25))
    assert all(c.pending is None for c in eager) and all(r is None for c in lazy for r in c.reasons)
    assert sum(len(c.pending.rows) if c.pending else 0 for c in lazy) == eager_s.reasons_rows > 0 and lazy_s.reasons_rows == 0
    kept_eager, kept_lazy = coalesce(eager, HistoryPolicy(86_400)), coalesce(lazy, HistoryPolicy(86_400))
    # split a chunk as the writer does (take), then resolve everything in one call
    head = kept_lazy[0]
    kept_lazy[0:1] = [head.take(list(range(7))), head.take(list(range(7, len(head))))]
    explained = resolve_reasons(kept_lazy)
    assert 0 < explained == lazy_s.reasons_rows < eager_s.reasons_rows  # superseded rows never explained
    # deferred reasons go only to the store: built as the very JSON text it writes for the
    # eager ones (ReasonsJSON), which it takes as given
    from pipeline.store.rows import ReasonsJSON, _json_text

    lazy_reasons = [r for c in kept_lazy for r in c.reasons]
    assert all(r is None or type(r) is ReasonsJSON for r in lazy_reasons) and any(lazy_reasons)
    assert lazy_reasons == [None if r is None else _json_text(r) for c in kept_eager for r in c.reasons]
    assert all(c.pending is None for c in kept_lazy)


def test_reasons_only_for_current_scores_store_the_same(model) -> None:
    """Within one write, a user's older rows (other history intervals) are history points
    at most; their reasons are never computed, and the store ends up the same."""

    from pipeline.store import HistoryPolicy, Store
    from pipeline.stream.scorer import coalesce, drop_superseded_reasons, resolve_reasons

    eager_s, lazy_s, eager, lazy = _eager_and_deferred(model, (0, 25, 49))
    policy = HistoryPolicy(86_400)
    kept = coalesce(lazy, policy)
    drop_superseded_reasons(kept)
    resolve_reasons(kept)
    assert 0 < lazy_s.reasons_rows < eager_s.reasons_rows
    out = []
    for chunks in (coalesce(eager, policy), kept):
        with Store("sqlite://") as store:
            store.upsert_scores(to_columns(chunks), history=policy)
            cur = store.current_scores(top_k=None, active_only=False).set_index("user_id").sort_index()
            out.append((cur[["risk", "reasons"]].to_dict(), store.score_history(list(cur.index)).to_dict()))
    assert out[0] == out[1]
