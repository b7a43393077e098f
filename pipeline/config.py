"""The one typed, frozen settings object, built at the entry point and passed down.

Every field can be set by an environment variable ``CHURN_<FIELD>`` (e.g.
``CHURN_DATA_DIR=/tmp/churn``, ``CHURN_PARTITIONS=8``) or by a ``.env`` file in the
working directory. Nothing here touches the disk: paths are only *computed*.

>>> s = Settings(data_dir="/tmp/x")
>>> s.topic_dir
PosixPath('/tmp/x/log/events')
"""

from __future__ import annotations

import re
from collections.abc import Collection
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from pipeline.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CHURN_", env_file=".env", extra="ignore", frozen=True
    )

    data_dir: Path = Field(Path("data"), description="Runtime data: logs, checkpoints, store, reports.")
    topic: str = Field("events", pattern=r"^[A-Za-z0-9._-]{1,100}$", description="Event topic name.")
    partitions: int = Field(4, ge=1, le=1024, description="Partitions of a new topic.")
    seed: int = Field(42, ge=0, description="Default simulator seed.")

    # partition log (file backend)
    log_segment_bytes: int = Field(64 << 20, ge=1024, description="Roll a segment at this size.")
    log_index_interval_bytes: int = Field(4096, ge=64, description="Sparse index spacing.")
    log_fsync: Literal["never", "batch", "interval"] = Field(
        "never", description="fsync policy: never (OS decides, Kafka's default), batch, interval."
    )
    log_fsync_interval_s: float = Field(1.0, gt=0, description="Interval for log_fsync=interval.")
    retention_hours: float | None = Field(None, gt=0, description="Delete segments older than this.")
    retention_bytes: int | None = Field(None, gt=0, description="Keep each partition under this size.")
    retention_allow_uncommitted: bool = Field(
        False, description="Allow retention to delete records some group has not consumed."
    )

    # event log backend: file segments (default) or a Kafka cluster (docs/kafka.md)
    log_backend: Literal["file", "kafka"] = Field("file", description="Event log backend: file | kafka.")
    kafka_bootstrap: str | None = Field(None, description="Kafka bootstrap servers, host:port[,...].")
    kafka_properties: dict[str, str] = Field(
        default_factory=dict, description="Extra librdkafka properties (JSON object), e.g. security settings."
    )
    kafka_replication_factor: int = Field(-1, ge=-1, description="Replication factor of new topics (-1: broker default).")
    kafka_timeout_s: float = Field(10.0, gt=0, description="Kafka metadata/delivery timeout.")

    # drift monitoring (pipeline/drift): unset values take DriftConfig's defaults
    drift_enabled: bool | None = Field(None, description="Run drift checks in the stream (default true).")
    drift_window_rows: int | None = Field(None, gt=0, description="Recent feature vectors per check (10,000).")
    drift_every_rows: int | None = Field(None, gt=0, description="Check every N scored users (50,000).")
    drift_every_minutes: float | None = Field(None, gt=0, description="...or every M minutes (10).")
    drift_share_warning: float | None = Field(None, gt=0, le=1, description="Drifted-feature share for Warning (0.2).")
    drift_share_critical: float | None = Field(None, gt=0, le=1, description="...for Critical (0.4).")
    drift_prediction_warning: float | None = Field(None, gt=0, description="Prediction drift score for Warning (0.1).")
    drift_prediction_critical: float | None = Field(None, gt=0, description="...for Critical (0.2).")
    drift_importance_critical: float | None = Field(
        None, gt=0, le=1, description="Share of the champion's feature importance drifted for Critical (0.5).")
    drift_feature_critical: float | None = Field(
        None, gt=0, description="Drift score of one important feature for Critical (0.25).")
    drift_feature_min_importance: float | None = Field(
        None, ge=0, le=1, description="...a feature carrying at least this share of the importance (0.03).")
    drift_retrain_cooldown_hours: float | None = Field(None, ge=0, description="Min hours between drift retrains (24).")
    drift_any_feature_critical: float | None = Field(
        None, gt=0, description="Any feature drifted by this distance is Critical, whatever its importance (0.3).")
    drift_retrain_policy: Literal["episode", "immediate"] | None = Field(
        None, description="episode: a retrain waits for labelled post-onset data (default); immediate: at once.")
    drift_retrain_after_days: int | None = Field(None, ge=1, description="Days after the drift onset before a retrain (the champion's label horizon; 30 if untagged).")
    drift_retrain_min_churners: int | None = Field(None, ge=1, description="Cancels since the onset before a retrain (50).")
    drift_episode_resolve_checks: int | None = Field(
        None, ge=0, description="Healthy checks in a row that close an open drift episode, no retrain (7; 0: never).")
    drift_retrain_lookback_days: int | None = Field(
        None, ge=0, description="Restrict a drift retrain's cutoffs to this many days before the onset on (unset: usual window).")
    drift_retrain_every_days: int | None = Field(None, ge=1, description="Cutoff spacing of a lookback retrain (3).")
    drift_report_retention: int | None = Field(None, ge=1, description="HTML reports kept (48).")
    drift_min_rows: int | None = Field(None, gt=0, description="Smaller windows are skipped, logged (500).")
    drift_full_report_every: int | None = Field(None, ge=0, description="Full HTML report every N-th check (6; 0 never).")
    drift_per_event_day: bool | None = Field(None, description="Also check when event time crosses midnight (true).")
    drift_observe: Literal["day_snapshot", "scored"] | None = Field(
        None, description="Window rows: day_snapshot (default), every active user at each event-time midnight; "
        "scored, the users the stream scores."
    )
    drift_warmup_days: int | None = Field(None, ge=0, description="Days of events before the first check (30).")
    drift_leader_partition: int | None = Field(None, ge=0, description="Owner of this partition runs the monitor (0).")
    drift_executor: Literal["process", "thread", "inline"] | None = Field(
        None, description="Where checks run: a child process (default), a thread, inline."
    )

    # stream: who is "high risk" (pipeline.highrisk); unset: 3x the champion's training base rate
    stream_high_risk: str | None = Field(
        None, description="High-risk rule: multiple_of_base_rate:3 (3x), top_percent:5 (top5%), absolute:0.2."
    )

    stream_drift_finish_s: float | None = Field(
        None, ge=0, description="Seconds a stream run that ends on its own waits for the drift check in flight (60)."
    )

    # money: the currency of the plan prices (monthly_revenue); the dashboard's and reports' formatting
    currency: str = Field("USD", description="ISO 4217 code of plan prices, e.g. USD, EUR.")

    # local stack (`churn up`): everything binds 127.0.0.1 on these ports
    prefect_port: int = Field(4200, ge=1, le=65535, description="Prefect server (API + UI) port for `churn up`.")
    mlflow_port: int = Field(5000, ge=1, le=65535, description="MLflow UI port for `churn up`.")
    dashboard_port: int = Field(8501, ge=1, le=65535, description="Streamlit dashboard port for `churn up`.")
    stack_start_timeout_s: float = Field(240.0, gt=0, description="Max seconds each service may take to become healthy.")
    stack_stop_grace_s: float = Field(20.0, ge=0, description="Seconds between SIGTERM and SIGKILL on stop.")

    # stores
    store_url: str | None = Field(None, description="SQLAlchemy URL; default SQLite in data_dir.")
    mlflow_tracking_uri: str | None = Field(None, description="Default: SQLite under mlruns/.")

    @field_validator("currency", mode="before")
    @classmethod
    def _currency_code(cls, v: object) -> object:
        return v.strip().upper() if isinstance(v, str) else v  # "eur" is EUR; "euro" still fails

    @field_validator("currency")
    @classmethod
    def _iso_4217(cls, v: str) -> str:
        # the shape of an ISO 4217 code only: the project keeps no list of the codes in use
        # (so a well-formed but unassigned code such as XYZ still passes)
        if not re.fullmatch(r"[A-Z]{3}", v):
            raise PydanticCustomError("currency", "not an ISO 4217 currency code (three letters, e.g. USD, EUR, GBP)")
        return v

    @field_validator("data_dir")
    @classmethod
    def _expand(cls, v: Path) -> Path:
        return Path(v).expanduser()

    # -- derived locations (computed, never created here) ------------------------------
    @property
    def log_dir(self) -> Path:
        return self.data_dir / "log"

    @property
    def topic_dir(self) -> Path:
        return self.log_dir / self.topic

    @property
    def sim_dir(self) -> Path:
        return self.data_dir / "sim"

    @property
    def resolved_store_url(self) -> str:
        return self.store_url or f"sqlite:///{self.data_dir.resolve() / 'churn.db'}"

    @property
    def resolved_mlflow_uri(self) -> str:
        """The configured tracking URI; else the data directory's own registry when it has
        one (``<data_dir>/mlruns/mlflow.db``: the quick demo keeps its registry there, so
        `churn dashboard`, `stream` or `train` on its data directory afterwards find its
        champion); else the project's ``mlruns/``."""
        if self.mlflow_tracking_uri:
            return self.mlflow_tracking_uri
        own = self.data_dir / "mlruns" / "mlflow.db"
        if own.is_file():  # an emptied or damaged one too: refused where it is used, never passed over
            return f"sqlite:///{own.resolve()}"
        return f"sqlite:///{PROJECT_ROOT / 'mlruns' / 'mlflow.db'}"


