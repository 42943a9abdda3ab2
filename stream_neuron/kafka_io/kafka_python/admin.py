"""The admin calls of the :class:`~stream_neuron.kafka_io.ports.Admin` port on kafka-python."""

from __future__ import annotations

from collections.abc import Sequence

from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewTopic
from kafka.errors import KafkaError, for_code

from stream_neuron.kafka_io.connection import Connection
from stream_neuron.kafka_io.errors import AccessDeniedError, AdminError, BrokerUnavailableError
from stream_neuron.kafka_io.kafka_python.config import client_config
from stream_neuron.kafka_io.kafka_python.errors import described, neutral, translated
from stream_neuron.kafka_io.ports import TopicSpec, TopicState

TOPIC_AUTHORIZATION_FAILED, CLUSTER_AUTHORIZATION_FAILED = 29, 31
UNKNOWN_TOPIC, TOPIC_ALREADY_EXISTS = 3, 36


@translated
class KafkaPythonAdmin:
    def __init__(self, connection: Connection, client_id: str, timeout_ms: int) -> None:
        try:
            self._admin = KafkaAdminClient(
                **client_config(connection, client_id), request_timeout_ms=timeout_ms
            )
        except KafkaError as error:
            raise BrokerUnavailableError(
                f"no Kafka broker answers at {connection.bootstrap_servers} ({described(error)}): start "
                "one or fix --bootstrap-servers"
            ) from None

    def describe(self, names: Sequence[str]) -> dict[str, TopicState]:
        states = {}
        try:
            entries = self._admin.describe_topics(list(names))
        except KafkaError as error:
            raise AdminError(described(error)) from None
        for entry in entries:
            code = entry.get("error_code", UNKNOWN_TOPIC)
            status = {TOPIC_AUTHORIZATION_FAILED: "denied", UNKNOWN_TOPIC: "missing"}.get(code, "ok")
            states[entry.get("topic") or entry.get("name")] = TopicState(
                status, entry.get("authorized_operations")
            )
        return states

    def create(self, specs: Sequence[TopicSpec]) -> None:
        new = [NewTopic(s.name, s.partitions, -1, topic_configs=s.configs) for s in specs]
        try:
            response = self._admin.create_topics(new, raise_errors=False)
        except KafkaError as error:
            raise AdminError(described(error)) from None
        for topic in response.get("topics", []):
            code = topic.get("error_code", 0)
            if code in (0, TOPIC_ALREADY_EXISTS):  # created, or by another client meanwhile
                continue
            refusal = for_code(code)
            if code in (TOPIC_AUTHORIZATION_FAILED, CLUSTER_AUTHORIZATION_FAILED):
                raise AccessDeniedError(refusal.__name__, "topic", topic.get("name", ""))
            raise AdminError(
                f"creating {topic.get('name')!r}: {refusal.__name__} ({topic.get('error_message')})"
            )

    def configs(self, names: Sequence[str], key: str) -> dict[str, str]:
        try:
            described_configs = self._admin.describe_configs(
                [ConfigResource(ConfigResourceType.TOPIC, name, [key]) for name in names], config_filter="all"
            )
        except KafkaError as error:  # a topic unknown yet is TopicMissingError
            raise neutral(error, f"reading the settings of topics {', '.join(names)}") from None
        values: dict[str, str] = {}
        for name, configs in described_configs.get("topic", {}).items():
            entry = configs.get(key)
            if isinstance(entry, dict) and entry.get("value") is not None:
                values[name] = str(entry["value"])
        return values

    def topic_names(self) -> set[str]:
        try:
            return set(self._admin.list_topics())
        except KafkaError as error:
            raise AdminError(described(error)) from None

    def close(self) -> None:
        self._admin.close()
