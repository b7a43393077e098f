"""The compiled tree kernel scores exactly as XGBoost does, or is not used (with the reason)."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.stream import forest as forest_mod
from pipeline.stream.forest import compile_forest
from pipeline.stream.model import ModelRef, ScoringModel, import_xgboost

xgb = import_xgboost()


def _data(n: int, width: int, seed: int, missing: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, width)).astype(np.float32)
    X[:, 0] = np.round(X[:, 0] * 3)  # a few distinct values: rows land exactly on split values
    y = ((X[:, 0] + X[:, 1] - 0.5 * X[:, 2] + rng.normal(scale=0.7, size=n)) > 0.3).astype(np.float32)
    X[rng.random(X.shape) < missing] = np.nan
    return X, y


def _booster(depth: int, rounds: int = 30, seed: int = 0, width: int = 6, **params: object):
    X, y = _data(2_000, width, seed)
    names = [f"feat_{i}" for i in range(width)]
    dtrain = xgb.DMatrix(X, label=y, feature_names=names, nthread=1)
    return xgb.train({"max_depth": depth, "eta": 0.3, "objective": "binary:logistic", "nthread": 1, "seed": seed,
                      "tree_method": "hist", **params}, dtrain, rounds)  # fmt: skip


def _inputs(width: int, seed: int) -> list[np.ndarray]:
    X, _ = _data(3_001, width, seed + 100, missing=0.15)
    X[5, 1] = np.inf
    X[6, 2] = -np.inf
    dense = np.where(np.isnan(X), np.float32(0.5), X)
    return [X, dense, X[:0], X[:1], X[:7], X[:8], X[:9], dense[:1000]]


@pytest.mark.parametrize("depth", [1, 3, 4, 5, 6, 7, 8])
def test_margins_and_probabilities_equal_xgboost_bit_for_bit(depth: int) -> None:
    booster = _booster(depth, seed=depth)
    forest, why = compile_forest(booster)
    assert forest is not None, why
    assert why == ""
    for X in _inputs(6, depth):
        want_margin = booster.inplace_predict(X, predict_type="margin")
        assert np.array_equal(forest.margin(X), np.asarray(want_margin, np.float32))
        assert np.array_equal(forest.predict(X), np.asarray(booster.inplace_predict(X), np.float32))


def test_constraints_and_uneven_trees_are_still_exact() -> None:
    # monotone constraints and a large min_child_weight leave trees of uneven depth (leaves above
    # the last level, laid out down both sides)
    booster = _booster(5, rounds=60, min_child_weight=40, monotone_constraints="(1,1,-1,0,0,0)", subsample=0.7)
    depths = {len(t) for t in booster.get_dump()}
    assert len(depths) > 1  # not every tree has the same shape
    forest, why = compile_forest(booster)
    assert forest is not None, why
    for X in _inputs(6, 1):
        assert np.array_equal(forest.predict(X), np.asarray(booster.inplace_predict(X), np.float32))


@pytest.mark.parametrize(
    ("params", "said"),
    [
        ({"objective": "reg:squarederror"}, "objective 'reg:squarederror'"),
        ({"objective": "multi:softprob", "num_class": 3}, "objective 'multi:softprob'"),
        ({"booster": "dart"}, "booster 'dart'"),
    ],
)
def test_an_unsupported_model_keeps_xgboost_with_the_reason(params: dict, said: str) -> None:
    X, y = _data(500, 4, 3)
    if params.get("num_class"):
        y = (np.arange(500) % 3).astype(np.float32)
    booster = xgb.train({"max_depth": 3, "nthread": 1, **params}, xgb.DMatrix(X, label=y), 5)
    forest, why = compile_forest(booster)
    assert forest is None
    assert said in why


def test_categorical_splits_are_not_compiled() -> None:
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"c": pd.Categorical(rng.choice(list("abcdef"), 600)), "x": rng.normal(size=600)})
    y = (frame["c"].isin(["a", "b"]) ^ (frame["x"] > 1)).astype(float)
    booster = xgb.train({"max_depth": 3, "nthread": 1, "objective": "binary:logistic", "max_cat_to_onehot": 1},
                        xgb.DMatrix(frame, label=y, enable_categorical=True), 10)  # fmt: skip
    forest, why = compile_forest(booster)
    assert forest is None
    assert "categorical features" in why


def test_too_deep_an_ensemble_is_not_compiled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(forest_mod, "MAX_DEPTH", 2)
    forest, why = compile_forest(_booster(4))
    assert forest is None
    assert "depth 4" in why


@pytest.mark.parametrize(("kernel", "depth"), [("_margins_by_level", 3), ("_margins", 8)])
def test_any_difference_on_the_probe_rows_keeps_xgboost(monkeypatch: pytest.MonkeyPatch, kernel: str,
                                                        depth: int) -> None:  # fmt: skip
    real = getattr(forest_mod, kernel)

    def off_by_one_ulp(X, *args):  # type: ignore[no-untyped-def]
        out = real(X, *args)
        if len(out):
            out[len(out) // 2] = np.nextafter(out[len(out) // 2], np.float32(np.inf))
        return out

    monkeypatch.setattr(forest_mod, kernel, off_by_one_ulp)
    forest, why = compile_forest(_booster(depth))
    assert forest is None
    assert "differ from XGBoost's" in why


@pytest.mark.parametrize("depth", range(1, 9))
def test_both_kernels_give_the_same_margins_at_every_depth(depth: int) -> None:
    """The level kernel and the walk agree bit for bit, with and without missing values
    and infinities, at every batch size around the walk's blocks of eight; and each depth
    is scored by the kernel ``LEVEL_DEPTH`` assigns it."""
    forest, why = compile_forest(_booster(depth, rounds=12, seed=depth))
    assert forest is not None, why
    args = (forest.feature, forest.split, forest.right_if_missing, forest.leaf, forest.depth, forest.base_margin)
    for X in _inputs(6, depth):
        X = np.ascontiguousarray(X, np.float32)
        for missing in (True, bool(np.isnan(X).any())):
            walk = forest_mod._margins(X, *args, missing)
            level = forest_mod._margins_by_level(np.ascontiguousarray(X.T), *args, missing)
            assert np.array_equal(walk, level)
    chosen = "_margins_by_level" if depth <= forest_mod.LEVEL_DEPTH else "_margins"
    calls: list[str] = []
    for name in ("_margins", "_margins_by_level"):
        real = getattr(forest_mod, name)
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(forest_mod, name, lambda *a, _n=name, _r=real: calls.append(_n) or _r(*a))
            forest.margin(_inputs(6, depth)[1][:20])
    assert calls == [chosen]


def _model(booster, compiled: bool) -> ScoringModel:  # type: ignore[no-untyped-def]
    # the engine's columns hold the model's features in another order, and more
    engine = ("other", *reversed(booster.feature_names), "unused")
    return ScoringModel(ModelRef("7", "/nowhere", "v1"), tuple(booster.feature_names), booster=booster,
                        engine_columns=engine, compiled=compiled)  # fmt: skip


def test_the_scoring_model_uses_the_kernel_and_scores_as_before() -> None:
    booster = _booster(4)
    # the model's features in another order than the engine's columns, as a topic's spec may have them
    booster.feature_names = [f"feat_{i}" for i in range(6)]
    fast, plain = _model(booster, compiled=True), _model(booster, compiled=False)
    assert fast.predictor == "compiled trees"
    assert plain.predictor == "xgboost"
    rng = np.random.default_rng(9)
    values = rng.normal(size=(2_500, 8))
    values[rng.random(values.shape) < 0.05] = np.nan
    assert np.array_equal(fast.predict(values), plain.predict(values))
    assert np.array_equal(fast.predict(values[:0]), plain.predict(values[:0]))


def test_a_model_that_cannot_be_compiled_says_why_and_scores_with_xgboost() -> None:
    X, y = _data(500, 6, 3)
    booster = xgb.train({"max_depth": 3, "nthread": 1, "objective": "reg:squarederror"},
                        xgb.DMatrix(X, label=y, feature_names=[f"feat_{i}" for i in range(6)]), 5)  # fmt: skip
    model = _model(booster, compiled=True)
    assert model.forest is None
    assert model.predictor.startswith("xgboost (objective 'reg:squarederror'")
    values = np.random.default_rng(1).normal(size=(50, 8))
    assert np.array_equal(model.predict(values), _model(booster, compiled=False).predict(values))


def _approx(booster, X: np.ndarray) -> np.ndarray:  # type: ignore[no-untyped-def]
    dm = xgb.DMatrix(X, nthread=1)
    out = booster.predict(dm, pred_contribs=True, approx_contribs=True, validate_features=False)
    return np.asarray(out, np.float32).reshape(len(X), X.shape[1] + 1)[:, :-1]  # (0 rows: a flat array)


@pytest.mark.parametrize("depth", [1, 4, 6])
def test_approximate_contributions_equal_xgboost_bit_for_bit(depth: int) -> None:
    booster = _booster(depth, rounds=40, seed=depth, min_child_weight=5)
    forest, why = compile_forest(booster)
    assert forest is not None, why
    assert forest.mean is not None  # compiled too
    for X in _inputs(6, depth):
        X = np.where(np.isinf(X), np.float32(1e30), X)  # a DMatrix refuses inf
        assert np.array_equal(forest.contributions(X), _approx(booster, X))


def test_contributions_that_differ_stay_with_xgboost(monkeypatch: pytest.MonkeyPatch) -> None:
    real = forest_mod._contributions

    def drifted(*args):  # type: ignore[no-untyped-def]
        out = real(*args)
        out[:, 0] += np.float32(1e-3)
        return out

    monkeypatch.setattr(forest_mod, "_contributions", drifted)
    booster = _booster(3)
    forest, why = compile_forest(booster)
    assert forest is not None, why  # predictions still compiled
    assert forest.mean is None and forest.contributions(np.zeros((2, 6), np.float32)) is None
    model = _model(booster, compiled=True)
    values = np.random.default_rng(2).normal(size=(40, 8))
    assert np.array_equal(model.contributions(values), _model(booster, compiled=False).contributions(values))


def test_the_scoring_models_reasons_are_the_same_compiled_or_not() -> None:
    booster = _booster(4, rounds=50)
    fast, plain = _model(booster, compiled=True), _model(booster, compiled=False)
    assert fast.forest is not None and fast.forest.mean is not None
    values = np.random.default_rng(4).normal(size=(700, 8))
    values[::7, 3] = np.nan
    assert np.array_equal(fast.contributions(values), plain.contributions(values))
    assert np.array_equal(fast.contributions(values, exact=True), plain.contributions(values, exact=True))


def test_the_logistic_transform_is_xgboosts_at_every_margin_even_past_its_clamp() -> None:
    # XGBoost clamps -margin at 88.7 before expf; margins are pushed anywhere with base_margin
    booster = _booster(3)
    X, _ = _data(20_001, 6, 5)
    base = np.linspace(-200.0, 200.0, len(X)).astype(np.float32)
    margins = np.asarray(booster.inplace_predict(X, predict_type="margin", base_margin=base), np.float32)
    want = np.asarray(booster.inplace_predict(X, base_margin=base), np.float32)
    assert (margins < -88.7).any() and (margins > 88.7).any()
    assert np.array_equal(forest_mod._sigmoid(margins), want)


def test_every_base_score_finds_xgboosts_base_margin() -> None:
    # XGBoost takes -logf(1/b - 1) with the C library's logf; NumPy's float32 log is not
    # always the same float, which left some models uncompiled
    X, y = _data(300, 4, 8)
    failed = []
    for b in np.linspace(0.01, 0.99, 45):
        booster = xgb.train({"max_depth": 2, "nthread": 1, "objective": "binary:logistic", "base_score": float(b)},
                            xgb.DMatrix(X, label=y, nthread=1), 3)  # fmt: skip
        forest, why = compile_forest(booster)
        if forest is None:
            failed.append((float(b), why))
    assert failed == []


def test_an_input_of_another_width_is_refused_as_xgboost_refuses_it() -> None:
    booster = _booster(3)
    forest, _ = compile_forest(booster)
    assert forest is not None
    X, _ = _data(9, 5, 1)
    with pytest.raises(ValueError, match="feature shape mismatch"):
        forest.predict(X)
    with pytest.raises(ValueError, match="feature shape mismatch"):
        forest.contributions(np.nan_to_num(X))
    with pytest.raises(ValueError):
        booster.inplace_predict(X)


def test_every_split_node_is_probed_on_both_sides_of_its_edge() -> None:
    # the load-time check is only as good as its rows: each split node must be reached by a
    # row exactly at its split value (right) and one just below (left) - each of the two the
    # path allows (a node may split again on a feature its ancestors bounded)
    booster = _booster(7, rounds=40, min_child_weight=3)
    forest, why = compile_forest(booster)
    assert forest is not None, why
    base = forest_mod._probe_rows(forest.split, forest.feature, forest.n_features)
    X = np.concatenate([base, forest_mod._edge_rows(forest.split, forest.feature, forest.right_if_missing, base)])
    rows = np.arange(len(X))
    missed = []
    for t, pos in np.argwhere(np.isfinite(forest.split)).tolist():
        path, node = [], pos
        while node > 0:
            path.append(node)
            node = (node - 1) // 2
        at, reached = np.zeros(len(X), np.int64), np.ones(len(X), bool)
        f, s = forest.feature[t, pos], forest.split[t, pos]
        lo, hi = -np.inf, np.inf  # what the path allows for the node's own feature
        for target in reversed(path):
            parent = (target - 1) // 2
            if forest.feature[t, parent] == f:
                if target == 2 * parent + 2:
                    lo = max(lo, forest.split[t, parent])
                else:
                    hi = min(hi, forest.split[t, parent])
            x = X[rows, forest.feature[t, at]]
            go = np.where(np.isnan(x), forest.right_if_missing[t, at], (x >= forest.split[t, at]).astype(np.int64))
            at = 2 * at + 1 + go
            reached &= at == target
        values = X[reached, f]
        for edge in (s, np.nextafter(s, np.float32(-np.inf))):
            if lo <= edge < hi and not (values == edge).any():
                missed.append((t, pos, float(edge)))
    assert missed == []
