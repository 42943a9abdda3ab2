"""Update policies over a neuron: per-event SGD, or buffered mini-batches. No Kafka here.

A learner takes validated rows in arrival order and hands back scored chunks: each row's logit and
output computed with the weights from before it (per-event) or before its batch (mini-batch), and
the model version those weights had. Unlabelled rows are scored at once in both modes: production
scoring never waits for a batch. A row the model refused (its logit or its step would not be finite)
comes back marked in ``refused``: it changed nothing and is the caller's to dead-letter.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import numpy as np
from numpy.typing import NDArray

from stream_neuron.neuron.linear import LinearNeuron
from stream_neuron.neuron.numeric import FloatArray
from stream_neuron.neuron.refusals import ACCEPTED
from stream_neuron.neuron.sparse_rows import SparseRows

Ref = TypeVar("Ref")
Rows = FloatArray | SparseRows
"""A chunk's rows: a dense matrix (fixed features), or sparse rows (open or hashed)."""


@dataclass
class Scored(Generic[Ref]):
    """Rows scored together: ``refs[i]`` identifies row ``i`` to the caller."""

    refs: list[Ref]
    labels: FloatArray
    scores: FloatArray
    outputs: FloatArray
    versions: np.ndarray
    refused: NDArray[np.int8]
    # Racing candidates (``candidates.py``): which one each row was published from.
    champions: np.ndarray | None = field(default=None)

    def select(self, keep: NDArray[np.bool_]) -> Scored[Ref]:
        """The rows where ``keep`` is true, in order."""
        return Scored(
            [ref for ref, kept in zip(self.refs, keep.tolist(), strict=True) if kept],
            self.labels[keep],
            self.scores[keep],
            self.outputs[keep],
            self.versions[keep],
            self.refused[keep],
            None if self.champions is None else self.champions[keep],
        )


class PerEventLearner(Generic[Ref]):
    """One SGD step per labelled event, in order (``score_then_learn``)."""

    def __init__(self, model: LinearNeuron) -> None:
        self.model = model

    def submit(self, rows: Rows, labels: FloatArray, refs: list[Ref], now: float) -> list[Scored[Ref]]:
        if not refs:
            return []
        before = self.model.n_updates
        scores, refused = np.empty(len(refs)), np.empty(len(refs), dtype=np.int8)
        outputs = self.model.score_then_learn(rows, labels, scores, refused)
        # Version of the weights that scored each row: the updates made before it.
        learned = (labels == labels) & (refused == ACCEPTED)
        versions = before + np.cumsum(learned) - learned
        return [Scored(refs, labels.copy(), scores, outputs, versions, refused)]

    def due(self, now: float) -> list[Scored[Ref]]:
        return []

    def drain(self) -> list[Scored[Ref]]:
        return []

    def pending_state(self) -> dict[str, Any] | None:
        return None

    def restore_pending(
        self, state: dict[str, Any] | None, ref_from: Callable[[Any], Ref], now: float
    ) -> None:
        return None


