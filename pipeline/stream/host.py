"""A stand-alone worker host: one scoring worker that needs only connection settings.

``churn stream-worker`` runs :func:`run_host`: one :class:`~pipeline.stream.worker.Worker`
in this process, on any host, with no data directory shared with anyone:

* the event log is **Kafka** (``kafka_bootstrap``); the group's committed offsets live there;
* checkpoints (feature state + the offsets it covers, one transaction), partition leases
  (epoch-fenced) and membership live in **PostgreSQL** (:class:`PgStateBackend`,
  :class:`~pipeline.stream.membership.Membership`), beside the scores (the same ``store_url``);
* the champion **and its feature spec** come from the **MLflow registry**
  (``models:/churn@champion`` via ``tracking_uri``, :class:`RegistryFeed`), exported into a
  private cache directory (a temporary one by default) that nobody else reads.

Each heartbeat (:class:`GroupAssignment`, in the worker's writer thread) renews the leases
held, stamps this member alive and asks :func:`~pipeline.stream.membership.plan_claims`
for its fair share: the worker releases surplus partitions (checkpoint first), takes free
ones (restoring their checkpoint from PostgreSQL). A host that dies stops renewing: after
``lease_ttl_s`` its partitions are free and the survivors take them. A worker whose lease
was taken over meanwhile is fenced: its checkpoint write is refused (``FencedError``) and
it drops the partition at the next heartbeat; the new owner continues from the newest
checkpoint, so every event still affects the features once and scores are rewritten
idempotently.

With ``drift`` set, the host that owns the drift leader partition checks drift, as
``churn stream``'s leader does, and records the runs in the store (the dashboard's Drift
page reads them from there).

No champion (or one this stream cannot score with) is fail-closed: nothing is scored,
the reason is printed as one line and recorded in ``stream_host_events``.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.errors import (
    ChurnError,
    ConfigError,
    ModelMismatchError,
    ModelUnreadableError,
    StreamError,
)
from pipeline.features.spec import DEFAULT_SPEC, FeatureSpec
from pipeline.stream.config import StreamConfig, StreamPaths
from pipeline.stream.drift_hook import write_reference
from pipeline.stream.membership import Membership
from pipeline.stream.model import ModelRef, check_feature_set, export_model, publish
from pipeline.stream.state_pg import PgStateBackend


@dataclass
class HostSettings:
    """What one stand-alone worker needs: connections, the group, and a few timings."""

    topic: str
    kafka_bootstrap: str | None
    store_url: str | None
    tracking_uri: str | None
    stream: StreamConfig = field(default_factory=StreamConfig)
    log: dict[str, Any] = field(default_factory=dict)  # extra log_config fields (timeouts, properties)
    cache_dir: Path | None = None  # private: the champion export; None: a temporary directory
    lease_ttl_s: float = 15.0  # a dead host's partitions move after at most this (+ a heartbeat)
    champion_wait_s: float = 0.0  # how long to wait for a champion before failing (0: fail now)
    member: str | None = None  # id in stream_leases/stream_members; None: host:pid:random
    # DriftConfig fields (None: no drift checks). The host owning ``leader_partition`` checks
    # drift against the champion's reference (exported with it) and records the runs in the
    # store; the leadership moves with that partition's lease.
    drift: dict[str, Any] | None = None

    def check(self) -> None:
        """One clear line for each missing or wrong setting (``ConfigError``)."""
        if not self.kafka_bootstrap:
            raise ConfigError("churn stream-worker needs the Kafka cluster: set CHURN_KAFKA_BOOTSTRAP "
                              "(or --kafka-bootstrap host:port); workers on several hosts share no files")
        if not self.store_url:
            raise ConfigError("churn stream-worker needs the PostgreSQL store: set CHURN_STORE_URL (or "
                              "--store-url postgresql+psycopg://user@host:5432/db); it holds checkpoints, "
                              "leases and scores")
        if not self.store_url.startswith(("postgresql", "postgres")):
            scheme = self.store_url.split(":", 1)[0]
            raise ConfigError(f"churn stream-worker needs a PostgreSQL store URL, got a {scheme!r} one: "
                              "checkpoints and leases must be shared by every host (postgresql+psycopg://"
                              "user@host:5432/db); a single host can run `churn stream` instead")
        if not self.tracking_uri:
            raise ConfigError("churn stream-worker needs the MLflow tracking server the champion is "
                              "registered in: set CHURN_MLFLOW_TRACKING_URI (or --tracking-uri)")
        if not 0 < self.lease_ttl_s <= 3600:
            raise ConfigError(f"--lease-ttl {self.lease_ttl_s!r}: seconds in (0, 3600]")
        if self.stream.heartbeat_interval_s * 2 >= self.lease_ttl_s:
            raise ConfigError(f"--lease-ttl {self.lease_ttl_s:g} s must exceed twice the heartbeat interval "
                              f"({self.stream.heartbeat_interval_s:g} s), or live workers lose their leases")

    def log_config(self) -> dict[str, Any]:
        return {**self.log, "log_backend": "kafka", "kafka_bootstrap": self.kafka_bootstrap}


class GroupAssignment:
    """The worker's heartbeat on PostgreSQL: renew the leases held, stamp membership, and
    answer which partitions this worker should own now (kept + to take)."""

    def __init__(self, state: PgStateBackend, membership: Membership, logger: logging.Logger) -> None:
        self.state = state
        self.membership = membership
        self.logger = logger
        self.lost: list[int] = []  # partitions whose lease was taken from us (fenced), in order

    def __call__(self) -> tuple[int, ...]:
        lost = self.state.renew_all()
        if lost:
            self.lost += lost
            self.logger.warning("member %s: lease(s) of partition(s) %s were taken over; fenced, giving "
                                "them up", self.state.owner, lost)
        plan = self.membership.plan()
        return tuple(sorted(plan.keep + plan.take))


class RegistryFeed:
    """The champion as a stand-alone worker gets it: from the MLflow registry, with the
    feature spec recorded beside the model (``feature_registry.json``), exported into a
    private directory and published to the worker's pointer file."""

    def __init__(self, tracking_uri: str, paths: StreamPaths, cfg: StreamConfig, logger: logging.Logger) -> None:
        from pipeline.stream.champion import RegistryChampion

        self.source = RegistryChampion(tracking_uri)
        self.paths = paths
        self.cfg = cfg
        self.logger = logger
        self.spec: FeatureSpec | None = None  # fixed by the first champion: the engine computes it
        self.ref: ModelRef | None = None
        self.refused: str | None = None

    @property
    def missing(self) -> str:
        return self.source.missing

    def fetch(self) -> ModelRef | None:
        """Export and publish the current champion if it changed; None if there is none."""
        from pipeline import registry

        info = self.source.current()
        if info is None or (self.ref is not None and info.version == self.ref.version) or info.version == self.refused:
            return None if info is None else self.ref
        uri = f"models:/{self.source.name}/{info.version}"
        try:
            bundle = registry.load_bundle(uri)
            doc = (bundle.feature_registry or {}).get("feature_spec")
            spec = FeatureSpec.from_dict(doc) if doc else DEFAULT_SPEC
            if self.spec is not None and spec.version != self.spec.version:
                raise ModelMismatchError(
                    f"refusing champion churn v{info.version}: it was trained on feature spec {spec.version}, "
                    f"but this worker's features are spec {self.spec.version}; restart the workers to switch")
            fs = bundle.feature_set_version or info.feature_set_version
            for claimed in dict.fromkeys((fs, info.feature_set_version)):
                check_feature_set(info.version, claimed, tuple(bundle.model.features), spec)
            self.cfg.high_risk_rule.check_base_rate(info.version, info.base_rate)
        except (ModelMismatchError, ModelUnreadableError):  # this version, not the registry: refused until it moves
            self.refused = info.version
            raise
        ref = export_model(bundle.model, info.version, fs, self.paths.models, source=f"{self.source.where} {uri}",
                           base_rate=info.base_rate, base_rate_source=info.base_rate_source,
                           horizon_days=info.horizon_days)
        # the reference sample travels with the export, as `churn stream` exports it: the drift
        # leader's checks read it there (drift_hook)
        write_reference(Path(ref.path), bundle.reference)
        publish(self.paths.champion, ref)
        self.spec, self.ref, self.refused = spec, ref, None
        self.logger.info("champion is churn v%s from %s (feature spec %s)", ref.version, self.source.where,
                         spec.version)
        return ref


