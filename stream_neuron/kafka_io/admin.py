"""Topic checks and creation, over the backend's :class:`~stream_neuron.kafka_io.ports.Admin`: which
topics a command needs, which the user may use as it needs (the cluster's ACLs), which to create."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from stream_neuron.kafka_io.backends import backend
from stream_neuron.kafka_io.connection import Connection
from stream_neuron.kafka_io.errors import (
    AccessDeniedError,
    KafkaIOError,
    PublishError,
    StartupError,
    TopicMissingError,
)
from stream_neuron.kafka_io.limits import (
    ADMIN_REQUEST_TIMEOUT_MS,
    DEAD_LETTER_MAX_BYTES,
    MODEL_TOPIC_MAX_BYTES,
)
from stream_neuron.kafka_io.ports import Admin, TopicSpec, TopicState
from stream_neuron.kafka_io.probe import probe

log = logging.getLogger(__name__)


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


def model_topic_spec(name: str) -> TopicSpec:
    """The model topic: compacted (the newest snapshot of each model is kept), one partition (one
    writer's order), records as large as a large model's snapshot."""
    return TopicSpec(name, 1, {"cleanup.policy": "compact", "max.message.bytes": str(MODEL_TOPIC_MAX_BYTES)})


def dead_letter_topic_spec(name: str, partitions: int) -> TopicSpec:
    """The dead-letter topic: records as large as whatever the input took (a dead letter carries it)."""
    return TopicSpec(name, partitions, {"max.message.bytes": str(DEAD_LETTER_MAX_BYTES)})


def admin_client(connection: Connection, client_id: str, timeout_ms: int = ADMIN_REQUEST_TIMEOUT_MS) -> Admin:
    return backend(connection).admin(connection, client_id, timeout_ms)


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
            except AccessDeniedError as denied:
                raise StartupError(
                    f"topics {', '.join(s.name for s in specs)} are missing and user {user!r} may not "
                    f"create them ({denied}): create them, or grant CREATE"
                ) from None
            log.info("created topics %s", ", ".join(need.name for need in missing))
        return [need.name for need in missing]
    except StartupError:
        raise
    except KafkaIOError as error:
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


TOPIC_SETTLE_S, TOPIC_SETTLE_POLL_S = 10.0, 0.2


def topic_configs(connection: Connection, client_id: str, names: Sequence[str], key: str) -> dict[str, str]:
    """The effective value of the topic setting ``key`` (the broker's default included) of each topic.
    A topic just created may be unknown for a moment to the broker asked (its metadata has not reached
    it yet): asked again for up to :data:`TOPIC_SETTLE_S` before that is an error."""
    admin = admin_client(connection, client_id)
    settled_by = time.monotonic() + TOPIC_SETTLE_S
    try:
        while True:
            try:
                return admin.configs(names, key)
            except TopicMissingError:
                if time.monotonic() > settled_by:
                    raise
                time.sleep(TOPIC_SETTLE_POLL_S)
    except StartupError:
        raise
    except KafkaIOError as error:
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
    except KafkaIOError:
        return None
    try:
        return set(names) - admin.topic_names()
    except KafkaIOError:  # the broker did not answer
        return None
    finally:
        admin.close()


def check_outputs_exist(
    connection: Connection, client_id: str, topics: Iterable[str], model_topic: str | None = None
) -> None:
    """While publishing waits on the broker: an output topic that no longer exists (deleted under the
    running component) is :class:`PublishError` naming it, not a reason to wait on."""
    gone = missing_topics(connection, client_id, topics)
    if gone and model_topic in gone:
        raise PublishError(
            f"model topic {model_topic!r} no longer exists, and the model's snapshots with it: a restart "
            "refuses to start without them; run once with --on-bad-snapshot new-model to start a new model"
        )
    if gone:
        raise PublishError(
            f"output topic {sorted(gone)[0]!r} no longer exists: recreate it (a restart creates the missing "
            "output topics unless --no-create-topics)"
        )
