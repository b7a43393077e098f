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


def test_sourced_env_file_puts_this_venv_first_on_path_so_prefect_is_found(tmp_path) -> None:
    """Issue 19: after `source env.sh` (no venv activated) `prefect deployment run ...` must work."""
    import sys
    from pathlib import Path

    from churn.cli.stack import env_file_lines

    script = tmp_path / "env.sh"
    script.write_text("\n".join(env_file_lines({"PREFECT_API_URL": "http://127.0.0.1:4200/api"})) + "\n")
    code = f". {script}; command -v prefect; command -v churn; printf '%s' \"$PATH\""
    out = subprocess.run(["bash", "-c", code], capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    prefect, churn, path = out.stdout.split("\n")
    venv_bin = Path(sys.prefix) / "bin"
    assert Path(prefect) == venv_bin / "prefect" and Path(churn) == venv_bin / "churn"
    assert path == f"{venv_bin}:/usr/bin:/bin"  # prepended; the shell's PATH kept


def test_a_venv_path_with_spaces_and_dollars_stays_one_quoted_word(tmp_path) -> None:
    from churn.cli.stack import path_line

    odd = tmp_path / "my $venv" / "x"
    (odd / "bin").mkdir(parents=True)
    script = tmp_path / "env.sh"
    script.write_text(path_line(str(odd)) + "\n")
    out = subprocess.run(["bash", "-c", f". '{script}'; printf '%s' \"$PATH\""], capture_output=True, text=True,
                         check=True, env={"PATH": "/usr/bin:/bin"})
    assert out.stdout == f"{odd}/bin:/usr/bin:/bin"
