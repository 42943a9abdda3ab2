"""The docker-compose stack's wiring, checked by parsing it (no Docker engine runs here)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from stream_neuron.command_config import COMMAND_SETTINGS
from stream_neuron.config import DEFAULT_REQUESTS_TOPIC, DEFAULT_TOPICS, Settings
from tests.broker import kafka_version

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    return loaded


def test_services(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {
        "kafka", "topics", "stream-neuron", "scorer", "demo-producer", "request-producer", "monitor"
    }  # fmt: skip
    assert compose["services"]["scorer"]["deploy"]["replicas"] == 2


def test_kafka_is_the_pinned_version_single_node_kraft(compose: dict[str, Any]) -> None:
    kafka = compose["services"]["kafka"]
    assert kafka["image"] == f"apache/kafka:{kafka_version()}"
    assert compose["services"]["topics"]["image"] == kafka["image"]
    env = {k: str(v) for k, v in kafka["environment"].items()}
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    for key in (
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR",
    ):
        assert env[key] == "1"
    assert env["KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS"] == "0"
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    advertised = env["KAFKA_ADVERTISED_LISTENERS"]
    assert "INTERNAL://kafka:19092" in advertised and "EXTERNAL://localhost:9092" in advertised
    assert "9092:9092" in kafka["ports"]
    assert "healthcheck" in kafka and "19092" in " ".join(kafka["healthcheck"]["test"])


def test_dependencies_are_health_gated(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["topics"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert services["stream-neuron"]["depends_on"]["topics"]["condition"] == "service_completed_successfully"
    assert services["demo-producer"]["depends_on"]["topics"]["condition"] == "service_completed_successfully"
    assert "stream-neuron" in services["monitor"]["depends_on"]


def test_topics_service_creates_the_five_default_topics(compose: dict[str, Any]) -> None:
    script = "\n".join(compose["services"]["topics"]["command"])
    created = dict(re.findall(r"--topic (\S+) --partitions \d+(.*)", script))
    assert set(created) == {*DEFAULT_TOPICS.values(), DEFAULT_REQUESTS_TOPIC}
    assert f"--topic {DEFAULT_REQUESTS_TOPIC} --partitions 4" in script
    assert "cleanup.policy=compact" in created[DEFAULT_TOPICS["model_topic"]]
    assert all(
        "compact" not in extra for name, extra in created.items() if name != DEFAULT_TOPICS["model_topic"]
    )


NEURON_SERVICES = ["stream-neuron", "scorer", "demo-producer", "request-producer", "monitor"]


@pytest.mark.parametrize("service", NEURON_SERVICES)
def test_neuron_services_are_configured_by_matching_environment(
    compose: dict[str, Any], service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stream_neuron.cli import build_parser, settings_from_args

    spec = compose["services"][service]
    env = spec["environment"]
    known = {name for cls in COMMAND_SETTINGS.values() for name in cls.model_fields}
    for key, value in env.items():
        assert key.startswith("STREAM_NEURON_"), key
        field = key.removeprefix("STREAM_NEURON_").lower()
        assert field in known, f"{key} is not a setting"
        if field in DEFAULT_TOPICS and not (service == "scorer" and field == "input_topic"):
            assert value == DEFAULT_TOPICS[field]
    assert env["STREAM_NEURON_BOOTSTRAP_SERVERS"] == "kafka:19092"
    # The service's command with that environment: its settings load as they would in the container.
    for key, value in env.items():
        monkeypatch.setenv(key, str(value))
    args = build_parser().parse_args(spec["command"])
    settings = settings_from_args(args, COMMAND_SETTINGS[args.command])
    assert settings.bootstrap_servers == "kafka:19092"


def test_scorers_follow_the_trainer_s_model_on_the_requests_topic(compose: dict[str, Any]) -> None:
    trainer, scorer = (
        compose["services"]["stream-neuron"]["environment"],
        compose["services"]["scorer"]["environment"],
    )
    assert scorer["STREAM_NEURON_MODEL_NAME"] == trainer["STREAM_NEURON_MODEL_NAME"]
    assert scorer["STREAM_NEURON_INPUT_TOPIC"] == DEFAULT_REQUESTS_TOPIC
    assert trainer["STREAM_NEURON_PUBLISH_PREDICTIONS"] == "false"
    assert compose["services"]["request-producer"]["command"][2] == DEFAULT_REQUESTS_TOPIC


def test_the_image_is_built_from_deploy_dockerfile(compose: dict[str, Any]) -> None:
    build = compose["services"]["stream-neuron"]["build"]
    dockerfile = REPO / build["context"] / build["dockerfile"]
    assert dockerfile.is_file()
    assert 'ENTRYPOINT ["stream-neuron"]' in dockerfile.read_text()
    images = {compose["services"][s].get("image") for s in NEURON_SERVICES}
    assert images == {"stream-neuron:latest"}


@pytest.mark.parametrize("service", NEURON_SERVICES)
def test_service_commands_parse_with_the_cli(compose: dict[str, Any], service: str) -> None:
    from stream_neuron.cli import build_parser

    args = build_parser().parse_args(compose["services"][service]["command"])
    assert args.command in {"run", "score", "produce", "monitor"}


def test_the_secured_override_passes_credentials_as_secrets() -> None:
    override = yaml.safe_load((REPO / "docker-compose.secured.yml").read_text())
    fields = Settings.model_fields
    for service in ("stream-neuron", "demo-producer", "monitor"):
        spec = override["services"][service]
        env = spec["environment"]
        for key in env:
            assert key.removeprefix("STREAM_NEURON_").lower() in fields, key
        assert env["STREAM_NEURON_SASL_PASSWORD_FILE"].startswith("/run/secrets/")
        assert not any("PASSWORD" in key and not key.endswith("_FILE") for key in env)
        assert set(spec["secrets"]) <= set(override["secrets"])
    assert all(secret["file"].startswith("./secrets/") for secret in override["secrets"].values())
    # Those settings load (the variables filled in); the password comes from the file when connecting.
    env = {
        key.removeprefix("STREAM_NEURON_").lower(): value
        for key, value in override["services"]["monitor"]["environment"].items()
    }
    Settings(**env | {"bootstrap_servers": "broker1:9093", "sasl_username": "app"})