def wait_for_champion(feed: RegistryFeed, limit_s: float, should_stop: Callable[[], bool]) -> ModelRef | None:
    """The champion, polling up to ``limit_s``; StreamError (fail closed) if there is none."""
    import time

    deadline = time.monotonic() + limit_s
    while True:
        ref = feed.fetch()
        if ref is not None or should_stop():
            return ref
        if time.monotonic() >= deadline:
            raise StreamError(f"no champion model: {feed.missing}. Nothing was scored (--champion-wait sets how "
                              "long a worker waits for one)")
        time.sleep(min(2.0, max(0.0, deadline - time.monotonic())))


class ChampionFollower(threading.Thread):
    """Polls the registry every ``model_poll_s``; a new champion is exported and published
    (the worker switches between batches). A refused one is logged and recorded."""

    def __init__(self, feed: RegistryFeed, state: PgStateBackend, every_s: float) -> None:
        super().__init__(name="champion-follower", daemon=True)
        self.feed, self.state, self.every_s = feed, state, every_s
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(self.every_s):
            try:
                self.feed.fetch()
            except (ModelMismatchError, ModelUnreadableError) as exc:
                self.feed.logger.error("%s Still scoring with v%s.", exc, getattr(self.feed.ref, "version", "?"))
                _record(self.state, "error", str(exc))
            except Exception as exc:  # noqa: BLE001 - a registry hiccup: keep scoring, retry later
                self.feed.logger.warning("champion poll failed (will retry): %s", exc)


