"""The pure step: raw input records in, records to publish out. No Kafka client here.

decode + validate -> score with the weights from before each event (or batch) -> learn from the
labelled ones -> predictions, dead letters, metrics and snapshots to emit. The processor also owns
the input position: the next offset of every partition it has consumed, which its snapshots record,
so a restored model resumes exactly where its state ends.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from json.encoder import encode_basestring_ascii
from typing import Any

import numpy as np

from stream_neuron.config import Settings
from stream_neuron.contracts import (
    ERROR_CLASS_HEADER,
    ERROR_REASON_HEADER,
    SOURCE_OFFSET_HEADER,
    SOURCE_PARTITION_HEADER,
    SOURCE_TOPIC_HEADER,
)
from stream_neuron.decode import BadEventError, decode_event
from stream_neuron.learner import MiniBatchLearner, PerEventLearner, Scored
from stream_neuron.metrics import MetricsTracker
from stream_neuron.neuron import MODEL_KINDS, LinearNeuron
from stream_neuron.records import Emitted, EventRef, InputRecord, OutputRecord
from stream_neuron.schema import FeatureSchema, label_of
from stream_neuron.snapshots import (
    SnapshotError,
    build_snapshot,
    check_snapshot,
    neuron_state,
    ref_from_json,
    snapshot_positions,
)

LagSource = Callable[[Mapping[tuple[str, int], int]], int | None]
"""Records behind the end of the input, given the processor's positions (``None``: unknown)."""


def build_model(settings: Settings, n_features: int) -> LinearNeuron:
    return MODEL_KINDS[settings.model](
        n_features,
        settings.learning_rate,
        settings.intercept_rate,
        schedule=settings.schedule,
        power=settings.schedule_power,
        standardize=settings.standardize,
    )


