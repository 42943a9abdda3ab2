"""A batch of events that carry only the features they have, in compressed sparse row form."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from stream_neuron.neuron.numeric import FloatArray

IndexArray = NDArray[np.int64]


@dataclass(frozen=True)
class SparseRows:
    """``n`` rows: row ``r``'s features are ``indices[indptr[r]:indptr[r + 1]]`` (distinct within a
    row) with ``values`` at the same places; ``scaled`` says per entry whether a scaler standardises
    it (a numeric feature) or it is taken as it is (a one-hot value).

    >>> rows = SparseRows.from_dicts([{0: 1.0, 3: 2.0}, {2: -1.0}])
    >>> rows.n_rows, rows.indices.tolist(), rows.width
    (2, [0, 3, 2], 4)
    """

    indptr: IndexArray
    indices: IndexArray
    values: FloatArray
    scaled: NDArray[np.bool_]

    @property
    def n_rows(self) -> int:
        return int(self.indptr.shape[0]) - 1

    @property
    def width(self) -> int:
        """One more than the largest index: the fewest features a model needs for these rows."""
        return int(self.indices.max()) + 1 if self.indices.size else 0

    def __len__(self) -> int:
        return self.n_rows

    def __getitem__(self, which: slice | NDArray[np.integer[Any]]) -> SparseRows:
        """Rows by a step-1 slice or an array of row numbers (in that order), as numpy indexes."""
        if isinstance(which, slice):
            start, stop, _ = which.indices(self.n_rows)
            stop = max(start, stop)
            a, b = int(self.indptr[start]), int(self.indptr[stop])
            return SparseRows(
                self.indptr[start : stop + 1] - a, self.indices[a:b], self.values[a:b], self.scaled[a:b]
            )
        rows = np.asarray(which, dtype=np.int64)
        starts, lengths = self.indptr[rows], np.diff(self.indptr)[rows]
        indptr = np.zeros(rows.size + 1, dtype=np.int64)
        np.cumsum(lengths, out=indptr[1:])
        entries = np.repeat(starts - indptr[:-1], lengths) + np.arange(int(indptr[-1]), dtype=np.int64)
        return SparseRows(indptr, self.indices[entries], self.values[entries], self.scaled[entries])

    @classmethod
    def concat(cls, parts: list[SparseRows]) -> SparseRows:
        """The rows of ``parts``, one after another."""
        if len(parts) == 1:
            return parts[0]
        lengths = np.concatenate([np.diff(part.indptr) for part in parts]) if parts else np.zeros(0, np.int64)
        indptr = np.zeros(lengths.size + 1, dtype=np.int64)
        np.cumsum(lengths, out=indptr[1:])
        return cls(
            indptr,
            np.concatenate([part.indices for part in parts]) if parts else np.zeros(0, np.int64),
            np.concatenate([part.values for part in parts]) if parts else np.zeros(0),
            np.concatenate([part.scaled for part in parts]) if parts else np.zeros(0, np.bool_),
        )

    def to_json(self) -> list[list[Any]]:
        """Each row as ``[indices, values, scaled]`` (a snapshot's pending rows)."""
        return [
            [idx.tolist(), x.tolist(), scaled.tolist()]
            for idx, x, scaled in map(self.row, range(self.n_rows))
        ]

    @classmethod
    def from_json(cls, rows: list[Any]) -> SparseRows:
        """The inverse of :meth:`to_json`; ``ValueError`` when a row is not three lists of one length."""
        parts = []
        for row in rows:
            idx, x, scaled = row
            if not (len(idx) == len(x) == len(scaled)) or len(set(idx)) != len(idx):
                raise ValueError("a sparse row must be three lists of one length, its indices distinct")
            parts.append(
                cls(
                    np.array([0, len(idx)], dtype=np.int64),
                    np.asarray(idx, dtype=np.int64).reshape(-1),
                    np.asarray(x, dtype=np.float64).reshape(-1),
                    np.asarray(scaled, dtype=np.bool_).reshape(-1),
                )
            )
        return cls.concat(parts)

    def row(self, r: int) -> tuple[IndexArray, FloatArray, NDArray[np.bool_]]:
        a, b = int(self.indptr[r]), int(self.indptr[r + 1])
        return self.indices[a:b], self.values[a:b], self.scaled[a:b]

    def take(self, keep: NDArray[np.bool_]) -> SparseRows:
        """The rows where ``keep`` is true, in order."""
        lengths = np.diff(self.indptr)
        entry_kept = np.repeat(keep, lengths)
        indptr = np.zeros(int(np.count_nonzero(keep)) + 1, dtype=np.int64)
        np.cumsum(lengths[keep], out=indptr[1:])
        return SparseRows(indptr, self.indices[entry_kept], self.values[entry_kept], self.scaled[entry_kept])

    @classmethod
    def from_dense(cls, X: FloatArray) -> SparseRows:
        """Every feature of every row present (and scaled when a scaler is on)."""
        n, d = X.shape
        return cls(
            np.arange(0, n * d + 1, d, dtype=np.int64) if d else np.zeros(n + 1, dtype=np.int64),
            np.tile(np.arange(d, dtype=np.int64), n),
            np.ascontiguousarray(X, dtype=np.float64).reshape(-1),
            np.ones(n * d, dtype=np.bool_),
        )

    @classmethod
    def from_dicts(cls, rows: list[dict[int, float]], unscaled: frozenset[int] = frozenset()) -> SparseRows:
        """Rows from ``{index: value}`` dicts (indices in ``unscaled`` are one-hot values)."""
        indptr = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum([len(row) for row in rows], out=indptr[1:])
        indices = np.fromiter((i for row in rows for i in row), dtype=np.int64, count=int(indptr[-1]))
        values = np.fromiter((v for row in rows for v in row.values()), dtype=np.float64, count=indices.size)
        scaled = np.fromiter((i not in unscaled for i in indices), dtype=np.bool_, count=indices.size)
        return cls(indptr, indices, values, scaled)
