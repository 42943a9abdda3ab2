"""The admin calls of the :class:`~stream_neuron.kafka_io.ports.Admin` port on librdkafka."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from confluent_kafka import KafkaError, KafkaException, TopicCollection
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic, ResourceType  # type: ignore[attr-defined]

from stream_neuron.kafka_io.connection import Connection
from stream_neuron.kafka_io.errors import AccessDeniedError, AdminError
from stream_neuron.kafka_io.librdkafka.config import client_config
from stream_neuron.kafka_io.librdkafka.errors import DENIED, described, neutral, translated
from stream_neuron.kafka_io.ports import TopicSpec, TopicState


@translated
class RdAdmin:
    def __init__(self, connection: Connection, client_id: str, timeout_ms: int) -> None:
        self._timeout_s = timeout_ms / 1000
        self._admin = AdminClient(client_config(connection, client_id))

    def _result(self, future: Any) -> Any:
        try:
            return future.result()
        except KafkaException as exception:
            raise AdminError(described(exception)) from None

    def describe(self, names: Sequence[str]) -> dict[str, TopicState]:
        futures = self._admin.describe_topics(
            TopicCollection(list(names)), request_timeout=self._timeout_s, include_authorized_operations=True
        )
        states = {}
        for name, future in futures.items():
            try:
                described_topic = future.result()
            except KafkaException as exception:
                code = exception.args[0].code()
                if code == KafkaError.TOPIC_AUTHORIZATION_FAILED:
                    states[name] = TopicState("denied")
                elif code == KafkaError.UNKNOWN_TOPIC_OR_PART:
                    states[name] = TopicState("missing")
                else:
                    raise AdminError(described(exception)) from None
                continue
            allowed = described_topic.authorized_operations
            states[name] = TopicState("ok", None if allowed is None else [op.name for op in allowed])
        return states

    def create(self, specs: Sequence[TopicSpec]) -> None:
        new = [NewTopic(s.name, s.partitions, -1, config=dict(s.configs)) for s in specs]
        futures = self._admin.create_topics(new, request_timeout=self._timeout_s)
        for name, future in futures.items():
            try:
                future.result()
            except KafkaException as exception:
                error = exception.args[0]
                if error.code() == KafkaError.TOPIC_ALREADY_EXISTS:  # another client created it meanwhile
                    continue
                if error.code() in DENIED:
                    raise AccessDeniedError(error.name(), "topic", name) from None
                raise AdminError(f"creating {name!r}: {described(error)}") from None

    def configs(self, names: Sequence[str], key: str) -> dict[str, str]:
        resources = [ConfigResource(ResourceType.TOPIC, name) for name in names]
        values: dict[str, str] = {}
        for resource, future in self._admin.describe_configs(
            resources, request_timeout=self._timeout_s
        ).items():
            try:
                entry = future.result().get(key)
            except KafkaException as exception:  # a topic unknown yet is TopicMissingError
                raise neutral(exception, f"reading the settings of topic {resource.name!r}") from None
            if entry is not None and entry.value is not None:
                values[resource.name] = str(entry.value)
        return values

    def topic_names(self) -> set[str]:
        try:
            metadata = self._admin.list_topics(timeout=self._timeout_s)
        except KafkaException as exception:
            raise AdminError(described(exception)) from None
        return set(metadata.topics)

    def close(self) -> None:
        """librdkafka's admin client has nothing to close: it goes with its last reference."""
