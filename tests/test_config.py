"""Settings: flags over environment over config file over defaults; validation; CLI flag generation."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from stream_neuron.cli import build_parser, settings_from_args
from stream_neuron.config import DEFAULT_TOPICS, Settings

ROOT = Path(__file__).resolve().parent.parent


def test_defaults_are_the_design_contract() -> None:
    settings = Settings()
    assert {name: getattr(settings, name) for name in DEFAULT_TOPICS} == DEFAULT_TOPICS
    assert DEFAULT_TOPICS == {
        "input_topic": "neuron-events",
        "predictions_topic": "neuron-predictions",
        "metrics_topic": "neuron-metrics",
        "dead_letter_topic": "neuron-dead-letters",
        "model_topic": "neuron-model",
    }
    assert (settings.model, settings.mode, settings.guarantee, settings.batch_size) == (
        "logistic",
        "sgd",
        "at-least-once",
        32,
    )
    assert settings.commit_interval_s == 1.0
    assert Settings(guarantee="exactly-once").commit_interval_s == 0.1
    assert Settings(model="perceptron").learning_rate == (1.0,)


def test_flags_beat_environment_beat_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "neuron.toml"
    config.write_text(
        'learning_rate = 0.3\nbatch_size = 8\nmodel_name = "from-file"\nfeature_names = "a,b"\n'
    )
    monkeypatch.setenv("STREAM_NEURON_CONFIG", str(config))
    monkeypatch.setenv("STREAM_NEURON_LEARNING_RATE", "0.2")
    monkeypatch.setenv("STREAM_NEURON_STANDARDIZE", "true")
    args = build_parser().parse_args(["run", "--learning-rate", "0.1"])
    settings = settings_from_args(args, Settings)
    assert settings.learning_rate == (0.1,)  # flag
    assert settings.standardize is True  # environment
    assert (settings.batch_size, settings.model_name) == (8, "from-file")  # file
    assert settings.feature_names == ("a", "b")
    assert settings.intercept_rate() == 0.1


def test_settings_are_frozen_and_validated() -> None:
    settings = Settings()
    with pytest.raises(ValidationError):
        settings.learning_rate = 1.0  # type: ignore[misc]
    with pytest.raises(ValidationError, match="extra"):
        Settings(learnin_rate=0.1)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="config file"):
        Settings(config=Path("/no/such/file.toml"))
    with pytest.raises(ValidationError):
        Settings(learning_rate=float("nan"))


def test_boolean_and_choice_flags_parse() -> None:
    run = build_parser().parse_args(["run", "--standardize", "--no-create-topics", "--model", "perceptron"])
    assert (run.standardize, run.create_topics, run.model) == (True, False, "perceptron")


def test_a_setting_no_command_knows_is_an_error_naming_the_nearest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stream_neuron.command_config import UnknownSettingError, check_sources

    config = tmp_path / "neuron.toml"
    config.write_text('learning_rate = 0.1\nscore_group = "x"\nlearnin_rate = 0.2\n')
    with pytest.raises(UnknownSettingError, match="'score_group' is not a setting of any command"):
        check_sources(config, {})
    config.write_text("learning_rate = 0.1\nwait_for_model = true\nlearnin_rate = 0.2\n")  # score's key: fine
    with pytest.raises(UnknownSettingError, match=r"'learnin_rate' .*\(did you mean 'learning_rate'\?\)"):
        check_sources(config, {})
    with pytest.raises(
        UnknownSettingError, match=r"STREAM_NEURON_BATCH_SIZ .*\(did you mean STREAM_NEURON_BATCH_SIZE\?\)"
    ):
        check_sources(None, {"STREAM_NEURON_BATCH_SIZ": "8"})
    check_sources(None, {"STREAM_NEURON_KERNEL": "numpy", "STREAM_NEURON_SASL_PASSWORD": "x", "OTHER": "1"})
    config.write_text("learning_rate = [1, 2\n")
    with pytest.raises(UnknownSettingError, match="not valid TOML"):
        check_sources(config, {})


def test_the_run_id_benchmarks_hand_their_commands_is_not_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """The benchmarks pass their run's id to the commands they start through the environment; under a
    ``STREAM_NEURON_*`` name every such command refused to start (``make bench``'s latency)."""
    from stream_neuron.command_config import check_sources

    monkeypatch.setattr(os, "environ", dict(os.environ))  # the import sets the id
    spec = importlib.util.spec_from_file_location("bench_topics", ROOT / "benchmarks" / "bench_topics.py")
    assert spec is not None and spec.loader is not None
    bench_topics = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench_topics)
    check_sources(None, {bench_topics.RUN_VARIABLE: bench_topics.RUN})


def test_a_value_of_the_wrong_type_names_its_key(tmp_path: Path) -> None:
    config = tmp_path / "neuron.toml"
    config.write_text('batch_size = "many"\n')
    with pytest.raises(ValidationError, match="batch_size"):
        Settings(config=config)
