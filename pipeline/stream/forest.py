"""The champion's XGBoost trees as flat arrays, scored by a compiled kernel: the stream's predict.

Predicting was a fifth of the stream's CPU (bench_stream: ~0.95 us of ~4.7 us an event),
nearly all of it inside ``Booster.inplace_predict`` for ~900 rows a batch. The trees of a
boosted model are small and fixed, so the worker lays each one out as a *complete* binary
tree of the ensemble's depth ``D`` (a leaf above depth ``D`` is repeated down both sides:
either way reaches the same value). Two kernels score them, chosen by ``D``:

* up to ``LEVEL_DEPTH`` (6), :func:`_margins_by_level`: the batch feature-major, each tree
  a level at a time for all rows, every node of the level compared for every row and
  kept where it is the row's node: contiguous compare-and-add loops the compiler
  vectorises. On the default champion (115 trees of depth 4, 900 real rows) ~0.29 us a
  row against ~0.70 for the walk below; at depth 6 ~0.81 vs ~1.27; at depth 8 it
  loses (1.50 vs 0.71), since it compares all ``2**D - 1`` nodes where a walk reads ``D``;
* deeper, :func:`_margins`: eight rows at a time walk each tree, the next node
  ``2 * node + 1 + (x >= split)``, no branch to mispredict and eight independent chains
  of loads in flight.

XGBoost's ``inplace_predict`` is ~0.75 us a row at 900 rows (``benchmarks/bench_stream.py``
prints both, ``stream_predict_*``).

It is XGBoost's own arithmetic, not an approximation: float32 features (the same
conversion ``ScoringModel.matrix`` makes), ``x < split`` goes left, a missing value
(NaN) takes the node's default direction, leaf values summed in float32 in tree order
onto the base margin (``-logf(1 / base_score - 1)``), then XGBoost's sigmoid in float32
(``-margin`` clamped at 88.7). Whether a booster is
scored here is decided once, at load, by :func:`compile_forest`: only a plain ``gbtree``
with a logistic objective and one output, no categorical splits and a bounded size, and
only if the kernel then reproduces the booster's margins *and* probabilities bit for bit
on probe rows, with and without missing values: 4,096 whose every value is drawn from
the model's decision edges (a split value of that feature, the float32 just below or
above one, NaN, +-inf, 0), and three more per split node (up to 20,000 nodes) that reach
that node with its feature exactly at its split, just below it, and missing. Anything else, or any difference, keeps
XGBoost's predict for that model, with the reason (``ScoringModel.predictor``).

The reasons' approximate contributions (XGBoost's ``approx_contribs``: the value changes
along each row's path, credited to the split features) are compiled the same way, from
the model's node mean values in XGBoost's float32 order, and used only if they equal
XGBoost's bit for bit on the probe rows (else XGBoost computes them): ~2.2 us a row
against ~3.8 for the ~2 % of rows that get reasons.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.features.jit import njit  # numba's, or its no-op stand-in

MAX_DEPTH = 10  # complete trees of 2**10 - 1 internal nodes at most
LEVEL_DEPTH = 6  # up to this depth the level kernel (every node for every row) is the faster one
MAX_NODES = 1 << 20  # trees x (2**D - 1): ~1 M nodes load in seconds and hold ~30 MB; past that, XGBoost's
LOGISTIC = ("binary:logistic", "reg:logistic")
PROBE_ROWS = 4096
EDGE_NODES = 20_000  # split nodes given their own probe rows (3 each); a bigger ensemble's are sampled


@dataclass(frozen=True)
class Forest:
    """A boosted ensemble as complete trees: ``feature[t, i]`` (the feature node ``i`` of
    tree ``t`` splits on), ``split[t, i]``, ``right_if_missing[t, i]``, ``leaf[t, j]``."""

    feature: np.ndarray  # (trees, 2**D - 1) int64
    split: np.ndarray  # (trees, 2**D - 1) float32
    right_if_missing: np.ndarray  # (trees, 2**D - 1) int64 (0 or 1)
    leaf: np.ndarray  # (trees, 2**D) float32
    depth: int
    base_margin: np.float32
    n_features: int = 0  # the booster's: an input of another width is refused, as XGBoost refuses it
    # approximate (Saabas) contributions, XGBoost's ``approx_contribs``: every node's mean
    # value (level order, leaves included; None: not compiled) and the feature each inner
    # node credits (a padding node: column ``n_features``, discarded)
    mean: np.ndarray | None = None  # (trees, 2**(D+1) - 1) float32
    credit: np.ndarray | None = None  # (trees, 2**D - 1) int64

    def margin(self, X: np.ndarray) -> np.ndarray:
        """Raw scores (log-odds) of the rows of ``X`` (float32, the booster's features in
        its order, C-contiguous: ``ScoringModel.matrix``), float32."""
        X = self._checked(X)
        missing = bool(np.isnan(X).any())  # a NaN takes its node's default way (one check a batch)
        if self.depth <= LEVEL_DEPTH:  # every node compared for every row, a level at a time
            return _margins_by_level(np.ascontiguousarray(X.T), self.feature, self.split, self.right_if_missing,
                                     self.leaf, self.depth, self.base_margin, missing)  # fmt: skip
        return _margins(X, self.feature, self.split, self.right_if_missing, self.leaf, self.depth,
                        self.base_margin, missing)  # fmt: skip

    def _checked(self, X: np.ndarray) -> np.ndarray:
        """``X`` as the kernels read it (float32, C order), refused unless it has the
        booster's width (the kernels do not check bounds; XGBoost refuses such an input)."""
        X = np.ascontiguousarray(X, dtype=np.float32)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(f"feature shape mismatch: the model reads {self.n_features} features, the input "
                             f"has shape {X.shape}")  # fmt: skip
        return X

    def predict(self, X: np.ndarray) -> np.ndarray:
        """P(positive) per row, float32: XGBoost's logistic transform of :meth:`margin`."""
        return _sigmoid(self.margin(X))

    def contributions(self, X: np.ndarray) -> np.ndarray | None:
        """XGBoost's ``pred_contribs=True, approx_contribs=True`` without the bias column,
        float32 ``(rows, features)``; None when not compiled for this model."""
        if self.mean is None or self.credit is None:
            return None
        X = self._checked(X)
        out = _contributions(X, self.feature, self.split, self.right_if_missing, self.mean, self.credit, self.depth,
                             self.n_features, bool(np.isnan(X).any()))  # fmt: skip
        return out[:, : self.n_features]


