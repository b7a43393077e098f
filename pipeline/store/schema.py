"""The store's tables (SQLAlchemy Core) and how times are stored.

Times are UTC everywhere. PostgreSQL keeps them as ``timestamptz``; SQLite as ISO-8601
text ``YYYY-MM-DDTHH:MM:SS.ffffff`` (fixed width, so text order is time order and
SQLite's date functions read it). The conversion is done column-wise in
:mod:`pipeline.store.rows` rather than per value in a SQLAlchemy type, which keeps a
10,000-row upsert fast. Score history is the exception: columnar segments
(``score_history_segments``, :mod:`pipeline.store.segments`) whose payload holds times
as int64 microseconds since the epoch (UTC); only the segment bounds are ``Time``.
The other exception is ``scores`` on SQLite (``ScoreTime``, schema version 9): its two
times are int64 microseconds since the epoch (UTC) too, 8 bytes instead of 26 of text.
Every upsert batch rewrites most pages of that table, so its size is write cost:
measured on 200,000 users, 23 -> 15 MB and a 10,000-user upsert's commit 33 -> 15 ms.

Adding a table (e.g. drift runs): define it here, bump ``SCHEMA_VERSION`` in
:mod:`pipeline.store.migrations` and add a migration that creates it there (the module
doc shows how). Changing a column of an existing table needs a migration too.
"""

from __future__ import annotations

from sqlalchemy import (
    DDL,
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    event,
    true,
)
from sqlalchemy.dialects.postgresql import JSONB, TIMESTAMP

Time = String(32).with_variant(TIMESTAMP(timezone=True), "postgresql")
ScoreTime = BigInteger().with_variant(TIMESTAMP(timezone=True), "postgresql")  # SQLite: int64 us
Json = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
Id = String(200)
# ``scores.user_id`` on PostgreSQL compares byte-wise (``COLLATE "C"``, schema version
# 10), as SQLite's BINARY does: every upsert walks that B-tree once per row, and a
# locale collation (even ``C.UTF-8``) compares through ``strcoll``: 10,000-row upserts
# ~3 ms faster of ~70 (bench_store A/B), and ``ORDER BY user_id`` the same on both.
UserKey = String(200).with_variant(String(200, collation="C"), "postgresql")

metadata = MetaData()

schema_version = Table(
    "schema_version",
    metadata,
    Column("id", Integer, primary_key=True),  # always 1: a one-row table
    Column("version", Integer, nullable=False),
    Column("migrated_at", Time, nullable=False),
)

# Current risk per user: the dashboard's main table. Kept narrow on purpose (schema
# version 4 dropped the sampling columns ``history_time``/``history_risk``): a batch of
# distinct users dirties most pages of this B-tree, so bytes per row are write cost.
scores = Table(
    "scores",
    metadata,
    Column("user_id", UserKey, primary_key=True),
    Column("risk", Float, nullable=False),
    Column("model_version", String(100), nullable=False),
    Column("features_time", ScoreTime, nullable=False),  # event time the features are as of
    Column("reasons", Json, nullable=True),  # top feature contributions (high risk only)
    Column("plan", String(50), nullable=True),
    Column("monthly_revenue", Float, nullable=True),
    Column("partition", Integer, nullable=True),
    Column("updated_at", ScoreTime, nullable=False),  # wall clock of the write
    # False once the user has no active subscription (cancelled, voluntarily or not):
    # a churned user is no longer "at risk", so every reader of current scores counts
    # active rows only; the row (and its history) is kept, and a re-subscription sets it
    # back. Schema version 3.
    Column("active", Boolean, nullable=False, server_default=true()),
    # No index on risk, on purpose: every batch moves thousands of risks, and an index
    # entry move per row costs more (SQLite +40% per upsert; PostgreSQL loses HOT
    # updates) than the dashboard's periodic full scan for top-k and histograms.
    sqlite_with_rowid=False,  # one B-tree keyed by user_id instead of rowid + index
    # PostgreSQL: leave room in each page so updates stay on the page (HOT, no index
    # write); measured ~2x faster batch upserts than the default 100.
    postgresql_with={"fillfactor": 70},
)

# Risk per user over event time, for charts: one point per user per event-time interval
# (``records.HistoryPolicy``, default one day), the user's newest score in it.
#
# Schema version 8: **columnar segments** (:mod:`pipeline.store.segments`). Each write
# appends one row whose ``payload`` packs that write's points column-wise, in the same
# transaction as the scores; readers keep per (bucket, user) the newest point (the later
# segment on a tie), which is the row the keyed table of versions 4-7 kept, so a replay
# (an identical segment) or a regrouping reads the same. Appending one row per write
# instead of upserting one B-tree row per point took the history from ~40 % of a
# 10,000-row scores+history write to ~2 % (``benchmarks/bench_store.py``). The min/max
# columns let ``since`` reads and ``prune`` skip segments without decoding them.
score_history_segments = Table(
    "score_history_segments",
    metadata,
    # write order (SQLite: max + 1 under the write lock; PostgreSQL: appended under an
    # advisory lock, so seq order is commit order): the tie-break between equal times
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=True),
    Column("points", Integer, nullable=False),
    Column("user_min", Id, nullable=False),  # code-point order (PostgreSQL: COLLATE "C")
    Column("user_max", Id, nullable=False),
    Column("bucket_min", Time, nullable=False),
    Column("bucket_max", Time, nullable=False),
    Column("time_min", Time, nullable=False),
    Column("time_max", Time, nullable=False),
    Column("payload", LargeBinary, nullable=False),
    # NULL: written by a flush (its points span any users); else the compaction run that
    # wrote it (``Store.compact_history``: points sorted by user, narrow user ranges).
    # Every flush segment is newer (higher ``seq``) than every run's, except one a
    # compaction could not decode and so kept (reads skip it and say so).
    Column("run", Integer, nullable=True),
)

