"""``stream-neuron fit``: warm a model up from history by batch (or mini-batch) gradient descent, then
hand it to ``run``.

The history is read whole (``training_set.py``); with ``--standardize`` it is scaled by its own mean
and variance, which become the online scaler's state. Each learning rate given is fitted from zero
weights; the cost of every epoch goes to the terminal and to the metrics topic (so ``monitor`` and its
plot show it), and ``--plot`` draws all the rates' curves on one chart. The best rate's model is
written as a snapshot of ``--model-name``: the same contract as ``run``'s, with the offsets the fit
covered, so ``run`` starts right after them, continues scaling as if its scaler had seen those events,
and never learns an event twice.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from stream_neuron.champion import Champion
from stream_neuron.command_config import FitSettings
from stream_neuron.errors import OperatorError
from stream_neuron.feature_encoding import feature_encoder, features_state
from stream_neuron.kafka_io.admin import TopicNeed, ensure_topics, model_topic_spec
from stream_neuron.kafka_io.clients import open_tail, write_records
from stream_neuron.kafka_io.connection import Connection
from stream_neuron.kafka_io.ports import StartupError, TopicSpec, WriteError
from stream_neuron.kafka_io.probe import probe
from stream_neuron.kafka_io.snapshot_store import load_snapshot
from stream_neuron.neuron import MODEL_KINDS, LinearNeuron
from stream_neuron.neuron.descent import Descent, descend
from stream_neuron.neuron.scaler import OnlineStandardScaler
from stream_neuron.neuron.sparse_rows import SparseRows
from stream_neuron.neuron.sparse_state import SparseScaler
from stream_neuron.snapshots import build_snapshot, snapshot_json
from stream_neuron.tools.produce import ProgressBar
from stream_neuron.training_set import (
    TrainingSet,
    from_events,
    from_lines,
    from_values,
    scaled,
    scaled_sparse,
    sparse_scaler_of,
)

log = logging.getLogger("stream_neuron")

STALL_S = 60.0  # no new record for this long while the range is not read: the broker is gone


@dataclass
class Fitted:
    rate: float
    model: LinearNeuron
    descent: Descent


def _millis(text: str) -> int:
    if text.isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise OperatorError(f"not a time: {text!r} (ISO 8601, or epoch milliseconds)") from None
    return int((moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp() * 1000)


def _or(offset: int | None, end: int) -> int:
    """A time's offset; past the last record's time, the end."""
    return end if offset is None else offset


def _topic_values(settings: FitSettings, connection: Connection, covered: dict[tuple[str, int], int]) -> Any:
    """The values of the topic range, partition by partition in offset order; ``covered`` gets the end
    of each partition's range."""
    topic = settings.input_topic
    assert topic is not None
    tail = open_tail(connection, topic, f"{settings.model_name}-fit")
    try:
        firsts, ends = tail.first_offsets(), tail.end_offsets()
        starts = dict(firsts)
        if settings.from_offset is not None:
            starts = {p: max(settings.from_offset, firsts[p]) for p in tail.partitions}
        if settings.to_offset is not None:
            ends = {p: min(settings.to_offset, ends[p]) for p in tail.partitions}
        if settings.from_time is not None:
            found = tail.offsets_for_time(_millis(settings.from_time))
            starts = {p: _or(found[p], ends[p]) for p in tail.partitions}
        if settings.to_time is not None:
            found = tail.offsets_for_time(_millis(settings.to_time))
            ends = {p: _or(found[p], ends[p]) for p in tail.partitions}
        for p in tail.partitions:
            covered[(topic, p)] = max(ends[p], starts[p])
            if starts[p] >= ends[p]:
                continue
            tail.start_at({p: starts[p]})
            progress = time.monotonic()
            while (position := tail.position(p)) < ends[p]:
                for record in tail.poll(1000):
                    if record.offset < ends[p]:
                        yield record.value
                if tail.position(p) > position:
                    progress = time.monotonic()
                elif time.monotonic() - progress > STALL_S:
                    raise StartupError(
                        f"reading {topic}:{p} made no progress for {STALL_S:g} s at offset "
                        f"{position} of {ends[p]}: is the broker up?"
                    )
    finally:
        tail.close()


def load(settings: FitSettings) -> TrainingSet:
    kind = MODEL_KINDS[settings.model]
    if settings.file is not None:
        from stream_neuron.tools import sources

        shared = (kind, settings.feature_names, settings.max_memory_mb, settings.max_feature_abs)
        lines = sources.json_lines(settings.file)
        if lines is not None:  # one strict parse a line, as a record's value is read
            return from_lines(lines, *shared, feature_encoder(settings))
        events = sources.events_file(settings.file, settings.label_column)
        return from_events(events, *shared, feature_encoder(settings))
    covered: dict[tuple[str, int], int] = {}
    values = _topic_values(settings, settings.connection, covered)
    history = from_values(
        values, kind, settings.feature_names, settings.max_record_bytes, settings.max_memory_mb,
        settings.max_feature_abs, feature_encoder(settings),
    )  # fmt: skip
    history.offsets = covered
    return history


