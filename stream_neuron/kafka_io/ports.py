"""What the rest of stream-neuron may use of Kafka: the ports each backend implements, and their value
types. The code above the Kafka layer (the runner, the scorers, ``fit``, the tools) sees only these
and the neutral errors of ``errors.py``; which client library serves them is ``backends.py``'s choice.

Delivery guarantees belong to the ports, not the backends: every backend's input starts where it is
told and commits only when asked; its at-least-once sender hands back what the broker refused; its
transactional producer commits outputs and offsets together or not at all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from stream_neuron.kafka_io.connection import Connection
from stream_neuron.kafka_io.errors import (
    AccessDeniedError,
    AdminError,
    BrokerUnavailableError,
    FencedError,
    KafkaIOError,
    PublishError,
    RecordRefusedError,
    Refused,
    StartupError,
    TakenOverError,
    TimedOutError,
    TopicMissingError,
    TransactionFailedError,
    WriteError,
)
from stream_neuron.records import InputRecord, OutputRecord

__all__ = [
    "AccessDeniedError", "Admin", "AdminError", "Backend", "BrokerUnavailableError", "FencedError",
    "GroupInput", "Input", "KafkaIOError", "OffsetRanges", "OutputSender", "Positions", "PublishError",
    "RecordRefusedError", "Refused", "Settled", "StartPositions", "StartupError", "StreamWriter",
    "TailRecord", "TakenOverError", "TimedOutError", "TopicMissingError", "TopicSpec", "TopicState",
    "TopicTail", "TransactionFailedError", "TransactionalProducer", "WriteError",
]  # fmt: skip

Positions = Mapping[tuple[str, int], int]
"""The next offset to read, by (topic, partition)."""

StartPositions = Mapping[tuple[str, int], int | None]
"""Where to read from, by (topic, partition); ``None`` is the partition's beginning."""

OffsetRanges = Mapping[tuple[str, int], tuple[int, int]]
"""(first offset, end offset) by (topic, partition)."""


class TailRecord(NamedTuple):
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass(frozen=True)
class TopicSpec:
    """A topic to create when missing (replication: the cluster's default)."""

    name: str
    partitions: int = 1
    configs: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TopicState:
    """What the broker says of one topic: ``"ok"``, ``"missing"`` or ``"denied"``, and the operations
    the user may do on it (``None`` when the broker has no authorizer)."""

    status: str
    operations: list[str] | None = None


class Input(Protocol):
    """Every partition of the input topics, read by one process (manual assignment), from positions the
    owner gives; offsets committed only by the owner (``read_committed``, no auto-commit). Partitions
    added while running are picked up and read from their beginning."""

    topics: list[str]

    def assignment(self) -> list[tuple[str, int]]: ...

    def poll(self, timeout_ms: int, max_records: int) -> list[InputRecord]:
        """The next records; a broker that cannot be reached is no records yet, never an error."""

    def offset_ranges(self) -> dict[tuple[str, int], tuple[int, int]]:
        """(first offset, end offset) of every assigned partition, asked of the broker now."""

    def exhausted(self) -> bool:
        """Every partition read to its end, as the broker says now; False when it does not answer."""

    def seek(self, positions: StartPositions) -> None: ...

    def committed_positions(self) -> dict[tuple[str, int], int | None]: ...

    def commit(self, positions: Positions, wait: bool) -> None: ...

    def lag(self, positions: Positions) -> int | None:
        """Records behind the end, from cached watermarks (no request); ``None`` until known."""

    def ends(self) -> dict[tuple[str, int], bool]:
        """For each partition whose end the client has heard of (cached, no request): whether its fetch
        position has reached that end (nothing more to read there for now). A partition whose end is
        not known yet (no fetch answered) is not among them."""

    def group_metadata(self) -> Any:
        """What a transactional producer of the same backend needs to commit this group's offsets."""

    def close(self) -> None: ...


class GroupInput(Protocol):
    """One topic read as a member of a consumer group (the scorers): at least once. ``on_revoke`` runs
    inside :meth:`poll` before partitions go to another member; commits cover owned partitions only."""

    def assignment(self) -> list[tuple[str, int]]: ...

    def poll(self, timeout_ms: int, max_records: int) -> list[InputRecord]: ...

    def commit(self, positions: Positions, wait: bool) -> None: ...

    def committed_positions(self) -> dict[tuple[str, int], int | None]: ...

    def group_metadata(self) -> Any: ...

    def exhausted(self) -> bool:
        """The whole topic read by the group: owned partitions by position, the others by the group's
        committed offsets. False when the broker does not answer."""

    def lag(self, positions: Positions) -> int | None: ...

    def close(self) -> None: ...


class Settled(NamedTuple):
    """What became of the records sent since the last settle: the refused ones, and those that failed
    for a reason that may pass (a lost broker, a timeout) and can be sent again."""

    refused: list[Refused]
    retry: list[OutputRecord]


class OutputSender(Protocol):
    """An ``acks=all`` producer, not idempotent (see ``delivery.py``), with the records it was handed
    since the last :meth:`settle`."""

    def send(self, records: Iterable[OutputRecord]) -> None:
        """Hand records over in order. A record the client refuses at once, or cannot queue for a reason
        that may pass, is kept for :meth:`settle` to report; :class:`PublishError` for the rest."""

    def settle(self, timeout_s: float) -> Settled | None:
        """Wait until every record sent is acknowledged or failed; ``None`` when ``timeout_s`` passes
        first (nothing is forgotten: the next settle waits for them again). :class:`PublishError` for
        a failure that will not pass (a denied write, a deleted topic)."""

    def unsettled(self) -> int:
        """How many records sent are neither acknowledged nor failed yet, asked without waiting (0: a
        settle returns at once)."""

    def close(self, timeout_s: float) -> None:
        """Close without raising (what could not be sent was never committed)."""