# PostgreSQL: store payloads uncompressed (pglz spent server CPU on every write and read
# for little gain on packed numbers).
event.listen(
    score_history_segments,
    "after_create",
    DDL("ALTER TABLE %(fullname)s ALTER COLUMN payload SET STORAGE EXTERNAL").execute_if(
        dialect="postgresql"
    ),
)

# Schema versions 4-7 kept history keyed, one row per (bucket, user_id) point, upserted.
# Version 8 moves its rows into segments and drops it; defined (outside ``metadata``: a
# new store does not create it) for the migrations that build and carry it over.
legacy = MetaData()
score_history = Table(
    "score_history",
    legacy,
    Column("bucket", Time, primary_key=True),  # start of the point's interval
    Column("user_id", Id, primary_key=True),
    Column("time", Time, nullable=False),  # the score's features_time
    Column("risk", Float, nullable=False),
    Column("model_version", String(100), nullable=False),
    sqlite_with_rowid=False,
)

# One row per (time, worker, partition) metrics tick; the key makes re-recording a no-op.
stream_metrics = Table(
    "stream_metrics",
    metadata,
    Column("time", Time, primary_key=True),
    Column("worker", Id, primary_key=True),
    Column("partition", Integer, primary_key=True),
    Column("committed_offset", BigInteger, nullable=True),
    Column("log_end_offset", BigInteger, nullable=True),
    Column("lag", BigInteger, nullable=True),
    Column("lag_seconds", Float, nullable=True),
    Column("status", String(16), nullable=True),  # Burrow status: OK, WARN, STALL, STOP, REWIND
    Column("events", BigInteger, nullable=True),  # events processed since the previous tick
    Column("events_per_s", Float, nullable=True),
    Column("batch_p50_ms", Float, nullable=True),
    Column("batch_p95_ms", Float, nullable=True),
    Column("batch_p99_ms", Float, nullable=True),
    Column("dead_letters", BigInteger, nullable=True),  # dead letters since the previous tick
    Column("model_version", String(100), nullable=True),
    Index("ix_stream_metrics_partition_time", "partition", "time"),
    sqlite_with_rowid=False,
)

autoscale_decisions = Table(
    "autoscale_decisions",
    metadata,
    Column("time", Time, primary_key=True),
    Column("current", Integer, nullable=False),
    Column("desired", Integer, nullable=False),
    Column("recommended", Integer, nullable=True),  # before stabilization and cooldown
    Column("action", String(16), nullable=False),  # scale_up, scale_down, hold
    Column("reason", Text, nullable=False),
    Column("total_lag", BigInteger, nullable=True),
)

workers = Table(
    "workers",
    metadata,
    Column("worker_id", Id, primary_key=True),
    Column("pid", Integer, nullable=True),
    Column("host", String(255), nullable=True),
    Column("generation", Integer, nullable=False),  # the supervisor's rebalance counter
    Column("started_at", Time, nullable=False),
    Column("heartbeat_at", Time, nullable=False),
)

# The primary key on ``partition`` is what makes ownership exclusive.
partition_owners = Table(
    "partition_owners",
    metadata,
    Column("partition", Integer, primary_key=True),
    Column("worker_id", Id, nullable=False),
    Column("assigned_at", Time, nullable=False),
    Index("ix_partition_owners_worker", "worker_id"),
)

