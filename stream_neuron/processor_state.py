"""The processor's state as a snapshot, and back: the model (or every candidate and the champion),
the metrics, the pending mini-batch and questions, the input positions. A snapshot is checked whole
before anything is built from it (``snapshots.check_snapshot``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from stream_neuron.candidates import Candidates
from stream_neuron.config import Settings
from stream_neuron.feature_encoding import (
    Encoder,
    OpenVocabulary,
    feature_encoder,
    features_state,
)
from stream_neuron.feature_hashing import FeatureHashing
from stream_neuron.feature_values import ValueBound
from stream_neuron.metrics import MetricsTracker
from stream_neuron.neuron import LinearNeuron
from stream_neuron.outputs import OutputLimits
from stream_neuron.pending import PendingStore, question_of
from stream_neuron.records import InputRecord, OutputRecord
from stream_neuron.row_sink import DenseSink, Sink, SparseSink
from stream_neuron.schema import FeatureSchema
from stream_neuron.snapshots import (
    SnapshotError,
    build_snapshot,
    check_snapshot,
    neuron_state,
    ref_from_json,
    snapshot_json,
    snapshot_positions,
    unfixed_snapshot,
)


class ProcessorState:
    """The snapshot side of :class:`~stream_neuron.processor.Processor` (a mixin: the attributes below
    are the processor's)."""

    settings: Settings
    schema: FeatureSchema
    encoder: Encoder | None
    value_bound: ValueBound
    sink: Sink
    models: Candidates | None
    metrics: MetricsTracker
    pending: PendingStore | None
    positions: dict[tuple[str, int], int]
    limits: OutputLimits
    learning: bool
    _snapshot_version: int

    @property
    def model(self) -> LinearNeuron | None:
        raise NotImplementedError

    def _build(self, n_features: int) -> None:
        raise NotImplementedError

    def _check_snapshot_fits(self, schema: FeatureSchema, error: Callable[[str], Exception]) -> None:
        raise NotImplementedError

    @property
    def snapshot_version(self) -> int:
        """The model version of the newest snapshot made (or restored)."""
        return self._snapshot_version

    def snapshot_state(self) -> dict[str, Any]:
        models, model = self.models, self.model
        assert models is not None and model is not None
        encoder = self.encoder
        names = tuple(encoder.names) if isinstance(encoder, OpenVocabulary) else self.schema.names
        state = build_snapshot(
            self.settings.model_name,
            model,
            names,
            self.metrics.state(),
            models.learner.pending_state(),
            self.positions,
            None if self.pending is None else self.pending.state(),
        )
        if models.racing:
            state.update(models.state())
        features = features_state(encoder)
        if features is not None:
            state["features"] = features
        drift = self.metrics.drift_state()
        if drift is not None:
            state["drift"] = drift
        return state

    def snapshot_record(self, unfixed: bool = False) -> OutputRecord | None:
        """The snapshot to publish at a checkpoint. Before the first valid event fixes a model, a snapshot
        without features once input was read (only bad events so far), or with ``unfixed`` (a new model
        the operator chose): the group's offsets never run ahead of a snapshot."""
        if self.model is None:
            if not (unfixed or self.positions):
                return None
            settings = self.settings
            state = unfixed_snapshot(
                settings.model_name, settings.model, settings.learning_rate[0], self.positions
            )
        else:
            state = self.snapshot_state()
        self._snapshot_version = state["version"]
        value = snapshot_json(state)
        return OutputRecord(self.settings.model_topic, self.settings.model_name.encode(), value, [])

    def _restore(self, snapshot: dict[str, Any], now: float) -> None:
        """Continue from a snapshot: the model (every candidate), metrics, pending batch, positions."""
        settings = self.settings
        snapshot = check_snapshot(snapshot, settings)
        n_features = int(snapshot["n_features"])
        names = snapshot["feature_names"]
        if self.encoder is not None:
            self._restore_encoder(snapshot)
        elif n_features == 0:  # a new model whose first event is still to come
            self.positions = snapshot_positions(snapshot)
            return
        else:
            self.schema = FeatureSchema(tuple(names) if names is not None else None, n_features)
            self.sink = DenseSink(self.schema)
            self._check_snapshot_fits(self.schema, SnapshotError)
        self._build(n_features)
        models = self.models
        assert models is not None
        # A scorer serves the champion, which a racing snapshot holds at its top level.
        racing = snapshot.get("candidates") is not None and self.learning
        if racing != models.racing:
            raise SnapshotError(
                f"snapshot of model {settings.model_name!r} {'races' if racing else 'does not race'} "
                f"candidates but --learning-rate names {len(settings.learning_rate)} rate(s): keep them, or "
                "use another --model-name (or --on-bad-snapshot new-model)"
            )
        try:
            if racing:
                models.restore(
                    {
                        "candidates": [
                            dict(entry, model=_candidate_state(entry["model"], settings, rate))
                            for entry, rate in zip(
                                snapshot["candidates"], settings.learning_rate, strict=False
                            )
                        ],
                        "champion": snapshot["champion"],
                    }
                )
            else:
                models.model.load_dict(neuron_state(snapshot, settings))
            models.restore_pending(snapshot.get("pending"), ref_from_json, now)
            self.metrics.restore(snapshot["metrics_state"])
            self.metrics.restore_drift(snapshot.get("drift"))
        except (KeyError, TypeError, ValueError) as error:
            raise SnapshotError(f"snapshot of {snapshot.get('model')!r} is unreadable: {error}") from error
        self.positions = snapshot_positions(snapshot)
        self._snapshot_version = models.model.n_updates
        if self.pending is not None:
            try:
                self.pending.restore(snapshot.get("questions"))
            except (KeyError, TypeError, ValueError) as error:
                raise SnapshotError(f"the snapshot's pending questions are unreadable: {error}") from error

    def _restore_encoder(self, snapshot: dict[str, Any]) -> None:
        """The open vocabulary, or the hashed buckets in use, of ``snapshot``: the sink encodes with it."""
        try:
            if self.settings.features == "open":
                names = snapshot["feature_names"] or []
                if len(names) != int(snapshot["n_features"]):
                    raise ValueError(f"{len(names)} feature names for {snapshot['n_features']} features")
                self.encoder = feature_encoder(self.settings, list(names), self.value_bound)
            else:
                self.encoder = feature_encoder(self.settings, bound=self.value_bound)
                assert isinstance(self.encoder, FeatureHashing)
                self.encoder.use_bitmap(snapshot["features"].get("in_use"))
        except (TypeError, ValueError, IndexError) as error:
            raise SnapshotError(f"snapshot of {snapshot.get('model')!r} is unreadable: {error}") from error
        assert self.encoder is not None
        self.sink = SparseSink(self.encoder, self.learning)

    def questions_to_read(self) -> dict[tuple[str, int], tuple[int, int]]:
        """Delayed labels after a restore: the input offsets to read back to rebuild the questions."""
        return {} if self.pending is None else self.pending.to_read()

    def rebuild_questions(self, records: Sequence[InputRecord]) -> int:
        """The restored snapshot's pending questions from their input ``records`` (none is scored or
        learned from again); how many could not be rebuilt (their records are gone)."""
        assert self.pending is not None
        model = self.model
        assert model is not None
        maker = DenseSink(self.schema) if self.encoder is None else SparseSink(self.encoder, grow=False)
        max_bytes, named = self.settings.max_record_bytes, self.encoder is not None
        return self.pending.rebuild(
            records, lambda record: question_of(record, maker, max_bytes, model.n_features, named)
        )


def _candidate_state(state: dict[str, Any], settings: Settings, rate: float) -> dict[str, Any]:
    """A candidate's model state from a snapshot, with the schedule and the rule of the settings (the
    operator's current intent, as for a single model), its optimizer state kept when its rule is."""
    snapshot_like = {
        "kind": state["kind"], "n_features": state["n_features"], "weights": state["weights"],
        "bias": state["bias"], "scaler_state": state.get("scaler"), "sparse": state.get("sparse"),
        "schedule_state": {
            "n_updates": state["n_updates"], "rule": state.get("rule"), "rule_state": state.get("rule_state"),
        },
    }  # fmt: skip
    return neuron_state(snapshot_like, settings, rate)
