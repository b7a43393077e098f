"""Workers that share a group's partitions with no supervisor: membership + fair shares.

Each worker process (one :class:`~pipeline.stream.state_pg.PgStateBackend`, its
``owner`` id) calls :meth:`Membership.plan` every heartbeat. That stamps it alive in
``stream_members`` (expiring after ``member_ttl_s``), reads the live members and the
partition leases, and returns a :class:`Plan`: which partitions to give back (checkpoint,
then ``lease.release()``) and which free ones to take (``lease.try_acquire()``, then
restore from the checkpoint). Every member computes its share from the same sorted
member list (:func:`fair_share`), so the shares add up to the partition count and the
group converges in a few heartbeats: surplus is released, freed partitions are taken.
A member that dies stops heartbeating: after ``member_ttl_s`` it no longer counts, and
after the lease TTL its partitions are free for the survivors.

``churn stream-worker`` (:mod:`pipeline.stream.host`) acts on the plan every heartbeat.

>>> fair_share(8, ["a", "b", "c"], "a"), fair_share(8, ["a", "b", "c"], "c")
(3, 2)
>>> plan_claims("b", ["a", "b"], 4, {0: "a", 1: "a", 2: "a", 3: None})
Plan(target=2, keep=(), take=(3,), release=())
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert

from pipeline.errors import ConfigError
from pipeline.stream.state_pg import PgStateBackend, members


@dataclass(frozen=True)
class Plan:
    target: int  # partitions this member should own
    keep: tuple[int, ...]  # owned and kept
    take: tuple[int, ...]  # free partitions to acquire now
    release: tuple[int, ...]  # owned partitions to hand back (checkpoint first)


def fair_share(partitions: int, live: Sequence[str], me: str) -> int:
    """``me``'s share: partitions split evenly over the sorted members, the first
    ``partitions % n`` members one more (every member computes the same split)."""
    ordered = sorted(set(live) | {me})
    n, rank = len(ordered), ordered.index(me)
    return partitions // n + (1 if rank < partitions % n else 0)


def plan_claims(
    me: str, live: Sequence[str], partitions: int, owner_of: Mapping[int, str | None]
) -> Plan:
    """What ``me`` should do given each partition's *live* lease owner (None: free).

    Keeps what it owns up to its share (lowest partitions first, so handovers are few),
    releases the rest, and takes free partitions (lowest first) up to its share."""
    target = fair_share(partitions, live, me)
    mine = sorted(p for p in range(partitions) if owner_of.get(p) == me)
    keep, release = mine[:target], mine[target:]
    free = [p for p in range(partitions) if owner_of.get(p) is None]
    take = free[: max(0, target - len(keep))]
    return Plan(target, tuple(keep), tuple(take), tuple(release))


class Membership:
    """One worker's membership of its group, on the backend's PostgreSQL tables."""

    def __init__(
        self, state: PgStateBackend, partitions: int, member_ttl_s: float | None = None
    ) -> None:
        if not (isinstance(partitions, int) and partitions >= 1):
            raise ConfigError(f"partitions={partitions!r}: the topic's partition count, >= 1")
        ttl = state.lease_ttl_s if member_ttl_s is None else member_ttl_s
        if not 0 < ttl <= 3600:
            raise ConfigError(f"member_ttl_s={member_ttl_s!r}: seconds in (0, 3600]")
        self.state = state
        self.partitions = partitions
        self.member_ttl_s = float(ttl)

    def heartbeat(self) -> list[str]:
        """Stamp this member alive; the group's live members, sorted."""
        s, m = self.state, members.c
        with s.engine.begin() as conn:
            now = s.now(conn)
            ins = pg_insert(members).values(
                topic=s.topic, group_id=s.group, member=s.owner, joined_at=now,
                expires_at=now + timedelta(seconds=self.member_ttl_s),
            )  # fmt: skip
            conn.execute(
                ins.on_conflict_do_update(
                    index_elements=["topic", "group_id", "member"],
                    set_={"expires_at": ins.excluded.expires_at},
                )
            )
            rows = conn.execute(
                select(m.member)
                .where(m.topic == s.topic, m.group_id == s.group, m.expires_at > now)
                .order_by(m.member)
            ).all()
        return [r.member for r in rows]

    def plan(self) -> Plan:
        """Heartbeat, then this member's plan from the live members and leases."""
        live = self.heartbeat()
        with self.state.engine.connect() as conn:
            now = self.state.now(conn)
        owner_of = {
            p: (owner if owner is not None and expires > now else None)
            for p, (owner, _epoch, expires) in self.state.owners().items()
        }
        return plan_claims(self.state.owner, live, self.partitions, owner_of)

    def leave(self) -> None:
        """Stop counting as a member at once (a clean shutdown, after releasing leases)."""
        s, m = self.state, members.c
        with s.engine.begin() as conn:
            conn.execute(
                delete(members).where(
                    m.topic == s.topic, m.group_id == s.group, m.member == s.owner
                )
            )
