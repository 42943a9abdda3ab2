"""``stream-neuron run``: the consume -> process -> publish -> checkpoint loop.

Delivery (at-least-once): outputs are sent as records are processed; a checkpoint first waits for
every one of them to be acknowledged, then publishes a snapshot of the model with the input
positions it covers, waits for that too, and only then commits those positions. A crash anywhere
replays from the newest snapshot: the model learns each event once, predictions may repeat.
"""

from __future__ import annotations

import logging
import signal
import time
from dataclasses import dataclass
from types import FrameType

from kafka import KafkaConsumer, OffsetAndMetadata, TopicPartition

from stream_neuron.config import Settings
from stream_neuron.kafka_io.admin import ensure_topics
from stream_neuron.kafka_io.consumer import input_lag, open_input, poll_records
from stream_neuron.kafka_io.producer import OutputProducer
from stream_neuron.kafka_io.reachability import require_broker
from stream_neuron.kafka_io.snapshot_store import load_snapshot
from stream_neuron.processor import Processor
from stream_neuron.records import Emitted

log = logging.getLogger("stream_neuron")


@dataclass
class RunSummary:
    consumed: int
    final_metrics: bytes | None


class StopFlag:
    """Set by SIGTERM/SIGINT: the loop finishes its batch, checkpoints and exits 0."""

    def __init__(self) -> None:
        self.stopping = False

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self._handle)
        signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if not self.stopping:
            log.info(
                "received %s: finishing the batch, then checkpoint and exit", signal.Signals(signum).name
            )
        self.stopping = True


class AtLeastOnceCheckpoint:
    """Owns what is processed but not yet committed: outputs in flight, and the position to commit."""

    def __init__(
        self, settings: Settings, processor: Processor, consumer: KafkaConsumer, producer: OutputProducer
    ) -> None:
        self.settings = settings
        self.processor = processor
        self.consumer = consumer
        self.producer = producer
        self.last = time.monotonic()
        self.dirty = False

    def publish(self, emitted: Emitted) -> None:
        outputs = emitted.outputs()
        if outputs:
            self.producer.send(outputs)
            self.dirty = True

    def due(self, now: float) -> bool:
        if self.processor.updates_since_snapshot >= self.settings.snapshot_every:
            return True
        return self.dirty and now - self.last >= self.settings.commit_interval_s

    def commit(self, now: float) -> None:
        self.producer.flush()
        snapshot = self.processor.snapshot_record()
        if snapshot is not None:
            self.producer.send([snapshot])
            self.producer.flush()
        offsets = {
            TopicPartition(topic, partition): OffsetAndMetadata(offset, "", -1)
            for (topic, partition), offset in self.processor.positions.items()
        }
        if offsets:
            self.consumer.commit(offsets)
        self.last = now
        self.dirty = False


def run(settings: Settings, stop: StopFlag | None = None) -> RunSummary:
    """Run until stopped, ``--max-events`` consumed or ``--idle-timeout-s`` without input."""
    stop = stop or StopFlag()
    require_broker(settings.bootstrap_servers, settings.connect_timeout_s)
    ensure_topics(settings)
    started = time.monotonic()
    processor = Processor(settings, started)
    snapshot = load_snapshot(settings.bootstrap_servers, settings.model_topic, settings.model_name)
    if snapshot is not None:
        processor.restore(snapshot, started)
    consumer = open_input(settings, processor.positions)
    producer = OutputProducer(settings)
    checkpoint = AtLeastOnceCheckpoint(settings, processor, consumer, producer)
    log.info(
        "running model %r (%s, %s, %s) on %s: %s -> %s",
        settings.model_name,
        settings.model,
        settings.mode,
        settings.guarantee,
        settings.bootstrap_servers,
        settings.input_topic,
        settings.predictions_topic,
    )
    consumed = 0
    last_input = started
    # Poll no longer than a mini-batch may linger, so a partial batch fires on time.
    poll_ms = min(200, settings.linger_ms) if settings.mode == "minibatch" else 200
    final_metrics = None
    try:
        while not stop.stopping:
            budget = settings.poll_max_records
            if settings.max_events is not None:
                budget = min(budget, settings.max_events - consumed)
            records = poll_records(consumer, poll_ms, budget) if budget > 0 else []
            now = time.monotonic()
            lag = input_lag(consumer, processor.positions)
            if records:
                consumed += len(records)
                last_input = now
                emitted = processor.process(records, now, lag)
            else:
                emitted = processor.tick(now, lag)
            checkpoint.publish(emitted)
            if checkpoint.due(now):
                checkpoint.commit(now)
            if settings.max_events is not None and consumed >= settings.max_events:
                log.info("consumed %d events (--max-events): stopping", consumed)
                break
            if settings.idle_timeout_s is not None and now - last_input >= settings.idle_timeout_s:
                log.info("no input for %.1f s (--idle-timeout-s): stopping", settings.idle_timeout_s)
                break
        now = time.monotonic()
        closing = processor.close(now, input_lag(consumer, processor.positions))
        final_metrics = closing.metrics[-1].value if closing.metrics else None
        checkpoint.publish(closing)
        checkpoint.commit(now)
        log.info(
            "stopped after %d events; model version %s",
            consumed,
            processor.model.n_updates if processor.model else 0,
        )
    finally:
        consumer.close(autocommit=False)
        producer.close()
    return RunSummary(consumed, final_metrics)
