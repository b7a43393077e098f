"""Supervisor-less assignment: fair shares, plans, and a group converging on PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.clock import FakeClock
from pipeline.stream.membership import Membership, fair_share, plan_claims
from pipeline.stream.state_pg import PgStateBackend
from tests.store.conftest import PG_URLS, drop_schema, pg_url

names = st.lists(st.text("abcdefgh", min_size=1, max_size=3), min_size=1, max_size=10, unique=True)


@given(st.integers(1, 64), names)
def test_fair_shares_add_up_and_differ_by_at_most_one(partitions, live) -> None:
    shares = [fair_share(partitions, live, m) for m in live]
    assert sum(shares) == partitions
    assert max(shares) - min(shares) <= 1


@given(st.integers(1, 32), names, st.data())
def test_a_plan_never_touches_another_members_partition(partitions, live, data) -> None:
    me = live[0]
    owner_of = {p: data.draw(st.sampled_from([None, *live])) for p in range(partitions)}
    plan = plan_claims(me, live, partitions, owner_of)
    assert all(owner_of[p] is None for p in plan.take)
    assert all(owner_of[p] == me for p in plan.keep + plan.release)
    assert len(plan.keep) + len(plan.take) <= plan.target
    assert set(plan.keep) | set(plan.release) == {p for p, o in owner_of.items() if o == me}


@pytest.fixture
def group():
    url = pg_url()
    if url is None:
        pytest.skip(f"no PostgreSQL server answers at {PG_URLS} (set CHURN_TEST_PG_URL)")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    clock = FakeClock(datetime(2026, 1, 2, tzinfo=UTC))
    opened: list[PgStateBackend] = []

    def member(name: str) -> Membership:
        b = PgStateBackend(
            url, "events", "g", schema=schema, owner=name, lease_ttl_s=5, clock=clock
        )
        opened.append(b)
        return Membership(b, partitions=8)

    try:
        yield member, clock
    finally:
        for b in opened:
            b.close()
        drop_schema(url, schema)


def step(m: Membership) -> None:
    """What a standalone worker would do each heartbeat."""
    plan = m.plan()
    for p in plan.release:
        m.state.lease(p).release()  # after its checkpoint
    for p in plan.keep:
        assert m.state.lease(p).renew()
    for p in plan.take:
        m.state.lease(p).try_acquire()


def owners(m: Membership) -> dict[int, str | None]:
    return {p: o for p, (o, _, _) in m.state.owners().items()}


def test_a_group_converges_and_survivors_take_a_dead_members_partitions(group) -> None:
    member, clock = group
    a, b, c = member("a"), member("b"), member("c")
    step(a)  # a starts alone and takes everything
    assert set(owners(a).values()) == {"a"} and len(owners(a)) == 8
    for _ in range(3):  # b and c join; a gives back its surplus, they take it
        for m in (a, b, c):
            step(m)
        clock.advance(1)
    counts = {n: list(owners(a).values()).count(n) for n in "abc"}
    assert counts == {"a": 3, "b": 3, "c": 2}  # every partition owned once, evenly
    # c dies (SIGKILL: no release, no leave); a and b keep heartbeating
    rounds = 0
    while set(owners(a).values()) != {"a", "b"}:
        for m in (a, b):
            step(m)
        clock.advance(1)
        rounds += 1
        assert rounds <= 10, owners(a)
    assert 5 <= rounds <= 7  # the lease TTL (5 s of 1 s heartbeats) plus a round or two
    assert sorted(list(owners(a).values()).count(n) for n in "ab") == [4, 4]
    # c's old epochs are fenced: it cannot write a checkpoint for what it owned
    assert not any(c.state.lease(p).renew() for p in range(8) if c.state.lease(p).held)


def test_leave_makes_room_at_once(group) -> None:
    member, _ = group
    a, b = member("a"), member("b")
    assert a.heartbeat() == ["a"]
    assert b.heartbeat() == ["a", "b"]
    b.leave()
    assert a.heartbeat() == ["a"]
    assert a.plan().target == 8
