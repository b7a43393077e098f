from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from pipeline.config import Settings, load_settings
from pipeline.errors import ConfigError


def test_defaults_and_derived_paths_touch_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    s = load_settings()
    assert s.data_dir == Path("data") and s.partitions == 4 and s.topic == "events"
    assert s.topic_dir == Path("data/log/events")
    assert s.resolved_store_url.endswith("/data/churn.db")
    assert s.resolved_mlflow_uri.startswith("sqlite:///") and s.resolved_mlflow_uri.endswith("mlruns/mlflow.db")
    assert not (tmp_path / "data").exists()


def test_a_data_dir_with_its_own_registry_uses_it_unless_one_is_configured(tmp_path, monkeypatch):
    """The quick demo keeps its registry in <data>/mlruns; afterwards `churn --data-dir D
    dashboard` (or stream, train) read the project's mlruns/ and showed "no registered
    model yet" beside scores that model made."""
    from pipeline.config import PROJECT_ROOT

    monkeypatch.delenv("CHURN_MLFLOW_TRACKING_URI", raising=False)
    data = tmp_path / "d"
    assert load_settings(data_dir=data).resolved_mlflow_uri == f"sqlite:///{PROJECT_ROOT / 'mlruns' / 'mlflow.db'}"
    (data / "mlruns").mkdir(parents=True)
    (data / "mlruns" / "mlflow.db").write_bytes(b"")
    assert load_settings(data_dir=data).resolved_mlflow_uri == f"sqlite:///{(data / 'mlruns' / 'mlflow.db').resolve()}"
    given = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    assert load_settings(data_dir=data, mlflow_tracking_uri=given).resolved_mlflow_uri == given


def test_env_prefix_and_overrides(monkeypatch, tmp_path):
    monkeypatch.setenv("CHURN_PARTITIONS", "8")
    monkeypatch.setenv("CHURN_DATA_DIR", str(tmp_path))
    s = load_settings()
    assert s.partitions == 8 and s.data_dir == tmp_path
    assert load_settings(partitions=2).partitions == 2
    with pytest.raises(ValidationError):  # frozen
        s.partitions = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("env", "value", "needle"),
    [
        ("CHURN_PARTITIONS", "0", "CHURN_PARTITIONS"),
        ("CHURN_PARTITIONS", "many", "CHURN_PARTITIONS"),
        ("CHURN_LOG_FSYNC", "sometimes", "CHURN_LOG_FSYNC"),
        ("CHURN_TOPIC", "bad topic/", "CHURN_TOPIC"),
    ],
)
def test_wrong_values_are_one_clear_error(monkeypatch, env, value, needle):
    monkeypatch.setenv(env, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert needle in str(info.value) and repr(value) in str(info.value)


def test_a_bad_option_value_is_named_as_the_option_not_the_env(monkeypatch):
    monkeypatch.delenv("CHURN_PARTITIONS", raising=False)
    with pytest.raises(ConfigError, match=r"partitions=0: .* \(--partitions\)$"):
        load_settings(partitions=0, cli_options=("partitions",))
    with pytest.raises(ConfigError, match=r"partitions=0: .* \(env CHURN_PARTITIONS\)$"):  # an API caller's value
        load_settings(partitions=0)
    # the command line (churn --partitions 0 ...): tests/test_cli.py::test_user_mistakes_are_one_line_errors


def test_a_kafka_properties_value_that_is_not_json_is_one_line_naming_the_variable(monkeypatch, tmp_path, capsys):
    """pydantic-settings decodes a dict setting as JSON itself: `notjson` was a SettingsError
    traceback naming neither the variable nor where it was set."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CHURN_KAFKA_PROPERTIES", "notjson")
    with pytest.raises(ConfigError, match=r"^invalid configuration: CHURN_KAFKA_PROPERTIES in the environment is "
                                          r"not valid JSON \(Expecting value.*\): .*JSON object") as info:
        load_settings()
    assert "\n" not in str(info.value)
    monkeypatch.delenv("CHURN_KAFKA_PROPERTIES")
    (tmp_path / ".env").write_text("CHURN_KAFKA_PROPERTIES=notjson\n")
    with pytest.raises(ConfigError, match=rf"CHURN_KAFKA_PROPERTIES in the .env file {tmp_path / '.env'} is not "):
        load_settings()
    from churn.cli.app import main

    with pytest.raises(SystemExit) as done:  # the command line: one `error:` line, exit 1
        main(["status"])
    err = capsys.readouterr().err
    assert done.value.code == 1 and err.count("error:") == 1 and "Traceback" not in err
    assert "CHURN_KAFKA_PROPERTIES" in err and len(err.strip().splitlines()) == 1


def test_a_dotenv_file_that_is_not_utf8_is_one_line_naming_it(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_bytes(b"CHURN_TOPIC=caf\xe9\n")  # Latin-1
    with pytest.raises(ConfigError, match=rf"the .env file {tmp_path / '.env'} is not UTF-8 text .*byte 15.*save "
                                          "it as UTF-8"):
        load_settings()


def test_settings_is_the_single_object():
    assert Settings(data_dir="/tmp/x").sim_dir == Path("/tmp/x/sim")


def test_retrain_policy_settings_reach_the_drift_config(monkeypatch):
    """The episode policy's knobs are CHURN_DRIFT_* settings like the rest of drift's."""
    from pipeline.config import load_settings
    from pipeline.drift.config import DriftConfig

    monkeypatch.setenv("CHURN_DRIFT_RETRAIN_LOOKBACK_DAYS", "45")
    monkeypatch.setenv("CHURN_DRIFT_RETRAIN_POLICY", "immediate")
    cfg = DriftConfig.from_settings(load_settings())
    assert (cfg.retrain_lookback_days, cfg.retrain_policy) == (45, "immediate")
    monkeypatch.setenv("CHURN_DRIFT_RETRAIN_POLICY", "sometimes")
    with pytest.raises(Exception, match="CHURN_DRIFT_RETRAIN_POLICY|drift_retrain_policy"):
        load_settings()
