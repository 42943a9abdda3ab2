"""The pure step: raw input records in, records to publish out. No Kafka client here.

decode + validate -> score with the weights from before each event (or batch) -> learn from the
labelled ones -> predictions, dead letters, metrics and snapshots to emit. The processor also owns
the input position: the next offset of every partition it has consumed, which its snapshots record,
so a restored model resumes exactly where its state ends.

Whatever cannot be decoded, scored, learned from or published becomes a dead letter, before it can
touch the model: an undecodable value, a feature a float64 cannot hold, a row whose logit or step
would not be finite, an event whose prediction would not fit the predictions topic, a first event
whose features would make a snapshot too large for the model topic.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from stream_neuron.config import Settings
from stream_neuron.dead_letters import DeadLetters
from stream_neuron.decode import BadEventError, Event, decode_event, diagnose, is_answer
from stream_neuron.learner import MiniBatchLearner, PerEventLearner, Scored
from stream_neuron.metrics import MetricsTracker
from stream_neuron.neuron import MODEL_KINDS, LinearNeuron
from stream_neuron.neuron.linear import ACCEPTED, REFUSAL_REASONS, REFUSED_SCORE
from stream_neuron.neuron.numeric import robust_norm
from stream_neuron.outputs import OutputLimits, PredictionBudget, prediction_records
from stream_neuron.pending import PendingStore, Question, answers_counted, question_of
from stream_neuron.records import Emitted, EventRef, InputRecord, OutputRecord
from stream_neuron.schema import FeatureSchema, feature_bound, label_of
from stream_neuron.snapshots import (
    SnapshotError,
    build_snapshot,
    check_snapshot,
    neuron_state,
    ref_from_json,
    snapshot_fit_problem,
    snapshot_positions,
    unfixed_snapshot,
)

LagSource = Callable[[Mapping[tuple[str, int], int]], int | None]
"""Records behind the end of the input, given the processor's positions (``None``: unknown)."""

REFUSAL_CLASSES = {REFUSED_SCORE: "NonFiniteScore"}


