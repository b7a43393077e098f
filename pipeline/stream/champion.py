"""Where the champion comes from: the MLflow registry (``models:/churn@champion``).

The supervisor polls :meth:`RegistryChampion.current` (one cheap alias lookup) and, when
the alias moved, loads that exact version (``models:/churn/<version>``, not the alias,
so a move in between cannot mix two versions), checks its feature set against the
topic's feature spec (:func:`pipeline.features.spec.spec_for`; the version tag first, before
downloading anything, then the model's recorded spec and features) and exports it for the
workers (:mod:`pipeline.stream.model`). Tests use :class:`StaticChampion`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from pipeline.errors import RegistryError
from pipeline.features.spec import DEFAULT_SPEC, FeatureSpec
from pipeline.stream.drift_hook import write_reference
from pipeline.stream.model import ModelRef, check_feature_set, export_model


@dataclass(frozen=True)
class ChampionInfo:
    version: str
    feature_set_version: str
    base_rate: float | None = None  # its training base rate (pipeline.highrisk.base_rate_from_tags)
    base_rate_source: str = ""
    horizon_days: int | None = None  # its label horizon (registry tag), None if untagged


def horizon_from_tags(tags: dict[str, str]) -> int | None:
    """The ``horizon_days`` tag as a positive int (read as the gate reads it,
    :meth:`pipeline.training.gate.Identity.from_tags`); None when missing or unreadable."""
    from pipeline import registry
    from pipeline.training.gate import Identity

    try:
        days = Identity.from_tags(tags, horizon_tag=registry.HORIZON_TAG).horizon_days
    except (ValueError, OverflowError):  # not a number: unknown, as if untagged
        return None
    return days if days is not None and days >= 1 else None


class ChampionSource(Protocol):
    where: str

    def current(self) -> ChampionInfo | None:
        """The version the champion alias points at now, or None if there is none."""
        ...

    def export(self, info: ChampionInfo, models_dir: Path, spec: FeatureSpec = DEFAULT_SPEC) -> ModelRef:
        """Load that version and write it for the workers; refuses (``ModelMismatchError``) a
        model not trained on ``spec``, the topic's feature spec (checked first)."""
        ...


# MLflow HTTP settings for a stream's registry reads (see RegistryChampion): a refused
# connection gives up after ~3 s, an unanswered one after ~35 s
STREAM_HTTP = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
               "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}  # fmt: skip


class RegistryChampion:
    def __init__(self, tracking_uri: str, name: str | None = None) -> None:
        import mlflow

        from pipeline import registry

        self.name = name or registry.MODEL_NAME
        self.where = tracking_uri
        self.missing = ""  # why current() found no champion (for the supervisor's wait message)
        mlflow.set_tracking_uri(tracking_uri)  # reading only: no experiment or database is created
        # With MLflow's defaults (7 retries, backoff factor 2, 120 s timeout) one poll of a
        # server that is down took ~4 minutes: a start waited that long to say so, and a
        # running stream's next model switch too (its polls run off the supervision loop).
        # Fail fast and ask at the next poll instead; settings given in the environment win.
        for var, value in STREAM_HTTP.items():
            os.environ.setdefault(var, value)

    def current(self) -> ChampionInfo | None:
        from pipeline import registry
        from pipeline.mlflow_store import check_readable

        self.missing = check_readable(self.where) or ""  # a garbage database: RegistryError, one line
        try:
            mv = None if self.missing else registry.champion_version(self.name)
        except RegistryError as exc:  # down or failing: no answer now; the caller waits or keeps its model
            self.missing = f"{exc} at {self.where}; asking again at the next poll"
            return None
        if mv is None:
            self.missing = self.missing or (f"no version of the registered model {self.name!r} has the alias "
                                            f"'champion' in {self.where}; train one with `churn train`")
            return None
        from pipeline.highrisk import base_rate_from_tags

        rate, source = base_rate_from_tags(mv.tags)
        return ChampionInfo(str(mv.version), str(mv.tags.get(registry.FEATURE_SET_TAG, "")), rate, source,
                            horizon_from_tags(mv.tags))

    def export(self, info: ChampionInfo, models_dir: Path, spec: FeatureSpec = DEFAULT_SPEC) -> ModelRef:
        from pipeline import registry

        check_feature_set(info.version, info.feature_set_version, spec=spec)  # before downloading anything
        uri = f"models:/{self.name}/{info.version}"
        bundle = registry.load_bundle(uri)
        fs = bundle.feature_set_version or info.feature_set_version
        recorded = (bundle.feature_registry or {}).get("feature_spec", {}).get("version", fs)
        for claimed in dict.fromkeys((fs, recorded)):  # the tag and the spec recorded with the model
            check_feature_set(info.version, claimed, tuple(bundle.model.features), spec)
        ref = export_model(bundle.model, info.version, fs, models_dir, source=f"{self.where} {uri}",
                           base_rate=info.base_rate, base_rate_source=info.base_rate_source,
                           horizon_days=info.horizon_days)
        write_reference(Path(ref.path), bundle.reference)  # the drift checks' reference (drift_hook)
        return ref


class StaticChampion:
    """A champion source for tests: ``set(model, version)`` moves the alias."""

    where = "memory"

    def __init__(self) -> None:
        self._model: object | None = None
        self._info: ChampionInfo | None = None
        self._reference: object | None = None

    def set(self, model: object, version: str, feature_set_version: str | None = None,
            reference: object | None = None, base_rate: float | None = None,
            horizon_days: int | None = None) -> None:
        from pipeline.features.registry import FEATURE_SET_VERSION

        self._model = model
        self._reference = reference
        self._info = ChampionInfo(version, feature_set_version or FEATURE_SET_VERSION, base_rate,
                                  "training base rate" if base_rate is not None else "", horizon_days)

    def current(self) -> ChampionInfo | None:
        return self._info

    def export(self, info: ChampionInfo, models_dir: Path, spec: FeatureSpec = DEFAULT_SPEC) -> ModelRef:
        check_feature_set(info.version, info.feature_set_version, tuple(getattr(self._model, "features", ())), spec)
        ref = export_model(
            self._model, info.version, info.feature_set_version, models_dir, source="memory",
            base_rate=info.base_rate, base_rate_source=info.base_rate_source, horizon_days=info.horizon_days,
        )
        write_reference(Path(ref.path), self._reference)  # type: ignore[arg-type]
        return ref
