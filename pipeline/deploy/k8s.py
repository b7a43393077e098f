"""Kubernetes manifests for the stream workers, with KEDA deciding how many run.

Locally the supervisor's autoscaler (:mod:`pipeline.autoscale.policy`) picks the worker
count. On Kubernetes the same decision is KEDA's Kafka scaler plus the HPA it creates;
this module writes that ``ScaledObject`` **from the same settings object**
(:meth:`pipeline.stream.config.StreamConfig.policy`), so the two cannot drift apart.
``python -m flows.deploy --out deploy/k8s`` writes the files; a test regenerates them
and compares with the committed ones.

How our settings map (:func:`keda_mapping` returns this table for the docs):

=================================  ==========================================================
ours (``StreamConfig``/``Policy``)  KEDA / HPA field
=================================  ==========================================================
``lag_threshold``                   ``triggers[kafka].metadata.lagThreshold`` (AverageValue)
``activation_lag_threshold``        ``triggers[kafka].metadata.activationLagThreshold``
``min_workers`` (``min_consumers``) ``minReplicaCount``
``max_workers`` (capped at the      ``maxReplicaCount``
partitions, as the supervisor does)
``allow_idle_consumers``            ``triggers[kafka].metadata.allowIdleConsumers``
``limit_to_partitions_with_lag``    ``triggers[kafka].metadata.limitToPartitionsWithLag``
``autoscale_interval_s``            ``pollingInterval`` (rounded up to whole seconds)
``scale_down_stabilization_s``      ``advanced.horizontalPodAutoscalerConfig.behavior
                                    .scaleDown.stabilizationWindowSeconds`` and
                                    ``cooldownPeriod`` (KEDA's wait before 1 -> 0)
``scale_up_stabilization_s``        ``...behavior.scaleUp.stabilizationWindowSeconds``
``scale_down_max_step``             ``...behavior.scaleDown.policies: [Pods, step]``
``tolerance``                       the HPA's cluster-wide tolerance (0.1); other values
                                    are refused (per-HPA tolerance is alpha in k8s 1.33)
``cooldown_s``                      no HPA equivalent (the HPA re-decides every sync
                                    period, 15 s by default); kept local-only, documented
=================================  ==========================================================

The worker Deployment runs :data:`WORKER_COMMAND` (:mod:`pipeline.stream.host`): a worker
that joins the group on its own, takes partitions through the PostgreSQL leases
(:mod:`pipeline.stream.state_pg`) and fetches the champion from the MLflow server. It is
proven with several hosts in network namespaces (``tests/scale``); the manifests are
checked structurally, not applied to a real cluster here (the header says so).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from pipeline.autoscale.policy import PolicyConfig
from pipeline.errors import ConfigError
from pipeline.stream.config import StreamConfig

HPA_TOLERANCE = 0.1  # kube-controller-manager --horizontal-pod-autoscaler-tolerance default
WORKER_NAME = "churn-stream-worker"
PREFECT_WORKER_NAME = "churn-prefect-worker"
WORKER_COMMAND = ("churn", "stream-worker")  # pipeline.stream.host
DATA_DIR = "/var/lib/churn"  # an emptyDir per pod: scratch only, no shared state
GENERATOR = "python -m flows.deploy --out deploy/k8s"

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_BOOTSTRAP = re.compile(r"^[A-Za-z0-9.\-]+:\d{1,5}(,[A-Za-z0-9.\-]+:\d{1,5})*$")


@dataclass(frozen=True)
class K8sTarget:
    """Where the manifests point: names, image and the services the pods talk to."""

    namespace: str = "churn"
    image: str = "churn:latest"
    topic: str = "events"
    partitions: int = 4
    kafka_bootstrap: str = "kafka:9092"
    mlflow_tracking_uri: str = "http://mlflow:5000"
    prefect_api_url: str = "http://prefect-server:4200/api"
    store_secret: str = "churn-store"  # a Secret whose key ``url`` is the PostgreSQL URL
    work_pool: str = "churn-train"
    worker_cpu: str = "1"
    worker_memory: str = "1Gi"
    labels: dict[str, str] = field(default_factory=lambda: {"app.kubernetes.io/part-of": "churn"})

    def __post_init__(self) -> None:
        bad = []
        for name in ("namespace", "store_secret", "work_pool"):
            if not _DNS_LABEL.match(getattr(self, name)):
                bad.append(
                    f"{name}={getattr(self, name)!r} (a DNS label: [a-z0-9-], 1-63 characters)"
                )
        if not _BOOTSTRAP.match(self.kafka_bootstrap):
            bad.append(f"kafka_bootstrap={self.kafka_bootstrap!r} (host:port[,host:port...])")
        if not (isinstance(self.partitions, int) and self.partitions >= 1):
            bad.append(f"partitions={self.partitions!r} (the topic's partition count, >= 1)")
        if not self.image or any(c.isspace() for c in self.image):
            bad.append(f"image={self.image!r} (an image reference such as registry/churn:1.0)")
        if bad:
            raise ConfigError(f"invalid Kubernetes target: {'; '.join(bad)}")


def effective_policy(cfg: StreamConfig, partitions: int) -> PolicyConfig:
    """The policy the supervisor would run for a topic of ``partitions``."""
    policy = cfg.clamp_workers(partitions).policy()
    if not math.isclose(policy.tolerance, HPA_TOLERANCE):
        raise ConfigError(
            f"autoscaler tolerance {policy.tolerance} cannot be expressed in a ScaledObject: the "
            f"HPA uses its cluster-wide tolerance ({HPA_TOLERANCE}); keep tolerance={HPA_TOLERANCE} "
            "or set --horizontal-pod-autoscaler-tolerance on the kube-controller-manager"
        )
    return policy


def keda_mapping(cfg: StreamConfig, partitions: int) -> list[tuple[str, object, str]]:
    """(our setting, its value, the ScaledObject field it becomes) for the docs."""
    p = effective_policy(cfg, partitions)
    so = scaled_object(K8sTarget(partitions=partitions), cfg)["spec"]
    trig = so["triggers"][0]["metadata"]
    behavior = so["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    return [
        ("lag_threshold", p.lag_threshold, f"lagThreshold: '{trig['lagThreshold']}'"),
        ("activation_lag_threshold", p.activation_lag_threshold,
         f"activationLagThreshold: '{trig['activationLagThreshold']}'"),
        ("min_workers", p.min_consumers, f"minReplicaCount: {so['minReplicaCount']}"),
        ("max_workers (capped at partitions)", p.max_consumers, f"maxReplicaCount: {so['maxReplicaCount']}"),
        ("autoscale_interval_s", cfg.autoscale_interval_s, f"pollingInterval: {so['pollingInterval']}"),
        ("scale_down_stabilization_s", p.scale_down_stabilization_s,
         f"cooldownPeriod: {so['cooldownPeriod']}, scaleDown.stabilizationWindowSeconds: "
         f"{behavior['scaleDown']['stabilizationWindowSeconds']}"),
        ("scale_up_stabilization_s", p.scale_up_stabilization_s,
         f"scaleUp.stabilizationWindowSeconds: {behavior['scaleUp']['stabilizationWindowSeconds']}"),
        ("tolerance", p.tolerance, "the HPA's cluster-wide tolerance (0.1)"),
        ("cooldown_s", p.cooldown_s, "none: local supervisor only"),
    ]  # fmt: skip


def _labels(target: K8sTarget, component: str) -> dict[str, str]:
    return {
        **target.labels,
        "app.kubernetes.io/name": "churn",
        "app.kubernetes.io/component": component,
    }


def _env(target: K8sTarget) -> list[dict[str, Any]]:
    return [
        {"name": "CHURN_LOG_BACKEND", "value": "kafka"},
        {"name": "CHURN_KAFKA_BOOTSTRAP", "value": target.kafka_bootstrap},
        {"name": "CHURN_TOPIC", "value": target.topic},
        {"name": "CHURN_PARTITIONS", "value": str(target.partitions)},
        {"name": "CHURN_DATA_DIR", "value": DATA_DIR},
        {"name": "CHURN_MLFLOW_TRACKING_URI", "value": target.mlflow_tracking_uri},
        {
            "name": "CHURN_STORE_URL",
            "valueFrom": {"secretKeyRef": {"name": target.store_secret, "key": "url"}},
        },
        {"name": "OMP_NUM_THREADS", "value": "1"},
    ]


def _pod(
    target: K8sTarget, component: str, container: dict[str, Any], grace_s: int
) -> dict[str, Any]:
    labels = _labels(target, component)
    return {
        "replicas": None,  # filled by the caller
        "selector": {"matchLabels": dict(labels)},
        "template": {
            "metadata": {"labels": dict(labels)},
            "spec": {
                "terminationGracePeriodSeconds": grace_s,
                "containers": [
                    {
                        **container,
                        "volumeMounts": [{"name": "data", "mountPath": DATA_DIR}],
                    }
                ],
                "volumes": [{"name": "data", "emptyDir": {}}],
            },
        },
    }


def worker_deployment(target: K8sTarget, cfg: StreamConfig) -> dict[str, Any]:
    """The stream workers: one worker per pod, KEDA sets ``replicas``."""
    policy = effective_policy(cfg, target.partitions)
    container = {
        "name": "worker",
        "image": target.image,
        "command": [*WORKER_COMMAND, "--group", cfg.group],
        "env": _env(target),
        "resources": {
            "requests": {"cpu": target.worker_cpu, "memory": target.worker_memory},
            "limits": {"memory": target.worker_memory},
        },
    }
    # a stopping worker gets drain_timeout_s to checkpoint, plus room to exit
    spec = _pod(target, "stream-worker", container, math.ceil(cfg.drain_timeout_s) + 10)
    spec["replicas"] = policy.min_consumers
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": WORKER_NAME,
            "namespace": target.namespace,
            "labels": _labels(target, "stream-worker"),
        },  # fmt: skip
        "spec": spec,
    }


def scaled_object(target: K8sTarget, cfg: StreamConfig) -> dict[str, Any]:
    """KEDA ``ScaledObject`` with the Kafka scaler, from the autoscaler's settings."""
    p = effective_policy(cfg, target.partitions)
    scale_down: dict[str, Any] = {
        "stabilizationWindowSeconds": math.ceil(p.scale_down_stabilization_s)
    }
    if p.scale_down_max_step is not None:
        scale_down["policies"] = [
            {"type": "Pods", "value": p.scale_down_max_step, "periodSeconds": 15}
        ]
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {
            "name": WORKER_NAME,
            "namespace": target.namespace,
            "labels": _labels(target, "stream-worker"),
        },  # fmt: skip
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": WORKER_NAME},
            "pollingInterval": max(1, math.ceil(cfg.autoscale_interval_s)),
            "cooldownPeriod": math.ceil(p.scale_down_stabilization_s),
            "minReplicaCount": p.min_consumers,
            "maxReplicaCount": p.max_consumers,
            "advanced": {
                "horizontalPodAutoscalerConfig": {
                    "behavior": {
                        "scaleUp": {
                            "stabilizationWindowSeconds": math.ceil(p.scale_up_stabilization_s)
                        },
                        "scaleDown": scale_down,
                    }
                }
            },
            "triggers": [
                {
                    "type": "kafka",
                    "metadata": {
                        "bootstrapServers": target.kafka_bootstrap,
                        "consumerGroup": cfg.group,
                        "topic": target.topic,
                        "lagThreshold": str(p.lag_threshold),
                        "activationLagThreshold": str(p.activation_lag_threshold),
                        # a group with no commit starts at the log start (as our workers do)
                        "offsetResetPolicy": "earliest",
                        "allowIdleConsumers": str(p.allow_idle_consumers).lower(),
                        "limitToPartitionsWithLag": str(p.limit_to_partitions_with_lag).lower(),
                    },
                }
            ],
        },
    }


