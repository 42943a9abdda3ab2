"""A history read into memory for ``stream-neuron fit``: from a topic (all of it as it is now, or a range
of offsets or of timestamps) or from a file (CSV or JSON lines).

Records are decoded, validated and arranged by the same rules as ``run`` (the decoder, the feature
schema, the label domain); bad ones are counted with their reasons, never learned, and unlabelled ones
are counted and skipped. Rows are read into blocks of 65,536 and joined once at the end (for that moment
the set is held twice). A history larger than ``--max-memory-mb`` (rows x (features + 1) x 8 bytes) is
refused as soon as it is known to be, with one line saying what to do (fit a range, or raise the limit):
the descent needs the whole set in memory for every epoch, and one pass over the topic per epoch would
make a 100-epoch fit read the history 100 times through the broker.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from stream_neuron.decode import BadEventError, Event, decode_event
from stream_neuron.errors import OperatorError
from stream_neuron.feature_encoding import (
    Encoder,
    OpenVocabulary,
    encode_features,
    sparse_rows,
)
from stream_neuron.feature_hashing import FeatureHashing
from stream_neuron.feature_values import Entries, ValueBound
from stream_neuron.neuron import LinearNeuron
from stream_neuron.neuron.numeric import FloatArray
from stream_neuron.neuron.sparse_rows import SparseRows
from stream_neuron.neuron.sparse_state import SparseScaler
from stream_neuron.schema import FeatureSchema, feature_bound, label_of

BLOCK_ROWS = 65_536


@dataclass
class TrainingSet:
    """The labelled rows of a history, in the order read, and what was left out."""

    X: FloatArray | SparseRows
    y: FloatArray
    names: tuple[str, ...] | None
    offsets: dict[tuple[str, int], int] = field(default_factory=dict)  # topic input: the end covered
    bad: Counter[str] = field(default_factory=Counter)  # error class -> count
    first_reasons: list[str] = field(default_factory=list)
    unlabelled: int = 0
    read: int = 0

    encoder: Encoder | None = None  # open or hashed features: X is sparse rows

    @property
    def n_features(self) -> int:
        if isinstance(self.encoder, OpenVocabulary):
            return len(self.encoder)
        if isinstance(self.encoder, FeatureHashing):
            return self.encoder.n_features
        assert not isinstance(self.X, SparseRows)
        return int(self.X.shape[1])


class _Builder:
    """Rows gathered block by block under one schema (fixed by the names given or the first event)."""

    def __init__(
        self,
        kind: type[LinearNeuron],
        names: tuple[str, ...] | None,
        max_bytes: int,
        max_memory_mb: float,
        max_feature_abs: float | None,
        encoder: Encoder | None = None,
    ):
        self.kind, self.max_bytes, self.max_memory_mb = kind, max_bytes, max_memory_mb
        self.encoder = encoder
        self.entries: list[Entries] = []
        self.entry_count = 0
        self.bound = ValueBound(*feature_bound(max_feature_abs))
        if encoder is not None:  # an event beyond the bound adds no name to the model's vocabulary
            encoder.bound = self.bound
        self.schema = FeatureSchema(names)
        self.blocks: list[FloatArray] = []
        self.labels: list[FloatArray] = []
        self.block: FloatArray | None = None
        self.block_labels: FloatArray | None = None
        self.filled = 0
        self.rows = 0
        self.result = TrainingSet(np.empty((0, 0)), np.empty(0), names)

    def add(self, value: bytes | None, event: Event | None = None, where: str | None = None) -> None:
        """One record's value (or its event, decoded); a bad one is counted, and its reason kept
        (after ``where`` it is, when given) if it is among the first."""
        self.result.read += 1
        try:
            named = self.encoder is not None
            event = event if event is not None else decode_event(value, self.max_bytes, named=named)
            label = label_of(event.get("label"), self.kind)
            if label != label:
                self.result.unlabelled += 1
                return
            if self.encoder is not None:
                self._add_entries(event, label)
                return
            if self.schema.n_features is None:
                self.schema = FeatureSchema.proposed_by(event)
            row = self._row()
            self.schema.fill_row(event, row)
            if not np.isfinite(row).all():
                raise BadEventError("a feature is too large for a float64", "InvalidFeature")
            if np.abs(row).max(initial=0.0) > self.bound.limit:
                raise BadEventError(self.bound.reason, "FeatureOutOfRange")
        except BadEventError as bad:
            self.result.bad[bad.error_class] += 1
            if len(self.result.first_reasons) < 5:
                self.result.first_reasons.append(bad.reason if where is None else f"{where}: {bad.reason}")
            return
        assert self.block_labels is not None
        self.block_labels[self.filled] = label
        self.filled += 1
        self.rows += 1

    def _add_entries(self, event: Event, label: float) -> None:
        """An event of open or hashed features (its names join the vocabulary only when it is good)."""
        assert self.encoder is not None
        entries = encode_features(self.encoder, event)  # type: ignore[arg-type]
        self.bound.check(entries[1])  # an encoder checks only before it adds a name
        self.entry_count += len(entries[0])
        if (self.entry_count * 17 + len(self.entries) * 16) > self.max_memory_mb * 2**20:
            raise OperatorError(
                f"the history holds more than {len(self.entries):,} events of {self.entry_count:,} feature "
                f"values in all, over --max-memory-mb {self.max_memory_mb:g}: fit a range "
                "(--from-offset/--to-offset, --from-time/--to-time) or raise the limit"
            )
        self.entries.append(entries)
        self.labels.append(np.array([label]))

    def _row(self) -> FloatArray:
        n = self.schema.n_features or 0
        if self.block is None or self.filled == len(self.block):
            self._close_block()
            budget = int(self.max_memory_mb * 2**20 // ((n + 1) * 8))
            if self.rows >= budget:
                raise OperatorError(
                    f"the history holds more than {self.rows:,} events of {n} features "
                    f"({self.rows * (n + 1) * 8 / 2**20:,.1f} MB), over --max-memory-mb "
                    f"{self.max_memory_mb:g}: fit a range (--from-offset/--to-offset, --from-time/--to-time) "
                    "or raise the limit"
                )
            rows = min(BLOCK_ROWS, budget - self.rows)
            self.block = np.empty((rows, n))
            self.block_labels = np.empty(rows)
            self.filled = 0
        row: FloatArray = self.block[self.filled]
        return row

    def _close_block(self) -> None:
        if self.block is not None and self.block_labels is not None and self.filled:
            self.blocks.append(self.block[: self.filled])
            self.labels.append(self.block_labels[: self.filled])
        self.block = self.block_labels = None

    def done(self) -> TrainingSet:
        self._close_block()
        result = self.result
        if self.encoder is not None and self.entries:
            result.X = sparse_rows(self.entries, len(self.entries))
            result.y = np.concatenate(self.labels)
            result.encoder = self.encoder
            result.names = tuple(self.encoder.names) if isinstance(self.encoder, OpenVocabulary) else None
            return result
        if not self.blocks and not self.entries:
            reasons = "; ".join(result.first_reasons[:2])
            raise OperatorError(
                f"no labelled event to learn from among {result.read:,} records"
                + (f" ({result.unlabelled:,} unlabelled)" if result.unlabelled else "")
                + (f" (bad ones, e.g.: {reasons})" if reasons else "")
            )
        result.X = np.concatenate(self.blocks) if len(self.blocks) > 1 else self.blocks[0]
        result.y = np.concatenate(self.labels) if len(self.labels) > 1 else self.labels[0]
        result.names = self.schema.names
        return result


def from_values(
    values: Iterable[bytes | None],
    kind: type[LinearNeuron],
    names: tuple[str, ...] | None,
    max_record_bytes: int,
    max_memory_mb: float,
    max_feature_abs: float | None = None,
    encoder: Encoder | None = None,
) -> TrainingSet:
    """Raw record values (a topic's), in order."""
    builder = _Builder(kind, names, max_record_bytes, max_memory_mb, max_feature_abs, encoder)
    for value in values:
        builder.add(value)
    return builder.done()


def from_lines(
    lines: Iterable[tuple[int, bytes]],
    kind: type[LinearNeuron],
    names: tuple[str, ...] | None,
    max_memory_mb: float,
    max_feature_abs: float | None = None,
    encoder: Encoder | None = None,
) -> TrainingSet:
    """A JSON-lines file's numbered lines, each read as ``run`` reads a record's value (the same checks
    and reasons), a bad line's reason after its number."""
    builder = _Builder(kind, names, 2**62, max_memory_mb, max_feature_abs, encoder)
    for line, value in lines:
        builder.add(value, where=f"line {line}")
    return builder.done()


def from_events(
    events: Iterable[Any],
    kind: type[LinearNeuron],
    names: tuple[str, ...] | None,
    max_memory_mb: float,
    max_feature_abs: float | None = None,
    encoder: Encoder | None = None,
) -> TrainingSet:
    """Events a file source gives (``tools.sources``): dicts, or rows it could not read (counted)."""
    builder = _Builder(kind, names, 2**62, max_memory_mb, max_feature_abs, encoder)
    for item in events:
        if isinstance(item, dict):
            try:
                builder.add(json.dumps(item, allow_nan=True).encode())
            except (TypeError, ValueError):
                builder.result.bad["InvalidRow"] += 1
        else:
            builder.result.read += 1
            builder.result.bad["InvalidRow"] += 1
            if len(builder.result.first_reasons) < 5:
                builder.result.first_reasons.append(f"line {item.line}: {item.reason}")
    return builder.done()


def scaled(X: FloatArray, mean: FloatArray, var: FloatArray) -> FloatArray:
    """``X`` standardised with the given statistics (the online scaler's rule: zero variance -> 0)."""
    std = np.sqrt(var)
    safe = np.where(std > 0, std, 1.0)
    return np.where(std > 0, (X - mean) / safe, 0.0)


def scaled_sparse(rows: SparseRows, scaler: SparseScaler) -> SparseRows:
    """``rows`` standardised with ``scaler``'s statistics (its one-hot values as they are)."""
    values = rows.values.copy()
    values[rows.scaled] = scaler.transform(rows.indices[rows.scaled], rows.values[rows.scaled])
    return SparseRows(rows.indptr, rows.indices, values, rows.scaled)


def sparse_scaler_of(rows: SparseRows, n_features: int) -> SparseScaler:
    """The per-feature statistics of ``rows``, absorbed row by row as ``run``'s scaler would."""
    scaler = SparseScaler(n_features)
    for r in range(rows.n_rows):
        idx, x, scaled = rows.row(r)
        scaler.learn(idx[scaled], x[scaled])
    return scaler