def read_unit(settings: FitSettings) -> str:
    """What a history is counted in: a topic's records, a JSON-lines file's lines, a CSV file's rows."""
    if settings.file is None:
        return "records"
    from stream_neuron.tools import sources

    return "lines" if settings.file.suffix in sources.JSON_LINES_SUFFIXES else "rows"


class _EpochLine:
    """The terminal's view of one rate's descent: a progress bar over the epochs with the latest cost."""

    def __init__(self, rate: float, epochs: int) -> None:
        self.rate, self.bar, self.detail = rate, ProgressBar(epochs, min_total=1), ""

    def __call__(self, epoch: int, cost: float, accuracy: float) -> None:
        self.detail = f"  lr {self.rate:g}  cost {cost:.6g}  accuracy {accuracy:.4f}"
        self.bar.update(epoch, self.detail)

    def finish(self, epochs: int) -> None:
        self.bar.finish(epochs, self.detail)


def fit_rates(
    settings: FitSettings, history: TrainingSet, X: np.ndarray | SparseRows, show: bool
) -> list[Fitted]:
    kind = MODEL_KINDS[settings.model]
    fitted = []
    sparse = history.encoder is not None
    for rate in settings.learning_rate:
        model = kind(
            history.n_features,
            rate,
            optimizer=settings.optimizer,
            l2=settings.l2,
            l1=settings.l1,
            sparse=sparse,
        )
        shown = _EpochLine(rate, settings.epochs) if show else None
        descent = descend(
            model, X, history.y, settings.epochs, settings.batch_size, settings.seed, settings.tol,
            shown if shown is not None else lambda epoch, cost, accuracy: None,
        )  # fmt: skip
        if shown is not None:
            shown.finish(descent.epochs)
        verdict = (
            f"diverged (cost {descent.costs[-1]:.6g} from {descent.initial:.6g})"
            if descent.diverged and descent.costs and not descent.overflowed
            else "diverged (its numbers left the floats)"
            if descent.diverged
            else f"cost {descent.costs[-1]:.6g}" + (", converged (--tol)" if descent.converged else "")
        )
        print(f"learning rate {rate:g}: {descent.epochs} epochs, {verdict}", file=sys.stderr)
        fitted.append(Fitted(rate, model, descent))
    return fitted


def best(fitted: list[Fitted]) -> Fitted:
    usable = [f for f in fitted if not f.descent.diverged and f.descent.costs]
    if not usable:
        raise OperatorError(
            "every learning rate diverged (the cost ended above the zero model's, or left the floats): "
            "try smaller rates, or --standardize"
        )
    return min(usable, key=lambda f: f.descent.costs[-1])