def prefect_worker_deployment(target: K8sTarget) -> dict[str, Any]:
    """A Prefect process worker polling the train work pool (runs train flows in-pod)."""
    container = {
        "name": "prefect-worker",
        "image": target.image,
        "command": ["prefect", "worker", "start", "--pool", target.work_pool, "--type", "process"],
        "env": [{"name": "PREFECT_API_URL", "value": target.prefect_api_url}, *_env(target)],
        "resources": {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"memory": "4Gi"}},
    }
    spec = _pod(target, "prefect-worker", container, 30)
    spec["replicas"] = 1
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": PREFECT_WORKER_NAME,
            "namespace": target.namespace,
            "labels": _labels(target, "prefect-worker"),
        },  # fmt: skip
        "spec": spec,
    }


def manifests(target: K8sTarget, cfg: StreamConfig) -> dict[str, dict[str, Any]]:
    """``{file name: manifest}`` of the Kubernetes objects."""
    return {
        "stream-worker-deployment.yaml": worker_deployment(target, cfg),
        "stream-worker-scaledobject.yaml": scaled_object(target, cfg),
        "prefect-worker-deployment.yaml": prefect_worker_deployment(target),
    }


def dump(doc: dict[str, Any], header: str) -> str:
    """YAML text with a generated-file header (stable key order, no aliases)."""

    class _NoAliases(yaml.SafeDumper):
        def ignore_aliases(self, data: Any) -> bool:
            return True

    body = yaml.dump(doc, Dumper=_NoAliases, sort_keys=False, default_flow_style=False, width=100)
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    return "\n".join(lines) + "\n" + body


