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
    RefusedOutputsError,
)
from stream_neuron.config import Settings
from stream_neuron.kafka_io.ports import PublishError, RecordRefusedError, Refused, TransactionFailedError
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


class FakeSnapshots(FakeProducer):
    """The model topic's own output: ``acked`` is what :meth:`acknowledged` answers; ``refused``
    records come back from the next flush, refused for what they are."""

    def __init__(self, log: list[Any]) -> None:
        super().__init__(log)
        self.acked = False
        self.refused: list[Refused] = []

    def acknowledged(self) -> bool:
        return self.acked

    def flush(self) -> list[Refused]:  # type: ignore[override]
        super().flush()
        refused, self.refused = self.refused, []
        return refused


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


class LoggedInput(FakeInput):
    def __init__(self, log: list[Any]) -> None:
        super().__init__()
        self.log = log

    def commit(self, positions: Any, wait: bool) -> None:
        super().commit(positions, wait)
        self.log.append(("commit", dict(positions), wait))


def test_a_snapshot_of_its_own_output_is_not_waited_for_and_the_outputs_after_it_wait_for_it() -> None:
    log: list[Any] = []  # the outputs', the snapshots' and the input's calls, in order
    outputs, snapshots, input = FakeProducer(log), FakeSnapshots([]), LoggedInput(log)
    snapshots.log = log
    checkpoint = AtLeastOnceCheckpoint(CADENCE, 0.0, outputs, input, snapshots=snapshots)
    checkpoint.publish([RECORD])
    positions = {("in", 0): 7}
    checkpoint.commit(OutputRecord("model", b"m", b"s7", []), positions, now=1.0)
    positions[("in", 0)] = 8  # the processor's positions move on: the commit kept its own
    # The outputs acknowledged, then the snapshot handed over and not waited for.
    assert log == [("send", [b"{}"]), ("flush",), ("send", [b"s7"])]
    assert not checkpoint.due(1.1, 0)  # the interval is done all the same

    later = OutputRecord("out", None, b"later", [])
    checkpoint.publish([later])  # held back: nothing is sent past a snapshot that has not landed
    checkpoint.settle()  # not acknowledged yet: nothing
    assert log[3:] == [] and checkpoint.due(2.0, 0)
    snapshots.acked = True
    checkpoint.settle()
    assert log[3:] == [("flush",), ("commit", {("in", 0): 7}, False), ("send", [b"later"])]
    checkpoint.settle()  # once
    assert len(log) == 6

    # A commit while a snapshot is in flight waits for it and commits its positions first.
    snapshots.acked = False
    checkpoint.commit(OutputRecord("model", b"m", b"s9", []), {("in", 0): 9}, now=2.0)
    checkpoint.publish([later])
    del log[:]
    checkpoint.commit(OutputRecord("model", b"m", b"s11", []), {("in", 0): 11}, now=3.0)
    assert log == [
        ("flush",), ("commit", {("in", 0): 9}, False), ("send", [b"later"]),  # the snapshot s9 landed
        ("flush",), ("send", [b"s11"]),  # the outputs up to s11 acknowledged, s11 handed over
    ]  # fmt: skip
    # The last commit waits for its own snapshot, then for the offsets.
    del log[:]
    checkpoint.commit(OutputRecord("model", b"m", b"s12", []), {("in", 0): 12}, now=4.0, final=True)
    assert log == [
        ("flush",), ("commit", {("in", 0): 11}, False), ("flush",),
        ("send", [b"s12"]), ("flush",), ("commit", {("in", 0): 12}, True),
    ]  # fmt: skip
    checkpoint.close()
    assert log[-2:] == [("close",), ("close",)]


def test_a_snapshot_refused_after_the_commit_returned_fails_the_settle_and_commits_nothing() -> None:
    snapshots, input = FakeSnapshots([]), FakeInput()
    checkpoint = AtLeastOnceCheckpoint(CADENCE, 0.0, FakeProducer([]), input, snapshots=snapshots)
    snapshot = OutputRecord("model", b"m", b"too large", [])
    checkpoint.commit(snapshot, {("in", 0): 7}, now=1.0)
    snapshots.acked = True
    snapshots.refused = [Refused(snapshot, RecordRefusedError("MSG_SIZE_TOO_LARGE"))]
    with pytest.raises(RefusedOutputsError) as raised:
        checkpoint.settle()
    assert raised.value.refused[0].record is snapshot and input.commits == []


def test_a_rollback_forgets_the_snapshot_in_flight_and_reads_back_what_landed() -> None:
    landed: list[dict[str, Any]] = [{"offsets": {"in:0": 5}}]
    outputs, snapshots, input = FakeProducer([]), FakeSnapshots([]), FakeInput(committed={("in", 0): 3})
    checkpoint = AtLeastOnceCheckpoint(
        CADENCE, 0.0, outputs, input, load_committed=lambda: landed[-1], snapshots=snapshots
    )
    checkpoint.commit(OutputRecord("model", b"m", b"s7", []), {("in", 0): 7}, now=1.0)
    checkpoint.publish([RECORD])  # held behind the snapshot in flight
    assert checkpoint.rollback(now=2.0) == Committed(landed[-1], {("in", 0): 5})
    snapshots.acked = True
    checkpoint.settle()
    checkpoint.publish([RECORD])
    # The positions of a snapshot the rollback went back past are not committed, and what was held
    # behind it is not sent (the replay publishes it again); what comes after is sent as it comes.
    assert input.commits == [] and outputs.log == [("flush",), ("send", [b"{}"])]


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
