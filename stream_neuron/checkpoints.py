"""Checkpoints: the one place that owns "processed but not yet committed", one class a guarantee.

A checkpoint publishes what the processor emits, decides when to commit, and commits: outputs
acknowledged, a snapshot of the model with the input positions it covers, those positions committed.
"""

from __future__ import annotations

import time

from kafka import KafkaConsumer, OffsetAndMetadata, TopicPartition

from stream_neuron.config import Settings
from stream_neuron.faults import crash_point
from stream_neuron.kafka_io.consumer import input_lag
from stream_neuron.kafka_io.producer import OutputProducer
from stream_neuron.kafka_io.snapshot_store import load_snapshot
from stream_neuron.kafka_io.transactions import TransactionalOutput
from stream_neuron.processor import Processor
from stream_neuron.records import Emitted, OutputRecord


class Checkpoint:
    """Shared cadence: commit every ``--snapshot-every`` updates, ``--commit-every`` events or
    ``--commit-interval-ms``, whichever comes first (the last only once something was emitted)."""

    def __init__(self, settings: Settings, processor: Processor, consumer: KafkaConsumer) -> None:
        self.settings = settings
        self.consumer = consumer
        self.processor = self._attach(processor)
        self.last = time.monotonic()
        self.dirty = False
        self.events = 0

    def _attach(self, processor: Processor) -> Processor:
        """Give a processor its lag source (the consumer's cached high watermarks)."""
        consumer = self.consumer
        processor.lag_source = lambda positions: input_lag(consumer, positions)
        return processor

    def publish(self, emitted: Emitted) -> None:
        outputs = emitted.outputs()
        if outputs:
            self._send(outputs)
            self.dirty = True
            crash_point("after-publish")

    def _send(self, records: list[OutputRecord]) -> None:
        raise NotImplementedError

    def count(self, n_records: int) -> None:
        self.events += n_records

    def due(self, now: float) -> bool:
        if self.processor.updates_since_snapshot >= self.settings.snapshot_every:
            return True
        if self.events >= self.settings.commit_every:
            return True
        return (self.dirty or self.events > 0) and now - self.last >= self.settings.commit_interval_s

    def _committed(self, now: float) -> None:
        self.last = now
        self.dirty = False
        self.events = 0


class AtLeastOnceCheckpoint(Checkpoint):
    """Outputs are sent as they come; a commit waits for their acknowledgement, then publishes the
    snapshot and waits for it, and only then commits the input positions it records. A crash replays
    from the newest snapshot: each event trains the model once; its outputs may repeat."""

    def __init__(
        self, settings: Settings, processor: Processor, consumer: KafkaConsumer, producer: OutputProducer
    ) -> None:
        super().__init__(settings, processor, consumer)
        self.producer = producer

    def _send(self, records: list[OutputRecord]) -> None:
        self.producer.send(records)

    def commit(self, now: float, final: bool = False) -> None:
        self.producer.flush()
        snapshot = self.processor.snapshot_record()
        if snapshot is not None:
            self.producer.send([snapshot])
            self.producer.flush()
        crash_point("after-produce")
        offsets = {
            TopicPartition(topic, partition): OffsetAndMetadata(offset, "", -1)
            for (topic, partition), offset in self.processor.positions.items()
        }
        if offsets:
            # The snapshot, acknowledged above, is what a restart resumes from; the group's offsets
            # are for lag tools and the no-snapshot start, so only the last commit waits for them.
            if final:
                self.consumer.commit(offsets)
            else:
                self.consumer.commit_async(offsets)
        crash_point("after-commit")
        self._committed(now)

    def close(self) -> None:
        self.producer.close()


class ExactlyOnceCheckpoint(Checkpoint):
    """Each commit interval is one transaction: the outputs, one snapshot, and the input positions
    (``send_offsets_to_transaction``). ``read_committed`` readers see each event's effects once. A
    failed transaction is aborted and the processor rolled back to the last committed snapshot, with
    the consumer positioned where that snapshot ends."""

    def __init__(
        self,
        settings: Settings,
        processor: Processor,
        consumer: KafkaConsumer,
        output: TransactionalOutput,
    ) -> None:
        super().__init__(settings, processor, consumer)
        self.output = output

    def _send(self, records: list[OutputRecord]) -> None:
        self.output.send(records)

    def commit(self, now: float, final: bool = False) -> None:
        snapshot = self.processor.snapshot_record()
        if snapshot is not None:
            self.output.send([snapshot])
        self.output.commit(
            dict(self.processor.positions),
            self.consumer,
            before_offsets=lambda: crash_point("after-produce"),
            before_commit=lambda: crash_point("after-offsets"),
        )
        crash_point("after-commit")
        self._committed(now)

    def rollback(self, now: float) -> Processor:
        """Abort, then continue from the last committed snapshot and its input positions.

        The snapshot is read back from the model topic, not taken from memory: a commit that timed
        out may still have landed (a new producer's init_transactions completes it), and only the
        broker knows."""
        self.output.abort()
        settings = self.settings
        snapshot = load_snapshot(settings.bootstrap_servers, settings.model_topic, settings.model_name)
        processor = Processor(settings, now)
        if snapshot is not None:
            processor.restore(snapshot, now)
        for tp in self.consumer.assignment():
            position = processor.positions.get((tp.topic, tp.partition))
            if position is None:
                committed = self.consumer.committed(tp)
                if committed is None:
                    self.consumer.seek_to_beginning(tp)
                    continue
                position = committed
            self.consumer.seek(tp, position)
        self.processor = self._attach(processor)
        self.dirty = False
        self.events = 0
        self.last = now
        return processor

    def close(self) -> None:
        self.output.close()
