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