def compile_forest(booster: Any) -> tuple[Forest | None, str]:
    """``(forest, "")`` if ``booster`` can be scored here exactly, else ``(None, why)``."""
    try:
        cfg = json.loads(booster.save_config())
        learner = cfg["learner"]
        objective = learner["objective"]["name"]
        booster_kind = learner["gradient_booster"]["name"]
        param = learner["learner_model_param"]
        base_score = float(str(param["base_score"]).strip("[]").split(",")[0])
        targets = max(int(param.get("num_class", 0) or 0), int(param.get("num_target", 1) or 1))
        parallel = int(learner["gradient_booster"].get("gbtree_model_param", {}).get("num_parallel_tree", 1) or 1)
    except (KeyError, ValueError, TypeError, IndexError) as exc:
        return None, f"its configuration is not the one this kernel knows ({type(exc).__name__}: {exc})"
    if booster_kind != "gbtree":
        return None, f"booster {booster_kind!r} (only gbtree is compiled)"
    if objective not in LOGISTIC:
        return None, f"objective {objective!r} (only logistic ones are compiled)"
    if targets != 1 or parallel != 1:
        return None, f"{targets} outputs, {parallel} parallel trees (only one of each is compiled)"
    trees = [json.loads(t) for t in booster.get_dump(dump_format="json", with_stats=True)]
    if not trees:
        return None, "it has no trees"
    names = booster.feature_names
    index = {n: i for i, n in enumerate(names)} if names else {}
    width = booster.num_features()
    if any(t == "c" for t in (booster.feature_types or ())):
        return None, "categorical features (only numeric splits are compiled)"
    try:
        depth = max(_depth(t) for t in trees)
    except (KeyError, TypeError) as exc:
        return None, f"a tree is not the plain numeric kind ({exc})"
    depth = max(depth, 1)
    if depth > MAX_DEPTH or len(trees) * ((1 << depth) - 1) > MAX_NODES:
        return None, f"{len(trees)} trees of depth {depth} (compiled up to depth {MAX_DEPTH}, {MAX_NODES:,} nodes)"
    inner, leaves = (1 << depth) - 1, 1 << depth
    feature = np.zeros((len(trees), inner), np.int64)
    split = np.full((len(trees), inner), np.inf, np.float32)
    right = np.zeros((len(trees), inner), np.int64)
    leaf = np.zeros((len(trees), leaves), np.float32)
    try:
        for t, tree in enumerate(trees):
            _lay_out(tree, 0, 0, depth, t, feature, split, right, leaf, index)
        if feature.max(initial=0) >= width:
            raise IndexError(f"a split on feature {int(feature.max())} of {width}")
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        return None, f"a tree is not the plain numeric kind ({type(exc).__name__}: {exc})"
    first = np.float32(_logit(np.float32(base_score))) if 0.0 < base_score < 1.0 else np.float32(0.0)
    # XGBoost's own formula first; then the floats beside it and the double-precision logit,
    # in case another C library rounds logf differently: the probe check picks the one
    candidates = [first, np.nextafter(first, np.float32(-np.inf)), np.nextafter(first, np.float32(np.inf))]
    if 0.0 < base_score < 1.0:
        candidates.append(np.float32(math.log(base_score / (1.0 - base_score))))
    probe = _probe_rows(split, feature, width)
    probe = np.concatenate([probe, _edge_rows(split, feature, right, probe)])
    # with missing values and without (the kernel takes a shorter way through a batch without)
    probes = (probe, np.where(np.isnan(probe), np.float32(0.0), probe))
    wanted = [(np.asarray(booster.inplace_predict(x, predict_type="margin"), np.float32),
               np.asarray(booster.inplace_predict(x), np.float32)) for x in probes]  # fmt: skip
    for base in candidates:
        forest = Forest(feature, split, right, leaf, depth, base, n_features=width)
        if all(np.array_equal(forest.margin(x), m) and np.array_equal(forest.predict(x), p)
               for x, (m, p) in zip(probes, wanted, strict=True)):  # fmt: skip
            return _with_contributions(forest, booster, trees, probes), ""
    return None, f"its scores differ from XGBoost's on {2 * len(probe):,} probe rows"


