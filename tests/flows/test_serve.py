"""The served deployments are declared right (no server needed to build them)."""

from __future__ import annotations

from flows.serve import TRAIN_CRON, deployments


def test_train_deployment_is_weekly_paused_and_exclusive() -> None:
    d = next(d for d in deployments() if d.name == "weekly")
    assert d.flow_name == "train"
    (sched,) = d.schedules
    assert sched.active is False and sched.schedule.cron == TRAIN_CRON
    assert d.concurrency_limit == 1 or getattr(d.concurrency_limit, "limit", None) == 1
    assert {"horizon_days", "candidates", "seed", "start", "end", "folds", "test_frac", "gap_days", "warmup_days",
            "force", "directions"} <= set(d._parameter_openapi_schema.properties)


def test_schedule_can_be_activated_and_data_dir_pinned(tmp_path) -> None:
    d = next(d for d in deployments(schedule_active=True, data_dir=str(tmp_path)) if d.name == "weekly")
    assert d.schedules[0].active is True and d.parameters["data_dir"] == str(tmp_path)
