"""Validated events into the rows a model takes, one poll's chunk at a time: a reused dense buffer for
``--features fixed``, sparse rows for ``open`` and ``hashed`` (the encoder of ``feature_encoding``).

The processor sees one interface: put an event's features (or a question's kept row) at position
``n``, keep a copy of a row, screen the chunk for values out of range, close up the rows kept, and
hand the first ``count`` rows to the model.
"""

from __future__ import annotations

from array import array
from typing import Any

import numpy as np
from numpy.typing import NDArray

from stream_neuron.decode import Event
from stream_neuron.feature_encoding import (
    Encoder,
    OpenVocabulary,
    features_of,
)
from stream_neuron.feature_hashing import FeatureHashing
from stream_neuron.feature_values import Entries, RawRows
from stream_neuron.neuron.numeric import FloatArray
from stream_neuron.neuron.sparse_rows import SparseRows
from stream_neuron.schema import FeatureSchema

Row = FloatArray | Entries
"""One event's features as kept by a pending question: a dense row, or (indices, values, scaled)."""


class DenseSink:
    """Rows of the schema's fixed width in a buffer reused from chunk to chunk."""

    def __init__(self, schema: FeatureSchema) -> None:
        self.schema = schema
        self._rows = np.empty((0, 0))

    def start(self, n_records: int, n_features: int, capacity: int) -> None:
        if self._rows.shape[0] < n_records or self._rows.shape[1] != n_features:
            self._rows = np.empty((max(n_records, capacity), n_features))

    def put_event(self, n: int, event: Event) -> None:
        self.schema.fill_row(event, self._rows[n])

    def put_events(self, first: int, events: list[Event]) -> None:
        """:meth:`put_event` of each of ``events`` in order, as rows ``first`` on."""
        fill_row, rows = self.schema.fill_row, self._rows
        for n, event in enumerate(events, first):
            fill_row(event, rows[n])

    def put_row(self, n: int, row: Any) -> None:
        self._rows[n] = row

    def buffer(self, count: int) -> FloatArray:
        """The whole buffer, for a pass that writes the chunk's first ``count`` rows in place."""
        assert self._rows.shape[0] >= count and self._rows.shape[1] == self.schema.n_features
        return self._rows

    def row(self, n: int) -> Row:
        copied: FloatArray = self._rows[n].copy()
        return copied

    def within(self, count: int, bound: float) -> tuple[NDArray[np.bool_] | None, NDArray[np.bool_] | None]:
        """Which rows are finite (``None``: all), and which are within ``bound`` (``None``: all)."""
        rows = self._rows[:count]
        if not count:
            return None, None
        if np.isfinite(rows).all():  # the usual chunk: one pass each, nothing allocated but a flag
            return None, None if np.abs(rows).max() <= bound else _within(rows, bound)
        return np.asarray(np.isfinite(rows).all(axis=1)), _within(rows, bound)

    def keep(self, keep: NDArray[np.bool_], count: int) -> None:
        kept = np.flatnonzero(keep[:count])
        self._rows[: kept.size] = self._rows[kept]

    def rows(self, count: int) -> FloatArray:
        return self._rows[:count]


def _within(rows: FloatArray, bound: float) -> NDArray[np.bool_] | None:
    finite_rows = np.where(np.isfinite(rows), rows, 0.0)
    if np.abs(finite_rows).max(initial=0.0) <= bound:
        return None
    return np.asarray((np.abs(finite_rows) <= bound).all(axis=1))


def writable(raw: bytearray) -> bytearray:
    """``raw``, or a copy of it to write instead while arrays of an earlier chunk still view it: a
    mini-batch's rows wait in those arrays, and a bytearray viewed can neither grow (``BufferError``)
    nor be written without changing them. Asking costs a byte's append and its removal."""
    try:
        raw.append(0)
    except BufferError:
        return bytearray(raw)
    del raw[-1]
    return raw


