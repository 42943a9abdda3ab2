"""``stream-neuron run``: the consume -> process -> publish -> checkpoint loop.

What a commit means is the checkpoint's business (``checkpoints.py``): at-least-once commits input
positions after the outputs and a snapshot are acknowledged; exactly-once commits outputs, snapshot
and positions in one transaction and rolls back to the last committed snapshot when one fails.
"""

from __future__ import annotations

import gc
import logging
import signal
import time
from dataclasses import dataclass
from types import FrameType

from kafka.errors import KafkaError

from stream_neuron.checkpoints import AtLeastOnceCheckpoint, ExactlyOnceCheckpoint
from stream_neuron.config import Settings
from stream_neuron.kafka_io.admin import ensure_topics
from stream_neuron.kafka_io.consumer import input_lag, open_input, poll_records
from stream_neuron.kafka_io.errors import StartupError
from stream_neuron.kafka_io.producer import OutputProducer
from stream_neuron.kafka_io.reachability import require_broker
from stream_neuron.kafka_io.snapshot_store import load_snapshot
from stream_neuron.kafka_io.transactions import TransactionalOutput, TransactionFailedError
from stream_neuron.processor import Processor

log = logging.getLogger("stream_neuron")

RETRY_BACKOFF_S = 1.0


@dataclass
class RunSummary:
    consumed: int
    final_metrics: bytes | None
    first_input_at: float | None  # time.monotonic() of the first poll that returned records
    finished_at: float  # time.monotonic() after the final checkpoint


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


def _start(settings: Settings) -> AtLeastOnceCheckpoint | ExactlyOnceCheckpoint:
    """Topics, then (exactly-once: fence older instances first) the snapshot, consumer and producer."""
    require_broker(settings.bootstrap_servers, settings.connect_timeout_s)
    ensure_topics(settings)
    now = time.monotonic()
    output = TransactionalOutput(settings) if settings.guarantee == "exactly-once" else None
    snapshot = load_snapshot(settings.bootstrap_servers, settings.model_topic, settings.model_name)
    processor = Processor(settings, now)
    if snapshot is not None:
        processor.restore(snapshot, now)
    consumer = open_input(settings, processor.positions)
    if output is not None:
        return ExactlyOnceCheckpoint(settings, processor, consumer, output)
    return AtLeastOnceCheckpoint(settings, processor, consumer, OutputProducer(settings))


def _recover(checkpoint: ExactlyOnceCheckpoint, error: Exception, stop: StopFlag) -> None:
    """Abort and roll back; while the broker is away, keep trying (a stop request ends the wait)."""
    log.warning("transaction failed (%s): rolling back to the last committed snapshot", error)
    while True:
        try:
            if not checkpoint.output.healthy:
                checkpoint.output.reconnect()
            checkpoint.rollback(time.monotonic())
            return
        except (KafkaError, TimeoutError, StartupError) as retry_error:
            if stop.stopping:
                raise
            log.warning("recovery failed (%s): retrying in %.0f s", retry_error, RETRY_BACKOFF_S)
            time.sleep(RETRY_BACKOFF_S)


def run(settings: Settings, stop: StopFlag | None = None) -> RunSummary:
    """Run until stopped, ``--max-events`` consumed or ``--idle-timeout-s`` without input."""
    stop = stop or StopFlag()
    checkpoint = _start(settings)
    consumer = checkpoint.consumer
    # Start-up objects (clients, schemas) live for the whole run: keep the cyclic collector off them,
    # so its full passes stay short on the hot loop.
    gc.freeze()
    exporter = None
    if settings.metrics_port is not None:
        from stream_neuron.prometheus import PrometheusExporter

        exporter = PrometheusExporter(settings.metrics_port, settings.model_name, settings.metrics_host)
        exporter.baseline(checkpoint.processor)
    log.info(
        "running model %r (%s, %s, %s) on %s: %s -> %s",
        settings.model_name, settings.model, settings.mode, settings.guarantee,
        settings.bootstrap_servers, settings.input_topic, settings.predictions_topic,
    )  # fmt: skip
    consumed = committed = 0  # input records taken; of those, covered by the last commit
    last_input = time.monotonic()
    first_input_at: float | None = None
    # Poll no longer than a mini-batch may linger, so a partial batch fires on time.
    poll_ms = min(200, settings.linger_ms) if settings.mode == "minibatch" else 200
    final_metrics = None
    try:
        while not stop.stopping:
            processor: Processor = checkpoint.processor
            budget = settings.poll_max_records
            if settings.max_events is not None:
                budget = min(budget, settings.max_events - consumed)
            records = poll_records(consumer, poll_ms, budget) if budget > 0 else []
            now = time.monotonic()
            consumed += len(records)
            try:
                emitted = processor.process(records, now) if records else processor.tick(now)
                checkpoint.count(len(records))
                checkpoint.publish(emitted)
                if checkpoint.due(now):
                    checkpoint.commit(now)
                    committed = consumed
                if exporter is not None:
                    exporter.observe(processor, input_lag(consumer, processor.positions))
            except TransactionFailedError as error:
                assert isinstance(checkpoint, ExactlyOnceCheckpoint)
                _recover(checkpoint, error, stop)
                consumed = committed  # the rolled-back records will be read again
                last_input = time.monotonic()  # so is input the rollback rewound: not idle time
                continue
            if records:
                last_input = now
                first_input_at = now if first_input_at is None else first_input_at
            if settings.max_events is not None and consumed >= settings.max_events:
                log.info("consumed %d events (--max-events): stopping", consumed)
                break
            if settings.idle_timeout_s is not None and now - last_input >= settings.idle_timeout_s:
                log.info("no input for %.1f s (--idle-timeout-s): stopping", settings.idle_timeout_s)
                break
        final_metrics = _close(checkpoint, stop)
        model = checkpoint.processor.model
        log.info("stopped after %d events; model version %s", consumed, model.n_updates if model else 0)
    finally:
        consumer.close(autocommit=False)
        checkpoint.close()
        if exporter is not None:
            exporter.close()
    return RunSummary(consumed, final_metrics, first_input_at, time.monotonic())


def _close(checkpoint: AtLeastOnceCheckpoint | ExactlyOnceCheckpoint, stop: StopFlag) -> bytes | None:
    """Learn what is buffered, publish the final metrics, checkpoint."""
    while True:
        now = time.monotonic()
        processor = checkpoint.processor
        closing = processor.close(now)
        try:
            checkpoint.publish(closing)
            checkpoint.commit(now, final=True)
            return closing.metrics[-1].value if closing.metrics else None
        except TransactionFailedError as error:
            assert isinstance(checkpoint, ExactlyOnceCheckpoint)
            _recover(checkpoint, error, stop)