def _with_contributions(forest: Forest, booster: Any, trees: list[dict[str, Any]],
                        probes: tuple[np.ndarray, ...]) -> Forest:  # fmt: skip
    """``forest`` with approximate contributions compiled, if they equal XGBoost's bit for
    bit on the probe rows (of each set, the first 1,024 random rows and every edge row);
    else ``forest`` as it is (the contributions then come from XGBoost)."""
    from dataclasses import replace

    from pipeline.stream.model import import_xgboost  # (model.py imports this module lazily)

    depth, width = forest.depth, forest.n_features
    inner = (1 << depth) - 1
    mean = np.zeros((len(trees), (1 << (depth + 1)) - 1), np.float32)
    credit = np.full((len(trees), inner), width, np.int64)
    try:
        for t, tree in enumerate(trees):
            _means(tree, 0, 0, depth, mean[t], credit[t], forest.feature[t])
    except (KeyError, TypeError, ValueError):  # a dump without covers: XGBoost's contributions
        return forest
    compiled = replace(forest, mean=mean, credit=credit)
    xgb = import_xgboost()
    big = np.finfo(np.float32).max
    for x in probes:
        x = np.concatenate([x[:1024], x[PROBE_ROWS:]])  # 1,024 random rows and every node's edge rows
        x = np.where(np.isinf(x), np.copysign(big, x), x)  # a DMatrix refuses inf
        try:
            want = booster.predict(xgb.DMatrix(x, nthread=1), pred_contribs=True, approx_contribs=True,
                                   validate_features=False)  # fmt: skip
        except Exception:  # noqa: BLE001 - not checked, so not compiled: XGBoost explains
            return forest
        if not np.array_equal(compiled.contributions(x), np.asarray(want, np.float32)[:, :width]):
            return forest
    return compiled