class Processor:
    """One model's streaming state: schema, neuron, update policy, metrics and input position."""

    def __init__(self, settings: Settings, now: float, lag: LagSource = lambda positions: None) -> None:
        self.settings = settings
        self.kind = MODEL_KINDS[settings.model]
        self.schema = FeatureSchema(settings.feature_names)
        self.model: LinearNeuron | None = None
        self.learner: PerEventLearner[EventRef] | MiniBatchLearner[EventRef] | None = None
        self.metrics = MetricsTracker(self.kind.probabilistic, window_started=now)
        self.positions: dict[tuple[str, int], int] = {}
        self.lag = lag
        self.last_window: dict[str, Any] | None = None  # the window of the newest metrics record
        self._snapshot_version = 0
        self._last_step = now
        self._rows = np.empty((0, 0))
        self._labels = np.empty(0)
        if self.schema.n_features is not None:
            self._build(self.schema.n_features)

    @classmethod
    def restored(
        cls, settings: Settings, snapshot: dict[str, Any] | None, now: float, lag: LagSource
    ) -> Processor:
        """A processor continuing from ``snapshot`` (a new model when it is ``None``)."""
        processor = cls(settings, now, lag)
        if snapshot is not None:
            processor._restore(snapshot, now)
        return processor

    def _build(self, n_features: int) -> None:
        self.model = build_model(self.settings, n_features)
        if self.settings.mode == "minibatch":
            self.learner = MiniBatchLearner(
                self.model, self.settings.batch_size, self.settings.linger_ms / 1000
            )
        else:
            self.learner = PerEventLearner(self.model)

    def _buffers(self, n_rows: int) -> tuple[np.ndarray, np.ndarray]:
        assert self.model is not None
        if self._rows.shape[0] < n_rows or self._rows.shape[1] != self.model.n_features:
            self._rows = np.empty((max(n_rows, self.settings.poll_max_records), self.model.n_features))
            self._labels = np.empty(self._rows.shape[0])
        return self._rows, self._labels

    def process(self, records: Sequence[InputRecord], now: float) -> Emitted:
        """Consume ``records`` in order; return what to publish. Bad records become dead letters.
        A metrics record closes every ``metrics_every`` events exactly, even inside one poll batch."""
        out = Emitted()
        busy_s, self._last_step = now - self._last_step, now
        start, every = 0, self.settings.metrics_every
        while start < len(records):
            chunk = records[start : start + max(every - self.metrics.window.events, 1)]
            self._process_chunk(chunk, now, out)
            self.metrics.count_events(len(chunk), busy_s * len(chunk) / len(records))
            start += len(chunk)
            if self.metrics.window.events >= every:
                out.metrics.append(self._metrics_record(now))
        out.extend(self.tick(now))
        return out

    def _process_chunk(self, records: Sequence[InputRecord], now: float, out: Emitted) -> None:
        rows, labels = self._buffers(len(records)) if self.model is not None else (self._rows, self._labels)
        refs: list[EventRef] = []
        max_bytes, kind = self.settings.max_record_bytes, self.kind
        for record in records:
            self.positions[(record.topic, record.partition)] = record.offset + 1
            try:
                event = decode_event(record.value, max_bytes)
                label = label_of(event.label, kind)
                if self.model is None:  # the first valid event fixes the feature order
                    self.schema.fix_from(event)
                    assert self.schema.n_features is not None
                    self._build(self.schema.n_features)
                    rows, labels = self._buffers(len(records))
                n = len(refs)
                self.schema.fill_row(event, rows[n])
                labels[n] = label
            except BadEventError as bad:
                out.dead_letters.append(self._dead_letter(record, bad))
                continue
            event_id = event.id if event.id is None or isinstance(event.id, str) else str(event.id)
            refs.append(EventRef(record.topic, record.partition, record.offset, record.key, event_id))
        if refs and self.learner is not None:
            for scored in self.learner.submit(rows[: len(refs)], labels[: len(refs)], refs, now):
                self._emit(scored, out)

    def tick(self, now: float) -> Emitted:
        """Time-driven work without new input: a lingering mini-batch, the metrics interval."""
        self._last_step = now
        out = Emitted()
        if self.learner is not None:
            for chunk in self.learner.due(now):
                self._emit(chunk, out)
        if self.metrics.due(self.settings.metrics_every, self.settings.metrics_interval_s, now):
            out.metrics.append(self._metrics_record(now))
        return out

    @property
    def updates_since_snapshot(self) -> int:
        return 0 if self.model is None else self.model.n_updates - self._snapshot_version

    def close(self, now: float) -> Emitted:
        """Shutdown: learn what is buffered, then a final metrics record."""
        out = Emitted()
        if self.learner is not None:
            for chunk in self.learner.drain():
                self._emit(chunk, out)
        out.metrics.append(self._metrics_record(now))
        return out

    def _emit(self, chunk: Scored[EventRef], out: Emitted) -> None:
        model = self.model
        assert model is not None
        labelled = int(np.count_nonzero(chunk.labels == chunk.labels))
        if labelled:
            self.metrics.add_terms(
                labelled, *model.prequential_terms(chunk.scores, chunk.outputs, chunk.labels)
            )
        topic = self.settings.predictions_topic
        append, quote = out.predictions.append, encode_basestring_ascii
        quoted: dict[str, str] = {}
        # Written by template, not json.dumps of a dict: it is most of the per-event cost otherwise.
        # repr() of a finite float is valid JSON and round-trips exactly.
        for ref, head, score, version, label in zip(
            chunk.refs,
            model.prediction_fields(chunk.outputs.tolist()),
            chunk.scores.tolist(),
            chunk.versions.tolist(),
            chunk.labels.tolist(),
            strict=True,
        ):
            event_id = "null" if ref.event_id is None else quote(ref.event_id)
            label_text = "null" if label != label else int(label)
            topic_json = quoted.get(ref.topic) or quoted.setdefault(ref.topic, quote(ref.topic))
            where = f'{{"topic": {topic_json}, "partition": {ref.partition}, "offset": {ref.offset}}}'
            value = (
                f'{{{head}, "score": {score!r}, "label": {label_text}, "model_version": {version}, '
                f'"id": {event_id}, "source": {where}}}'
            )
            append(OutputRecord(topic, ref.key, value.encode(), []))

    def _dead_letter(self, record: InputRecord, bad: BadEventError) -> OutputRecord:
        self.metrics.count_dead_letter()
        headers = [
            *record.headers,
            (ERROR_REASON_HEADER, bad.reason.encode()),
            (ERROR_CLASS_HEADER, bad.error_class.encode()),
            (SOURCE_TOPIC_HEADER, record.topic.encode()),
            (SOURCE_PARTITION_HEADER, str(record.partition).encode()),
            (SOURCE_OFFSET_HEADER, str(record.offset).encode()),
        ]
        return OutputRecord(self.settings.dead_letter_topic, record.key, record.value, headers)

    def _metrics_record(self, now: float) -> OutputRecord:
        model = self.model
        record = self.metrics.record(
            model_version=model.n_updates if model else 0,
            learning_rate=model.learning_rate if model else self.settings.learning_rate,
            weight_norm=float(np.linalg.norm(model.weights)) if model else 0.0,
            lag=self.lag(self.positions),
            now=now,
        )
        self.last_window = record["window"]
        key = self.settings.model_name.encode()
        return OutputRecord(self.settings.metrics_topic, key, json.dumps(record).encode(), [])

    def snapshot_state(self) -> dict[str, Any]:
        assert self.model is not None and self.learner is not None
        return build_snapshot(
            self.settings.model_name,
            self.model,
            self.schema.names,
            self.metrics.state(),
            self.learner.pending_state(),
            self.positions,
        )

    def snapshot_record(self) -> OutputRecord | None:
        """The snapshot to publish at a checkpoint (None before the first valid event fixes a model)."""
        if self.model is None:
            return None
        state = self.snapshot_state()
        self._snapshot_version = state["version"]
        return OutputRecord(
            self.settings.model_topic, self.settings.model_name.encode(), json.dumps(state).encode(), []
        )

    def _restore(self, snapshot: dict[str, Any], now: float) -> None:
        """Continue from a snapshot: model, metrics, pending batch and input positions."""
        check_snapshot(snapshot, self.settings)
        self.schema = FeatureSchema(
            tuple(snapshot["feature_names"]) if snapshot["feature_names"] is not None else None,
            int(snapshot["n_features"]),
        )
        assert self.schema.n_features is not None
        self._build(self.schema.n_features)
        assert self.model is not None and self.learner is not None
        try:
            self.model.load_dict(neuron_state(snapshot, self.settings))
            self.learner.restore_pending(snapshot.get("pending"), ref_from_json, now)
        except (KeyError, TypeError, ValueError) as error:
            raise SnapshotError(f"snapshot of {snapshot.get('model')!r} is unreadable: {error}") from error
        self.metrics.restore(snapshot["metrics_state"])
        self.positions = snapshot_positions(snapshot)
        self._snapshot_version = self.model.n_updates
