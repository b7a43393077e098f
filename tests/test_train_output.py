"""`churn train`'s summary (issue 19): numbers humanised, never wrapped when piped, and the last
line is the gate's decision with both scores and the window they were measured on."""

from __future__ import annotations

import doctest
import importlib
import io
import re

import pytest
from rich.console import Console

from churn.cli.train import print_summary

RESULT = {
    "windows": {"pretest": ["2026-01-05", "2026-03-30"], "test": ["2026-04-20", "2026-05-18"]},
    "best": "xgboost",
    "table": [
        {"name": "xgboost", "role": "candidate", "cv_roc_auc": 0.8123, "cv_roc_auc_std": 0.011, "test_roc_auc": 0.8210,
         "test_pr_auc": 0.41, "test_lift_10": 4.8918, "test_lift_10_ceiling": 10.0, "test_ece": 0.0123,
         "calibration": "platt", "fit_seconds": 14_180_814.0},
        {"name": "watch_per_session_30d_only_a_long_candidate_name", "role": "candidate", "cv_roc_auc": 0.7,
         "cv_roc_auc_std": 0.02, "test_roc_auc": 0.71, "test_pr_auc": 0.3, "test_lift_10": 3.1,
         "test_lift_10_ceiling": 10.0, "test_ece": 0.02, "calibration": "identity", "fit_seconds": 2.5},
    ],
    "selection": {"message": "xgboost by mean fold roc_auc 0.8123 over 4 fold(s)"},
    "revenue": {"baseline_churners": 1_204.0, "revenue_lost": 86_688.0, "contacted": 2_949.5,
                "churners_prevented": 278.09999999999997, "revenue_saved": 21_475.4, "net_value": 14_000.0,
                "campaign_cost": 7_475.4, "best_top_share": 0.15},
    "campaign": {"months": 6.0, "top_share": 0.1, "effectiveness": 0.3},
    "auc_differences": {},
    "registered_version": "4",
    "gate": {"decision": "rejected", "reason": "lift_10 4.5000 < champion 4.7140", "window": "2026-04-20..2026-05-18",
             "challenger": {"roc_auc": 0.821, "lift_10": 4.5}, "champion": {"roc_auc": 0.805, "lift_10": 4.714},
             "champion_version": "3"},
    "parent_run_id": "abc123", "tracking_uri": "sqlite:////tmp/mlruns/mlflow.db",
}


def _piped() -> str:
    from churn.cli import common

    buf = io.StringIO()  # not a terminal: the console must use the full width (churn.cli.common)
    console = common._console()
    console = Console(file=buf, width=console.width, highlight=False, color_system=None)
    print_summary(RESULT, console)
    return buf.getvalue()


def test_piped_summary_never_wraps_or_cuts_a_cell(monkeypatch) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    out = _piped()
    assert "watch_per_session_30d_only_a_long_candidate_name" in out and "…" not in out
    title = next(line for line in out.splitlines() if line.startswith("candidates on the test window"))
    assert title.endswith("(cross-validated and refitted on 2026-01-05..2026-03-30)")  # one line


def test_numbers_are_humanised() -> None:
    out = _piped()
    assert "278.09999999999997" not in out and "2949.5" not in out and "14180814" not in out
    assert "prevents 278 and saves $21,475" in out and "(2.95k users)" in out
    assert "164 d" in out  # a fit time in days, not seconds
    assert not re.search(r"\d\.\d{5,}", out)  # no raw float anywhere


def test_the_last_line_is_the_gate_decision_with_both_scores_and_their_window() -> None:
    last = _piped().rstrip().splitlines()[-1]
    assert last == ("gate: churn v4 REJECTED against champion v3, both scored on the test window "
                    "2026-04-20..2026-05-18: ROC-AUC 0.8210 vs 0.8050 (ok), lift@10% 4.50 vs 4.71 (worse)")


def test_a_model_near_chance_is_said_and_users_are_whole() -> None:
    """An imported source's first model went to champion at test ROC-AUC 0.52 without a
    word, and the campaign line said "(34.8 users)"."""
    table = [dict(RESULT["table"][0], test_roc_auc=0.52), RESULT["table"][1]]
    buf = io.StringIO()
    print_summary(RESULT | {"table": table, "revenue": RESULT["revenue"] | {"contacted": 34.8}},
                  Console(file=buf, width=1_000, color_system=None))  # fmt: skip
    out = buf.getvalue()
    assert "test ROC-AUC is 0.520, close to chance" in out and "(35 users)" in out
    assert "close to chance" not in _piped()  # 0.821: nothing said


def test_without_registering_the_last_line_says_so() -> None:
    buf = io.StringIO()
    print_summary(RESULT | {"gate": None}, Console(file=buf, width=1_000, color_system=None))
    assert buf.getvalue().rstrip().splitlines()[-1] == "not registered (--no-register); best candidate xgboost"


@pytest.mark.parametrize("name", ["pipeline.training.report", "churn.stack.narrate", "pipeline.humanize"])
def test_docstring_examples_run(name) -> None:
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0 and result.failed == 0