def _means(node: dict[str, Any], pos: int, level: int, depth: int, mean: np.ndarray, credit: np.ndarray,
           feature: np.ndarray) -> np.float32:  # fmt: skip
    """XGBoost's node mean values (``FillNodeMeanValues``: the cover-weighted mean of the
    leaves below, in float32) laid out like the tree; returns the node's."""
    if "leaf" in node:
        value = np.float32(node["leaf"])
        _fill(mean, pos, level, depth, value)  # the padding below a leaf: the same value, credited nowhere
        return value
    kids = {c["nodeid"]: c for c in node["children"]}
    yes, no = kids[node["yes"]], kids[node["no"]]
    left = _means(yes, 2 * pos + 1, level + 1, depth, mean, credit, feature)
    right = _means(no, 2 * pos + 2, level + 1, depth, mean, credit, feature)
    value = left * np.float32(yes["cover"])
    value += right * np.float32(no["cover"])
    value /= np.float32(node["cover"])
    mean[pos] = value
    credit[pos] = feature[pos]
    return np.float32(value)


def _fill(mean: np.ndarray, pos: int, level: int, depth: int, value: np.float32) -> None:
    mean[pos] = value
    if level < depth:
        _fill(mean, 2 * pos + 1, level + 1, depth, value)
        _fill(mean, 2 * pos + 2, level + 1, depth, value)


def _depth(node: dict[str, Any]) -> int:
    if "leaf" in node:
        return 0
    if "split_condition" not in node:  # categorical splits carry "categories" instead
        raise KeyError("split_condition")
    return 1 + max(_depth(c) for c in node["children"])


def _lay_out(node: dict[str, Any], pos: int, level: int, depth: int, t: int, feature: np.ndarray, split: np.ndarray,
             right: np.ndarray, leaf: np.ndarray, index: dict[str, int]) -> None:  # fmt: skip
    """Node ``node`` at position ``pos`` (level order) of complete tree ``t``."""
    if level == depth:
        leaf[t, pos - ((1 << depth) - 1)] = np.float32(node["leaf"])
        return
    if "leaf" in node:  # a leaf above the last level: the same value down both sides
        _lay_out(node, 2 * pos + 1, level + 1, depth, t, feature, split, right, leaf, index)
        _lay_out(node, 2 * pos + 2, level + 1, depth, t, feature, split, right, leaf, index)
        return
    name = node["split"]
    feature[t, pos] = index[name] if index else int(str(name).lstrip("f"))
    split[t, pos] = np.float32(node["split_condition"])
    right[t, pos] = int(node["missing"] == node["no"])
    kids = {c["nodeid"]: c for c in node["children"]}
    _lay_out(kids[node["yes"]], 2 * pos + 1, level + 1, depth, t, feature, split, right, leaf, index)
    _lay_out(kids[node["no"]], 2 * pos + 2, level + 1, depth, t, feature, split, right, leaf, index)


def _probe_rows(split: np.ndarray, feature: np.ndarray, width: int) -> np.ndarray:
    """Rows whose every value sits on a decision edge of the model: a split value of that
    feature, the float32 just below or above one, NaN (missing), +-inf or 0."""
    rng = np.random.default_rng(20_261_207)
    out = np.zeros((PROBE_ROWS, width), np.float32)
    used = np.isfinite(split)
    for c in range(width):
        edges = np.unique(split[used & (feature == c)])
        if len(edges):
            near = np.concatenate([edges, np.nextafter(edges, np.float32(-np.inf)), np.nextafter(edges, np.float32(np.inf))])
        else:
            near = np.zeros(1, np.float32)
        pool = np.concatenate([near, np.array([np.nan, np.inf, -np.inf, 0.0], np.float32)])
        weights = np.concatenate([np.full(len(near), 0.9 / len(near)), [0.06, 0.015, 0.015, 0.01]])
        out[:, c] = rng.choice(pool, PROBE_ROWS, p=weights / weights.sum())
    return out