def _record(state: PgStateBackend | None, level: str, message: str) -> None:
    if state is None:
        return
    try:
        state.record_event(level, message)
    except Exception as exc:  # noqa: BLE001 - the message is printed anyway
        logging.getLogger("pipeline.stream").warning("could not record %r in stream_host_events: %s", message, exc)


def run_host(
    settings: HostSettings,
    should_stop: Callable[[], bool] = lambda: False,
    *,
    until_caught_up: bool = False,
    max_seconds: float | None = None,
    logger: logging.Logger | None = None,
    prepare: bool = False,
) -> dict[str, Any]:
    """Run one stand-alone worker until stopped; returns its summary (``member``, ``lost``
    added). Raises ChurnError subclasses with one-line messages. ``prepare``: this
    process is the worker's own (the command line), so apply the worker's process-wide
    settings (:func:`pipeline.stream.worker.prepare_process`: GC and GIL switch interval)
    once its long-lived objects exist, as supervised workers do."""
    from pipeline.log.deadletter import dead_letter_log
    from pipeline.log.kafka_config import open_log_config
    from pipeline.store import Store
    from pipeline.stream.worker import Worker, prepare_process

    settings.check()
    logger = logger or logging.getLogger("pipeline.stream")
    cfg = settings.stream
    own_cache = settings.cache_dir is None
    cache = Path(tempfile.mkdtemp(prefix="churn-worker-")) if own_cache else Path(settings.cache_dir)  # type: ignore[arg-type]
    paths = StreamPaths(cache, cfg.group)
    state = log = store = None
    membership = None
    follower = None
    try:
        log = open_log_config(cache, settings.topic, settings.log_config())  # Kafka: no files
        dead_letter_log(log).close()  # <topic>.dlq must exist too (a clear LogError if not)
        state = PgStateBackend(settings.store_url, settings.topic, cfg.group, owner=settings.member,  # type: ignore[arg-type]
                               lease_ttl_s=settings.lease_ttl_s)
        feed = RegistryFeed(settings.tracking_uri, paths, cfg, logger)  # type: ignore[arg-type]
        try:
            ref = wait_for_champion(feed, settings.champion_wait_s, should_stop)
        except ChurnError as exc:
            _record(state, "error", str(exc))
            raise
        if ref is None:  # stopped while waiting
            return {"member": state.owner, "events": 0, "stopped": "before a champion was available"}
        store = Store(settings.store_url)  # type: ignore[arg-type]
        membership = Membership(state, log.num_partitions)
        assignment = GroupAssignment(state, membership, logger)
        worker = Worker(state.owner, log, store, paths, cfg, logger=logger, state=state, assignment=assignment,
                        feature_spec=feed.spec, drift=settings.drift)
        follower = ChampionFollower(feed, state, cfg.model_poll_s)
        follower.start()
        if prepare:
            prepare_process()
        logger.info("member %s joined group %r of topic %r (%d partitions) on %s", state.owner, cfg.group,
                    settings.topic, log.num_partitions, state)
        summary = worker.run(should_stop, until_caught_up=until_caught_up, max_seconds=max_seconds)
        return summary | {"member": state.owner, "lost": assignment.lost}
    finally:
        if follower is not None:
            follower.stop.set()
        if membership is not None:
            try:
                membership.leave()  # after the worker released its leases (Worker.shutdown)
            except Exception as exc:  # noqa: BLE001 - it expires after the TTL anyway
                logger.warning("leaving the group failed (it expires after %g s): %s", membership.member_ttl_s, exc)
        for thing in (store, log, state):
            if thing is not None:
                thing.close()
        if own_cache:
            shutil.rmtree(cache, ignore_errors=True)