def header(cfg: StreamConfig, target: K8sTarget, extra: str = "") -> str:
    p = effective_policy(cfg, target.partitions)
    text = (
        f"Generated by `{GENERATOR}` -- do not edit; change the settings and regenerate.\n"
        f"From StreamConfig(group={cfg.group!r}, lag_threshold={p.lag_threshold}, min_workers="
        f"{p.min_consumers}, max_workers={p.max_consumers}, autoscale_interval_s="
        f"{cfg.autoscale_interval_s:g},\n  scale_down_stabilization_s="
        f"{p.scale_down_stabilization_s:g}) and {target.partitions} partitions of {target.topic!r}."
    )
    return text + (f"\n{extra}" if extra else "")


WORKER_STATUS = (
    f"STATUS: `{' '.join(WORKER_COMMAND)}` joins the group through PostgreSQL leases (needs\n"
    "CHURN_STORE_URL = PostgreSQL, CHURN_KAFKA_BOOTSTRAP, CHURN_MLFLOW_TRACKING_URI); tested with\n"
    "several hosts in network namespaces, not applied to a real cluster here. See docs/scale-out.md."
)


def render(target: K8sTarget, cfg: StreamConfig) -> dict[str, str]:
    """``{file name: YAML text}`` of the Kubernetes manifests."""
    out = {}
    for name, doc in manifests(target, cfg).items():
        extra = WORKER_STATUS if name.startswith("stream-worker") else ""
        out[name] = dump(doc, header(cfg, target, extra))
    return out
