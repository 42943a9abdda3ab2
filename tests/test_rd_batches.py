"""How the librdkafka consumers take their batches, without a broker: ``consume(n, timeout)`` waits until
it has ``n`` messages or the timeout passes, so a poll must never hand it the whole wait with a large
``n`` (at a low input rate each record would sit there up to the poll timeout)."""

from __future__ import annotations

from typing import Any

from stream_neuron.kafka_io.librdkafka.consuming import consume_available


class RecordedConsumer:
    """Answers ``consume`` from a list of queued messages and records each call's (n, timeout)."""

    def __init__(self, queued: list[str], arriving: list[str] | None = None) -> None:
        self.queued, self.arriving = list(queued), list(arriving or [])
        self.calls: list[tuple[int, float]] = []

    def consume(self, n: int, timeout: float) -> list[Any]:
        self.calls.append((n, timeout))
        if not self.queued and timeout > 0:  # a wait: what arrives meanwhile is queued
            self.queued, self.arriving = self.arriving, []
        taken, self.queued = self.queued[:n], self.queued[n:]
        return taken


def test_what_is_held_now_comes_without_a_wait() -> None:
    consumer = RecordedConsumer([f"m{i}" for i in range(700)])
    assert consumer_batch(consumer, 500, 0.2) == [f"m{i}" for i in range(500)]
    assert consumer.calls == [(500, 0)]


def test_an_empty_client_waits_for_one_message_then_takes_what_came_with_it() -> None:
    consumer = RecordedConsumer([], arriving=["a", "b", "c"])
    assert consumer_batch(consumer, 500, 0.2) == ["a", "b", "c"]
    assert consumer.calls == [(500, 0), (1, 0.2), (499, 0)]


def test_nothing_within_the_timeout_is_an_empty_batch() -> None:
    consumer = RecordedConsumer([])
    assert consumer_batch(consumer, 500, 0.2) == []
    assert consumer.calls == [(500, 0), (1, 0.2)]


def test_a_zero_timeout_never_waits() -> None:
    consumer = RecordedConsumer([], arriving=["late"])
    assert consumer_batch(consumer, 500, 0) == []
    assert consumer.calls == [(500, 0)]


def consumer_batch(consumer: RecordedConsumer, n: int, timeout_s: float) -> list[Any]:
    return consume_available(consumer, n, timeout_s)
