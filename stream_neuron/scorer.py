"""``stream-neuron score``: scorer replicas that follow the model topic and serve predictions.

Any number of replicas join one consumer group on the requests topic; Kafka splits its partitions
among them. Each scores every request with the newest committed snapshot of the model (decoding,
validation and dead letters as in ``run``; a label is ignored) and publishes the prediction with the
snapshot's version. Between two polls, never inside a batch, it swaps to a newer snapshot, so each
prediction comes from exactly one version; a snapshot of another model kind or feature schema is
refused with a log line and the old model kept. Offsets are committed after the predictions they cover
are acknowledged, every ``--commit-interval-ms``: at least once. A rebalance (a replica joins, leaves
or dies) repeats at most what its partitions' owner scored since its last commit, and loses nothing.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from stream_neuron.checkpoints import AtLeastOnceCheckpoint, Cadence
from stream_neuron.command_config import ScoreSettings
from stream_neuron.feature_encoding import OpenVocabulary
from stream_neuron.feature_hashing import FeatureHashing
from stream_neuron.kafka_io import client_log
from stream_neuron.kafka_io.admin import TopicNeed, check_outputs_exist, dead_letter_topic_spec, ensure_topics
from stream_neuron.kafka_io.clients import group_input, output_producer
from stream_neuron.kafka_io.model_follower import ModelFollower
from stream_neuron.kafka_io.ports import StartupError, TopicSpec
from stream_neuron.kafka_io.probe import probe
from stream_neuron.metrics_server import Health, MetricsServer
from stream_neuron.outputs import OutputLimits
from stream_neuron.process_tuning import steady_process
from stream_neuron.processor import Processor
from stream_neuron.prometheus import ScorerExporter
from stream_neuron.runner import RunSummary, StopFlag
from stream_neuron.snapshots import SnapshotError, check_snapshot, standardized
from stream_neuron.startup import topic_limits

log = logging.getLogger("stream_neuron")

WAIT_LOG_S = 30.0


def score_topics(settings: ScoreSettings) -> list[TopicNeed]:
    partitions = settings.topic_partitions
    writes = ("WRITE", "DESCRIBE", "DESCRIBE_CONFIGS")
    return [
        TopicNeed(
            settings.input_topic,
            "requests topic",
            ("READ", "DESCRIBE"),
            None,
            "create it, or set --input-topic",
        ),
        TopicNeed(
            settings.model_topic, "model topic", ("READ", "DESCRIBE"), None, "start `stream-neuron run` first"
        ),
        TopicNeed(
            settings.predictions_topic,
            "predictions topic",
            writes,
            TopicSpec(settings.predictions_topic, partitions),
        ),
        TopicNeed(
            settings.dead_letter_topic,
            "dead-letter topic",
            writes,
            dead_letter_topic_spec(settings.dead_letter_topic, partitions),
        ),
    ]


class Scorer:
    """One replica: its group membership, the model it follows, the processor of the current model."""

    def __init__(
        self,
        settings: ScoreSettings,
        stop: StopFlag,
        exporter: ScorerExporter | None = None,
        health: Health | None = None,
    ) -> None:
        self.settings, self.stop, self.exporter = settings, stop, exporter
        self.health = health or Health(settings.health_timeout_s)
        connection = settings.connection
        name = settings.model_name
        probe(connection, settings.connect_timeout_s)
        ensure_topics(connection, f"{name}-scorer-admin", score_topics(settings), settings.create_topics)
        limits = topic_limits(connection, name, [settings.predictions_topic, settings.dead_letter_topic])
        self.limits = OutputLimits(predictions=limits[0], dead_letters=limits[1])
        self.follower = ModelFollower(connection, settings.model_topic, name, f"{name}-scorer-model")
        self.owned: list[tuple[str, int]] = []  # the partitions this replica serves
        self.processor = self._first_model()
        self.version = self._version()
        if exporter is not None:
            exporter.served(self.version)
        self.input = group_input(
            connection, settings.input_topic, settings.group_id, f"{name}-scorer", settings.poll_max_records,
            self._revoked,
        )  # fmt: skip
        producer = output_producer(
            connection,
            f"{name}-scorer-output",
            settings.compression_type,
            self.limits.smallest,
            lambda: check_outputs_exist(
                connection, f"{name}-scorer-check", [settings.predictions_topic, settings.dead_letter_topic]
            ),
            lambda: stop.stopping,
        )
        cadence = Cadence(
            snapshot_every=2**62,
            commit_every=10 * settings.poll_max_records,
            interval_s=settings.commit_interval_ms / 1000,
        )
        self.checkpoint = AtLeastOnceCheckpoint(
            cadence,
            time.monotonic(),
            producer,
            self.input,
            lambda record, error: self.processor.replacement(record, error),
        )

    def _first_model(self) -> Processor:
        waited = time.monotonic()
        said = False
        while True:
            value = self.follower.latest
            if value:
                processor = self._processor(value)
                if processor is not None:
                    return processor
            if not self.settings.wait_for_model:
                why = "no snapshot" if value is None else "no usable snapshot"
                raise StartupError(
                    f"{why} of model {self.settings.model_name!r} on {self.settings.model_topic}: start "
                    "`stream-neuron run` for it first, or pass --wait-for-model"
                )
            if self.stop.stopping:
                raise StartupError("stopped while waiting for a first snapshot of the model")
            self.health.beat()  # waiting for the model is not wedged
            self.health.set_ready(f"waiting for a snapshot of model {self.settings.model_name!r}")
            if not said or time.monotonic() - waited >= WAIT_LOG_S:
                said = True
                log.info(
                    "waiting for a snapshot of model %r on %s",
                    self.settings.model_name,
                    self.settings.model_topic,
                )
                waited = time.monotonic()
            self.follower.newer(timeout_ms=500)

    def _processor(self, value: bytes) -> Processor | None:
        """A processor scoring with the snapshot in ``value``; ``None`` (and a log line) when it is not
        one this scorer can use."""
        try:
            raw: Any = json.loads(value)
            kind, names, features = raw["kind"], raw["feature_names"], raw.get("features")
            scaled = standardized(raw)
            settings = self.settings.scoring(kind, tuple(names) if names else None, scaled, features)
            snapshot = check_snapshot(raw, settings)
            if snapshot["n_features"] == 0 and settings.features == "fixed":  # no first event yet
                return None
            return Processor.restored(
                settings, snapshot, time.monotonic(), lambda p: None, self.limits, learning=False
            )
        except (ValueError, KeyError, TypeError, SnapshotError) as error:
            log.warning("snapshot of model %r not used: %s", self.settings.model_name, error)
            return None

    def _version(self) -> int:
        model = self.processor.model
        return model.n_updates if model is not None else 0

    def _swap(self, value: bytes) -> None:
        """Between polls: the newer snapshot, when it has the current model's kind and features."""
        if not value:
            log.warning(
                "model %r was deleted (a tombstone): scoring on with version %d",
                self.settings.model_name,
                self.version,
            )
            return
        new = self._processor(value)
        if new is None or new.model is None:
            self._served(refused=new is None)
            return
        old, version = self.processor, new.model.n_updates
        if _features_of(new) != _features_of(old):
            log.warning(
                "snapshot version %d of model %r is another kind or feature schema (%s, %s features): "
                "keeping version %d",
                version, self.settings.model_name, new.kind, new.schema.n_features, self.version,
            )  # fmt: skip
            self._served(refused=True)
            return
        new.positions = old.positions
        self.processor, self.version = new, version
        self._served(swapped=True)
        log.info("serving model version %d", version)

    def _served(self, swapped: bool = False, refused: bool = False) -> None:
        if self.exporter is not None:
            self.exporter.served(self.version, swapped, refused)

    def _revoked(self, partitions: set[tuple[str, int]]) -> None:
        """Partitions going to another replica: their positions are dropped, never committed later (the
        new owner's progress must not be overwritten). What was processed of them since the last commit
        (a second at most, by default) is scored again by the new owner: at least once. (kafka-python
        runs this inside its event loop, where a blocking commit cannot be made.)"""
        for tp in partitions:
            self.processor.positions.pop(tp, None)

    def _note_assignment(self) -> None:
        """One line when this replica's share of the requests changes (a rebalance); ready while it
        has a share."""
        owned = self.input.assignment()
        if owned != self.owned:
            self.owned = owned
            partitions = [p for _, p in owned]
            log.info("serving partitions %s of %s", partitions or "none", self.settings.input_topic)
        self.health.set_ready(None if owned else f"no partitions of {self.settings.input_topic} assigned yet")

    def loop(self) -> RunSummary:
        settings, stop = self.settings, self.stop
        consumed, last_input, first_input_at = 0, time.monotonic(), None
        while not stop.stopping:
            newer = self.follower.newer()
            if newer is not None:
                self._swap(newer)
            budget = settings.poll_max_records
            if settings.max_events is not None:
                budget = min(budget, settings.max_events - consumed)
            records = self.input.poll(200, budget) if budget > 0 else []
            self.health.beat()
            self._note_assignment()
            now = time.monotonic()
            consumed += len(records)
            emitted = self.processor.process(records, now) if records else self.processor.tick(now)
            self.checkpoint.count(len(records))
            self.checkpoint.publish(emitted.outputs())
            if self.exporter is not None and records:
                self.exporter.scored(
                    len(records), len(emitted.predictions), len(emitted.dead_letters), time.monotonic() - now
                )
            if self.checkpoint.due(now, 0):
                self.checkpoint.commit(None, self.processor.positions, now)
                client_log.recovered()
            if records:
                last_input = now
                first_input_at = first_input_at or now
            if settings.max_events is not None and consumed >= settings.max_events:
                log.info("scored %d requests (--max-events): stopping", consumed)
                break
            if settings.idle_timeout_s is not None and now - last_input >= settings.idle_timeout_s:
                if self.input.exhausted():
                    log.info("no requests for %.1f s (--idle-timeout-s): stopping", settings.idle_timeout_s)
                    break
                last_input = time.monotonic()
        self.checkpoint.commit(None, self.processor.positions, time.monotonic(), final=True)
        log.info("stopped after %d requests; model version %d", consumed, self.version)
        return RunSummary(consumed, None, first_input_at, time.monotonic())

    def release(self) -> None:
        self.input.close()
        self.checkpoint.close()
        self.follower.close()