def _edge_rows(split: np.ndarray, feature: np.ndarray, right: np.ndarray, base: np.ndarray) -> np.ndarray:
    """For each split node (all of them, up to ``EDGE_NODES``): rows that reach it with its
    feature exactly at its split value (goes right), the float32 just below it (left) and
    NaN (its default way), each where the path allows it. A feature the path turns on is
    set to satisfy every such turn (at the largest split it must reach, else just below
    the smallest it must stay under; NaN when only the default ways lead there); the other
    values come from the random probe rows ``base``."""
    rng = np.random.default_rng(7)
    nodes = np.argwhere(np.isfinite(split))  # (tree, position) of the real split nodes
    if len(nodes) > EDGE_NODES:
        nodes = nodes[np.sort(rng.choice(len(nodes), EDGE_NODES, replace=False))]
    below, above = np.float32(-np.inf), np.float32(np.inf)
    rows = []
    for k, (t, pos) in enumerate(nodes.tolist()):
        turns: dict[int, list[tuple[np.float32, bool, bool]]] = {}  # feature -> (split, went right, default right)
        node = pos
        while node > 0:
            parent = (node - 1) // 2
            went_right = node == 2 * parent + 2
            turns.setdefault(int(feature[t, parent]), []).append((split[t, parent], went_right, bool(right[t, parent])))
            node = parent
        row = base[k % len(base)].copy()
        allowed = {}  # feature -> (lowest, below this) of the values that take every turn on it
        reachable = True
        for f, ts in turns.items():
            lo = max((s for s, r, _ in ts if r), default=below)
            hi = min((s for s, r, _ in ts if not r), default=above)
            allowed[f] = (lo, hi)
            if lo < hi:
                row[f] = lo if lo > below else np.nextafter(hi, below)
            elif all(r == d for _, r, d in ts):
                row[f] = np.float32(np.nan)  # only a missing value goes that way
            else:
                reachable = False
                break
        if not reachable:
            continue
        f, s = int(feature[t, pos]), split[t, pos]
        lo, hi = allowed.get(f, (below, above))
        for value in (s, np.nextafter(s, below)):
            if lo <= value < hi:
                r = row.copy()
                r[f] = value
                rows.append(r)
        if f not in turns or all(r == d for _, r, d in turns[f]):
            r = row.copy()
            r[f] = np.float32(np.nan)
            rows.append(r)
    return np.asarray(rows, np.float32).reshape(-1, base.shape[1])


@njit(cache=True, nogil=True)
def _margins(X, feature, split, right, leaf, depth, base, missing):  # pragma: no cover - compiled
    n = X.shape[0]
    trees = feature.shape[0]
    inner = feature.shape[1]
    out = np.full(n, base, np.float32)
    n8 = n - n % 8
    for r in range(0, n8, 8):
        a0 = out[r]
        a1 = out[r + 1]
        a2 = out[r + 2]
        a3 = out[r + 3]
        a4 = out[r + 4]
        a5 = out[r + 5]
        a6 = out[r + 6]
        a7 = out[r + 7]
        for t in range(trees):
            col = feature[t]
            thr = split[t]
            dft = right[t]
            n0 = n1 = n2 = n3 = n4 = n5 = n6 = n7 = 0
            for _ in range(depth):
                n0 = 2 * n0 + 1 + _go(X[r, col[n0]], thr[n0], dft[n0], missing)
                n1 = 2 * n1 + 1 + _go(X[r + 1, col[n1]], thr[n1], dft[n1], missing)
                n2 = 2 * n2 + 1 + _go(X[r + 2, col[n2]], thr[n2], dft[n2], missing)
                n3 = 2 * n3 + 1 + _go(X[r + 3, col[n3]], thr[n3], dft[n3], missing)
                n4 = 2 * n4 + 1 + _go(X[r + 4, col[n4]], thr[n4], dft[n4], missing)
                n5 = 2 * n5 + 1 + _go(X[r + 5, col[n5]], thr[n5], dft[n5], missing)
                n6 = 2 * n6 + 1 + _go(X[r + 6, col[n6]], thr[n6], dft[n6], missing)
                n7 = 2 * n7 + 1 + _go(X[r + 7, col[n7]], thr[n7], dft[n7], missing)
            lf = leaf[t]
            a0 += lf[n0 - inner]
            a1 += lf[n1 - inner]
            a2 += lf[n2 - inner]
            a3 += lf[n3 - inner]
            a4 += lf[n4 - inner]
            a5 += lf[n5 - inner]
            a6 += lf[n6 - inner]
            a7 += lf[n7 - inner]
        out[r] = a0
        out[r + 1] = a1
        out[r + 2] = a2
        out[r + 3] = a3
        out[r + 4] = a4
        out[r + 5] = a5
        out[r + 6] = a6
        out[r + 7] = a7
    for r in range(n8, n):
        acc = out[r]
        for t in range(trees):
            node = 0
            for _ in range(depth):
                node = 2 * node + 1 + _go(X[r, feature[t, node]], split[t, node], right[t, node], missing)
            acc += leaf[t, node - inner]
        out[r] = acc
    return out


