"""A backend assembled from its parts: each client library's package names the classes and functions
that implement the ports, and this builds the :class:`~stream_neuron.kafka_io.ports.Backend` from them
(so the two backends differ only in what they are made of)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from stream_neuron.kafka_io.connection import Connection
from stream_neuron.kafka_io.ports import (
    Admin,
    GroupInput,
    Input,
    OffsetRanges,
    OutputSender,
    Positions,
    StreamWriter,
    TopicTail,
    TransactionalProducer,
)
from stream_neuron.records import InputRecord


@dataclass(frozen=True)
class AssembledBackend:
    name: str
    input_class: Callable[..., Input]
    read_ranges_function: Callable[..., list[InputRecord]]
    group_input_class: Callable[..., GroupInput]
    sender_class: Callable[..., OutputSender]
    transactions_class: Callable[..., TransactionalProducer]
    tail_class: Callable[..., TopicTail]
    admin_class: Callable[..., Admin]
    write_records_function: Callable[..., list[tuple[int, int]]]
    stream_writer_class: Callable[..., StreamWriter]

    def input(
        self,
        connection: Connection,
        topics: list[str],
        group_id: str,
        client_id: str,
        max_records: int,
        positions: Positions,
    ) -> Input:
        return self.input_class(connection, topics, group_id, client_id, max_records, positions)

    def read_ranges(
        self, connection: Connection, client_id: str, ranges: OffsetRanges, timeout_s: float
    ) -> list[InputRecord]:
        return self.read_ranges_function(connection, client_id, ranges, timeout_s)

    def group_input(
        self,
        connection: Connection,
        topic: str,
        group_id: str,
        client_id: str,
        max_records: int,
        on_revoke: Callable[[set[tuple[str, int]]], None],
    ) -> GroupInput:
        return self.group_input_class(connection, topic, group_id, client_id, max_records, on_revoke)

    def output_sender(
        self, connection: Connection, client_id: str, compression: str, smallest_topic_limit: int
    ) -> OutputSender:
        return self.sender_class(connection, client_id, compression, smallest_topic_limit)

    def transactional_producer(
        self,
        connection: Connection,
        client_id: str,
        transactional_id: str,
        timeout_s: float,
        compression: str,
        smallest_topic_limit: int,
    ) -> TransactionalProducer:
        return self.transactions_class(
            connection, client_id, transactional_id, timeout_s, compression, smallest_topic_limit
        )

    def tail(self, connection: Connection, topic: str, client_id: str, fetch_wait_ms: int) -> TopicTail:
        return self.tail_class(connection, topic, client_id, fetch_wait_ms)

    def admin(self, connection: Connection, client_id: str, timeout_ms: int) -> Admin:
        return self.admin_class(connection, client_id, timeout_ms)

    def write_records(
        self,
        connection: Connection,
        client_id: str,
        records: Sequence[tuple[str, bytes | None, bytes | None]],
        timeout_s: float,
    ) -> list[tuple[int, int]]:
        return self.write_records_function(connection, client_id, records, timeout_s)

    def stream_writer(self, connection: Connection, client_id: str, block_s: float) -> StreamWriter:
        return self.stream_writer_class(connection, client_id, block_s)
