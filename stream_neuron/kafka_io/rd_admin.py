"""The admin calls of ``admin.Admin`` on librdkafka (``--kafka-client confluent``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from stream_neuron.kafka_io.admin import AdminDeniedError, AdminError, TopicSpec, TopicState
from stream_neuron.kafka_io.connection import Connection
from stream_neuron.kafka_io.rd_input import rdkafka

DENIED = ("TOPIC_AUTHORIZATION_FAILED", "CLUSTER_AUTHORIZATION_FAILED")


class RdAdmin:
    def __init__(self, connection: Connection, client_id: str, timeout_ms: int) -> None:
        kafka = rdkafka()
        self._kafka, self._timeout_s = kafka, timeout_ms / 1000
        self._admin = kafka.admin.AdminClient(connection.rdkafka_config(client_id))

    def _result(self, future: Any) -> Any:
        try:
            return future.result()
        except self._kafka.KafkaException as exception:
            error = exception.args[0]
            raise AdminError(f"{error.name()}: {error.str()}") from None

    def describe(self, names: Sequence[str]) -> dict[str, TopicState]:
        kafka = self._kafka
        futures = self._admin.describe_topics(
            kafka.TopicCollection(list(names)),
            request_timeout=self._timeout_s,
            include_authorized_operations=True,
        )
        states = {}
        for name, future in futures.items():
            try:
                described = future.result()
            except kafka.KafkaException as exception:
                code = exception.args[0].code()
                if code == kafka.KafkaError.TOPIC_AUTHORIZATION_FAILED:
                    states[name] = TopicState("denied")
                elif code == kafka.KafkaError.UNKNOWN_TOPIC_OR_PART:
                    states[name] = TopicState("missing")
                else:
                    raise AdminError(f"{exception.args[0].name()}: {exception.args[0].str()}") from None
                continue
            allowed = described.authorized_operations
            states[name] = TopicState("ok", None if allowed is None else [op.name for op in allowed])
        return states

    def create(self, specs: Sequence[TopicSpec]) -> None:
        kafka = self._kafka
        new = [kafka.admin.NewTopic(s.name, s.partitions, -1, config=dict(s.configs)) for s in specs]
        futures = self._admin.create_topics(new, request_timeout=self._timeout_s)
        for future in futures.values():
            try:
                future.result()
            except kafka.KafkaException as exception:
                error = exception.args[0]
                if error.code() == kafka.KafkaError.TOPIC_ALREADY_EXISTS:  # another client created it
                    continue
                if error.name() in DENIED:
                    raise AdminDeniedError(error.name()) from None
                raise AdminError(f"{error.name()}: {error.str()}") from None

    def configs(self, names: Sequence[str], key: str) -> dict[str, str]:
        admin = self._kafka.admin
        resources = [admin.ConfigResource(admin.ResourceType.TOPIC, name) for name in names]
        values: dict[str, str] = {}
        for resource, future in self._admin.describe_configs(
            resources, request_timeout=self._timeout_s
        ).items():
            entry = self._result(future).get(key)
            if entry is not None and entry.value is not None:
                values[resource.name] = str(entry.value)
        return values

    def topic_names(self) -> set[str]:
        try:
            metadata = self._admin.list_topics(timeout=self._timeout_s)
        except self._kafka.KafkaException as exception:
            raise AdminError(str(exception)) from None
        return set(metadata.topics)

    def close(self) -> None:
        """librdkafka's admin client has nothing to close: it goes with its last reference."""