# Drift checks of the stream (schema version 2): one row per check, and per check one row
# per feature. ``run_id`` is deterministic (source, model version, check time), so
# recording the same run twice is a no-op. ``drift_features.time`` repeats the run's time
# so charts of one feature over time need no join.
drift_runs = Table(
    "drift_runs",
    metadata,
    Column("run_id", Id, primary_key=True),
    Column("time", Time, nullable=False),  # when the check ran (the monitor's clock)
    Column("window_start", Time, nullable=True),  # event-time bounds of the checked window
    Column("window_end", Time, nullable=True),
    Column("model_version", String(100), nullable=False),
    Column("source", Id, nullable=False),  # which stream worker / tool ran the check
    Column("rows", Integer, nullable=False),
    Column("reference_rows", Integer, nullable=False),
    Column("features", Integer, nullable=False),  # columns checked
    Column("drifted_count", Integer, nullable=False),
    Column("drifted_share", Float, nullable=False),
    Column("dataset_drift", Boolean, nullable=False),
    Column("prediction_method", String(100), nullable=True),
    Column("prediction_score", Float, nullable=True),
    Column("prediction_threshold", Float, nullable=True),
    Column("prediction_drift", Boolean, nullable=True),
    Column("level", String(16), nullable=False),  # Healthy, Warning, Critical
    Column("reasons", Json, nullable=True),
    Column("report_path", Text, nullable=True),  # the full HTML report, when rendered
    Column("seconds", Float, nullable=True),
    # Every check that came due is a row (schema version 4): "checked" (the columns above
    # hold its metrics), "skipped" (it could not run: too few rows, no usable reference)
    # or "failed" (an exception); ``status_reason`` says why. Skipped and failed rows have
    # zero counts and level "Skipped" / "Failed"; ``Store.drift_runs()`` returns the
    # checked ones unless asked for every status.
    Column("status", String(16), nullable=False, server_default="checked"),
    Column("status_reason", Text, nullable=True),
    Index("ix_drift_runs_time", "time"),
)

drift_features = Table(
    "drift_features",
    metadata,
    Column("run_id", Id, primary_key=True),
    Column("feature", String(100), primary_key=True),
    Column("time", Time, nullable=False),
    Column("method", String(100), nullable=False),
    Column("score", Float, nullable=False),
    Column("threshold", Float, nullable=False),
    Column("drifted", Boolean, nullable=False),
    Index("ix_drift_features_time", "time"),
)

# Realised performance of the published scores (schema version 4): per scoring day (a
# UTC midnight) and model version, the scores the stream had published at that instant
# joined with the cancels of the following ``horizon_days`` (see
# ``pipeline.monitoring.realised``). Written once the horizon has passed; recomputing a
# day rewrites its row.
realised_performance = Table(
    "realised_performance",
    metadata,
    Column("day", Time, primary_key=True),  # the scoring instant (UTC midnight)
    Column("model_version", String(100), primary_key=True),
    Column("horizon_days", Integer, nullable=False),
    Column("n", Integer, nullable=False),  # active users with a published score
    Column("positives", Integer, nullable=False),  # of them, cancelled within the horizon
    *(Column(f"{m}{suffix}", Float, nullable=True)
      for m in ("base_rate", "roc_auc", "pr_auc", "lift_10", "ece")
      for suffix in ("", "_low", "_high")),
    Column("mean_risk", Float, nullable=True),
    Column("matured_at", Time, nullable=False),  # event time the horizon had passed by
    Column("computed_at", Time, nullable=False),  # wall clock of the computation
)

# Drift episodes and the retrain decisions taken for them (schema version 6,
# pipeline.drift.episodes): one episode per run of Critical drift of a model version.
drift_episodes = Table(
    "drift_episodes",
    metadata,
    Column("episode_id", Id, primary_key=True),
    Column("model_version", String(100), nullable=False),
    Column("onset", Time, nullable=False),  # event time: first day of the drifted streak
    Column("opened_at", Time, nullable=False),  # event time of the Critical check that opened it
    Column("status", String(16), nullable=False),  # open, retraining, closed
    Column("status_reason", Text, nullable=True),
    Column("closed_at", Time, nullable=True),
    Column("updated_at", Time, nullable=False),
)
retrain_decisions = Table(
    "retrain_decisions",
    metadata,
    Column("decision_id", Id, primary_key=True),
    Column("time", Time, nullable=False),  # event time of the check that decided
    Column("episode_id", Id, nullable=True),
    Column("model_version", String(100), nullable=False),
    Column("decision", String(32), nullable=False),  # pipeline.drift.episodes.DECISIONS
    Column("reason", Text, nullable=False),
    Column("due", Time, nullable=True),  # deferred until
    Column("run", Text, nullable=True),  # the orchestrator's run, once one was created
    Column("source", Id, nullable=False),
    Column("recorded_at", Time, nullable=False),  # the monitor's clock
    Index("ix_retrain_decisions_time", "time"),
)

TIME_COLUMNS = {
    "scores": ("features_time", "updated_at"),
    "score_history_segments": ("bucket_min", "bucket_max", "time_min", "time_max"),
    "stream_metrics": ("time",),
    "autoscale_decisions": ("time",),
    "workers": ("started_at", "heartbeat_at"),
    "partition_owners": ("assigned_at",),
    "drift_runs": ("time", "window_start", "window_end"),
    "drift_features": ("time",),
    "realised_performance": ("day", "matured_at", "computed_at"),
    "drift_episodes": ("onset", "opened_at", "closed_at", "updated_at"),
    "retrain_decisions": ("time", "due", "recorded_at"),
}

# Schema versions 1-3 appended sampled history points with these triggers; version 4
# drops them (``migrations._v4_history_per_interval``).
OLD_SQLITE_TRIGGERS = ("scores_history_on_insert", "scores_history_on_update")
