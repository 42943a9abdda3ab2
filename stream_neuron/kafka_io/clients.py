"""The streaming Kafka clients (the run's input consumer and its read-back of input ranges, the scorers'
group input, the at-least-once producer, the transactional producer) for the client library the
connection names: kafka-python (the default, and the only one required) or confluent-kafka
(librdkafka, ``--kafka-client confluent``). Both sides keep the same contracts. The model topic's
readers, the writer claim, ``fit``, ``produce`` and ``monitor`` choose theirs in ``topic_tail`` and
``record_writer``; admin in ``admin.admin_client``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from stream_neuron.kafka_io.connection import Connection
from stream_neuron.kafka_io.consumer import InputConsumer, Positions
from stream_neuron.kafka_io.consumer import read_ranges as kafka_python_read_ranges
from stream_neuron.kafka_io.group_input import GroupInput
from stream_neuron.kafka_io.producer import OutputProducer
from stream_neuron.kafka_io.rd_group_input import RdGroupInput
from stream_neuron.kafka_io.rd_input import RdInputConsumer, rd_read_ranges
from stream_neuron.kafka_io.rd_output import RdOutputProducer, RdTransactionalOutput
from stream_neuron.kafka_io.transactions import TransactionalOutput
from stream_neuron.records import InputRecord

AnyInput = InputConsumer | RdInputConsumer
AnyTransactionalOutput = TransactionalOutput | RdTransactionalOutput
AnyGroupInput = GroupInput | RdGroupInput


def input_consumer(
    connection: Connection, topics: list[str], group_id: str, client_id: str, max_records: int, at: Positions
) -> AnyInput:
    kind = RdInputConsumer if connection.client == "confluent" else InputConsumer
    return kind(connection, topics, group_id, client_id, max_records, at)


def group_input(
    connection: Connection,
    topic: str,
    group_id: str,
    client_id: str,
    max_records: int,
    on_revoke: Callable[[set[tuple[str, int]]], None],
) -> AnyGroupInput:
    kind = RdGroupInput if connection.client == "confluent" else GroupInput
    return kind(connection, topic, group_id, client_id, max_records, on_revoke)


def output_producer(
    connection: Connection,
    client_id: str,
    compression: str,
    smallest_topic_limit: int,
    check: Callable[[set[str]], None],
    stopping: Callable[[], bool],
) -> Any:
    kind = RdOutputProducer if connection.client == "confluent" else OutputProducer
    return kind(connection, client_id, compression, smallest_topic_limit, check, stopping)


def transactional_output(
    connection: Connection,
    client_id: str,
    model_name: str,
    timeout_s: float,
    compression: str,
    smallest_topic_limit: int,
) -> AnyTransactionalOutput:
    kind = RdTransactionalOutput if connection.client == "confluent" else TransactionalOutput
    return kind(connection, client_id, model_name, timeout_s, compression, smallest_topic_limit)


def read_ranges(
    connection: Connection, client_id: str, ranges: Mapping[tuple[str, int], tuple[int, int]]
) -> list[InputRecord]:
    """The input's records in each (topic, partition) range, in order (delayed labels' questions)."""
    read = rd_read_ranges if connection.client == "confluent" else kafka_python_read_ranges
    return read(connection, client_id, ranges)
