"""The docker-compose stack's wiring, checked by parsing it (no Docker engine runs here): the broker's
state on its volume, one port setting, the topics made by the component's own command, grace periods,
and a secured overlay that moves every service to the secured cluster."""

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


class ComposeLoader(yaml.SafeLoader):
    """YAML with the Compose specification's merge tags (``!reset``, ``!override``), kept as markers."""


class Reset(dict[str, Any]):
    """A value an override file resets (``!reset``)."""


ComposeLoader.add_constructor("!reset", lambda loader, node: Reset())
ComposeLoader.add_constructor(
    "!override",
    lambda loader, node: loader.construct_mapping(node) if isinstance(node, yaml.MappingNode) else [],
)


def load(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.load((REPO / name).read_text(), Loader=ComposeLoader)
    return loaded


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load("docker-compose.yml")


@pytest.fixture(scope="module")
def secured() -> dict[str, Any]:
    return load("docker-compose.secured.yml")


def test_services(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {
        "kafka", "topics", "stream-neuron", "scorer", "demo-producer", "request-producer", "monitor",
        "prometheus",
    }  # fmt: skip
    assert compose["services"]["scorer"]["deploy"]["replicas"] == 2


def test_kafka_is_the_pinned_version_single_node_kraft(compose: dict[str, Any]) -> None:
    kafka = compose["services"]["kafka"]
    assert kafka["image"] == f"apache/kafka:{kafka_version()}"
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
    assert "INTERNAL://kafka:19092" in env["KAFKA_ADVERTISED_LISTENERS"]
    assert "healthcheck" in kafka and "19092" in " ".join(kafka["healthcheck"]["test"])


def test_the_broker_keeps_its_log_on_the_named_volume(compose: dict[str, Any]) -> None:
    """The log (topics, snapshots, offsets) survives down + up and a recreated container."""
    kafka = compose["services"]["kafka"]
    log_dirs = kafka["environment"]["KAFKA_LOG_DIRS"]
    mounts = dict(volume.split(":", 1) for volume in kafka["volumes"])
    assert mounts == {"kafka-data": log_dirs}
    assert "kafka-data" in compose["volumes"]
    cluster_id = kafka["environment"]["CLUSTER_ID"]  # the same cluster at every start
    assert len(cluster_id) == 22 and re.fullmatch(r"[A-Za-z0-9_-]+", cluster_id)


def test_one_variable_sets_the_published_port_and_the_advertised_host_listener(
    compose: dict[str, Any],
) -> None:
    kafka = compose["services"]["kafka"]
    [published] = kafka["ports"]
    host_port, container_port = published.rsplit(":", 1)
    assert host_port == "${KAFKA_HOST_PORT:-9092}"
    listeners = dict(entry.split("://") for entry in kafka["environment"]["KAFKA_LISTENERS"].split(","))
    assert listeners["EXTERNAL"] == f":{container_port}"
    advertised = dict(
        entry.split("://") for entry in kafka["environment"]["KAFKA_ADVERTISED_LISTENERS"].split(",")
    )
    assert advertised["EXTERNAL"] == f"localhost:{host_port}"


def test_dependencies_are_health_gated(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["topics"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert services["stream-neuron"]["depends_on"]["topics"]["condition"] == "service_completed_successfully"
    assert services["demo-producer"]["depends_on"]["topics"]["condition"] == "service_completed_successfully"
    assert "stream-neuron" in services["monitor"]["depends_on"]


def test_topics_service_creates_every_topic_in_one_process(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The component's own `topics` command, not one JVM a topic: the five defaults and the requests."""
    from stream_neuron.cli import build_parser, settings_from_args
    from stream_neuron.tools.topics import stack_topics

    spec = compose["services"]["topics"]
    for key, value in spec["environment"].items():
        monkeypatch.setenv(key, str(value))
    args = build_parser().parse_args(spec["command"])
    assert args.command == "topics"
    created = {
        need.name: need.create for need in stack_topics(settings_from_args(args, COMMAND_SETTINGS["topics"]))
    }
    assert set(created) == {*DEFAULT_TOPICS.values(), DEFAULT_REQUESTS_TOPIC}
    assert created[DEFAULT_REQUESTS_TOPIC] is not None and created[DEFAULT_REQUESTS_TOPIC].partitions == 4
    model = created[DEFAULT_TOPICS["model_topic"]]
    assert model is not None and model.configs["cleanup.policy"] == "compact"
    assert all(
        spec is not None and "cleanup.policy" not in spec.configs
        for name, spec in created.items()
        if name != DEFAULT_TOPICS["model_topic"]
    )


def test_the_components_get_longer_than_a_checkpoint_to_stop(compose: dict[str, Any]) -> None:
    """An engine that kills at once (Podman's `compose restart`) would lose the final checkpoint."""
    checkpoint_s = Settings().transaction_timeout_s
    for service in NEURON_SERVICES:
        grace = compose["services"][service]["stop_grace_period"]
        assert grace.endswith("s") and float(grace[:-1]) > checkpoint_s, service


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


def test_the_secured_overlay_moves_every_service_to_the_secured_cluster(
    compose: dict[str, Any], secured: dict[str, Any]
) -> None:
    """Every service of the stack but the local broker is overridden; the broker moves to a profile
    and nothing depends on it any more (the topics service waited for it)."""
    overridden = secured["services"]
    assert set(overridden) == set(compose["services"]) - {"prometheus"}  # it talks to no broker
    assert overridden["kafka"] == {"profiles": ["local-broker"]}
    assert isinstance(overridden["topics"]["depends_on"], Reset)
    for name, spec in compose["services"].items():
        if name not in ("kafka", "topics"):
            assert "kafka" not in spec.get("depends_on", {}), name
    for name in (*NEURON_SERVICES, "topics"):
        env = overridden[name]["environment"]
        assert env["STREAM_NEURON_SECURITY_PROTOCOL"] == "SASL_SSL", name
        assert env["STREAM_NEURON_BOOTSTRAP_SERVERS"].startswith("${KAFKA_BOOTSTRAP"), name


def test_the_secured_overlay_passes_credentials_as_readable_secrets(secured: dict[str, Any]) -> None:
    fields = {name for cls in COMMAND_SETTINGS.values() for name in cls.model_fields}
    for service in (*NEURON_SERVICES, "topics"):
        spec = secured["services"][service]
        env = spec["environment"]
        for key in env:
            assert key.removeprefix("STREAM_NEURON_").lower() in fields, key
        assert env["STREAM_NEURON_SASL_PASSWORD_FILE"].startswith("/run/secrets/")
        assert not any("PASSWORD" in key and not key.endswith("_FILE") for key in env)
        assert set(spec["secrets"]) == set(secured["secrets"])
        # mounted with the host file's mode: the container user joins the file's group
        assert spec["group_add"] == [
            "${KAFKA_SECRETS_GID:?set KAFKA_SECRETS_GID to the group of the secret files (id -g)}"
        ]
    assert all(secret["file"].startswith("./secrets/") for secret in secured["secrets"].values())
    # Those settings load (the variables filled in); the password comes from the file when connecting.
    env = {
        key.removeprefix("STREAM_NEURON_").lower(): value
        for key, value in secured["services"]["monitor"]["environment"].items()
    }
    Settings(**env | {"bootstrap_servers": "broker1:9093", "sasl_username": "app"})


def test_prometheus_scrapes_the_trainer_and_every_scorer_with_the_shipped_rules(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    prometheus = services["prometheus"]
    assert "./deploy/prometheus:/etc/prometheus:ro" in prometheus["volumes"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
    config = yaml.safe_load((REPO / "deploy" / "prometheus" / "prometheus.yml").read_text())
    assert (
        config["rule_files"] == ["alerts.yml"] and (REPO / "deploy" / "prometheus" / "alerts.yml").is_file()
    )
    [job] = config["scrape_configs"]
    trainer, scorer = services["stream-neuron"]["environment"], services["scorer"]["environment"]
    assert job["static_configs"] == [{"targets": [f"stream-neuron:{trainer['STREAM_NEURON_METRICS_PORT']}"]}]
    [replicas] = job["dns_sd_configs"]
    assert replicas["names"] == ["scorer"] and str(replicas["port"]) == scorer["STREAM_NEURON_METRICS_PORT"]
    assert scorer["STREAM_NEURON_METRICS_HOST"] == trainer["STREAM_NEURON_METRICS_HOST"] == "0.0.0.0"