def score(settings: ScoreSettings, stop: StopFlag | None = None) -> RunSummary:
    """Score requests until stopped, ``--max-events`` scored or ``--idle-timeout-s`` without any."""
    client_log.install()
    health = Health(settings.health_timeout_s)
    exporter, server, scorer = None, None, None
    if settings.metrics_port is not None:  # before start-up: /readyz says "not yet" while it lasts
        exporter = ScorerExporter(settings.model_name)
        server = MetricsServer(settings.metrics_port, settings.metrics_host, exporter.registry, health)
    try:
        scorer = Scorer(settings, stop or StopFlag(), exporter, health)
        steady_process()
        log.info(
            "scoring %s with model %r version %d (group %s) -> %s",
            settings.input_topic, settings.model_name, scorer.version, settings.group_id,
            settings.predictions_topic,
        )  # fmt: skip
        return scorer.loop()
    finally:
        if scorer is not None:
            scorer.release()
        if server is not None:
            server.close()


def _features_of(processor: Processor) -> tuple[Any, ...]:
    """What a scorer must keep from snapshot to snapshot: the kind, and the fixed schema or the
    hashing (an open vocabulary may grow: its new names come with the newer model)."""
    encoder = processor.encoder
    if isinstance(encoder, FeatureHashing):
        return processor.kind, "hashed", encoder.bits, encoder.seed
    if isinstance(encoder, OpenVocabulary):
        return processor.kind, "open"
    return processor.kind, processor.schema.names, processor.schema.n_features