class Processor:
    """One model's streaming state: schema, neuron, update policy, metrics and input position."""

    def __init__(
        self,
        settings: Settings,
        now: float,
        lag: LagSource = lambda positions: None,
        limits: OutputLimits | None = None,
        learning: bool = True,
    ) -> None:
        self.settings = settings
        # A scorer's (``learning=False``) refuses what run refuses; it publishes predictions only.
        self.learning = learning
        self.kind = MODEL_KINDS[settings.model]
        self.limits = limits or OutputLimits()
        self.schema = FeatureSchema(settings.feature_names)
        self.model: LinearNeuron | None = None
        self.learner: PerEventLearner[EventRef] | MiniBatchLearner[EventRef] | None = None
        self.metrics = MetricsTracker(self.kind.probabilistic, window_started=now)
        letters = DeadLetters(settings.dead_letter_topic, self.limits.dead_letters, self.metrics)
        self._dead_letter, self.replacement = letters.letter, letters.replacement
        self.positions: dict[tuple[str, int], int] = {}
        self.lag = lag
        self.last_window: dict[str, Any] | None = None  # the window of the newest metrics record
        self._snapshot_version = 0
        self._last_step = now
        # Input records whose outputs the broker refused inside a transaction, left out when replayed:
        # (reason, bare), bare when what was refused was the dead letter itself.
        self.quarantine: dict[tuple[str, int, int], tuple[str, bool]] = {}
        self._prediction_fits = PredictionBudget(self.limits.predictions, settings.predictions_topic)
        self.feature_bound, self.feature_bound_reason = feature_bound(settings.max_feature_abs)
        self._rows = np.empty((0, 0))
        self._labels = np.empty(0)
        self.pending: PendingStore | None = None
        if settings.delayed_labels and learning:
            self.pending = PendingStore(settings.label_window, int(settings.label_window_s * 1000))
        # Before the first event fixes the features, what every snapshot holds (the pending questions
        # and mini-batch rows) must fit already: else every event would be refused.
        self._check_snapshot_fits(self.schema, SnapshotError)
        if self.schema.n_features is not None:
            self._build(self.schema.n_features)

    @classmethod
    def restored(
        cls,
        settings: Settings,
        snapshot: dict[str, Any] | None,
        now: float,
        lag: LagSource,
        limits: OutputLimits | None = None,
        learning: bool = True,
    ) -> Processor:
        """A processor continuing from ``snapshot`` (a new model when it is ``None``)."""
        processor = cls(settings, now, lag, limits, learning)
        if snapshot is not None:
            processor._restore(snapshot, now)
        return processor

    def _build(self, n_features: int) -> None:
        self.model = self.settings.new_model(n_features)
        if self.settings.mode == "minibatch":
            self.learner = MiniBatchLearner(
                self.model, self.settings.batch_size, self.settings.linger_ms / 1000
            )
        else:
            self.learner = PerEventLearner(self.model)

    def _check_snapshot_fits(self, schema: FeatureSchema, error: Callable[[str], Exception]) -> None:
        problem = snapshot_fit_problem(self.settings, schema.n_features or 0, schema.names, self.limits.model)
        if problem is not None:
            raise error(problem)

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
            if self.metrics.window.events >= every and self.learning:
                out.metrics.append(self._metrics_record(now))
        out.extend(self.tick(now))
        return out

    def _process_chunk(self, records: Sequence[InputRecord], now: float, out: Emitted) -> None:
        rows, labels = self._buffers(len(records)) if self.model is not None else (self._rows, self._labels)
        refs: list[EventRef] = []
        max_bytes, kind = self.settings.max_record_bytes, self.kind
        quarantine, pending = self.quarantine, self.pending
        delayed = pending is not None
        for record in records:
            self.positions[(record.topic, record.partition)] = record.offset + 1
            if quarantine and (record.topic, record.partition, record.offset) in quarantine:
                reason, bare = quarantine[(record.topic, record.partition, record.offset)]
                out.dead_letters.append(self._dead_letter(record, reason, "RefusedByBroker", bare=bare))
                continue
            try:
                event = decode_event(record.value, max_bytes, delayed)
                label = label_of(event.get("label"), kind)  # checked as run checks it; a scorer drops it
                label = label if self.learning else math.nan
                event_id = event.get("id")
                if event_id is not None and type(event_id) is not str:
                    event_id = str(event_id)
                if delayed:
                    assert pending is not None
                    pending.advance(record.timestamp_ms)
                    if is_answer(event):
                        assert event_id is not None
                        question = pending.answer(event_id)
                        if question is None:
                            why = pending.why_unmatched(event_id)
                            out.dead_letters.append(self._dead_letter(record, *why))
                        if question is not None:
                            n = len(refs)
                            rows[n], labels[n] = question.row, label
                            where = (record.topic, record.partition, record.offset)
                            refs.append(EventRef(*where, record.key, event_id, record, question))
                        continue
                self._prediction_fits(event_id, record.key)
                if self.model is None:  # the first valid event fixes the feature order
                    self._fix_schema(event)
                    rows, labels = self._buffers(len(records))
                n = len(refs)
                self.schema.fill_row(event, rows[n])
                labels[n] = label
            except BadEventError as bad:
                out.dead_letters.append(self._dead_letter(record, bad.reason, bad.error_class))
                continue
            asked = None
            if delayed and event_id is not None and label != label:
                assert pending is not None
                asked = Question(
                    record.topic, record.partition, record.offset, record.timestamp_ms, rows[n].copy()
                )
                if not pending.ask(event_id, asked):
                    asked = None  # the id is pending already: scored, not kept
            refs.append(
                EventRef(record.topic, record.partition, record.offset, record.key, event_id, record, asked)
            )
        if refs and not np.isfinite(rows[: len(refs)]).all():
            finite = np.asarray(np.isfinite(rows[: len(refs)]).all(axis=1))
            refs = self._drop_rows(finite, rows, labels, refs, out, None)
        bound = self.feature_bound
        if refs and np.abs(rows[: len(refs)]).max() > bound:
            reason = self.feature_bound_reason
            within = np.asarray((np.abs(rows[: len(refs)]) <= bound).all(axis=1))
            refs = self._drop_rows(within, rows, labels, refs, out, reason)
        if refs and self.learner is not None:
            for scored in self.learner.submit(rows[: len(refs)], labels[: len(refs)], refs, now):
                self._emit(scored, out)

    def _fix_schema(self, event: Event) -> None:
        schema = FeatureSchema.proposed_by(event)
        assert schema.n_features is not None
        self._check_snapshot_fits(schema, _too_many_features)
        self.schema = schema
        self._build(schema.n_features)

    def _drop_rows(
        self,
        keep: np.ndarray,
        rows: np.ndarray,
        labels: np.ndarray,
        refs: list[EventRef],
        out: Emitted,
        reason: str | None,
    ) -> list[EventRef]:
        """The rows not to ``keep`` become dead letters, with ``reason`` (out of range), or else the
        reason a slow parse finds (a JSON 1e400 reads as infinity); the rest close up in order."""
        kept: list[EventRef] = []
        for i, ref in enumerate(refs):
            if keep[i]:
                rows[len(kept)], labels[len(kept)] = rows[i], labels[i]
                kept.append(ref)
                continue
            assert ref.record is not None and ref.record.value is not None
            self._forget_question(ref, labels[i])
            if reason is None:
                bad = diagnose(ref.record.value)
                out.dead_letters.append(self._dead_letter(ref.record, bad.reason, bad.error_class))
            else:
                out.dead_letters.append(self._dead_letter(ref.record, reason, "FeatureOutOfRange"))
        return kept

    def _forget_question(self, ref: EventRef, label: float) -> None:
        """A question dead-lettered before it was scored is not kept waiting for its answer."""
        if ref.asked is not None and label != label and self.pending is not None:
            self.pending.discard(ref.event_id, ref.asked)

    def tick(self, now: float) -> Emitted:
        """Time-driven work without new input: a lingering mini-batch, the metrics interval."""
        self._last_step = now
        out = Emitted()
        if self.learner is not None:
            for chunk in self.learner.due(now):
                self._emit(chunk, out)
        metrics = self.metrics
        if self.learning and metrics.due(self.settings.metrics_every, self.settings.metrics_interval_s, now):
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
        if self.learning:
            out.metrics.append(self._metrics_record(now))
        return out

    def _emit(self, chunk: Scored[EventRef], out: Emitted) -> None:
        if chunk.refused.any():
            chunk = self._refused_to_dead_letters(chunk, out)
        model = self.model
        assert model is not None
        if self.pending is not None:
            chunk = answers_counted(chunk, model, self.metrics)
        labelled = int(np.count_nonzero(chunk.labels == chunk.labels))
        if labelled:
            loss, correct = model.prequential_terms(chunk.scores, chunk.outputs, chunk.labels)
            self.metrics.add_terms(labelled, loss, correct)
        if not self.settings.publish_predictions:
            return  # scorers serve them; the metrics above still count them
        out.predictions += prediction_records(
            self.settings.predictions_topic,
            chunk.refs,
            model.predicted_labels(chunk.outputs).tolist(),
            chunk.outputs.tolist() if model.probabilistic else None,
            chunk.scores.tolist(),
            chunk.versions.tolist(),
            chunk.labels.tolist(),
        )

    def _refused_to_dead_letters(self, chunk: Scored[EventRef], out: Emitted) -> Scored[EventRef]:
        """Rows the model refused (their logit or step would not be finite) become dead letters; the
        chunk keeps the others."""
        keep = chunk.refused == ACCEPTED
        for i in np.flatnonzero(~keep):
            ref, code = chunk.refs[i], int(chunk.refused[i])
            self._forget_question(ref, chunk.labels[i])
            record = ref.record or InputRecord(ref.topic, ref.partition, ref.offset, ref.key, None, [])
            reason = REFUSAL_REASONS[code]
            out.dead_letters.append(
                self._dead_letter(record, reason, REFUSAL_CLASSES.get(code, "NonFiniteUpdate"))
            )
        return chunk.select(keep)

    def _metrics_record(self, now: float) -> OutputRecord:
        model = self.model
        record = self.metrics.record(
            model_version=model.n_updates if model else 0,
            learning_rate=model.learning_rate if model else self.settings.learning_rate,
            weight_norm=robust_norm(model.weights) if model else 0.0,
            lag=self.lag(self.positions),
            now=now,
            labels=None if self.pending is None else self.pending.metrics(),
        )
        self.last_window = record["window"]
        key = self.settings.model_name.encode()
        return OutputRecord(
            self.settings.metrics_topic, key, json.dumps(record, allow_nan=False).encode(), []
        )

    def snapshot_state(self) -> dict[str, Any]:
        assert self.model is not None and self.learner is not None
        return build_snapshot(
            self.settings.model_name,
            self.model,
            self.schema.names,
            self.metrics.state(),
            self.learner.pending_state(),
            self.positions,
            None if self.pending is None else self.pending.state(),
        )

    def snapshot_record(self, unfixed: bool = False) -> OutputRecord | None:
        """The snapshot to publish at a checkpoint. Before the first valid event fixes a model, a snapshot
        without features once input was read (only bad events so far), or with ``unfixed`` (a new model
        the operator chose): the group's offsets never run ahead of a snapshot."""
        if self.model is None:
            if not (unfixed or self.positions):
                return None
            settings = self.settings
            state = unfixed_snapshot(
                settings.model_name, settings.model, settings.learning_rate, self.positions
            )
        else:
            state = self.snapshot_state()
        self._snapshot_version = state["version"]
        value = json.dumps(state, allow_nan=False).encode()
        return OutputRecord(self.settings.model_topic, self.settings.model_name.encode(), value, [])

    def _restore(self, snapshot: dict[str, Any], now: float) -> None:
        """Continue from a snapshot: model, metrics, pending batch and input positions."""
        snapshot = check_snapshot(snapshot, self.settings)
        n_features = int(snapshot["n_features"])
        if n_features == 0:  # a new model whose first event is still to come
            self.positions = snapshot_positions(snapshot)
            return
        names = snapshot["feature_names"]
        self.schema = FeatureSchema(tuple(names) if names is not None else None, n_features)
        self._check_snapshot_fits(self.schema, SnapshotError)
        self._build(n_features)
        assert self.model is not None and self.learner is not None
        try:
            self.model.load_dict(neuron_state(snapshot, self.settings))
            self.learner.restore_pending(snapshot.get("pending"), ref_from_json, now)
            self.metrics.restore(snapshot["metrics_state"])
        except (KeyError, TypeError, ValueError) as error:
            raise SnapshotError(f"snapshot of {snapshot.get('model')!r} is unreadable: {error}") from error
        self.positions = snapshot_positions(snapshot)
        self._snapshot_version = self.model.n_updates
        if self.pending is not None:
            try:
                self.pending.restore(snapshot.get("questions"))
            except (KeyError, TypeError, ValueError) as error:
                raise SnapshotError(f"the snapshot's pending questions are unreadable: {error}") from error

    def questions_to_read(self) -> dict[tuple[str, int], tuple[int, int]]:
        """Delayed labels after a restore: the input offsets to read back to rebuild the questions."""
        return {} if self.pending is None else self.pending.to_read()

    def rebuild_questions(self, records: Sequence[InputRecord]) -> int:
        """The restored snapshot's pending questions from their input ``records`` (none is scored or
        learned from again); how many could not be rebuilt (their records are gone)."""
        assert self.pending is not None
        return self.pending.rebuild(
            records, lambda record: question_of(record, self.schema, self.settings.max_record_bytes)
        )


def _too_many_features(message: str) -> BadEventError:
    return BadEventError(f"this first event cannot fix the features: {message}", "TooManyFeatures")
