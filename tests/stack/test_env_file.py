"""`churn up` writes env.sh for `source`: every value arrives exactly as it was, and nothing in a
value runs (issue 16 item 13)."""

from __future__ import annotations

import subprocess

from churn.cli.stack import _export_lines

NASTY = {
    "PREFECT_API_URL": "http://127.0.0.1:4200/api",
    "CHURN_STORE_URL": "postgresql://u:pa$$word@127.0.0.1/db name",
    "CHURN_MLFLOW_TRACKING_URI": "sqlite:////tmp/my dir/mlruns/mlflow.db",
    "CHURN_X": "a'b\"c`touch {marker}`$(touch {marker});touch {marker} & $HOME",
    "CHURN_EMPTY": "",
}


def test_sourced_env_file_gives_back_every_value_and_runs_nothing(tmp_path) -> None:
    marker = tmp_path / "ran"
    env = {k: v.format(marker=marker) for k, v in NASTY.items()}
    script = tmp_path / "env.sh"
    script.write_text("\n".join(_export_lines(env)) + "\n")
    code = f"set -e; . {script}; " + "; ".join(f'printf "%s\\0" "${k}"' for k in env)
    out = subprocess.run(["bash", "-c", code], capture_output=True, text=True, check=True, env={"PATH": "/usr/bin:/bin"})
    assert out.stdout.split("\0")[:-1] == list(env.values())
    assert not marker.exists()
    assert "export PREFECT_API_URL=http://127.0.0.1:4200/api" in _export_lines(env)  # plain values stay plain
