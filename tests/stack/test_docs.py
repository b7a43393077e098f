"""The README stays true to the code: its configuration table is generated from Settings,
and the commands the walkthrough uses exist."""

from __future__ import annotations

import importlib.util

from churn.stack.stack import MODEL_NAME
from pipeline.config import PROJECT_ROOT


def _gen():
    spec = importlib.util.spec_from_file_location("gen_config", PROJECT_ROOT / "docs" / "gen_config.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_readme_config_table_is_generated_from_settings() -> None:
    gen = _gen()
    readme = (PROJECT_ROOT / "README.md").read_text()
    assert gen.render(readme) == readme, "run `python docs/gen_config.py --write`"
    from pipeline.config import Settings

    for name in Settings.model_fields:
        assert f"`CHURN_{name.upper()}`" in gen.table()


def test_readme_walkthrough_commands_exist() -> None:
    from typer.main import get_command

    from churn.cli.app import app

    commands = set(get_command(app).commands)
    assert {"up", "status", "down", "demo", "simulate", "train", "produce", "dashboard"} <= commands
    readme = (PROJECT_ROOT / "README.md").read_text()
    for snippet in ("churn up", "churn status", "churn down", "DEMO_QUICK=1 make demo", "export PREFECT_API_URL=",
                    "docs/dashboard.png"):
        assert snippet in readme
    assert (PROJECT_ROOT / "docs" / "dashboard.png").stat().st_size > 10_000


def test_model_name_matches_the_registry() -> None:
    from pipeline import registry

    assert MODEL_NAME == registry.MODEL_NAME
