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
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from stream_neuron.candidates import Candidates
from stream_neuron.config import Settings
from stream_neuron.dead_letters import DeadLetters
from stream_neuron.decode import BadEventError, Event, decode_event, diagnose, id_text, is_answer
from stream_neuron.drift import DriftWatch
from stream_neuron.event_readers import event_reader
from stream_neuron.feature_encoding import feature_encoder
from stream_neuron.feature_values import ValueBound
from stream_neuron.learner import MiniBatchLearner, PerEventLearner, Scored
from stream_neuron.metrics import MetricsTracker
from stream_neuron.neuron import MODEL_KINDS, LinearNeuron
from stream_neuron.neuron.refusals import ACCEPTED, REFUSAL_REASONS, REFUSED_SCORE
from stream_neuron.outputs import OutputLimits, PredictionBudget, prediction_records
from stream_neuron.pending import PendingStore, Question, answers_counted
from stream_neuron.processor_state import ProcessorState
from stream_neuron.records import Emitted, EventRef, InputRecord, OutputRecord
from stream_neuron.row_sink import DenseSink, Sink, SparseSink
from stream_neuron.schema import FeatureSchema, feature_bound, label_of
from stream_neuron.snapshots import (
    SnapshotError,
    pending_entries_room,
    snapshot_fit_problem,
    sparse_feature_budget,
)

LagSource = Callable[[Mapping[tuple[str, int], int]], int | None]
"""Records behind the end of the input, given the processor's positions (``None``: unknown)."""

REFUSAL_CLASSES = {REFUSED_SCORE: "NonFiniteScore"}


