"""The Kafka clients of every command, on the backend the connection names (``backends.py``): the
ports' constructors, with the neutral parts (the at-least-once wait, the transactions) put around a
backend's producers here."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from stream_neuron.kafka_io.backends import backend
from stream_neuron.kafka_io.connection import Connection
from stream_neuron.kafka_io.delivery import AtLeastOnceOutput
from stream_neuron.kafka_io.ports import GroupInput, Input, OffsetRanges, Positions, StreamWriter, TopicTail
from stream_neuron.kafka_io.transactional import TransactionalOutput
from stream_neuron.records import InputRecord

READ_RANGES_TIMEOUT_S = 120.0


def input_consumer(
    connection: Connection, topics: list[str], group_id: str, client_id: str, max_records: int, at: Positions
) -> Input:
    return backend(connection).input(connection, topics, group_id, client_id, max_records, at)


def group_input(
    connection: Connection,
    topic: str,
    group_id: str,
    client_id: str,
    max_records: int,
    on_revoke: Callable[[set[tuple[str, int]]], None],
) -> GroupInput:
    return backend(connection).group_input(connection, topic, group_id, client_id, max_records, on_revoke)


def output_producer(
    connection: Connection,
    client_id: str,
    compression: str,
    smallest_topic_limit: int,
    check: Callable[[], None],
    stopping: Callable[[], bool],
) -> AtLeastOnceOutput:
    sender = backend(connection).output_sender(connection, client_id, compression, smallest_topic_limit)
    return AtLeastOnceOutput(sender, check, stopping)


def transactional_output(
    connection: Connection,
    client_id: str,
    model_name: str,
    timeout_s: float,
    compression: str,
    smallest_topic_limit: int,
    claimed_by_another: Callable[[], None],
    check: Callable[[], None],
) -> TransactionalOutput:
    return TransactionalOutput(
        backend(connection), connection, client_id, model_name, timeout_s, compression, smallest_topic_limit,
        claimed_by_another, check,
    )  # fmt: skip


def read_ranges(
    connection: Connection, client_id: str, ranges: OffsetRanges, timeout_s: float = READ_RANGES_TIMEOUT_S
) -> list[InputRecord]:
    """The input's records in each (topic, partition) range, in order (delayed labels' questions)."""
    return backend(connection).read_ranges(connection, client_id, ranges, timeout_s)


def open_tail(connection: Connection, topic: str, client_id: str, fetch_wait_ms: int = 500) -> TopicTail:
    """A tail of ``topic``; nothing is read before a ``start_from_*``."""
    return backend(connection).tail(connection, topic, client_id, fetch_wait_ms)


def write_records(
    connection: Connection,
    client_id: str,
    records: Sequence[tuple[str, bytes | None, bytes | None]],
    timeout_s: float,
) -> list[tuple[int, int]]:
    return backend(connection).write_records(connection, client_id, records, timeout_s)


def stream_writer(connection: Connection, client_id: str, block_s: float = 15.0) -> StreamWriter:
    return backend(connection).stream_writer(connection, client_id, block_s)
