"""The merged order of several partitions against a reference merge, whatever order the client fetches
them in: the order must be a function of the partitions' contents alone (a fake client that hands
records over in random interleavings and chunks, with fetch delays shorter than the wait)."""

from __future__ import annotations

import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from stream_neuron.kafka_io.record_order import OrderedInput
from stream_neuron.records import InputRecord

TOPICS = ["in", "labels"]


def reference_merge(partitions: dict[tuple[str, int], list[InputRecord]]) -> list[InputRecord]:
    """The contract, written plainly: repeatedly the head with the smallest (timestamp, topic's place,
    partition); offset order within a partition."""
    queues = {tp: list(records) for tp, records in partitions.items()}
    out = []
    while any(queues.values()):
        tp = min(
            (q[0].timestamp_ms, TOPICS.index(q[0].topic), q[0].partition, tp) for tp, q in queues.items() if q
        )[3]
        out.append(queues[tp].pop(0))
    return out


class FakeClient:
    """Partitions fully written; ``poll`` hands over a random chunk of one partition's next records
    (sometimes nothing, as a fetch that has not answered yet), in offset order within a partition."""

    def __init__(self, partitions: dict[tuple[str, int], list[InputRecord]], seed: int, clock: list[float]):
        self.partitions, self.rng, self.clock = partitions, random.Random(seed), clock
        self.next = dict.fromkeys(partitions, 0)
        self.known: set[tuple[str, int]] = set()
        self.topics = TOPICS

    def assignment(self) -> list[tuple[str, int]]:
        return sorted(self.partitions)

    def poll(self, timeout_ms: int, max_records: int) -> list[InputRecord]:
        left = [tp for tp in self.partitions if self.next[tp] < len(self.partitions[tp])]
        if not left or self.rng.random() < 0.2:  # a fetch still under way
            self.clock[0] += min(timeout_ms, 5) / 1000
            return []
        tp = self.rng.choice(left)
        self.known.add(tp)
        start = self.next[tp]
        end = min(start + self.rng.randint(1, 7), len(self.partitions[tp]), start + max_records)
        self.next[tp] = end
        return self.partitions[tp][start:end]

    def ends(self) -> dict[tuple[str, int], bool]:
        return {
            tp: self.next[tp] >= len(self.partitions[tp])
            for tp in self.known | {tp for tp in self.partitions if not self.partitions[tp]}
        }

    def exhausted(self) -> bool:
        return all(self.next[tp] >= len(records) for tp, records in self.partitions.items())

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"not used by the merge: {name}")


@st.composite
def topics_contents(draw: st.DrawFn) -> dict[tuple[str, int], list[InputRecord]]:
    partitions: dict[tuple[str, int], list[InputRecord]] = {}
    for topic in TOPICS[: draw(st.integers(1, 2))]:
        for partition in range(draw(st.integers(1, 4))):
            stamps = draw(st.lists(st.integers(0, 30), max_size=25))  # equal stamps, out of order too
            partitions[(topic, partition)] = [
                InputRecord(topic, partition, offset, None, b"v", [], stamp)
                for offset, stamp in enumerate(stamps)
            ]
    return partitions


@settings(max_examples=300, derandomize=True, deadline=None)
@given(contents=topics_contents(), seed=st.integers(0, 2**32), batch=st.integers(1, 50))
def test_the_merged_order_is_the_contents_order_whatever_the_fetch_order(
    contents: dict[tuple[str, int], list[InputRecord]], seed: int, batch: int
) -> None:
    clock = [0.0]
    ordered = OrderedInput(FakeClient(contents, seed, clock), max_wait_s=10.0, clock=lambda: clock[0])  # type: ignore[arg-type]
    out: list[InputRecord] = []
    for _ in range(10_000):
        if len(out) == sum(map(len, contents.values())):
            break
        out += ordered.poll(50, batch)
    assert out == reference_merge(contents)


