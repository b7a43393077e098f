"""The compiled id -> slot index equals a dict, for every kind of id a log can carry."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import numpy as np
import pytest

from pipeline import events as ev
from pipeline.features.idtable import IdTable, encode_ids
from pipeline.features.state import FeatureState


def _ids(rng: random.Random, n: int) -> list[str]:
    """Short, 8-byte, 16-byte, 17-byte and long ids; ids sharing a 16-byte prefix; one id
    a prefix of another; non-ASCII, astral, a lone surrogate, the empty string."""
    kinds = [
        lambda i: str(i),
        lambda i: f"u{i:07d}",
        lambda i: f"user-{i:011d}",  # 16 bytes
        lambda i: f"user-{i:012d}",  # 17 bytes
        lambda i: f"00000000-0000-4000-8000-{i:012x}",  # a UUID: shares its first 24 bytes
        lambda i: f"ü{i}ß",
        lambda i: f"\U0001f600{i}",
        lambda i: f"\ud800{i}",
    ]
    out = {"", "a", "ab", "user-0000000001", "user-00000000012"}
    while len(out) < n:
        out.add(rng.choice(kinds)(rng.randrange(10 * n)))
    ids = list(out)
    rng.shuffle(ids)
    return ids


def test_lookups_equal_a_dict_across_growth_and_unknown_ids_are_minus_one() -> None:
    rng = random.Random(3)
    ids = _ids(rng, 30_000)
    table, known = IdTable(), {}
    for lo in range(0, len(ids) - 5_000, 997):  # many extends: the table and arena grow
        part = ids[lo : lo + 997]
        table.extend(part)
        known.update((u, len(known)) for u in part)
    assert len(table) == len(known)
    probe = [rng.choice(ids) for _ in range(20_000)] + ids[-5_000:] + ["x" * 40, "user-0000000001x"]
    probe = [u.encode("utf-8", "surrogatepass").decode("utf-8", "surrogatepass") for u in probe]  # fresh objects
    assert table.lookup(probe).tolist() == [known.get(u, -1) for u in probe]
    assert table.lookup([]).tolist() == []


def test_a_table_built_at_once_equals_one_built_in_parts() -> None:
    ids = _ids(random.Random(5), 5_000)
    whole, parts = IdTable(ids), IdTable()
    for lo in range(0, len(ids), 7):
        parts.extend(ids[lo : lo + 7])
    assert whole.lookup(ids).tolist() == parts.lookup(ids).tolist() == list(range(len(ids)))


def test_ids_are_encoded_one_to_one() -> None:
    buf, ends = encode_ids(["ab", "", "c", "\ud800", "é"])
    assert ends.tolist() == [2, 2, 3, 6, 8]
    assert buf == b"abc" + "\ud800".encode("utf-8", "surrogatepass") + "é".encode()


def test_feature_state_slots_come_in_first_seen_order_and_survive_a_restore() -> None:
    st = FeatureState()
    t = datetime(2026, 1, 5, 12, tzinfo=UTC)

    def session(i: int, user: str) -> ev.Session:
        return ev.Session(event_id=f"e{i}", user_id=user, ts=t, schema_version=1, watch_minutes=1.0, device="tv")

    users = ["b", "a", "b", "ü", "c" * 30, "a", "ü"]  # new users seen twice in one batch
    st.update_events([session(i, u) for i, u in enumerate(users)])
    assert st.user_ids == ["b", "a", "ü", "c" * 30]
    assert st.slots(["a", "c" * 30, "zz"], create=False).tolist() == [1, 3, -1]
    again = FeatureState.restore(st.snapshot())
    assert again.slots(["ü", "b", "zz"], create=False).tolist() == [2, 0, -1]
    assert again.slots(["zz", "b", "zz"]).tolist() == [4, 0, 4]
    assert again.user_ids[-1] == "zz"


@pytest.mark.parametrize("n", [1, 16, 17, 1_000])
def test_growth_at_every_size_keeps_every_id(n: int) -> None:
    ids = [f"id{i}" for i in range(n)]
    table = IdTable()
    for u in ids:
        table.extend([u])
    assert np.array_equal(table.lookup(ids), np.arange(n))


def test_a_table_refuses_more_ids_than_its_entries_can_name(monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline.errors import FeatureError
    from pipeline.features import idtable

    monkeypatch.setattr(idtable, "MAX_IDS", 4)
    table = IdTable(["a", "b", "c"])
    with pytest.raises(FeatureError, match="at most 3 ids"):
        table.extend(["d"])
    assert table.lookup(["c", "d"]).tolist() == [2, -1]  # nothing half-entered