class MiniBatchLearner(Generic[Ref]):
    """Labelled rows wait in a buffer until ``batch_size`` or ``linger_s`` since the oldest; the batch is
    scored with the weights from before it, then one mean-gradient step (``score_then_learn_batch``).

    Sparse rows (open or hashed features) wait as they came; a batch of them also closes, early, when
    its rows hold ``max_entries`` feature values or more (a snapshot holds what waits)."""

    def __init__(
        self, model: LinearNeuron, batch_size: int, linger_s: float, max_entries: int | None = None
    ) -> None:
        self.model = model
        self.batch_size = batch_size
        self.linger_s = linger_s
        self.max_entries = max_entries
        self._parts: list[SparseRows] | None = [] if model.sparse else None
        self._rows = np.empty((batch_size, 0 if model.sparse else model.n_features))
        self._labels = np.empty(batch_size)
        self._refs: list[Ref] = []
        self._oldest = 0.0

    def submit(self, rows: Rows, labels: FloatArray, refs: list[Ref], now: float) -> list[Scored[Ref]]:
        out: list[Scored[Ref]] = []
        labelled = labels == labels
        if not labelled.all():
            unlabelled = np.flatnonzero(~labelled)
            scores, refused = np.empty(len(unlabelled)), np.empty(len(unlabelled), dtype=np.int8)
            outputs = self.model.score_then_learn_batch(rows[unlabelled], labels[unlabelled], scores, refused)
            versions = np.full(len(unlabelled), self.model.n_updates)
            out.append(
                Scored([refs[i] for i in unlabelled], labels[unlabelled], scores, outputs, versions, refused)
            )
        if labelled.all():
            labelled_rows, labelled_labels, labelled_refs = rows, labels, refs
        else:
            keep = np.flatnonzero(labelled)
            labelled_rows, labelled_labels = rows[keep], labels[keep]
            labelled_refs = [refs[i] for i in keep.tolist()]
        fired: list[Scored[Ref]] = []
        start, total = 0, len(labelled_refs)
        while start < total:
            n = len(self._refs)
            take = min(self.batch_size - n, total - start)
            if n == 0 and take == self.batch_size:  # a whole batch in the input: no copy
                stop = start + take
                fired.append(
                    self._score_batch(
                        labelled_rows[start:stop], labelled_labels[start:stop], labelled_refs[start:stop]
                    )
                )
                start = stop
                continue
            if n == 0:
                self._oldest = now
            self._put(n, labelled_rows[start : start + take])
            self._labels[n : n + take] = labelled_labels[start : start + take]
            self._refs.extend(labelled_refs[start : start + take])
            start += take
            if n + take == self.batch_size or self._too_full():
                fired.append(self._fire())
        if fired:
            out.append(fired[0] if len(fired) == 1 else _merge(fired))
        return out

    def due(self, now: float) -> list[Scored[Ref]]:
        if self._refs and now - self._oldest >= self.linger_s:
            return [self._fire()]
        return []

    def drain(self) -> list[Scored[Ref]]:
        return [self._fire()] if self._refs else []

    def _put(self, n: int, rows: Rows) -> None:
        if self._parts is None:
            assert not isinstance(rows, SparseRows)
            self._rows[n : n + len(rows)] = rows
        else:
            assert isinstance(rows, SparseRows)
            self._parts.append(rows)

    def _too_full(self) -> bool:
        return (
            self._parts is not None
            and self.max_entries is not None
            and sum(part.indices.size for part in self._parts) >= self.max_entries
        )

    def _waiting(self, n: int) -> Rows:
        if self._parts is None:
            return self._rows[:n]
        return SparseRows.concat(self._parts)

    def _fire(self) -> Scored[Ref]:
        n = len(self._refs)
        refs, self._refs = self._refs, []
        rows = self._waiting(n)
        if self._parts is not None:
            self._parts = []
        return self._score_batch(rows, self._labels[:n].copy(), refs)

    def _score_batch(self, rows: Rows, labels: FloatArray, refs: list[Ref]) -> Scored[Ref]:
        version = self.model.n_updates
        scores, refused = np.empty(len(refs)), np.empty(len(refs), dtype=np.int8)
        outputs = self.model.score_then_learn_batch(rows, labels, scores, refused)
        return Scored(refs, labels, scores, outputs, np.full(len(refs), version), refused)

    def pending_state(self) -> dict[str, Any] | None:
        """The buffered rows, for a snapshot: they are consumed but not yet learned from."""
        n = len(self._refs)
        rows = self._waiting(n)
        return {
            "rows": rows.to_json() if isinstance(rows, SparseRows) else rows.tolist(),
            "labels": self._labels[:n].tolist(),
            "refs": list(self._refs),
        }

    def restore_pending(
        self, state: dict[str, Any] | None, ref_from: Callable[[Any], Ref], now: float
    ) -> None:
        if not state:
            return
        refs = [ref_from(r) for r in state["refs"]]
        n = len(refs)
        if n > self.batch_size:
            raise ValueError(f"snapshot holds {n} pending rows, more than --batch-size {self.batch_size}")
        labels = np.asarray(state["labels"], dtype=np.float64).reshape(n)
        if self._parts is not None:
            sparse = SparseRows.from_json(state["rows"])
            if (
                len(sparse) != n
                or not np.isfinite(sparse.values).all()
                or sparse.width > self.model.n_features
            ):
                raise ValueError("pending rows must hold finite features of the model's")
            self._parts = [sparse] if n else []
        else:
            rows = np.asarray(state["rows"], dtype=np.float64).reshape(n, self.model.n_features)
            if not np.isfinite(rows).all():
                raise ValueError("pending rows must hold finite features and accepted labels")
            self._rows[:n] = rows
        if not np.isin(labels, self.model.labels).all():
            raise ValueError("pending rows must hold finite features and accepted labels")
        self._labels[:n] = labels
        self._refs = refs
        self._oldest = now


def _merge(chunks: list[Scored[Ref]]) -> Scored[Ref]:
    """Batches fired by one poll as one chunk: the caller's per-chunk work is then paid once."""
    return Scored(
        [ref for chunk in chunks for ref in chunk.refs],
        np.concatenate([chunk.labels for chunk in chunks]),
        np.concatenate([chunk.scores for chunk in chunks]),
        np.concatenate([chunk.outputs for chunk in chunks]),
        np.concatenate([chunk.versions for chunk in chunks]),
        np.concatenate([chunk.refused for chunk in chunks]),
    )