def metrics_records(settings: FitSettings, fitted: Fitted, n: int) -> list[bytes]:
    """The cost per epoch as metrics records (``monitor`` plots them against events seen)."""
    out = []
    steps_per_epoch = 1 if settings.batch_size is None else -(-n // settings.batch_size)
    for epoch, (cost, accuracy) in enumerate(
        zip(fitted.descent.costs, fitted.descent.accuracies, strict=True), 1
    ):
        loss = cost if fitted.model.probabilistic else None
        record = {
            "model_version": epoch * steps_per_epoch, "events": epoch * n, "labelled": epoch * n,
            "dead_letters": 0, "window": {"events": n, "log_loss": loss, "accuracy": accuracy},
            "cumulative": {"log_loss": loss, "accuracy": accuracy}, "learning_rate": fitted.rate,
            "weight_norm": None, "weight_growth": None, "diverging": False, "events_per_second": 0.0,
            "lag": None, "epoch": epoch,
            "ts": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        }  # fmt: skip
        out.append(json.dumps(record, allow_nan=False).encode())
    return out


def snapshot_of(
    settings: FitSettings,
    fitted: list[Fitted],
    chosen: Fitted,
    history: TrainingSet,
    scaler: OnlineStandardScaler | SparseScaler | None,
) -> dict[str, Any]:
    """The snapshot ``run`` continues: the chosen rate's model; with ``--keep-all``, every rate's as a
    candidate (in --learning-rate order) and the chosen one as the first champion."""

    def with_scaler(model: LinearNeuron) -> LinearNeuron:
        """The model with the scaler that scaled the rows it was fitted on."""
        if isinstance(scaler, SparseScaler):
            twin = type(model).from_dict(model.to_dict())
            twin.sparse_scaler = scaler.copy()
            return twin
        return type(model).from_dict(
            model.to_dict() | {"scaler": None if scaler is None else scaler.to_dict()}
        )

    bad = sum(history.bad.values())
    metrics = {"events": history.read, "labelled": 0, "loss_sum": 0.0, "correct": 0, "dead_letters": bad}
    snapshot = build_snapshot(
        settings.model_name, with_scaler(chosen.model), history.names, metrics, None, history.offsets
    )
    snapshot["learning_rate"] = chosen.rate
    if settings.keep_all and len(fitted) > 1:
        unlearned = {"events": 0, "labelled": 0, "loss_sum": 0.0, "correct": 0, "dead_letters": 0}
        snapshot["candidates"] = [
            {"model": with_scaler(f.model).to_dict(), "metrics": unlearned, "diverging": f.descent.diverged}
            for f in fitted
        ]
        snapshot["champion"] = Champion(len(fitted), 1, fitted.index(chosen)).state()
    features = features_state(history.encoder)
    if features is not None:
        snapshot["features"] = features
    return snapshot


def fit(settings: FitSettings) -> dict[str, Any]:
    """The whole command; returns the snapshot written."""
    connection = settings.connection
    probe(connection, settings.connect_timeout_s)
    needs = [
        TopicNeed(
            settings.model_topic, "model topic", ("WRITE", "READ", "DESCRIBE"),
            model_topic_spec(settings.model_topic),
        ),
        TopicNeed(
            settings.metrics_topic, "metrics topic", ("WRITE", "DESCRIBE"), TopicSpec(settings.metrics_topic)
        ),
    ]  # fmt: skip
    if settings.input_topic is not None:
        needs.append(
            TopicNeed(
                settings.input_topic, "input topic", ("READ", "DESCRIBE"), None, "is --input-topic right?"
            )
        )
    ensure_topics(connection, f"{settings.model_name}-fit-admin", needs)
    existing = load_snapshot(connection, settings.model_topic, settings.model_name)
    if existing is not None and existing.value is not None and not settings.replace:
        raise StartupError(
            f"model {settings.model_name!r} already has a snapshot on {settings.model_topic}: use another "
            "--model-name, or --replace it"
        )
    started = time.monotonic()
    history = load(settings)
    bad = sum(history.bad.values())
    detail = ""
    if bad:
        kinds = ", ".join(f"{n:,} {c}" for c, n in history.bad.most_common())
        detail = f" ({kinds}; e.g. {history.first_reasons[0]})"
    print(
        f"read {history.read:,} {read_unit(settings)}: {len(history.y):,} labelled events of "
        f"{history.n_features:,} features, {history.unlabelled:,} unlabelled, {bad:,} bad{detail}",
        file=sys.stderr,
    )
    scaler: OnlineStandardScaler | SparseScaler | None = None
    X = history.X
    if settings.standardize and isinstance(X, SparseRows):
        scaler = sparse_scaler_of(X, history.n_features)
        X = scaled_sparse(X, scaler)
    elif settings.standardize and not isinstance(X, SparseRows):
        scaler = OnlineStandardScaler(history.n_features)
        scaler.learn_many(X)
        X = scaled(X, scaler.mean, scaler.var)
    fitted = fit_rates(settings, history, X, show=True)
    chosen = best(fitted)
    if len(fitted) > 1:
        print(f"best learning rate: {chosen.rate:g} (cost {chosen.descent.costs[-1]:.6g})", file=sys.stderr)
    if settings.plot is not None:
        from stream_neuron.tools.curve import draw_rates

        draw_rates([(f.rate, f.descent) for f in fitted], settings.plot, chosen.rate)
        print(f"the cost per epoch of {len(fitted)} learning rates drawn to {settings.plot}", file=sys.stderr)
    snapshot = snapshot_of(settings, fitted, chosen, history, scaler)
    value = snapshot_json(snapshot)
    key = settings.model_name.encode()
    records = [
        (settings.metrics_topic, key, record) for record in metrics_records(settings, chosen, len(history.y))
    ]
    try:
        write_records(
            connection, f"{settings.model_name}-fit", [*records, (settings.model_topic, key, value)], 60
        )
    except WriteError as error:
        raise StartupError(f"writing the snapshot to {settings.model_topic!r} failed: {error}") from None
    elapsed = time.monotonic() - started
    print(
        f"model {settings.model_name!r} version {snapshot['version']} written to {settings.model_topic} "
        f"(|w| {chosen.model.weight_norm():.4g}, {elapsed:.1f} s); `stream-neuron run` continues it"
        + (f" after offsets {snapshot['offsets']}" if snapshot["offsets"] else "")
    )
    return snapshot
