"""``stream-neuron run``: the consume -> process -> publish -> checkpoint loop.

The runner owns the input consumer, the processor and the checkpoint. What a commit means is the
checkpoint's business (``checkpoints.py``); after an exactly-once rollback the runner rebuilds the
processor from the committed snapshot and moves the input back to the positions it covers. Start-up
(topics, their limits, the snapshot and the operator's choice about a bad one) is ``startup.py``.
"""

from __future__ import annotations

import json
import logging
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import FrameType

from stream_neuron.checkpoints import (
    AcknowledgedOutput,
    AtLeastOnceCheckpoint,
    Cadence,
    Committed,
    ExactlyOnceCheckpoint,
    RefusedOutputsError,
    culprit,
    refused_error,
)
from stream_neuron.config import Settings
from stream_neuron.kafka_io import client_log
from stream_neuron.kafka_io.admin import check_outputs_exist
from stream_neuron.kafka_io.clients import input_consumer, output_producer, transactional_output
from stream_neuron.kafka_io.ports import KafkaIOError, PublishError, TakenOverError, TransactionFailedError
from stream_neuron.kafka_io.record_order import OrderedInput
from stream_neuron.kafka_io.snapshot_store import load_snapshot
from stream_neuron.kafka_io.transactional import TransactionalOutput
from stream_neuron.kafka_io.writer_claim import WriterClaim
from stream_neuron.metrics_server import Health, MetricsServer
from stream_neuron.process_tuning import steady_process
from stream_neuron.processor import Processor
from stream_neuron.prometheus import PrometheusExporter
from stream_neuron.startup import (
    lost_model,
    output_limits,
    prepare_topics,
    rebuild_questions,
    restored_processor,
    settle_positions,
)

log = logging.getLogger("stream_neuron")

RETRY_BACKOFF_S = 1.0
RECOVERY_REMINDER_S = 60.0
# Exactly-once: after this many failed attempts in a row at one transaction, stopping is not retried.
FINAL_COMMIT_ATTEMPTS = 3


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


class Recovery:
    """How a run's attempts to recover from a failed transaction are told: the first failure of an
    episode as a warning, the next ones (every second while the broker is away) at debug level, a
    reminder with the latest error every :data:`RECOVERY_REMINDER_S` (a recovery that keeps failing
    says why, not only that it began), and one line when it is over."""

    def __init__(self) -> None:
        self.failures = 0
        self.since = 0.0
        self.reminded = 0.0

    def failed(self, error: BaseException) -> None:
        self.failures += 1
        now = time.monotonic()
        if self.failures == 1:
            self.since = self.reminded = now
            log.warning(
                "recovery failed (%s): retrying every %.0f s until the broker answers", error, RETRY_BACKOFF_S
            )
        elif now - self.reminded >= RECOVERY_REMINDER_S:
            self.reminded = now
            log.warning(
                "recovery still failing after %.0f s (%d attempts; the latest: %s)",
                now - self.since,
                self.failures,
                error,
            )
        else:
            log.debug("recovery failed again (%s)", error)

    def succeeded(self) -> None:
        if self.failures:
            log.warning(
                "recovered after %.0f s (%d attempts failed): resuming from the committed snapshot",
                time.monotonic() - self.since,
                self.failures,
            )
        self.failures = 0