class Processor(ProcessorState):
    """One model's streaming state: schema, neuron (or candidates), update policy, metrics and input
    position. Its snapshots and their restoring: ``processor_state.py``."""

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
        self.models: Candidates | None = None  # the model, or the candidates racing (their champion)
        detector = settings.new_detector() if learning else None
        watch = None if detector is None else DriftWatch(settings.drift_detector, detector)
        self.metrics = MetricsTracker(self.kind.probabilistic, window_started=now, drift=watch)
        letters = DeadLetters(settings.dead_letter_topic, self.limits.dead_letters, self.metrics)
        self._dead_letter, self.replacement = letters.letter, letters.replacement
        self.positions: dict[tuple[str, int], int] = {}
        self.lag = lag
        self.last_window: dict[str, Any] | None = None  # the window of the newest metrics record
        self.last_diverging = False  # ... its diverging flag
        self.last_record_at: float | None = None  # ... and when it was made (seconds since the epoch)
        self.last_candidates: list[dict[str, Any]] | None = None  # ... and its candidates, racing
        self._snapshot_version = 0
        self._last_step = now
        # Input records whose outputs the broker refused inside a transaction, left out when replayed:
        # (reason, bare), bare when what was refused was the dead letter itself.
        self.quarantine: dict[tuple[str, int, int], tuple[str, bool]] = {}
        self._prediction_fits = PredictionBudget(self.limits.predictions, settings.predictions_topic)
        self.value_bound = ValueBound(*feature_bound(settings.max_feature_abs))
        self.encoder = feature_encoder(settings, bound=self.value_bound)
        self.sink: Sink = (
            DenseSink(self.schema) if self.encoder is None else SparseSink(self.encoder, learning)
        )
        self._labels = np.empty(0)
        self.pending: PendingStore | None = None
        if settings.delayed_labels and learning:
            self.pending = PendingStore(settings.label_window, int(settings.label_window_s * 1000))
        self._reader = (  # the compiled read of a poll (not of questions and answers)
            event_reader(
                self.kind,
                settings.max_record_bytes,
                learning,
                self._prediction_fits,
                self._dead_letter,
                named=self.encoder is not None,
            )
            if self.pending is None
            else None
        )
        # Before the first event fixes the features, what every snapshot holds (the pending questions
        # and mini-batch rows) must fit already: else every event would be refused.
        self._check_snapshot_fits(self.schema, SnapshotError)
        if isinstance(self.sink, SparseSink):
            self._build(self.sink.n_features)
        elif self.schema.n_features is not None:
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

    @property
    def model(self) -> LinearNeuron | None:
        """The model whose predictions are published (the champion, when candidates race)."""
        return None if self.models is None else self.models.model

    def _build(self, n_features: int) -> None:
        settings = self.settings

        def learner(model: LinearNeuron) -> PerEventLearner[EventRef] | MiniBatchLearner[EventRef]:
            if settings.mode == "minibatch":
                room = pending_entries_room(settings, self.limits.model) if model.sparse else None
                return MiniBatchLearner(model, settings.batch_size, settings.linger_ms / 1000, room)
            return PerEventLearner(model)

        models = [settings.new_model(n_features, rate) for rate in settings.learning_rate]
        if self.encoder is not None:
            self.encoder.limit(sparse_feature_budget(settings, self.limits.model))
        self.models = Candidates(
            models, learner, settings.champion_window, self._last_step, delayed=self.pending is not None
        )

    def _check_snapshot_fits(self, schema: FeatureSchema, error: Callable[[str], Exception]) -> None:
        problem = snapshot_fit_problem(self.settings, schema.n_features or 0, schema.names, self.limits.model)
        if problem is not None:
            raise error(problem)

    def _start_chunk(self, n_records: int) -> np.ndarray:
        """The chunk's label buffer, the sink made ready for ``n_records`` rows."""
        capacity = self.settings.poll_max_records
        self.sink.start(n_records, 0 if self.model is None else self.model.n_features, capacity)
        if self._labels.shape[0] < n_records:
            self._labels = np.empty(max(n_records, capacity))
        return self._labels

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
        labels, sink = self._start_chunk(len(records)), self.sink
        reader = self._reader
        if reader is not None and self.models is not None and not self.quarantine:
            self._score_chunk(
                reader.read(records, sink, labels, self.positions, out.dead_letters), labels, now, out
            )
            return
        refs: list[EventRef] = []
        max_bytes, kind, named = self.settings.max_record_bytes, self.kind, self.encoder is not None
        quarantine, pending = self.quarantine, self.pending
        delayed = pending is not None
        for record in records:
            self.positions[(record.topic, record.partition)] = record.offset + 1
            if quarantine and (record.topic, record.partition, record.offset) in quarantine:
                reason, bare = quarantine[(record.topic, record.partition, record.offset)]
                out.dead_letters.append(self._dead_letter(record, reason, "RefusedByBroker", bare=bare))
                continue
            try:
                event = decode_event(record.value, max_bytes, delayed, named)
                label = label_of(event.get("label"), kind)  # checked as run checks it; a scorer drops it
                label = label if self.learning else math.nan
                event_id = id_text(event)
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
                            sink.put_row(n, question.row)
                            labels[n] = label
                            where = (record.topic, record.partition, record.offset)
                            refs.append(EventRef(*where, record.key, event_id, record, question))
                        continue
                self._prediction_fits(event_id, record.key)
                if self.models is None:  # the first valid event fixes the feature order
                    self._fix_schema(event)
                    labels = self._start_chunk(len(records))
                n = len(refs)
                sink.put_event(n, event)
                labels[n] = label
            except BadEventError as bad:
                out.dead_letters.append(self._dead_letter(record, bad.reason, bad.error_class))
                continue
            asked = None
            if delayed and event_id is not None and label != label:
                assert pending is not None
                asked = Question(
                    record.topic, record.partition, record.offset, record.timestamp_ms, sink.row(n)
                )
                if not pending.ask(event_id, asked):
                    asked = None  # the id is pending already: scored, not kept
            refs.append(
                EventRef(record.topic, record.partition, record.offset, record.key, event_id, record, asked)
            )
        self._score_chunk(refs, labels, now, out)

    def _score_chunk(self, refs: list[EventRef], labels: np.ndarray, now: float, out: Emitted) -> None:
        """The chunk's rows (the first ``len(refs)`` of the sink) screened, scored and learned."""
        sink = self.sink
        if refs:
            finite, within = sink.within(len(refs), self.value_bound.limit)
            if finite is not None or within is not None:
                refs = self._drop_rows(finite, within, labels, refs, out)
        if refs and self.models is not None:
            if isinstance(sink, SparseSink):
                self.models.grow(sink.n_features)  # an open vocabulary's new names, at weight 0
            for scored in self.models.submit(sink.rows(len(refs)), labels[: len(refs)], refs, now):
                self._emit(scored, out)

    def _fix_schema(self, event: Event) -> None:
        schema = FeatureSchema.proposed_by(event)
        assert schema.n_features is not None and isinstance(self.sink, DenseSink)
        self._check_snapshot_fits(schema, _too_many_features)
        self.schema = self.sink.schema = schema
        self._build(schema.n_features)

    def _drop_rows(
        self,
        finite: np.ndarray | None,
        within: np.ndarray | None,
        labels: np.ndarray,
        refs: list[EventRef],
        out: Emitted,
    ) -> list[EventRef]:
        """Rows not ``finite`` become dead letters with the reason a slow parse finds (a JSON 1e400
        reads as infinity), rows not ``within`` the feature bound with its reason; the rest close up in
        order."""
        keep = np.ones(len(refs), dtype=np.bool_)
        kept: list[EventRef] = []
        for i, ref in enumerate(refs):
            if (finite is None or finite[i]) and (within is None or within[i]):
                labels[len(kept)] = labels[i]
                kept.append(ref)
                continue
            keep[i] = False
            assert ref.record is not None and ref.record.value is not None
            self._forget_question(ref, labels[i])
            if finite is not None and not finite[i]:
                bad = diagnose(ref.record.value, named=self.encoder is not None)
                out.dead_letters.append(self._dead_letter(ref.record, bad.reason, bad.error_class))
            else:
                reason = self.value_bound.reason
                out.dead_letters.append(self._dead_letter(ref.record, reason, "FeatureOutOfRange"))
        self.sink.keep(keep, len(refs))
        return kept

    def _forget_question(self, ref: EventRef, label: float) -> None:
        """A question dead-lettered before it was scored is not kept waiting for its answer."""
        if ref.asked is not None and label != label and self.pending is not None:
            self.pending.discard(ref.event_id, ref.asked)

    def tick(self, now: float) -> Emitted:
        """Time-driven work without new input: a lingering mini-batch, the metrics interval."""
        self._last_step = now
        out = Emitted()
        if self.models is not None:
            for chunk in self.models.due(now):
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
        if self.models is not None:
            for chunk in self.models.drain():
                self._emit(chunk, out)
        if self.learning:
            out.metrics.append(self._metrics_record(now))
        return out

    def _emit(self, chunk: Scored[EventRef], out: Emitted) -> None:
        models, model = self.models, self.model
        assert models is not None and model is not None
        if chunk.refused.any():
            chunk = self._refused_to_dead_letters(chunk, out)
        if self.pending is not None:
            chunk = answers_counted(chunk, model, self.metrics, self._watch_errors)
        labelled = int(np.count_nonzero(chunk.labels == chunk.labels))
        if labelled:
            loss, correct = model.prequential_terms(chunk.scores, chunk.outputs, chunk.labels)
            self.metrics.add_terms(labelled, loss, correct)
            if self.metrics.drift is not None:
                self._watch_errors(model.right_answers(chunk.outputs, chunk.labels))
        if not self.settings.publish_predictions:
            return  # scorers serve them; the metrics above still count them
        out.predictions += prediction_records(
            self.settings.predictions_topic,
            chunk.refs,
            model.predicted_labels(chunk.outputs),
            chunk.outputs if model.probabilistic else None,
            chunk.scores,
            chunk.versions,
            chunk.labels,
            None if chunk.champions is None else models.published_by(chunk.champions),
        )

    def _watch_errors(self, right: NDArray[np.bool_]) -> None:
        """The drift detector's next errors; a detection restarts the candidates' race when asked."""
        if self.metrics.add_errors(right) and self.settings.on_drift == "reset-champion":
            assert self.models is not None
            self.models.restart_race()

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
            learning_rate=model.learning_rate if model else self.settings.learning_rate[0],
            weight_norm=model.weight_norm() if model else 0.0,
            lag=self.lag(self.positions),
            now=now,
            labels=None if self.pending is None else self.pending.metrics(),
        )
        if self.models is not None and self.models.racing:
            record["candidates"] = self.models.records(now)
            record["champion"] = self.models.champion.champion
            record["champion_changes"] = self.models.champion.changes
        self.last_window, self.last_diverging = record["window"], bool(record["diverging"])
        self.last_candidates = record.get("candidates")
        self.last_record_at = time.time()
        key = self.settings.model_name.encode()
        return OutputRecord(
            self.settings.metrics_topic, key, json.dumps(record, allow_nan=False).encode(), []
        )


def _too_many_features(message: str) -> BadEventError:
    return BadEventError(f"this first event cannot fix the features: {message}", "TooManyFeatures")
