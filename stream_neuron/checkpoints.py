"""Checkpoints: the one place that owns "processed but not yet committed", one class a guarantee.

A checkpoint is the commit schedule and the commit. It publishes what the processor emits, says when a
commit is due, and commits: the outputs acknowledged, a snapshot of the model with the input positions
it covers, those positions committed. It never holds the processor: the runner hands it the snapshot
and positions to commit and, after an exactly-once rollback, rebuilds the processor from what the
rollback hands back. The guarantees themselves are stated in ``config.py`` and the README.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from stream_neuron.errors import OperatorError
from stream_neuron.faults import crash_point
from stream_neuron.kafka_io.ports import Positions, Refused
from stream_neuron.outputs import record_bytes
from stream_neuron.records import OutputRecord
from stream_neuron.snapshots import snapshot_positions

Replacement = Callable[[OutputRecord, str], OutputRecord | None]
"""What to publish instead of an output the broker refused for what it is (``None``: nothing can)."""


class RefusedOutputError(OperatorError):
    """The broker refused an output that nothing can replace (a snapshot, a metrics record)."""


def culprit(refused: Sequence[Refused]) -> tuple[Refused, list[OutputRecord]]:
    """The refusal to act on, and the other records to send again. A refusal can fail more records
    than the one to blame (kafka-python fails a whole batch, and a transactional producer every send
    after the first failure, with that one error): the largest record is the one a size limit refused,
    and once it is replaced the others go through."""
    largest = max(refused, key=lambda pair: record_bytes(pair[0].key, pair[0].value, pair[0].headers))
    return largest, [record for record, _ in refused if record is not largest[0]]


def refused_error(record: OutputRecord, error: str) -> RefusedOutputError:
    return RefusedOutputError(
        f"the broker refused a record for {record.topic!r} ({error}): check that topic's max.message.bytes"
    )


class Input(Protocol):
    """What a checkpoint needs of the input consumer."""

    def commit(self, positions: Positions, wait: bool) -> None: ...

    def committed_positions(self) -> dict[tuple[str, int], int | None]: ...

    def group_metadata(self) -> Any: ...


class Output(Protocol):
    def send(self, records: list[OutputRecord]) -> None: ...

    def close(self) -> None: ...


class AcknowledgedOutput(Output, Protocol):
    """At-least-once: ``flush`` returns once every record sent so far is acknowledged or refused for
    what it is (those it returns, as (record, error) pairs), or raises."""

    def flush(self) -> Sequence[Refused]: ...

    def acknowledged(self) -> bool:
        """Every record sent so far has come back, asked without waiting."""


class TransactionalOutput(Output, Protocol):
    """Exactly-once: sends join the open transaction; ``commit`` adds the offsets and commits it."""

    def commit(
        self,
        offsets: dict[tuple[str, int], int],
        group_metadata: Any,
        before_offsets: Callable[[], None],
        before_commit: Callable[[], None],
    ) -> None: ...

    def recover(self) -> None: ...


@dataclass(frozen=True)
class Cadence:
    """Commit every ``snapshot_every`` model updates, ``commit_every`` input records or ``interval_s``
    seconds, whichever comes first (the last only once something was consumed or emitted); and
    ``snapshot_interval_s`` after the model last changed, so scorers following the model topic see
    a learning model's changes that soon."""

    snapshot_every: int
    commit_every: int
    interval_s: float
    snapshot_interval_s: float = float("inf")


@dataclass(frozen=True)
class Committed:
    """What a rollback returns to: the newest committed snapshot (``None``: a new model) and the input
    position of every assigned partition (``None``: from the beginning)."""

    snapshot: dict[str, Any] | None
    positions: dict[tuple[str, int], int | None]


class Checkpoint:
    """The commit schedule and the publishing shared by both guarantees."""

    def __init__(self, cadence: Cadence, now: float, output: Output, input: Input) -> None:
        self.cadence = cadence
        self.output = output
        self.input = input
        self.last = now
        self.dirty = False
        self.events = 0

    def publish(self, records: list[OutputRecord]) -> None:
        if records:
            self._hand_over(records)
            self.dirty = True
            crash_point("after-publish")

    def _hand_over(self, records: list[OutputRecord]) -> None:
        self.output.send(records)

    def close(self) -> None:
        self.output.close()

    def settle(self) -> None:
        """Between polls: finish what a commit handed over without waiting for it (nothing here)."""

    def count(self, n_records: int) -> None:
        self.events += n_records

    def due(self, now: float, updates_since_snapshot: int) -> bool:
        cadence = self.cadence
        if updates_since_snapshot >= cadence.snapshot_every or self.events >= cadence.commit_every:
            return True
        if updates_since_snapshot > 0 and now - self.last >= cadence.snapshot_interval_s:
            return True
        return (self.dirty or self.events > 0) and now - self.last >= cadence.interval_s

    def _committed(self, now: float) -> None:
        self.last = now
        self.dirty = False
        self.events = 0


class RefusedOutputsError(Exception):
    """The broker refused outputs for what they are since the last commit: the caller rolls back to the
    committed state and replays without the input they answer (``refused``), so that input is not
    learned from, as exactly-once leaves it out of its replayed transaction."""

    def __init__(self, refused: Sequence[Refused]) -> None:
        super().__init__(f"the broker refused {len(refused)} output record(s)")
        self.refused = list(refused)


