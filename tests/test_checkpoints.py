"""Checkpoints without a broker: the commit cadence, the order of a commit's steps, and the exactly-once
rollback handing back the committed state from which the processor is rebuilt exactly."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from stream_neuron.checkpoints import (
    AtLeastOnceCheckpoint,
    Cadence,
    Committed,
    ExactlyOnceCheckpoint,
)
from stream_neuron.config import Settings
from stream_neuron.kafka_io.ports import PublishError, TransactionFailedError
from stream_neuron.processor import Processor
from stream_neuron.records import InputRecord, OutputRecord

CADENCE = Cadence(snapshot_every=100, commit_every=1000, interval_s=1.0)
RECORD = OutputRecord("out", None, b"{}", [])


class FakeInput:
    def __init__(self, committed: dict[tuple[str, int], int | None] | None = None) -> None:
        self.commits: list[tuple[dict[tuple[str, int], int], bool]] = []
        self.committed = committed or {}

    def commit(self, positions: Any, wait: bool) -> None:
        self.commits.append((dict(positions), wait))

    def committed_positions(self) -> dict[tuple[str, int], int | None]:
        return dict(self.committed)

    def group_metadata(self) -> str:
        return "group-metadata"


class FakeProducer:
    """Records each call; ``refuse`` makes the next flush fail as an unacknowledged send does."""

    def __init__(self, log: list[Any]) -> None:
        self.log = log
        self.refuse = False

    def send(self, records: list[OutputRecord]) -> None:
        self.log.append(("send", [r.value for r in records]))

    def flush(self) -> None:
        self.log.append(("flush",))
        if self.refuse:
            raise PublishError("not acknowledged")

    def close(self) -> None:
        self.log.append(("close",))


class FakeTransactions(FakeProducer):
    """A transactional output: ``fail`` makes the next commit fail (after its abort)."""

    def __init__(self, log: list[Any]) -> None:
        super().__init__(log)
        self.fail = False
        self.recovered = 0

    def commit(
        self,
        offsets: dict[tuple[str, int], int],
        group_metadata: Any,
        before_offsets: Callable[[], None],
        before_commit: Callable[[], None],
    ) -> None:
        before_offsets()
        self.log.append(("offsets", offsets, group_metadata))
        before_commit()
        if self.fail:
            self.fail = False
            raise TransactionFailedError("transaction aborted: broker away")
        self.log.append(("commit",))

    def recover(self) -> None:
        self.recovered += 1


def test_cadence_by_updates_records_and_time() -> None:
    checkpoint = AtLeastOnceCheckpoint(CADENCE, 0.0, FakeProducer([]), FakeInput())
    assert not checkpoint.due(5.0, updates_since_snapshot=0)  # nothing consumed or emitted: no commit
    assert checkpoint.due(0.1, updates_since_snapshot=100)
    checkpoint.count(999)
    assert not checkpoint.due(0.5, 0)
    assert checkpoint.due(1.0, 0)  # records consumed and the interval passed
    checkpoint.count(1)
    assert checkpoint.due(0.5, 0)
    checkpoint.commit(None, {}, now=2.0)
    assert not checkpoint.due(2.9, 0)
    checkpoint.publish([RECORD])  # emitted without consuming (a lingering batch, a metrics interval)
    assert not checkpoint.due(2.9, 0) and checkpoint.due(3.0, 0)


def test_at_least_once_commits_positions_only_after_outputs_and_snapshot_are_acknowledged() -> None:
    log: list[Any] = []
    producer, input = FakeProducer(log), FakeInput()
    checkpoint = AtLeastOnceCheckpoint(CADENCE, 0.0, producer, input)
    checkpoint.publish([RECORD])
    snapshot = OutputRecord("model", b"m", b"snapshot", [])
    checkpoint.commit(snapshot, {("in", 0): 7}, now=1.0)
    assert log == [("send", [b"{}"]), ("flush",), ("send", [b"snapshot"]), ("flush",)]
    assert input.commits == [({("in", 0): 7}, False)]  # asynchronous between checkpoints
    checkpoint.commit(snapshot, {("in", 0): 9}, now=2.0, final=True)
    assert input.commits[-1] == ({("in", 0): 9}, True)  # the last one waits

    producer.refuse = True
    with pytest.raises(PublishError):
        checkpoint.commit(snapshot, {("in", 0): 11}, now=3.0)
    assert input.commits[-1][0] == {("in", 0): 9}  # nothing past an unacknowledged output


def test_exactly_once_commit_puts_outputs_snapshot_and_offsets_in_one_transaction() -> None:
    log: list[Any] = []
    checkpoint = ExactlyOnceCheckpoint(CADENCE, 0.0, FakeTransactions(log), FakeInput(), lambda: None)
    checkpoint.publish([RECORD])
    checkpoint.commit(OutputRecord("model", b"m", b"snapshot", []), {("in", 0): 3}, now=1.0)
    assert log == [
        ("send", [b"{}"]),
        ("send", [b"snapshot"]),
        ("offsets", {("in", 0): 3}, "group-metadata"),
        ("commit",),
    ]


def events(start: int, stop: int) -> list[InputRecord]:
    return [
        InputRecord(
            "in",
            0,
            i,
            None,
            json.dumps({"id": f"e{i}", "features": [i % 7, i % 3], "label": i % 2}).encode(),
            [],
        )
        for i in range(start, stop)
    ]


def test_rollback_hands_back_the_committed_state_and_the_processor_is_rebuilt_from_it() -> None:
    settings = Settings(learning_rate=0.1)
    model_topic: list[bytes] = []  # the committed snapshots, newest last
    output = FakeTransactions([])
    input = FakeInput(committed={("in", 0): None, ("in", 1): 42})
    checkpoint = ExactlyOnceCheckpoint(
        CADENCE, 0.0, output, input, lambda: json.loads(model_topic[-1]) if model_topic else None
    )

    processor = Processor(settings, 0.0)
    checkpoint.publish(processor.process(events(0, 50), 0.1).outputs())
    snapshot = processor.snapshot_record()
    assert snapshot is not None and snapshot.value is not None
    checkpoint.commit(snapshot, processor.positions, now=0.2)
    model_topic.append(snapshot.value)
    expected_tail = [r.value for r in processor.process(events(50, 80), 0.3).predictions]

    checkpoint.publish([RECORD])
    output.fail = True
    with pytest.raises(TransactionFailedError):
        checkpoint.commit(processor.snapshot_record(), processor.positions, now=0.4)
    committed = checkpoint.rollback(now=0.5)

    assert output.recovered == 1
    # Partition 0 resumes where the snapshot ends; partition 1, which it does not cover, from the group.
    assert committed == Committed(json.loads(model_topic[-1]), {("in", 0): 50, ("in", 1): 42})
    assert not checkpoint.due(0.6, 0)  # the rolled-back interval is gone with its counters
    rebuilt = Processor.restored(settings, committed.snapshot, 0.5, lambda positions: None)
    assert rebuilt.positions == {("in", 0): 50}
    replayed = [r.value for r in rebuilt.process(events(50, 80), 0.6).predictions]
    assert replayed == expected_tail  # the same weights score the replay


def test_rollback_of_a_model_never_committed_starts_from_the_group_offsets() -> None:
    checkpoint = ExactlyOnceCheckpoint(
        CADENCE, 0.0, FakeTransactions([]), FakeInput(committed={("in", 0): None}), lambda: None
    )
    assert checkpoint.rollback(now=1.0) == Committed(None, {("in", 0): None})