class SparseSink:
    """The events' features by name, encoded (``grow``: new names join an open vocabulary; a scorer's
    does not grow, and leaves unknown names out), as the chunk's rows in raw int64, float64 and bool
    arrays kept from chunk to chunk: the encoders' fast paths write there directly."""

    def __init__(self, encoder: Encoder, grow: bool) -> None:
        self.encoder, self.grow = encoder, grow
        self._arrays: RawRows = (bytearray(), bytearray(), bytearray())  # longer than used: capacity
        self._ends: list[int] = []  # the entries up to the end of each row
        self._rows: SparseRows | None = None  # the rows as arrays, built once a chunk

    def start(self, n_records: int, n_features: int, capacity: int) -> None:
        self._ends, self._rows = [], None
        self._arrays = (writable(self._arrays[0]), writable(self._arrays[1]), writable(self._arrays[2]))

    def put_event(self, n: int, event: Event) -> None:
        ends = self._ends
        if len(ends) > n:  # a row put again at n replaces what followed
            del ends[n:]
        self._rows = None
        end = ends[-1] if ends else 0
        features = features_of(event)
        new_end = self.encoder.encode_into(features, self.grow, self._arrays, end)
        if new_end is None:
            # the fast path declined it: the reference takes it (and names what is wrong)
            self.put_row(n, self.encoder.encode(features, self.grow, fast=False))
        else:
            ends.append(new_end)

    def put_events(self, first: int, events: list[Event]) -> None:
        """:meth:`put_event` of each of ``events`` in order, as rows ``first`` on. A hashing takes each
        run of plain events in one compiled call (no Python per event); any other event goes through
        :meth:`put_event`, whose ``BadEventError`` stops the put with the rows before it in."""
        del self._ends[first:]
        self._rows = None
        at = 0
        while at < len(events):
            if isinstance(self.encoder, FeatureHashing):
                at = self.encoder.encode_events_into(events, at, self.grow, self._arrays, self._ends)
                if at == len(events):
                    return
            self.put_event(len(self._ends), events[at])
            at += 1

    def raw_entries(self) -> tuple[RawRows, list[int]]:
        """The chunk's raw arrays and the end of each row's entries, for a pass that appends rows to
        both (``_encode.parse_named``)."""
        self._rows = None
        return self._arrays, self._ends

    def put_row(self, n: int, row: Any) -> None:
        del self._ends[n:]
        self._rows = None
        end = self._ends[-1] if self._ends else 0
        indices, values, scaled = row
        new_end = end + len(scaled)
        self._reserve(new_end)
        raw_indices, raw_values, raw_scaled = self._arrays
        raw_indices[8 * end : 8 * new_end] = array("q", indices)
        raw_values[8 * end : 8 * new_end] = array("d", values)
        raw_scaled[end:new_end] = bytes(scaled)
        self._ends.append(new_end)

    def row(self, n: int) -> Row:
        start, end = self._ends[n - 1] if n else 0, self._ends[n]
        indices, values, scaled = self._arrays
        return (
            array("q", indices[8 * start : 8 * end]).tolist(),
            array("d", values[8 * start : 8 * end]).tolist(),
            [bool(b) for b in scaled[start:end]],
        )

    def within(self, count: int, bound: float) -> tuple[NDArray[np.bool_] | None, NDArray[np.bool_] | None]:
        """The encoder took finite values only; which rows are within ``bound`` (``None``: all), from
        the chunk's rows in one pass."""
        rows = self.rows(count)
        if np.abs(rows.values).max(initial=0.0) <= bound:  # the usual chunk: one pass
            return None, None
        far = np.abs(rows.values) > bound
        within = np.ones(count, dtype=np.bool_)
        within[np.repeat(np.arange(count), np.diff(rows.indptr))[far]] = False
        return None, within

    def keep(self, keep: NDArray[np.bool_], count: int) -> None:
        kept = self.rows(count)[np.flatnonzero(keep[:count])]
        for raw, part in zip(self._arrays, (kept.indices, kept.values, kept.scaled), strict=True):
            raw[: part.nbytes] = part.tobytes()  # fewer rows: within what is there
        self._ends, self._rows = kept.indptr[1:].tolist(), kept

    def rows(self, count: int) -> SparseRows:
        if self._rows is None or self._rows.n_rows != count:
            size = self._ends[count - 1] if count else 0
            indptr = np.zeros(count + 1, dtype=np.int64)
            indptr[1:] = self._ends[:count]
            indices, values, scaled = self._arrays
            self._rows = SparseRows(  # views: the next chunk writes elsewhere if any outlives this one
                indptr,
                np.frombuffer(indices, dtype=np.int64, count=size),
                np.frombuffer(values, dtype=np.float64, count=size),
                np.frombuffer(scaled, dtype=np.bool_, count=size),
            )
        return self._rows

    def _reserve(self, entries: int) -> None:
        for raw, width in zip(self._arrays, (8, 8, 1), strict=True):
            if len(raw) < width * entries:
                raw.extend(bytes(2 * width * entries - len(raw)))

    @property
    def rows_put(self) -> int:
        """The rows of the chunk put so far (after a refusal of ``put_events``: where it stopped)."""
        return len(self._ends)

    @property
    def n_features(self) -> int:
        """The features a model needs now (an open vocabulary's size, or the hash's buckets)."""
        if isinstance(self.encoder, OpenVocabulary):
            return len(self.encoder)
        assert isinstance(self.encoder, FeatureHashing)
        return self.encoder.n_features


Sink = DenseSink | SparseSink