class Runner:
    """One run of one model: start-up, the loop, recovery and the final checkpoint."""

    def __init__(self, settings: Settings, stop: StopFlag) -> None:
        self.settings = settings
        self.stop = stop
        self.connection = connection = settings.connection
        name = settings.model_name
        prepare_topics(settings)
        self.limits = output_limits(settings)
        now = time.monotonic()
        cadence = Cadence(
            settings.snapshot_every,
            settings.commit_every,
            settings.commit_interval_s,
            settings.snapshot_interval_s,
        )
        # Input records whose outputs the broker refused inside a transaction: left out when replayed.
        self.quarantine: dict[tuple[str, int, int], tuple[str, bool]] = {}
        # The claim comes first: older instances see it, and stop. Exactly-once then initialises its
        # transactional producer, which fences them, before their last snapshot is read.
        self.claim = WriterClaim(connection, settings.model_topic, name)
        transactional: TransactionalOutput | None = None
        self.recovery = Recovery()
        try:
            if settings.guarantee == "exactly-once":
                transactional = transactional_output(
                    connection,
                    f"{name}-txn",
                    name,
                    settings.transaction_timeout_s,
                    settings.compression_type,
                    self.limits.smallest,
                    self.claim.check_to_end,
                    lambda: self._check_outputs(self._output_topics()),
                )
            stored = load_snapshot(connection, settings.model_topic, name)
            self.processor, chose = restored_processor(settings, stored, now, self._lag, self.limits)
            self.input = OrderedInput(
                input_consumer(
                    connection,
                    settings.input_topics,
                    settings.group_id,
                    f"{name}-input",
                    settings.poll_max_records,
                    self.processor.positions,
                ),
                settings.max_partition_wait_ms / 1000,
            )
            chose = lost_model(settings, stored, self.input) or chose
            self.processor, moved = settle_positions(
                settings, self.processor, self.input, now, self._lag, self.limits
            )
            # The operator's choice about a bad, lost or out-of-range snapshot holds from now on: the
            # next start finds the snapshot of that choice, even if no event comes meanwhile.
            self.choice_to_keep = chose or moved
            rebuild_questions(settings, self.processor)
        except BaseException:
            if transactional is not None:
                transactional.close()
            self.claim.close()
            raise
        self.checkpoint: AtLeastOnceCheckpoint | ExactlyOnceCheckpoint
        if transactional is not None:
            self.checkpoint = ExactlyOnceCheckpoint(
                cadence, now, transactional, self.input, self._committed_snapshot
            )
        else:

            def sender(role: str) -> AcknowledgedOutput:
                return output_producer(
                    connection,
                    f"{name}-{role}",
                    settings.compression_type,
                    self.limits.smallest,
                    lambda: self._check_outputs(self._output_topics()),
                    lambda: stop.stopping,
                )

            # The snapshots have a producer of their own, so that whether the one handed over at a
            # checkpoint is acknowledged can be asked between polls, whatever outputs are in flight.
            self.checkpoint = AtLeastOnceCheckpoint(
                cadence,
                now,
                sender("output"),
                self.input,
                load_committed=self._committed_snapshot,
                snapshots=sender("snapshots"),
            )

    def _lag(self, positions: Mapping[tuple[str, int], int]) -> int | None:
        return self.input.lag(positions)

    def _committed_snapshot(self) -> dict[str, object] | None:
        stored = load_snapshot(self.connection, self.settings.model_topic, self.settings.model_name)
        if stored is None or stored.value is None:
            return None
        snapshot: dict[str, object] = json.loads(stored.value)
        return snapshot

    def _check_outputs(self, topics: list[str]) -> None:
        s = self.settings
        check_outputs_exist(self.connection, f"{s.model_name}-check", topics, s.model_topic)

    def _restore(self, committed: Committed, now: float) -> None:
        self.processor = Processor.restored(self.settings, committed.snapshot, now, self._lag, self.limits)
        self.processor.quarantine = self.quarantine
        rebuild_questions(self.settings, self.processor)
        self.input.seek(committed.positions)

    def _recover(self, error: TransactionFailedError | RefusedOutputsError) -> None:
        """Leave out what the broker refused, roll back to the committed state; while the broker is
        away, keep trying (a stop request ends the wait)."""
        self._check_outputs(self._output_topics())  # a deleted topic is no reason to retry
        if error.refused:
            (record, refusal), _ = culprit(error.refused)
            origin, what = record.origin, str(refusal)
            if origin is None:
                raise refused_error(record, what)
            bare = record.topic == self.settings.dead_letter_topic
            where = (origin.topic, origin.partition, origin.offset)
            self.quarantine[where] = (f"the broker refused its {record.topic!r} record: {what}", bare)
            log.warning("%s: replaying since the last checkpoint without input %s:%d:%d", error, *where)
        else:
            log.warning("transaction failed (%s): rolling back to the last committed snapshot", error)
        while True:
            try:
                now = time.monotonic()
                self._restore(self.checkpoint.rollback(now), now)
                self.recovery.succeeded()
                return
            except TakenOverError:
                raise
            except KafkaIOError as retry_error:
                if self.stop.stopping:
                    raise
                self._check_outputs(self._output_topics())
                self.recovery.failed(retry_error)
                time.sleep(RETRY_BACKOFF_S)

    def _output_topics(self) -> list[str]:
        s = self.settings
        return [s.predictions_topic, s.metrics_topic, s.dead_letter_topic, s.model_topic]

    def _commit(self, now: float, final: bool = False, unfixed: bool = False) -> None:
        processor = self.processor
        if isinstance(self.checkpoint, AtLeastOnceCheckpoint):  # exactly-once: the fencing stops it
            self.claim.check()
        self.checkpoint.commit(processor.snapshot_record(unfixed), processor.positions, now, final)
        client_log.recovered()

    def loop(self, exporter: PrometheusExporter | None, health: Health) -> RunSummary:
        settings, stop = self.settings, self.stop
        if self.choice_to_keep:
            self._commit(time.monotonic(), unfixed=True)
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
            health.beat()
            health.set_ready()  # connected, the model loaded or created, polling from its positions
            now = time.monotonic()
            consumed += len(records)
            try:
                self.checkpoint.settle()
                processor = self.processor
                emitted = processor.process(records, now) if records else processor.tick(now)
                self.checkpoint.count(len(records))
                self.checkpoint.publish(emitted.outputs())
                if self.checkpoint.due(now, processor.updates_since_snapshot):
                    self._commit(now)
                    committed = consumed
                if exporter is not None:
                    exporter.observe(processor, self.input.lag(processor.positions))
            except (TransactionFailedError, RefusedOutputsError) as error:
                self._recover(error)
                consumed = committed  # the rolled-back records will be read again
                last_input = time.monotonic()  # so is input the rollback rewound: not idle time
                continue
            if isinstance(self.checkpoint, AtLeastOnceCheckpoint):
                self.claim.check_due(now)
            if records:
                last_input = now
                first_input_at = now if first_input_at is None else first_input_at
            if settings.max_events is not None and consumed >= settings.max_events:
                log.info("consumed %d events (--max-events): stopping", consumed)
                break
            if settings.idle_timeout_s is not None and now - last_input >= settings.idle_timeout_s:
                # Idle means the input is read to its end: a paused process or broker is not idle.
                if self.input.exhausted():
                    log.info("no input for %.1f s (--idle-timeout-s): stopping", settings.idle_timeout_s)
                    break
                last_input = time.monotonic()
        final_metrics = self._close()
        model = self.processor.model
        log.info("stopped after %d events; model version %s", consumed, model.n_updates if model else 0)
        return RunSummary(consumed, final_metrics, first_input_at, time.monotonic())

    def _close(self) -> bytes | None:
        """Learn what is buffered, publish the final metrics, checkpoint. A final transaction that
        keeps failing ends the run non-zero instead of looping."""
        for attempt in range(1, FINAL_COMMIT_ATTEMPTS + 1):
            now = time.monotonic()
            closing = self.processor.close(now)
            try:
                self.checkpoint.publish(closing.outputs())
                self._commit(now, final=True)
                return closing.metrics[-1].value if closing.metrics else None
            except (TransactionFailedError, RefusedOutputsError) as error:
                if attempt == FINAL_COMMIT_ATTEMPTS:
                    raise PublishError(
                        f"the final checkpoint failed {attempt} times ({error}): nothing after the last "
                        "committed one was committed; a restart resumes there"
                    ) from error
                self._recover(error)
        return None

    def release(self) -> None:
        self.input.close()
        self.checkpoint.close()
        self.claim.close()


def run(settings: Settings, stop: StopFlag | None = None) -> RunSummary:
    """Run until stopped, ``--max-events`` consumed or ``--idle-timeout-s`` without input."""
    client_log.install()
    health = Health(settings.health_timeout_s)
    exporter, server, runner = None, None, None
    if settings.metrics_port is not None:  # before start-up: /readyz says "not yet" while it lasts
        exporter = PrometheusExporter(settings.model_name)
        server = MetricsServer(settings.metrics_port, settings.metrics_host, exporter.registry, health)
    try:
        runner = Runner(settings, stop or StopFlag())
        steady_process()
        if exporter is not None:
            exporter.baseline(runner.processor)
        log.info(
            "running model %r (%s, %s, %s, %s) on %s: %s -> %s",
            settings.model_name, settings.model, settings.mode, settings.guarantee, settings.kafka_client,
            settings.bootstrap_servers, settings.input_topic, settings.predictions_topic,
        )  # fmt: skip
        return runner.loop(exporter, health)
    finally:
        if runner is not None:
            runner.release()
        if server is not None:
            server.close()