def load_settings(*, cli_options: Collection[str] = (), **overrides: object) -> Settings:
    """Build settings from env + overrides; turn validation errors into one clear line.
    ``cli_options``: the overrides that came from command-line options (``--partitions``), so
    a bad one is named as the option the user typed rather than as its env variable."""
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**given)
    except SettingsError as exc:  # a JSON setting (kafka_properties) that is not JSON
        raise ConfigError(_not_json(exc)) from None
    except UnicodeDecodeError as exc:  # the environment is text already: only the .env file is decoded here
        raise ConfigError(f"invalid configuration: the .env file {_env_file()} is not UTF-8 text ({exc.reason} at "
                          f"byte {exc.start}); save it as UTF-8, or move it away") from None
    except ValidationError as exc:

        def source(loc: tuple) -> str:  # where the bad value came from: a command-line option or the env
            name = str(loc[0]) if loc else ""
            if name in given and name in cli_options:
                return f" (--{name.replace('_', '-')})"
            return f" (env CHURN_{name.upper()})"

        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'settings'}={e.get('input')!r}: {e['msg']}{source(e['loc'])}"
            for e in exc.errors()
        )
        raise ConfigError(f"invalid configuration: {problems}") from None


def _env_file() -> Path:
    return Path(str(Settings.model_config["env_file"])).resolve()


def _not_json(exc: SettingsError) -> str:
    """pydantic-settings decodes a dict setting as JSON before validating it and names only
    the field and the source class: say which variable, where it was set and what it takes."""
    found = re.search(r'field "(\w+)" from source "(\w+)"', str(exc))
    if found is None:  # not a decoding failure: pydantic-settings' own words
        return f"invalid configuration: {str(exc).strip().splitlines()[0]}"
    name, source = found.groups()
    var = f"{Settings.model_config['env_prefix']}{name.upper()}"
    where = f"in the .env file {_env_file()}" if source.startswith("DotEnv") else "in the environment"
    field = Settings.model_fields.get(name)
    why = f" ({exc.__cause__})" if exc.__cause__ is not None else ""
    takes = f": {field.description}" if field is not None and field.description else ""
    return f"invalid configuration: {var} {where} is not valid JSON{why}{takes}"