def test_a_partition_at_its_end_is_not_waited_for_and_a_quiet_one_only_so_long() -> None:
    """Live traffic. Partition 1 has nothing and is at its end: partition 0's records go at once.
    Partition 1 has nothing and is not at its end (a record on its way): its wait (0.1 s) passes, then
    partition 0's records go."""
    records = [InputRecord("in", 0, i, None, b"v", [], 10 + i) for i in range(3)]
    clock = [0.0]

    class Live:
        def __init__(self, partition_1_at_end: bool) -> None:
            self.topics, self.sent = ["in"], False
            self.at_end = {("in", 0): True, ("in", 1): partition_1_at_end}

        def assignment(self) -> list[tuple[str, int]]:
            return [("in", 0), ("in", 1)]

        def poll(self, timeout_ms: int, max_records: int) -> list[InputRecord]:
            if self.sent:
                clock[0] += timeout_ms / 1000
                return []
            self.sent = True
            return records

        def ends(self) -> dict[tuple[str, int], bool]:
            return self.at_end

    for at_end, waited in ((True, 0.0), (False, 0.1)):
        started = clock[0]
        ordered = OrderedInput(Live(at_end), 0.1, clock=lambda: clock[0])  # type: ignore[arg-type]
        assert ordered.poll(1000, 500) == records
        assert waited <= clock[0] - started < waited + 0.02


class Scheduled:
    """Two partitions fully written; each record reaches the client at a set time, and each partition's
    end (not reached) is heard of at a set time. A poll hands over what has arrived, and lets the time
    pass that it waits."""

    def __init__(
        self, arrivals: list[tuple[float, InputRecord]], heard: dict[int, float], clock: list[float]
    ):
        self.topics, self.arrivals, self.heard, self.clock = ["in"], arrivals, heard, clock

    def assignment(self) -> list[tuple[str, int]]:
        return [("in", 0), ("in", 1)]

    def poll(self, timeout_ms: int, max_records: int) -> list[InputRecord]:
        ready = [record for at, record in self.arrivals if at <= self.clock[0]][:max_records]
        if not ready:
            self.clock[0] += timeout_ms / 1000
        self.arrivals = [(at, r) for at, r in self.arrivals if r not in ready]
        return ready

    def ends(self) -> dict[tuple[str, int], bool]:
        return {("in", p): False for p, at in self.heard.items() if at <= self.clock[0]}


def test_the_short_wait_starts_when_a_partition_s_end_is_heard_of() -> None:
    """Partition 1's fetch answers only after 2 s (its end unknown till then, so waited for), and its
    record reaches the client 50 ms after its end is heard of: within the 0.1 s wait, so it still goes
    first. (Counting the wait from when it ran dry would have let partition 0 pass at 2 s.)"""
    clock = [0.0]
    first = InputRecord("in", 1, 0, None, b"v", [], 5)
    later = [InputRecord("in", 0, i, None, b"v", [], 10 + i) for i in range(3)]
    client = Scheduled([(0.0, r) for r in later] + [(2.05, first)], {0: 0.0, 1: 2.0}, clock)
    ordered = OrderedInput(client, 0.1, clock=lambda: clock[0])  # type: ignore[arg-type]
    out: list[InputRecord] = []
    while len(out) < 4 and clock[0] < 30:
        out += ordered.poll(200, 500)
    assert out == [first, *later]


def test_time_away_from_poll_does_not_use_the_wait_up() -> None:
    """The caller takes 1 s over what a poll released (a slow checkpoint) while partition 1, not at its
    end, has no record buffered; its next record reaches the client 50 ms into the next poll: it goes
    before partition 0's later ones."""
    clock = [0.0]
    p0 = [InputRecord("in", 0, i, None, b"v", [], 10 * i) for i in range(4)]
    p1 = [InputRecord("in", 1, 0, None, b"v", [], 5), InputRecord("in", 1, 1, None, b"v", [], 15)]
    client = Scheduled([(0.0, r) for r in p0] + [(0.0, p1[0]), (1.05, p1[1])], {0: 0.0, 1: 0.0}, clock)
    ordered = OrderedInput(client, 0.1, clock=lambda: clock[0])  # type: ignore[arg-type]
    out = ordered.poll(200, 500)
    assert out == [p0[0], p1[0]]  # partition 1 ran dry: its next record may come before p0[1]
    clock[0] = 1.0  # away, learning and checkpointing
    while len(out) < 6 and clock[0] < 30:
        out += ordered.poll(200, 500)
    assert out == [p0[0], p1[0], p0[1], p1[1], p0[2], p0[3]]
