"""``stream-neuron run``: the consume -> process -> publish -> checkpoint loop.

The runner owns the input consumer, the processor and the checkpoint. What a commit means is the
checkpoint's business (``checkpoints.py``); after an exactly-once rollback the runner rebuilds the
processor from the committed snapshot and moves the input back to the positions it covers.
"""

from __future__ import annotations

import gc
import logging
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import FrameType

from kafka.errors import KafkaError

from stream_neuron.checkpoints import AtLeastOnceCheckpoint, Cadence, Committed, ExactlyOnceCheckpoint
from stream_neuron.config import Settings
from stream_neuron.kafka_io.admin import TopicSpec, ensure_topics
from stream_neuron.kafka_io.consumer import InputConsumer
from stream_neuron.kafka_io.errors import StartupError
from stream_neuron.kafka_io.limits import DEAD_LETTER_MAX_BYTES
from stream_neuron.kafka_io.producer import OutputProducer
from stream_neuron.kafka_io.reachability import require_broker
from stream_neuron.kafka_io.snapshot_store import load_snapshot
from stream_neuron.kafka_io.transactions import TransactionalOutput, TransactionFailedError
from stream_neuron.processor import Processor
from stream_neuron.prometheus import PrometheusExporter

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


def output_topics(settings: Settings) -> list[TopicSpec]:
    """The output topics a run creates when missing: the model topic compacted, one partition."""
    partitions = settings.topic_partitions
    return [
        TopicSpec(settings.predictions_topic, partitions),
        TopicSpec(settings.metrics_topic, partitions),
        TopicSpec(settings.dead_letter_topic, partitions, {"max.message.bytes": str(DEAD_LETTER_MAX_BYTES)}),
        TopicSpec(settings.model_topic, 1, {"cleanup.policy": "compact"}),
    ]


class Runner:
    """One run of one model: start-up, the loop, recovery and the final checkpoint."""

    def __init__(self, settings: Settings, stop: StopFlag) -> None:
        self.settings = settings
        self.stop = stop
        connection = settings.connection
        name = settings.model_name
        require_broker(connection.bootstrap_servers, settings.connect_timeout_s)
        ensure_topics(
            connection,
            f"{name}-admin",
            required={settings.input_topic: ("input topic", "create it, or set --input-topic")},
            wanted=output_topics(settings),
            create=settings.create_topics,
        )
        now = time.monotonic()
        cadence = Cadence(settings.snapshot_every, settings.commit_every, settings.commit_interval_s)
        # Exactly-once: the transactional producer comes first, so it fences older instances before
        # their last snapshot is read.
        transactional = (
            TransactionalOutput(connection, f"{name}-txn", name, settings.transaction_timeout_s)
            if settings.guarantee == "exactly-once"
            else None
        )
        try:
            snapshot = load_snapshot(connection, settings.model_topic, name)
            self.processor = Processor.restored(settings, snapshot, now, self._lag)
            self.input = InputConsumer(
                connection,
                settings.input_topic,
                settings.group_id,
                f"{name}-input",
                settings.poll_max_records,
                self.processor.positions,
            )
        except BaseException:
            if transactional is not None:
                transactional.close()
            raise
        self.checkpoint: AtLeastOnceCheckpoint | ExactlyOnceCheckpoint
        if transactional is not None:
            self.checkpoint = ExactlyOnceCheckpoint(
                cadence,
                now,
                transactional,
                self.input,
                lambda: load_snapshot(connection, settings.model_topic, name),
            )
        else:
            self.checkpoint = AtLeastOnceCheckpoint(
                cadence, now, OutputProducer(connection, f"{name}-output"), self.input
            )

    def _lag(self, positions: Mapping[tuple[str, int], int]) -> int | None:
        return self.input.lag(positions)

    def _restore(self, committed: Committed, now: float) -> None:
        self.processor = Processor.restored(self.settings, committed.snapshot, now, self._lag)
        self.input.seek(committed.positions)

    def _recover(self, error: Exception) -> None:
        """Roll back to the committed state; while the broker is away, keep trying (a stop request
        ends the wait)."""
        assert isinstance(self.checkpoint, ExactlyOnceCheckpoint)
        log.warning("transaction failed (%s): rolling back to the last committed snapshot", error)
        while True:
            try:
                now = time.monotonic()
                self._restore(self.checkpoint.rollback(now), now)
                return
            except (KafkaError, TimeoutError, StartupError) as retry_error:
                if self.stop.stopping:
                    raise
                log.warning("recovery failed (%s): retrying in %.0f s", retry_error, RETRY_BACKOFF_S)
                time.sleep(RETRY_BACKOFF_S)

    def _commit(self, now: float, final: bool = False) -> None:
        processor = self.processor
        self.checkpoint.commit(processor.snapshot_record(), processor.positions, now, final)

    def loop(self, exporter: PrometheusExporter | None) -> RunSummary:
        settings, stop = self.settings, self.stop
        consumed = committed = 0  # input records taken; of those, covered by the last commit
        last_input = time.monotonic()
        first_input_at: float | None = None
        # Poll no longer than a mini-batch may linger, so a partial batch fires on time.
        poll_ms = min(200, settings.linger_ms) if settings.mode == "minibatch" else 200
        while not stop.stopping:
            budget = settings.poll_max_records
            if settings.max_events is not None:
                budget = min(budget, settings.max_events - consumed)
            records = self.input.poll(poll_ms, budget) if budget > 0 else []
            now = time.monotonic()
            consumed += len(records)
            try:
                processor = self.processor
                emitted = processor.process(records, now) if records else processor.tick(now)
                self.checkpoint.count(len(records))
                self.checkpoint.publish(emitted.outputs())
                if self.checkpoint.due(now, processor.updates_since_snapshot):
                    self._commit(now)
                    committed = consumed
                if exporter is not None:
                    exporter.observe(processor, self.input.lag(processor.positions))
            except TransactionFailedError as error:
                self._recover(error)
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
        final_metrics = self._close()
        model = self.processor.model
        log.info("stopped after %d events; model version %s", consumed, model.n_updates if model else 0)
        return RunSummary(consumed, final_metrics, first_input_at, time.monotonic())

    def _close(self) -> bytes | None:
        """Learn what is buffered, publish the final metrics, checkpoint."""
        while True:
            now = time.monotonic()
            closing = self.processor.close(now)
            try:
                self.checkpoint.publish(closing.outputs())
                self._commit(now, final=True)
                return closing.metrics[-1].value if closing.metrics else None
            except TransactionFailedError as error:
                self._recover(error)

    def release(self) -> None:
        self.input.close()
        self.checkpoint.close()


def run(settings: Settings, stop: StopFlag | None = None) -> RunSummary:
    """Run until stopped, ``--max-events`` consumed or ``--idle-timeout-s`` without input."""
    runner = Runner(settings, stop or StopFlag())
    # Start-up objects (clients, schemas) live for the whole run: keep the cyclic collector off them,
    # so its full passes stay short on the hot loop.
    gc.freeze()
    exporter = None
    try:
        if settings.metrics_port is not None:
            exporter = PrometheusExporter(settings.metrics_port, settings.model_name, settings.metrics_host)
            exporter.baseline(runner.processor)
        log.info(
            "running model %r (%s, %s, %s) on %s: %s -> %s",
            settings.model_name, settings.model, settings.mode, settings.guarantee,
            settings.bootstrap_servers, settings.input_topic, settings.predictions_topic,
        )  # fmt: skip
        return runner.loop(exporter)
    finally:
        runner.release()
        if exporter is not None:
            exporter.close()
