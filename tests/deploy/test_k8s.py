"""deploy/k8s: regenerated == committed, structurally valid, and following our settings."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from flows.deploy import files, main
from pipeline.autoscale.policy import PolicyConfig
from pipeline.deploy.k8s import K8sTarget, effective_policy, keda_mapping, manifests, scaled_object
from pipeline.errors import ConfigError
from pipeline.stream.config import StreamConfig
from tests.deploy.k8s_schemas import problems

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "deploy" / "k8s"


@pytest.fixture
def clean_env(monkeypatch, tmp_path) -> Path:
    """No CHURN_* variables and no .env: the generator sees the documented defaults."""
    import os

    for k in list(os.environ):
        if k.startswith("CHURN_"):
            monkeypatch.delenv(k)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_committed_manifests_are_what_the_generator_writes(clean_env) -> None:
    out = clean_env / "k8s"
    assert main(["--out", str(out)]) == 0
    written = sorted(p.name for p in out.iterdir())
    assert written == sorted(p.name for p in COMMITTED.iterdir())
    for name in written:
        assert (out / name).read_text() == (COMMITTED / name).read_text(), (
            f"deploy/k8s/{name} is stale: run `python -m flows.deploy --out deploy/k8s`"
        )
    assert main(["--out", str(COMMITTED), "--check"]) == 0


def test_check_mode_reports_a_stale_file(clean_env, capsys) -> None:
    out = clean_env / "k8s"
    main(["--out", str(out)])
    so = out / "stream-worker-scaledobject.yaml"
    so.write_text(so.read_text().replace("lagThreshold: '10000'", "lagThreshold: '5000'"))
    assert main(["--out", str(out), "--check"]) == 1
    assert "stream-worker-scaledobject.yaml" in capsys.readouterr().err


def test_committed_manifests_pass_the_structure_checks() -> None:
    docs = {
        p.name: yaml.safe_load(p.read_text())
        for p in COMMITTED.glob("*.yaml")
        if p.name != "prefect.yaml"
    }
    assert {d["kind"] for d in docs.values()} == {"Deployment", "ScaledObject"}
    for name, doc in docs.items():
        assert problems(doc) == [], name
    so = docs["stream-worker-scaledobject.yaml"]
    dep = docs["stream-worker-deployment.yaml"]
    assert so["spec"]["scaleTargetRef"]["name"] == dep["metadata"]["name"]
    assert so["metadata"]["namespace"] == dep["metadata"]["namespace"]


@pytest.mark.parametrize(
    ("path", "value", "expect"),
    [
        (("spec", "pollinginterval"), 15, "Additional properties are not allowed"),
        (("spec", "triggers", 0, "metadata", "lagThreshold"), 10000, "is not of type 'string'"),
        (("spec", "triggers", 0, "metadata", "lagThreshold"), "ten", "does not match"),
        (("spec", "scaleTargetRef", "name"), None, "None is not of type 'string'"),
        (("spec", "minReplicaCount"), 9, "minReplicaCount 9 > maxReplicaCount 4"),
        (
            (
                "spec",
                "advanced",
                "horizontalPodAutoscalerConfig",
                "behavior",
                "scaleDown",
                "stabilizationWindowSeconds",
            ),
            7200,
            "7200 is greater than the maximum of 3600",
        ),  # fmt: skip
        (("spec", "triggers"), [], "should be non-empty"),
    ],
)
def test_structure_check_catches_scaledobject_mistakes(path, value, expect) -> None:
    doc = copy.deepcopy(scaled_object(K8sTarget(), StreamConfig(max_workers=4)))
    node = doc
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = value
    assert any(expect in p for p in problems(doc)), problems(doc)


def test_structure_check_catches_deployment_mistakes() -> None:
    dep = manifests(K8sTarget(), StreamConfig(max_workers=4))["stream-worker-deployment.yaml"]
    broken = copy.deepcopy(dep)
    del broken["spec"]["template"]["spec"]["containers"][0]["image"]
    assert any("'image' is a required property" in p for p in problems(broken))
    broken = copy.deepcopy(dep)
    broken["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"] = "other"
    assert "spec.selector.matchLabels does not match spec.template.metadata.labels" in problems(
        broken
    )
    broken = copy.deepcopy(dep)
    broken["spec"]["template"]["spec"]["volumes"] = []
    assert any("undeclared volume 'data'" in p for p in problems(broken))
    broken = copy.deepcopy(dep)
    del broken["spec"]["selector"]
    assert any("'selector' is a required property" in p for p in problems(broken))


def test_scaledobject_follows_the_autoscaler_settings() -> None:
    cfg = StreamConfig(lag_threshold=2_500, min_workers=2, workers=2, max_workers=12,
                       autoscale_interval_s=7.5, scale_down_stabilization_s=120, group="g2")  # fmt: skip
    target = K8sTarget(partitions=8, topic="clicks", kafka_bootstrap="b1:9092,b2:9092")
    spec = scaled_object(target, cfg)["spec"]
    policy = effective_policy(cfg, 8)
    assert policy == cfg.clamp_workers(8).policy()  # the supervisor's clamp and mapping
    trig = spec["triggers"][0]["metadata"]
    assert (trig["lagThreshold"], trig["activationLagThreshold"]) == ("2500", "0")
    assert (trig["consumerGroup"], trig["topic"], trig["bootstrapServers"]) == (
        "g2",
        "clicks",
        "b1:9092,b2:9092",
    )
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (2, 8)  # capped at 8 partitions
    assert (spec["pollingInterval"], spec["cooldownPeriod"]) == (8, 120)
    behavior = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    assert behavior["scaleDown"]["stabilizationWindowSeconds"] == 120
    assert behavior["scaleUp"]["stabilizationWindowSeconds"] == 0
    assert problems(scaled_object(target, cfg)) == []
    rows = {r[0]: r for r in keda_mapping(cfg, 8)}
    assert rows["lag_threshold"][1:] == (2500, "lagThreshold: '2500'")
    assert rows["cooldown_s"][2] == "none: local supervisor only"


def test_stream_config_policy_is_the_supervisors_mapping() -> None:
    cfg = StreamConfig(lag_threshold=123, min_workers=1, max_workers=3, cooldown_s=9,
                       scale_down_stabilization_s=60)  # fmt: skip
    assert cfg.policy() == PolicyConfig(lag_threshold=123, min_consumers=1, max_consumers=3,
                                        scale_down_stabilization_s=60, cooldown_s=9)  # fmt: skip


def test_inexpressible_settings_are_refused_with_the_remedy() -> None:
    class Tolerant(StreamConfig):
        def policy(self) -> PolicyConfig:
            return PolicyConfig(tolerance=0.25)

    with pytest.raises(ConfigError, match=r"tolerance 0.25 .*horizontal-pod-autoscaler-tolerance"):
        effective_policy(Tolerant(max_workers=4), 4)
    with pytest.raises(ConfigError, match=r"kafka_bootstrap='kafka' \(host:port"):
        K8sTarget(kafka_bootstrap="kafka")
    with pytest.raises(ConfigError, match=r"namespace='Churn_NS'"):
        K8sTarget(namespace="Churn_NS")


def test_prefect_project_is_the_served_train_deployment() -> None:
    """prefect.yaml parses with Prefect's own models and equals flows.serve's deployment."""
    from prefect.cli.deploy._models import PrefectYamlModel
    from prefect.cli.deploy._triggers import _initialize_deployment_triggers

    from flows.retrain import train_trigger
    from flows.serve import TRAIN_CRON, train_deployment

    text = files(K8sTarget(), StreamConfig(max_workers=4))["prefect.yaml"]
    assert text == (COMMITTED / "prefect.yaml").read_text()
    model = PrefectYamlModel.model_validate(yaml.safe_load(text))
    (d,) = model.deployments
    served = train_deployment()
    assert (d.name, d.entrypoint, d.concurrency_limit) == (served.name, "flows/train.py:train", 1)
    assert served.entrypoint.endswith("flows/train.py:train")
    assert d.work_pool.name == "churn-train"
    assert [(s.cron, s.timezone, s.active) for s in d.schedules] == [(TRAIN_CRON, "UTC", False)]
    (trigger,) = _initialize_deployment_triggers(d.name, d.triggers)
    assert trigger == train_trigger()
    assert model.pull[0]["prefect.deployments.steps.set_working_directory"]["directory"] == "/app"


def test_scale_out_doc_shows_the_generated_values() -> None:
    """docs/scale-out.md's mapping table says what the generator really writes."""
    doc = (ROOT / "docs" / "scale-out.md").read_text()
    fields = [
        part
        for _, _, field in keda_mapping(StreamConfig(max_workers=4), 4)
        if ": " in field and not field.startswith("none")
        for part in field.split(", ")
    ]
    assert len(fields) >= 8
    missing = [f for f in fields if f not in doc]
    assert missing == [], f"docs/scale-out.md lacks {missing}"