@njit(cache=True, nogil=True)
def _margins_by_level(XT, feature, split, right, leaf, depth, base, missing):  # pragma: no cover - compiled
    """:func:`_margins` with no walk: ``XT`` is the batch feature-major (one contiguous
    row per feature), and each tree is scored for all rows a level at a time. At level
    ``l`` every row's node is ``path`` (its index within the level); each of the level's
    ``2**l`` nodes compares its feature for *all* rows and adds the outcome where it is
    the row's node, so every inner loop is a compare, an equality and an add over
    contiguous rows, which the compiler vectorises (no loads that depend on the last
    one). It compares ``2**D - 1`` nodes a row where a walk reads ``D``, so it wins at
    small depths only (``LEVEL_DEPTH``); the leaves are added in tree order, in float32,
    exactly as the walk adds them."""
    n = XT.shape[1]
    trees = feature.shape[0]
    out = np.full(n, base, np.float32)
    path = np.empty(n, np.int32)
    bit = np.empty(n, np.int32)
    for t in range(trees):
        path[:] = 0
        first = 0  # the level's first node, level order
        for level in range(depth):
            bit[:] = 0
            for j in range(1 << level):
                x = XT[feature[t, first + j]]
                thr = split[t, first + j]
                if missing:  # :func:`_go`'s rule in int32 (through _go, int64: ~18 % slower with NaNs)
                    dft = np.int32(right[t, first + j])
                    for r in range(n):
                        v = x[r]
                        bit[r] += np.int32(path[r] == j) & (np.int32(v >= thr) | (np.int32(v != v) & dft))
                else:
                    for r in range(n):
                        bit[r] += np.int32(path[r] == j) & np.int32(x[r] >= thr)
            for r in range(n):
                path[r] = 2 * path[r] + bit[r]
            first += 1 << level
        lf = leaf[t]
        for r in range(n):
            out[r] += lf[path[r]]
    return out


@njit(cache=True, nogil=True)
def _contributions(X, feature, split, right, mean, credit, depth, width, missing):  # pragma: no cover - compiled
    """XGBoost's approximate contributions, in its order of float32 operations: per tree,
    the path's value changes summed per feature (a feature split on twice sums its own
    changes first), then added to the row's."""
    n = X.shape[0]
    out = np.zeros((n, width + 1), np.float32)  # column ``width``: the padding's credit, dropped
    feats = np.empty(depth, np.int64)
    tree = np.zeros(width + 1, np.float32)  # one tree's contributions (XGBoost's per-tree buffer)
    for r in range(n):
        for t in range(feature.shape[0]):
            node = 0
            value = mean[t, 0]
            for d in range(depth):
                f = credit[t, node]
                feats[d] = f
                node = 2 * node + 1 + _go(X[r, feature[t, node]], split[t, node], right[t, node], missing)
                new = mean[t, node]
                tree[f] += new - value
                value = new
            for d in range(depth):  # a feature met twice adds its sum once, then +0.0 (no change)
                f = feats[d]
                out[r, f] += tree[f]
                tree[f] = 0.0
    return out


@njit(cache=True, nogil=True, inline="always")
def _go(x, thr, right_if_missing, missing):  # pragma: no cover - compiled
    """0 left, 1 right: ``x < thr`` goes left; NaN (missing) the default way. ``missing``:
    the batch holds a NaN at all (a loop invariant: without one, one compare a level)."""
    if missing:
        return np.int64(x >= thr) | (np.int64(x != x) & right_if_missing)
    return np.int64(x >= thr)


@njit(cache=True, nogil=True)
def _sigmoid(margin):  # pragma: no cover - compiled
    """XGBoost's ``common::Sigmoid`` (src/common/math.h): ``-x`` clamped at 88.7 (no
    overflow), ``1 / (expf(-x) + 1 + 1e-16)``, in float32."""
    out = np.empty(margin.shape[0], np.float32)
    one = np.float32(1.0)
    eps = np.float32(1e-16)
    cap = np.float32(88.7)
    for i in range(margin.shape[0]):
        out[i] = one / (math.exp(min(-margin[i], cap)) + one + eps)
    return out


@njit(cache=True)
def _logit(base):  # pragma: no cover - compiled
    """XGBoost's base margin of a logistic model, ``-logf(1 / base - 1)`` in float32 (the C
    library's ``logf``, as XGBoost's; NumPy's float32 log is not always the same float)."""
    one = np.float32(1.0)
    return -math.log(one / base - one)
