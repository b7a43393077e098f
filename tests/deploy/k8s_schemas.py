"""Structure checks for the generated manifests, written from the published docs.

No package on the index ships the Kubernetes or KEDA JSON schemas for offline use, so
these are JSON Schemas (checked with ``jsonschema``) written from:

* Kubernetes ``apps/v1`` Deployment: ``spec.selector`` and ``spec.template`` required,
  template labels must match the selector, at least one container with a DNS-label
  ``name`` and an ``image``, env entries with a ``name`` and one of ``value``/``valueFrom``,
  volume mounts naming declared volumes;
* KEDA ``keda.sh/v1alpha1`` ScaledObject (ScaledObject specification, KEDA 2.18 docs):
  ``scaleTargetRef.name`` mandatory; ``pollingInterval``, ``cooldownPeriod``,
  ``initialCooldownPeriod``, ``idleReplicaCount``, ``minReplicaCount``,
  ``maxReplicaCount`` integers; ``fallback`` needs ``failureThreshold`` and ``replicas``;
  ``advanced.horizontalPodAutoscalerConfig.behavior`` is the HPA's behavior
  (stabilization window 0-3600 s, policies of type Pods/Percent with periodSeconds
  1-1800); ``triggers`` non-empty, each with a ``type`` and string-valued ``metadata``;
  the ``kafka`` trigger needs ``bootstrapServers`` and ``consumerGroup``, and its
  thresholds are numeric strings.

Unknown keys are refused where the spec is closed, so a typo (``pollinginterval``)
fails here rather than being ignored by the cluster.
"""

from __future__ import annotations

from typing import Any

import jsonschema

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$"
QUANTITY = r"^[0-9]+(\.[0-9]+)?(m|Ki|Mi|Gi|Ti|k|M|G|T)?$"

METADATA = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "pattern": DNS_SUBDOMAIN},
        "namespace": {"type": "string", "pattern": DNS_LABEL},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}

ENV_VAR = {
    "type": "object",
    "required": ["name"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "value": {"type": "string"},
        "valueFrom": {
            "type": "object",
            "minProperties": 1,
            "maxProperties": 1,
            "properties": {
                "secretKeyRef": {
                    "type": "object",
                    "required": ["name", "key"],
                    "properties": {"name": {"type": "string"}, "key": {"type": "string"}},
                },
                "configMapKeyRef": {
                    "type": "object",
                    "required": ["name", "key"],
                    "properties": {"name": {"type": "string"}, "key": {"type": "string"}},
                },
                "fieldRef": {"type": "object", "required": ["fieldPath"]},
            },
            "additionalProperties": False,
        },
    },
    "not": {"required": ["value", "valueFrom"]},
}

RESOURCES = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        k: {"type": "object", "additionalProperties": {"type": "string", "pattern": QUANTITY}}
        for k in ("requests", "limits")
    },
}

CONTAINER = {
    "type": "object",
    "required": ["name", "image"],
    "properties": {
        "name": {"type": "string", "pattern": DNS_LABEL},
        "image": {"type": "string", "minLength": 1, "pattern": r"^\S+$"},
        "command": {"type": "array", "items": {"type": "string"}},
        "args": {"type": "array", "items": {"type": "string"}},
        "env": {"type": "array", "items": ENV_VAR},
        "resources": RESOURCES,
        "volumeMounts": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "mountPath"],
                "properties": {
                    "name": {"type": "string"},
                    "mountPath": {"type": "string", "pattern": "^/"},
                },
            },
        },
    },
}

DEPLOYMENT = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "apps/v1"},
        "kind": {"const": "Deployment"},
        "metadata": METADATA,
        "spec": {
            "type": "object",
            "required": ["selector", "template"],
            "properties": {
                "replicas": {"type": "integer", "minimum": 0},
                "selector": {
                    "type": "object",
                    "required": ["matchLabels"],
                    "properties": {
                        "matchLabels": {
                            "type": "object",
                            "minProperties": 1,
                            "additionalProperties": {"type": "string"},
                        }
                    },
                },
                "template": {
                    "type": "object",
                    "required": ["metadata", "spec"],
                    "properties": {
                        "metadata": {"type": "object", "required": ["labels"]},
                        "spec": {
                            "type": "object",
                            "required": ["containers"],
                            "properties": {
                                "terminationGracePeriodSeconds": {"type": "integer", "minimum": 0},
                                "containers": {"type": "array", "minItems": 1, "items": CONTAINER},
                                "volumes": {
                                    "type": "array",
                                    "items": {
                                        "type": "object",
                                        "required": ["name"],
                                        "properties": {
                                            "name": {"type": "string", "pattern": DNS_LABEL}
                                        },
                                        "minProperties": 2,  # a name and a source
                                    },
                                },
                            },
                        },
                    },
                },
            },
        },
    },
}

HPA_RULES = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "stabilizationWindowSeconds": {"type": "integer", "minimum": 0, "maximum": 3600},
        "selectPolicy": {"enum": ["Max", "Min", "Disabled"]},
        "policies": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["type", "value", "periodSeconds"],
                "additionalProperties": False,
                "properties": {
                    "type": {"enum": ["Pods", "Percent"]},
                    "value": {"type": "integer", "exclusiveMinimum": 0},
                    "periodSeconds": {"type": "integer", "minimum": 1, "maximum": 1800},
                },
            },
        },
    },
}

NUMERIC = r"^[0-9]+(\.[0-9]+)?$"
BOOL = r"^(true|false)$"

