"""Dead letters of one model's input: every record that cannot be decoded, scored, learned from or
published becomes one (counted in the metrics), and an output the broker refuses is replaced by the
dead letter of the input it answers."""

from __future__ import annotations

from stream_neuron.metrics import MetricsTracker
from stream_neuron.outputs import dead_letter
from stream_neuron.records import InputRecord, OutputRecord


class DeadLetters:
    """Dead letters to ``topic``, each at most ``limit`` bytes; ``metrics`` counts them."""

    def __init__(self, topic: str, limit: int, metrics: MetricsTracker) -> None:
        self.topic, self.limit, self.metrics = topic, limit, metrics

    def letter(
        self, record: InputRecord, reason: str, error_class: str, bare: bool = False, count: bool = True
    ) -> OutputRecord:
        """``bare``: without the original key, value and headers (when the broker refused them)."""
        if count:
            self.metrics.count_dead_letter()
        if bare:  # an empty key: a Kafka record needs a key or a value
            record = InputRecord(record.topic, record.partition, record.offset, b"", None, [])
        return dead_letter(self.topic, record, reason, error_class, self.limit)

    def replacement(self, refused: OutputRecord, error: str) -> OutputRecord | None:
        """What to publish instead of an output the broker refused for what it is (at-least-once: the
        event was learned from already): a dead letter of its input, bare if that was refused too.
        ``None``: the output answers no input (a metrics record, a snapshot) and nothing replaces it."""
        origin = refused.origin
        if origin is None:
            return None
        reason = f"the broker refused its {refused.topic!r} record: {error}"
        bare = refused.topic == self.topic
        replacement = self.letter(origin, reason, "RefusedByBroker", bare=bare, count=not bare)
        return replacement._replace(origin=None if bare else origin)
