"""Scale the consumer group on lag (KEDA/HPA semantics), assign partitions, raise alerts.

Pure logic with injected time; the stream supervisor implements the controller.
"""

from pipeline.autoscale.alerts import Alert, AlertThresholds, Level, assess, assess_partitions
from pipeline.autoscale.assign import moved, range_assign, round_robin_assign, sticky_assign
from pipeline.autoscale.controller import RecordingController, ScaleController, autoscale_step
from pipeline.autoscale.policy import (
    Action,
    AutoscalePolicy,
    Decision,
    PolicyConfig,
    bounds,
    recommend,
)

__all__ = [
    "Action",
    "Alert",
    "AlertThresholds",
    "AutoscalePolicy",
    "Decision",
    "Level",
    "PolicyConfig",
    "RecordingController",
    "ScaleController",
    "assess",
    "assess_partitions",
    "autoscale_step",
    "bounds",
    "moved",
    "range_assign",
    "recommend",
    "round_robin_assign",
    "sticky_assign",
]
