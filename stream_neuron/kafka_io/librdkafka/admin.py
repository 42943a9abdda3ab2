"""The admin calls of the :class:`~stream_neuron.kafka_io.ports.Admin` port on librdkafka."""

from __future__ import annotations

from collections.abc import Sequence

from confluent_kafka import KafkaError, KafkaException, TopicCollection
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic, ResourceType  # type: ignore[attr-defined]

from stream_neuron.kafka_io.connection import Connection
from stream_neuron.kafka_io.errors import AccessDeniedError, AdminError
from stream_neuron.kafka_io.librdkafka.config import client_config
from stream_neuron.kafka_io.librdkafka.errors import DENIED, carried, code_of, described, neutral, translated
from stream_neuron.kafka_io.librdkafka.futures import outcome
from stream_neuron.kafka_io.ports import TopicSpec, TopicState


@translated
class RdAdmin:
    """Every future is read by :func:`outcome` (never raised from): see ``futures.py`` for the abort
    that raising from one can lead to."""

    def __init__(self, connection: Connection, client_id: str, timeout_ms: int) -> None:
        self._timeout_s = timeout_ms / 1000
        self._admin: AdminClient | None = AdminClient(client_config(connection, client_id))

    @property
    def _client(self) -> AdminClient:
        if self._admin is None:
            raise AdminError("the admin client is closed")
        return self._admin

    def describe(self, names: Sequence[str]) -> dict[str, TopicState]:
        futures = self._client.describe_topics(
            TopicCollection(list(names)), request_timeout=self._timeout_s, include_authorized_operations=True
        )
        states = {}
        for name, future in futures.items():
            described_topic, error = outcome(future)
            if error is not None:
                code = code_of(error)
                if code == KafkaError.TOPIC_AUTHORIZATION_FAILED:
                    states[name] = TopicState("denied")
                elif code == KafkaError.UNKNOWN_TOPIC_OR_PART:
                    states[name] = TopicState("missing")
                else:
                    raise AdminError(described(error))
                continue
            allowed = described_topic.authorized_operations
            states[name] = TopicState("ok", None if allowed is None else [op.name for op in allowed])
        return states

    def create(self, specs: Sequence[TopicSpec]) -> None:
        new = [NewTopic(s.name, s.partitions, -1, config=dict(s.configs)) for s in specs]
        futures = self._client.create_topics(new, request_timeout=self._timeout_s)
        for name, future in futures.items():
            _, error = outcome(future)
            if error is None:
                continue
            kafka_error = carried(error)
            if kafka_error is not None and kafka_error.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                continue  # another client created it meanwhile
            if kafka_error is not None and kafka_error.code() in DENIED:
                raise AccessDeniedError(kafka_error.name(), "topic", name)
            raise AdminError(f"creating {name!r}: {described(error)}")

    def configs(self, names: Sequence[str], key: str) -> dict[str, str]:
        resources = [ConfigResource(ResourceType.TOPIC, name) for name in names]
        values: dict[str, str] = {}
        for resource, future in self._client.describe_configs(
            resources, request_timeout=self._timeout_s
        ).items():
            settings, error = outcome(future)
            if error is not None:  # a topic unknown yet is TopicMissingError
                raise neutral(error, f"reading the settings of topic {resource.name!r}")
            entry = settings.get(key)
            if entry is not None and entry.value is not None:
                values[resource.name] = str(entry.value)
        return values

    def topic_names(self) -> set[str]:
        try:
            metadata = self._client.list_topics(timeout=self._timeout_s)
        except KafkaException as exception:
            raise AdminError(described(exception)) from None
        return set(metadata.topics)

    def close(self) -> None:
        """Drops the client here, on the caller's thread (librdkafka's admin client has no close: it
        goes with its last reference)."""
        self._admin = None


def group_denied(connection: Connection, group_id: str, timeout_s: float = 10) -> bool:
    """Whether ``group_id`` is out of this user's rights (librdkafka's offset fetch only times out on
    one). A timeout or an absent broker is not a denial we can name: ``False``."""
    admin = AdminClient(client_config(connection, "group-check"))
    future = admin.describe_consumer_groups([group_id], request_timeout=timeout_s)[group_id]
    try:
        _, error = outcome(future, timeout_s + 5)
    except TimeoutError:
        return False
    return code_of(error) == KafkaError.GROUP_AUTHORIZATION_FAILED