class AtLeastOnceCheckpoint(Checkpoint):
    """Outputs are sent as they come; a commit waits for their acknowledgement, then publishes the
    snapshot, and only once the snapshot is acknowledged commits the input positions it records. An
    output the broker refuses for what it is (too large, invalid) is replaced by what ``replacement``
    gives (a dead letter of its input) before the commit goes on; without a ``replacement`` (a learning
    run) the commit raises :class:`RefusedOutputsError`, and the run rolls back (:meth:`rollback`).

    With ``snapshots``, an output of the model topic's own, the commit hands the snapshot over and
    returns: the stream is processed on while the broker writes a snapshot of megabytes (a hashed
    model's) and acknowledges it, and the outputs of that time are held back. :meth:`settle`, between
    polls, commits the positions once the acknowledgement is back, then sends what it held; the next
    commit, and the last one, wait for it first. So one snapshot at most is in flight, snapshots land
    in order, and no output is sent past a snapshot that has not landed: a crash repeats what it
    repeated before. The cost: outputs wait for the snapshot's acknowledgement, as they did when the
    stream stopped for it."""

    output: AcknowledgedOutput

    def __init__(
        self,
        cadence: Cadence,
        now: float,
        output: AcknowledgedOutput,
        input: Input,
        replacement: Replacement | None = None,
        load_committed: Callable[[], dict[str, Any] | None] = lambda: None,
        snapshots: AcknowledgedOutput | None = None,
    ) -> None:
        super().__init__(cadence, now, output, input)
        self.replacement = replacement
        self.load_committed = load_committed
        self.snapshots = snapshots
        # The positions of the snapshot handed to ``snapshots``, to commit once it is acknowledged,
        # and the outputs held back until then.
        self.in_flight: dict[tuple[str, int], int] | None = None
        self.held: list[OutputRecord] = []

    def _hand_over(self, records: list[OutputRecord]) -> None:
        if self.in_flight is not None:
            self.held += records
        else:
            self.output.send(records)

    def rollback(self, now: float) -> Committed:
        """Where the committed state stands: the acknowledged snapshot, and the positions it covers (a
        partition it does not cover resumes from the group's offset). What was published since is
        published again by the replay: at least once. A snapshot still in flight is not waited for:
        whether it lands or not, every output before it was acknowledged before it was sent; the
        outputs held back behind it are published again by the replay."""
        self.in_flight = None
        self.held = []
        snapshot = self.load_committed()
        positions = self.input.committed_positions()
        if snapshot is not None:
            positions.update(snapshot_positions(snapshot))
        self._committed(now)
        return Committed(snapshot, positions)

    def close(self) -> None:
        super().close()
        if self.snapshots is not None:
            self.snapshots.close()

    def settle(self) -> None:
        if self.in_flight is not None and self.snapshots is not None and self.snapshots.acknowledged():
            self._land()

    def _land(self) -> None:
        """The snapshot in flight acknowledged (waited for), its positions committed, then the outputs
        held back behind it sent."""
        if self.in_flight is None or self.snapshots is None:
            return
        self._deliver(self.snapshots)
        positions, self.in_flight = self.in_flight, None
        self._commit_positions(positions, wait=False)
        held, self.held = self.held, []
        if held:
            self.output.send(held)

    def _deliver(self, output: AcknowledgedOutput) -> None:
        refused = output.flush()
        if refused and self.replacement is None:
            raise RefusedOutputsError(refused)
        while refused:
            (record, error), others = culprit(refused)
            reason = str(error)
            assert self.replacement is not None
            replacement = self.replacement(record, reason)
            if replacement is None:
                raise refused_error(record, reason)
            output.send([replacement, *others])
            refused = output.flush()

    def _commit_positions(self, positions: Positions, wait: bool) -> None:
        crash_point("after-produce")
        # The snapshot, acknowledged before, is what a restart resumes from; the group's offsets are
        # for lag tools and the no-snapshot start, so only the last commit waits for them.
        self.input.commit(positions, wait=wait)
        crash_point("after-commit")

    def commit(
        self, snapshot: OutputRecord | None, positions: Positions, now: float, final: bool = False
    ) -> None:
        self._land()
        self._deliver(self.output)
        if snapshot is None:
            self._commit_positions(positions, wait=final)
        elif self.snapshots is None or final:
            output = self.snapshots or self.output
            output.send([snapshot])
            self._deliver(output)
            self._commit_positions(positions, wait=final)
        else:
            self.snapshots.send([snapshot])
            self.in_flight = dict(positions)
        self._committed(now)


class ExactlyOnceCheckpoint(Checkpoint):
    """Each commit interval is one transaction: the outputs, one snapshot, and the input positions. A
    failed transaction is aborted; :meth:`rollback` says where the committed state stands."""

    def __init__(
        self,
        cadence: Cadence,
        now: float,
        output: TransactionalOutput,
        input: Input,
        load_committed: Callable[[], dict[str, Any] | None],
    ) -> None:
        super().__init__(cadence, now, output, input)
        self.output: TransactionalOutput = output
        self.load_committed = load_committed

    def commit(
        self, snapshot: OutputRecord | None, positions: Positions, now: float, final: bool = False
    ) -> None:
        if snapshot is not None:
            self.output.send([snapshot])
        self.output.commit(
            dict(positions),
            self.input.group_metadata(),
            before_offsets=lambda: crash_point("after-produce"),
            before_commit=lambda: crash_point("after-offsets"),
        )
        crash_point("after-commit")
        self._committed(now)

    def rollback(self, now: float) -> Committed:
        """Abort (replacing a lost producer), then the committed state: the newest committed snapshot
        and the positions it covers; a partition it does not cover resumes from the group's offset.

        The snapshot is read back from the model topic, not taken from memory: a commit that timed out
        may still have landed (a new producer's init_transactions completes it), and only the broker
        knows."""
        self.output.recover()
        snapshot = self.load_committed()
        positions = self.input.committed_positions()
        if snapshot is not None:
            positions.update(snapshot_positions(snapshot))
        self._committed(now)
        return Committed(snapshot, positions)
