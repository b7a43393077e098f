"""One small exception hierarchy for the whole library.

Every error a user can cause says what was wrong and how to fix it; the CLI prints
``ChurnError`` subclasses as one line and exits non-zero instead of a traceback.
"""

from __future__ import annotations


class ChurnError(Exception):
    """Base class of every error this project raises on purpose."""


class ConfigError(ChurnError, ValueError):
    """A configuration value is invalid; the message names the setting and the remedy."""


class EventDecodeError(ChurnError, ValueError):
    """One encoded event failed strict validation.

    ``field`` is the JSON path of the offending field (``$`` for the whole record),
    ``value`` the offending value when it could be recovered, ``reason`` a short text.
    """

    def __init__(self, reason: str, field: str = "$", value: object = None) -> None:
        self.reason = reason
        self.field = field
        self.value = value
        shown = "" if value is None else f" (got {value!r:.80})"
        super().__init__(f"invalid event: {reason} at {field}{shown}")


class LogError(ChurnError):
    """The partition log is missing, inconsistent or was used wrongly."""


class LogUnavailableError(LogError):
    """The log's broker did not answer in time or reported a retriable error; the same
    call may well succeed later (a stream worker exits to be restarted, not fatally)."""


class TopicMismatchError(LogError):
    """A topic exists with other settings (e.g. another partition count)."""


class OffsetsCorruptError(LogError):
    """A consumer group's committed-offsets file cannot be read."""


class SimulatorError(ChurnError):
    """The simulator was configured wrongly or its saved state is unusable."""


class OffsetOutOfRangeError(LogError, IndexError):
    """A fetch asked for an offset below the partition's start (retention deleted it)."""


class TrainingError(ChurnError):
    """Training cannot proceed: a bad candidate spec, too little data, a missing feature."""


class SpecError(TrainingError, ValueError):
    """A candidate spec file in ``models/`` is invalid; the message names the file and key."""


class RegistryError(ChurnError):
    """The MLflow registry is unreachable or holds something unusable (e.g. a foreign champion)."""


class FeatureError(ChurnError):
    """The feature engine was used wrongly (e.g. read before its watermark) or its
    snapshot is unusable (other engine/feature-set version, corrupt bytes)."""


class SplitError(FeatureError, ValueError):
    """A labelled-snapshot schedule or temporal split cannot be built as asked."""


class LateEventError(EventDecodeError):
    """A valid event that arrived more than the allowed lateness behind the watermark.

    Not applied to features; dead-lettered like an invalid event (same ``reason`` and
    ``field`` attributes, which is all a dead-letter sink records), hence the base class.
    """

    def __init__(self, reason: str) -> None:
        self.reason = reason
        self.field = "$.ts"
        self.value = None
        Exception.__init__(self, reason)


class StoreError(ChurnError):
    """The scores/metrics store is unreachable, misconfigured or was used wrongly; the
    message names the (password-free) URL or the offending value and the remedy."""


class StoreSchemaError(StoreError):
    """The store's schema version is newer than this code understands."""


class InvalidRowError(StoreError, ValueError):
    """A row handed to the store is invalid (e.g. NaN risk); names the row and field."""


class PartitionOwnedError(StoreError):
    """A partition is already assigned to another worker (assignments are exclusive)."""


class AutoscaleError(ChurnError, ValueError):
    """The autoscaler was fed invalid inputs (negative lag, time going backwards, ...)."""


class StreamError(ChurnError):
    """The stream (supervisor or a scoring worker) cannot run as configured; the message
    names the group, worker or file and the remedy."""


class CheckpointCorruptError(StreamError):
    """A partition checkpoint file is unreadable; the message names the file and how to
    recover (delete it to rebuild the partition's features by replaying the log)."""


class FencedError(StreamError):
    """A checkpoint write by an owner whose partition lease is gone or older than the
    current one (another worker took the partition over): refused, nothing written.
    The writer must stop processing the partition; the message names both epochs."""


class ModelUnreadableError(RegistryError):
    """A registered model version whose files cannot be loaded (a damaged or incomplete
    artifact); the message names the version and what failed. Like a mismatch, the stream
    refuses that version and keeps scoring with the one it has."""


class ModelMismatchError(RegistryError):
    """The champion was trained on another feature set than the running engine computes;
    the message names both feature-set versions."""