KAFKA_METADATA = {
    "type": "object",
    "required": ["bootstrapServers", "consumerGroup"],
    "additionalProperties": {"type": "string"},
    "properties": {
        "bootstrapServers": {"type": "string", "pattern": r"^[^,\s]+:\d+(,[^,\s]+:\d+)*$"},
        "consumerGroup": {"type": "string", "minLength": 1},
        "topic": {"type": "string", "minLength": 1},
        "lagThreshold": {"type": "string", "pattern": NUMERIC},
        "activationLagThreshold": {"type": "string", "pattern": NUMERIC},
        "offsetResetPolicy": {"enum": ["earliest", "latest"]},
        "allowIdleConsumers": {"type": "string", "pattern": BOOL},
        "limitToPartitionsWithLag": {"type": "string", "pattern": BOOL},
        "scaleToZeroOnInvalidOffset": {"type": "string", "pattern": BOOL},
        "excludePersistentLag": {"type": "string", "pattern": BOOL},
    },
}

TRIGGER = {
    "type": "object",
    "required": ["type", "metadata"],
    "additionalProperties": False,
    "properties": {
        "type": {"type": "string", "minLength": 1},
        "name": {"type": "string"},
        "metadata": {"type": "object", "additionalProperties": {"type": "string"}},
        "metricType": {"enum": ["AverageValue", "Value", "Utilization"]},
        "useCachedMetrics": {"type": "boolean"},
        "authenticationRef": {
            "type": "object",
            "required": ["name"],
            "properties": {"name": {"type": "string"}, "kind": {"type": "string"}},
        },
    },
    "if": {"properties": {"type": {"const": "kafka"}}},
    "then": {"properties": {"metadata": KAFKA_METADATA}},
}

SCALED_OBJECT = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "keda.sh/v1alpha1"},
        "kind": {"const": "ScaledObject"},
        "metadata": METADATA,
        "spec": {
            "type": "object",
            "required": ["scaleTargetRef", "triggers"],
            "additionalProperties": False,
            "properties": {
                "scaleTargetRef": {
                    "type": "object",
                    "required": ["name"],
                    "additionalProperties": False,
                    "properties": {
                        "apiVersion": {"type": "string"},
                        "kind": {"type": "string"},
                        "name": {"type": "string", "pattern": DNS_SUBDOMAIN},
                        "envSourceContainerName": {"type": "string"},
                    },
                },
                **{
                    k: {"type": "integer", "minimum": 0}
                    for k in (
                        "pollingInterval",
                        "cooldownPeriod",
                        "initialCooldownPeriod",
                        "idleReplicaCount",
                        "minReplicaCount",
                        "maxReplicaCount",
                    )
                },  # fmt: skip
                "fallback": {
                    "type": "object",
                    "required": ["failureThreshold", "replicas"],
                    "properties": {
                        "failureThreshold": {"type": "integer", "minimum": 0},
                        "replicas": {"type": "integer", "minimum": 0},
                        "behavior": {
                            "enum": [
                                "static",
                                "currentReplicas",
                                "currentReplicasIfHigher",
                                "currentReplicasIfLower",
                            ]  # fmt: skip
                        },
                    },
                },
                "advanced": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "restoreToOriginalReplicaCount": {"type": "boolean"},
                        "horizontalPodAutoscalerConfig": {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": {
                                "name": {"type": "string"},
                                "behavior": {
                                    "type": "object",
                                    "additionalProperties": False,
                                    "properties": {"scaleUp": HPA_RULES, "scaleDown": HPA_RULES},
                                },
                            },
                        },
                        "scalingModifiers": {"type": "object"},
                    },
                },
                "triggers": {"type": "array", "minItems": 1, "items": TRIGGER},
            },
        },
    },
}

SCHEMAS = {"Deployment": DEPLOYMENT, "ScaledObject": SCALED_OBJECT}


def problems(doc: dict[str, Any]) -> list[str]:
    """Every schema violation and cross-field rule broken by one manifest ([] if none)."""
    kind = doc.get("kind")
    if kind not in SCHEMAS:
        return [f"kind {kind!r}: expected one of {sorted(SCHEMAS)}"]
    validator = jsonschema.Draft202012Validator(SCHEMAS[kind])
    out = [
        f"{'/'.join(map(str, e.absolute_path)) or '$'}: {e.message}"
        for e in validator.iter_errors(doc)
    ]
    if out:
        return out
    spec = doc["spec"]
    if kind == "Deployment":
        selector = spec["selector"]["matchLabels"]
        labels = spec["template"]["metadata"]["labels"]
        if any(labels.get(k) != v for k, v in selector.items()):
            out.append("spec.selector.matchLabels does not match spec.template.metadata.labels")
        pod = spec["template"]["spec"]
        volumes = {v["name"] for v in pod.get("volumes", [])}
        for c in pod["containers"]:
            for m in c.get("volumeMounts", []):
                if m["name"] not in volumes:
                    out.append(f"container {c['name']!r} mounts undeclared volume {m['name']!r}")
            names = [e["name"] for e in c.get("env", [])]
            if len(names) != len(set(names)):
                out.append(f"container {c['name']!r} repeats an env var")
    else:
        lo, hi = spec.get("minReplicaCount", 0), spec.get("maxReplicaCount", 100)
        if lo > hi:
            out.append(f"minReplicaCount {lo} > maxReplicaCount {hi}")
        if "idleReplicaCount" in spec and not spec["idleReplicaCount"] < lo:
            out.append("idleReplicaCount must be less than minReplicaCount")
    return out
