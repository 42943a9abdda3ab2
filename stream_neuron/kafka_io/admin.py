"""Topic checks and creation."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

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
from stream_neuron.kafka_io.probe import probe

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


@dataclass(frozen=True)
class TopicState:
    """What the broker says of one topic: ``"ok"``, ``"missing"`` or ``"denied"``, and the operations
    the user may do on it (``None`` when the broker has no authorizer)."""

    status: str
    operations: list[str] | None = None


class AdminDeniedError(Exception):
    """The user may not create the topics (the client's error name in the message)."""


class AdminError(Exception):
    """Any other error of an admin call, in the client's words."""


class Admin(Protocol):
    """The four admin calls the commands need, on either Kafka client. A client's errors come out as
    :class:`AdminError`; no broker at all, at construction, as :class:`StartupError`."""

    def describe(self, names: Sequence[str]) -> dict[str, TopicState]: ...

    def create(self, specs: Sequence[TopicSpec]) -> None:
        """Create the topics (one already there is fine); :class:`AdminDeniedError` when not allowed."""

    def configs(self, names: Sequence[str], key: str) -> dict[str, str]: ...

    def topic_names(self) -> set[str]: ...

    def close(self) -> None: ...


def admin_client(connection: Connection, client_id: str, timeout_ms: int = ADMIN_REQUEST_TIMEOUT_MS) -> Admin:
    if connection.client == "confluent":
        from stream_neuron.kafka_io.rd_admin import RdAdmin

        return RdAdmin(connection, client_id, timeout_ms)
    return KafkaPythonAdmin(connection, client_id, timeout_ms)


class KafkaPythonAdmin:
    TOPIC_AUTHORIZATION_FAILED, UNKNOWN_TOPIC = 29, 3

    def __init__(self, connection: Connection, client_id: str, timeout_ms: int) -> None:
        try:
            self._admin = KafkaAdminClient(
                **connection.client_config(client_id), request_timeout_ms=timeout_ms
            )
        except KafkaError as error:
            raise StartupError(
                f"no Kafka broker answers at {connection.bootstrap_servers}: start one or fix "
                "--bootstrap-servers"
            ) from error

    def describe(self, names: Sequence[str]) -> dict[str, TopicState]:
        states = {}
        with _as_admin_error():
            entries = self._admin.describe_topics(list(names))
        for entry in entries:
            error = entry.get("error_code", self.UNKNOWN_TOPIC)
            status = {self.TOPIC_AUTHORIZATION_FAILED: "denied", self.UNKNOWN_TOPIC: "missing"}.get(
                error, "ok"
            )
            states[entry.get("topic") or entry.get("name")] = TopicState(
                status, entry.get("authorized_operations")
            )
        return states

    def create(self, specs: Sequence[TopicSpec]) -> None:
        new = [NewTopic(s.name, s.partitions, -1, topic_configs=s.configs) for s in specs]
        try:
            with contextlib.suppress(TopicAlreadyExistsError):  # another client created them first
                self._admin.create_topics(new)
        except (TopicAuthorizationFailedError, ClusterAuthorizationFailedError) as error:
            raise AdminDeniedError(error.__class__.__name__) from None
        except KafkaError as error:
            raise AdminError(str(error)) from None

    def configs(self, names: Sequence[str], key: str) -> dict[str, str]:
        with _as_admin_error():
            described = self._admin.describe_configs(
                [ConfigResource(ConfigResourceType.TOPIC, name, [key]) for name in names], config_filter="all"
            )
        values: dict[str, str] = {}
        for name, configs in described.get("topic", {}).items():
            entry = configs.get(key)
            if isinstance(entry, dict) and entry.get("value") is not None:
                values[name] = str(entry["value"])
        return values

    def topic_names(self) -> set[str]:
        with _as_admin_error():
            return set(self._admin.list_topics())

    def close(self) -> None:
        self._admin.close()


@contextlib.contextmanager
def _as_admin_error() -> Iterator[None]:
    try:
        yield
    except KafkaError as error:
        raise AdminError(str(error)) from None


def ensure_topics(
    connection: Connection, client_id: str, needs: Sequence[TopicNeed], create: bool = True
) -> list[str]:
    """Every topic in ``needs`` exists and may be used as it needs, or :class:`StartupError` says
    which and why (missing, or the user's ACLs); a missing one with a ``create`` spec is created
    unless ``create`` is False. Returns the names created."""
    admin = admin_client(connection, client_id)
    where, user = connection.bootstrap_servers, connection.sasl_username or "this client"
    try:
        described = admin.describe([n.name for n in needs])
        missing: list[TopicNeed] = []
        for need in needs:
            state = described.get(need.name, TopicState("missing"))
            if state.status == "denied":
                raise StartupError(
                    f"{need.what} {need.name!r}: user {user!r} is not authorized for it on {where} "
                    f"(grant {', '.join(need.operations)} on it, or use another topic)"
                )
            if state.status == "missing":
                missing.append(need)
                continue
            _check_operations(need, state.operations, user)
        for need in missing:
            if need.create is None:
                raise StartupError(f"{need.what} {need.name!r} does not exist on {where}: {need.remedy}")
        if missing and not create:
            names = ", ".join(need.name for need in missing)
            raise StartupError(
                f"topics missing on {where}: {names} (create them, or drop --no-create-topics)"
            )
        if missing:
            specs = [need.create for need in missing if need.create is not None]
            try:
                admin.create(specs)
            except AdminDeniedError as denied:
                raise StartupError(
                    f"topics {', '.join(s.name for s in specs)} are missing and user {user!r} may not "
                    f"create them ({denied}): create them, or grant CREATE"
                ) from None
            log.info("created topics %s", ", ".join(need.name for need in missing))
        return [need.name for need in missing]
    except AdminError as error:
        raise StartupError(f"topic set-up failed on {where}: {error}") from None
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


def topic_configs(connection: Connection, client_id: str, names: Sequence[str], key: str) -> dict[str, str]:
    """The effective value of the topic setting ``key`` (the broker's default included) of each topic."""
    admin = admin_client(connection, client_id)
    try:
        return admin.configs(names, key)
    except AdminError as error:
        raise StartupError(f"cannot read the settings of topics {', '.join(names)}: {error}") from None
    finally:
        admin.close()


def missing_topics(connection: Connection, client_id: str, names: Iterable[str]) -> set[str] | None:
    """Which of ``names`` do not exist; ``None`` when the broker does not answer (an outage, not a
    missing topic). A raw probe first: kafka-python leaves a network thread behind each admin client
    that fails to connect, one per check over a long outage otherwise. The admin client is closed at
    once (one kept for the run logged errors of its own while a restarted broker settled)."""
    try:
        probe(connection, timeout_s=0)
        admin = admin_client(connection, client_id, timeout_ms=5_000)
    except StartupError:
        return None
    try:
        return set(names) - admin.topic_names()
    except AdminError:  # the broker did not answer
        return None
    finally:
        admin.close()
