"""Topic checks and creation."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewTopic
from kafka.errors import (
    ClusterAuthorizationFailedError,
    KafkaError,
    TopicAlreadyExistsError,
    TopicAuthorizationFailedError,
)

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


@dataclass(frozen=True)
class TopicNeed:
    """A topic a command uses: what it is (for messages), what it must be allowed to do with it
    (Kafka ACL operations), and how to create it when it is missing (``None``: it must exist, and
    ``remedy`` says what to do)."""

    name: str
    what: str
    operations: tuple[str, ...]
    create: TopicSpec | None = None
    remedy: str = "create it"


TOPIC_AUTHORIZATION_FAILED, UNKNOWN_TOPIC = 29, 3


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
    connection: Connection, client_id: str, needs: Sequence[TopicNeed], create: bool = True
) -> list[str]:
    """Every topic in ``needs`` exists and may be used as it needs, or :class:`StartupError` says
    which and why (missing, or the user's ACLs); a missing one with a ``create`` spec is created
    unless ``create`` is False. Returns the names created."""
    admin = admin_client(connection, client_id)
    where, user = connection.bootstrap_servers, connection.sasl_username or "this client"
    try:
        described = {
            entry.get("topic") or entry.get("name"): entry
            for entry in admin.describe_topics([n.name for n in needs])
        }
        missing: list[TopicNeed] = []
        for need in needs:
            entry = described.get(need.name, {})
            error = entry.get("error_code", UNKNOWN_TOPIC)
            if error == TOPIC_AUTHORIZATION_FAILED:
                raise StartupError(
                    f"{need.what} {need.name!r}: user {user!r} is not authorized for it on {where} "
                    f"(grant {', '.join(need.operations)} on it, or use another topic)"
                )
            if error == UNKNOWN_TOPIC:
                missing.append(need)
                continue
            _check_operations(need, entry.get("authorized_operations"), user)
        for need in missing:
            if need.create is None:
                raise StartupError(f"{need.what} {need.name!r} does not exist on {where}: {need.remedy}")
        if missing and not create:
            names = ", ".join(need.name for need in missing)
            raise StartupError(
                f"topics missing on {where}: {names} (create them, or drop --no-create-topics)"
            )
        if missing:
            _create(admin, [need for need in missing if need.create is not None], user)
            log.info("created topics %s", ", ".join(need.name for need in missing))
        return [need.name for need in missing]
    except KafkaError as error:
        raise StartupError(f"topic set-up failed on {where}: {error}") from error
    finally:
        admin.close()


def _check_operations(need: TopicNeed, allowed: list[str] | None, user: str) -> None:
    """``allowed`` is what the broker says the user may do (``None`` when it has no authorizer)."""
    if allowed is None:
        return
    lacking = [
        operation for operation in need.operations if operation not in allowed and "ALL" not in allowed
    ]
    if lacking:
        verbs = " or ".join(op.lower() for op in lacking)
        raise StartupError(
            f"{need.what} {need.name!r}: user {user!r} may not {verbs} it "
            f"(its ACLs allow {', '.join(allowed) or 'nothing'}): grant {', '.join(lacking)} on it"
        )


def _create(admin: KafkaAdminClient, needs: Sequence[TopicNeed], user: str) -> None:
    specs = [need.create for need in needs if need.create is not None]
    new = [NewTopic(s.name, s.partitions, -1, topic_configs=s.configs) for s in specs]
    try:
        with contextlib.suppress(TopicAlreadyExistsError):  # another client created them first
            admin.create_topics(new)
    except (TopicAuthorizationFailedError, ClusterAuthorizationFailedError) as error:
        names = ", ".join(s.name for s in specs)
        raise StartupError(
            f"topics {names} are missing and user {user!r} may not create them ({error.__class__.__name__}): "
            "create them, or grant CREATE"
        ) from None


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
