"""Topic checks and creation."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from stream_neuron.kafka_io.connection import Connection
from stream_neuron.kafka_io.errors import StartupError
from stream_neuron.kafka_io.limits import ADMIN_REQUEST_TIMEOUT_MS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TopicSpec:
    """A topic to create when missing (replication: the cluster's default)."""

    name: str
    partitions: int = 1
    configs: dict[str, str] = field(default_factory=dict)


def admin_client(connection: Connection, client_id: str) -> KafkaAdminClient:
    try:
        return KafkaAdminClient(
            **connection.client_config(client_id), request_timeout_ms=ADMIN_REQUEST_TIMEOUT_MS
        )
    except KafkaError as error:
        raise StartupError(
            f"no Kafka broker answers at {connection.bootstrap_servers}: start one or fix --bootstrap-servers"
        ) from error


def ensure_topics(
    connection: Connection,
    client_id: str,
    required: Mapping[str, tuple[str, str]],
    wanted: Sequence[TopicSpec],
    create: bool = True,
) -> list[str]:
    """Every ``required`` topic (name -> what it is, what to do when it is missing) must exist; each
    ``wanted`` one is created when missing (or, with ``create=False``, its absence is a
    :class:`StartupError`). Returns the names created."""
    admin = admin_client(connection, client_id)
    where = connection.bootstrap_servers
    try:
        existing = set(admin.list_topics())
        for name, (what, remedy) in required.items():
            if name not in existing:
                raise StartupError(f"{what} {name!r} does not exist on {where}: {remedy}")
        missing = [spec for spec in wanted if spec.name not in existing]
        if missing and not create:
            names = ", ".join(spec.name for spec in missing)
            raise StartupError(f"topics missing on {where}: {names}")
        if missing:
            new = [NewTopic(s.name, s.partitions, -1, topic_configs=s.configs) for s in missing]
            with contextlib.suppress(TopicAlreadyExistsError):  # another client created them first
                admin.create_topics(new)
            log.info("created topics %s", ", ".join(spec.name for spec in missing))
        return [spec.name for spec in missing]
    except KafkaError as error:
        raise StartupError(f"topic set-up failed on {where}: {error}") from error
    finally:
        admin.close()


def topic_configs(connection: Connection, client_id: str, names: Sequence[str], key: str) -> dict[str, str]:
    """The effective value of the topic setting ``key`` (the broker's default included) of each topic."""
    admin = admin_client(connection, client_id)
    try:
        described = admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name, [key]) for name in names], config_filter="all"
        )
    except KafkaError as error:
        raise StartupError(f"cannot read the settings of topics {', '.join(names)}: {error}") from error
    finally:
        admin.close()
    values: dict[str, str] = {}
    for name, configs in described.get("topic", {}).items():
        entry = configs.get(key)
        if isinstance(entry, dict) and entry.get("value") is not None:
            values[name] = str(entry["value"])
    return values


def missing_topics(connection: Connection, client_id: str, names: Iterable[str]) -> set[str] | None:
    """Which of ``names`` do not exist; ``None`` when the broker does not answer (an outage, not a
    missing topic)."""
    try:
        admin = KafkaAdminClient(**connection.client_config(client_id), request_timeout_ms=5_000)
    except KafkaError:
        return None
    try:
        existing = set(admin.list_topics())
    except KafkaError:
        return None
    finally:
        admin.close()
    return set(names) - existing
