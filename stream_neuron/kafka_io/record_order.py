"""The order in which one model learns the records of many partitions: decided here, not by the fetch.

The next record is the head of the partition whose head has the smallest (record timestamp, topic,
partition), the topic being its place in the input's topic list (the input, then the labels topic);
within a partition, offset order. That is a k-way merge of the partitions' sequences, so when every
partition's records are already in the topics (a backfill, a replay, a restart, an exactly-once
rollback) the order is a function of the topics' contents alone, and so are the predictions, the
metrics and the model. Kafka Streams orders a task's partitions by the same rule.

A partition with no buffered record may hold the next one: nothing is released while such a partition
is not known to be at its end. It is waited for at most ``max_wait_s`` from the moment the client has
heard of its end (live traffic: a partition that is merely quiet cannot hold up the others for
longer), and for up to :data:`UNKNOWN_END_WAIT_S` before its first fetch answers; a partition at its
end is never waited for. Only time spent inside :meth:`OrderedInput.poll` counts as waiting: while
the caller learns and checkpoints, the client goes on fetching, so a slow checkpoint or a starved
machine does not use the wait up. What is then guaranteed, and what is not: with all records in the
topics, the order is exact as long as every partition's next records arrive within ``max_wait_s``
of polling for them (the client prefetches, so in practice they are there); a partition that falls
further behind than that, or records produced while the run reads (live traffic), may be taken in a
different order than a later replay of the same topics takes them. ``max_wait_s = 0`` turns the
waiting off (records are still merged among those fetched).

Delivery is unchanged: positions advance only as records are released, and a seek drops what is
buffered, so a checkpoint's positions are exactly where the merge stands.
"""

from __future__ import annotations

import heapq
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from stream_neuron.kafka_io.ports import Input, Positions, StartPositions
from stream_neuron.records import InputRecord

UNKNOWN_END_WAIT_S = 10.0
FILL_WAIT_MS = 10  # one wait for records while a partition is waited for

Key = tuple[int, int, int, int]  # timestamp, topic index, partition, offset
Partition = tuple[str, int]


class OrderedInput:
    """An :class:`~stream_neuron.kafka_io.ports.Input` whose :meth:`poll` hands records over in the
    merged order (the rest of the port passes through)."""

    def __init__(self, raw: Input, max_wait_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.raw, self.max_wait_s, self.clock = raw, max_wait_s, clock
        self.topics = raw.topics
        self._rank = {topic: i for i, topic in enumerate(raw.topics)}
        self._buffers: dict[Partition, deque[InputRecord]] = {}
        self._heads: list[tuple[Key, Partition]] = []  # one entry per partition with buffered records
        self._buffered = 0
        # No buffered record, not at its end: since when (in poll time), and whether its end was known.
        self._dry_since: dict[Partition, tuple[float, bool]] = {}
        self._held = False  # the last release stopped for a partition that may hold the next record
        self._returned_at: float | None = None  # when the last poll returned: time away is not waiting

    def _key(self, record: InputRecord) -> Key:
        return (record.timestamp_ms, self._rank.get(record.topic, 0), record.partition, record.offset)

    def _take(self, records: list[InputRecord]) -> None:
        buffers, heads = self._buffers, self._heads
        for record in records:
            tp = (record.topic, record.partition)
            buffer = buffers.get(tp)
            if buffer is None:
                buffer = buffers[tp] = deque()
            if not buffer:
                heapq.heappush(heads, (self._key(record), tp))
                self._dry_since.pop(tp, None)
            buffer.append(record)
        self._buffered += len(records)

    def _holding(self, dry: list[Partition]) -> bool:
        """Whether one of the ``dry`` partitions (no record buffered) may hold the next record and is
        still to be waited for."""
        if self.max_wait_s <= 0 or not dry:
            return False
        ends, now = self.raw.ends(), self.clock()
        holding = False
        for tp in dry:
            at_end = ends.get(tp)
            if at_end:
                self._dry_since.pop(tp, None)
                continue
            known = at_end is not None
            since, was_known = self._dry_since.get(tp, (now, known))
            if known and not was_known:  # the short wait starts when its end is heard of
                since = now
            self._dry_since[tp] = (since, known)
            limit = self.max_wait_s if known else max(self.max_wait_s, UNKNOWN_END_WAIT_S)
            holding = holding or now - since < limit
        return holding

    def _release(self, limit: int) -> list[InputRecord]:
        """Records in the merged order, up to ``limit``, until a partition that runs dry may hold the
        next one."""
        buffers, heads = self._buffers, self._heads
        self._held = False
        if not heads:
            return []
        dry = [tp for tp in self.raw.assignment() if not buffers.get(tp)]
        if self._holding(dry):
            self._held = True
            return []
        out: list[InputRecord] = []
        while heads and len(out) < limit:
            _, tp = heapq.heappop(heads)
            buffer = buffers[tp]
            out.append(buffer.popleft())
            if buffer:
                heapq.heappush(heads, (self._key(buffer[0]), tp))
            elif self._holding([tp]):  # it ran dry: its next record may come before the other heads
                self._held = True
                break
        self._buffered -= len(out)
        return out

    def poll(self, timeout_ms: int, max_records: int) -> list[InputRecord]:
        if len(self.raw.assignment()) == 1 and not self._heads:  # one partition: its own order
            return self.raw.poll(timeout_ms, max_records)
        now = self.clock()
        self._pause_waits(now)
        deadline = now + timeout_ms / 1000
        while True:
            if self._buffered < max_records or self._held:
                self._take(self.raw.poll(0, max_records))
            released = self._release(max_records)
            if released:
                self._returned_at = self.clock()
                return released
            left_ms = int((deadline - self.clock()) * 1000)
            if left_ms <= 0:
                self._returned_at = self.clock()
                return []
            wait_ms = min(left_ms, FILL_WAIT_MS) if self._held else left_ms
            self._take(self.raw.poll(wait_ms, max_records))

    def _pause_waits(self, now: float) -> None:
        """Move the dry partitions' waits on by the time the caller spent away from :meth:`poll`."""
        if self._returned_at is not None and self._dry_since:
            away = now - self._returned_at
            self._dry_since = {tp: (since + away, known) for tp, (since, known) in self._dry_since.items()}
        self._returned_at = None

    # -- the rest of the port ---------------------------------------------------------------------------

    def seek(self, positions: StartPositions) -> None:
        """Moving drops what is buffered: it is read again from the new positions."""
        self._buffers.clear()
        self._heads.clear()
        self._buffered = 0
        self._dry_since.clear()
        self.raw.seek(positions)

    def exhausted(self) -> bool:
        return not self._heads and self.raw.exhausted()

    def assignment(self) -> list[tuple[str, int]]:
        return self.raw.assignment()

    def offset_ranges(self) -> dict[tuple[str, int], tuple[int, int]]:
        return self.raw.offset_ranges()

    def committed_positions(self) -> dict[tuple[str, int], int | None]:
        return self.raw.committed_positions()

    def commit(self, positions: Positions, wait: bool) -> None:
        self.raw.commit(positions, wait)

    def lag(self, positions: Positions) -> int | None:
        return self.raw.lag(positions)

    def ends(self) -> dict[tuple[str, int], bool]:
        return {tp: at_end and not self._buffers.get(tp) for tp, at_end in self.raw.ends().items()}

    def group_metadata(self) -> Any:
        return self.raw.group_metadata()

    def close(self) -> None:
        self.raw.close()