class TransactionalProducer(Protocol):
    """One transactional producer (one epoch of the transactional id). Every call either does what
    it says or raises a neutral error: :class:`FencedError` (a newer epoch exists),
    :class:`TransactionFailedError` (the transaction cannot commit; ``refused`` names records refused
    for what they are), :class:`TimedOutError`, or another :class:`KafkaIOError`. The calls that
    may wait on the broker take a timeout; the caller guards them with a thread as well."""

    def init(self, timeout_s: float) -> None: ...

    def begin(self) -> None: ...

    def send(self, records: Iterable[OutputRecord]) -> None: ...

    def settle(self, timeout_s: float) -> list[tuple[OutputRecord, BaseException]] | None:
        """Every record of the open transaction acknowledged (``[]``), some failed (those, with their
        neutral errors), or ``None``: not within ``timeout_s``."""

    def refused_so_far(self) -> list[Refused]:
        """The records already known to be refused, without waiting for the others."""

    def send_offsets(self, offsets: Positions, group_metadata: Any, timeout_s: float) -> None: ...

    def commit(self, timeout_s: float) -> None: ...

    def abort(self, timeout_s: float) -> None: ...

    def forget(self) -> None:
        """Drop the records of the open transaction (after an abort)."""

    def close(self, timeout_s: float) -> None: ...

    def retire(self, timeout_s: float) -> None:
        """Close a producer being replaced, never raising or blocking the caller."""


class TopicTail(Protocol):
    """Every partition of one topic, read by a plain consumer (assigned, no group, no commits),
    ``read_committed``."""

    topic: str
    partitions: list[int]  # empty when the topic does not exist

    def start_from_beginning(self) -> None: ...

    def start_from_end(self, back: int = 0) -> None:
        """Read from ``back`` committed records before each partition's end (0: only what comes next);
        the end is resolved now, so nothing written after this call is missed."""

    def start_at(self, offsets: dict[int, int]) -> None:
        """Read only the partitions in ``offsets``, each from its offset."""

    def first_offsets(self) -> dict[int, int]: ...

    def end_offsets(self) -> dict[int, int]: ...

    def offsets_for_time(self, ms: int) -> dict[int, int | None]:
        """Each partition's first offset with a timestamp at or after ``ms`` (``None``: none)."""

    def position(self, partition: int) -> int: ...

    def reached(self, ends: dict[int, int]) -> bool:
        """Every partition read up to ``ends``."""

    def poll(self, timeout_ms: int) -> list[TailRecord]: ...

    def close(self) -> None: ...


class Admin(Protocol):
    """The admin calls the commands need. No broker at all, at construction, is
    :class:`BrokerUnavailableError`; a denied creation :class:`AccessDeniedError`; the rest
    :class:`AdminError`."""

    def describe(self, names: Sequence[str]) -> dict[str, TopicState]: ...

    def create(self, specs: Sequence[TopicSpec]) -> None:
        """Create the topics; one created meanwhile by someone else is fine."""

    def configs(self, names: Sequence[str], key: str) -> dict[str, str]: ...

    def topic_names(self) -> set[str]: ...

    def close(self) -> None: ...


class StreamWriter(Protocol):
    """Many records sent without waiting for each (``produce``): failures are collected and reported by
    :meth:`finish`, which waits for every acknowledgement."""

    def send(self, topic: str, key: bytes | None, value: bytes | None) -> None:
        """:class:`WriteError` when the record cannot be queued within the writer's block time."""

    def finish(self, timeout_s: float) -> None:
        """:class:`WriteError` with the first failure, if any."""

    def abandon(self) -> None: ...


class Backend(Protocol):
    """One client library's implementation of every port."""

    name: str

    def input(
        self,
        connection: Connection,
        topics: list[str],
        group_id: str,
        client_id: str,
        max_records: int,
        positions: Positions,
    ) -> Input: ...

    def read_ranges(
        self, connection: Connection, client_id: str, ranges: OffsetRanges, timeout_s: float
    ) -> list[InputRecord]:
        """The committed records of each range, in offset order (records compacted away are absent)."""

    def group_input(
        self,
        connection: Connection,
        topic: str,
        group_id: str,
        client_id: str,
        max_records: int,
        on_revoke: Callable[[set[tuple[str, int]]], None],
    ) -> GroupInput: ...

    def output_sender(
        self, connection: Connection, client_id: str, compression: str, smallest_topic_limit: int
    ) -> OutputSender: ...

    def transactional_producer(
        self,
        connection: Connection,
        client_id: str,
        transactional_id: str,
        timeout_s: float,
        compression: str,
        smallest_topic_limit: int,
    ) -> TransactionalProducer: ...

    def tail(self, connection: Connection, topic: str, client_id: str, fetch_wait_ms: int) -> TopicTail: ...

    def admin(self, connection: Connection, client_id: str, timeout_ms: int) -> Admin: ...

    def write_records(
        self,
        connection: Connection,
        client_id: str,
        records: Sequence[tuple[str, bytes | None, bytes | None]],
        timeout_s: float,
    ) -> list[tuple[int, int]]:
        """Write (topic, key, value) records in order and wait for all: their (partition, offset);
        :class:`WriteError` if one is not acknowledged within ``timeout_s``."""

    def stream_writer(self, connection: Connection, client_id: str, block_s: float) -> StreamWriter: ...
