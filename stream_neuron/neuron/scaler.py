"""Online standardisation with river's ``preprocessing.StandardScaler`` semantics.

Running mean and population variance by Welford's recurrence, in river's exact operation order so
the statistics are bit-identical; a feature whose variance is still 0 scales to 0. Inside a model the
order is river's pipeline order: an event is scored with the statistics from before it, and learned
from after the statistics have absorbed it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from stream_neuron.neuron import accel
from stream_neuron.neuron.numeric import FloatArray

SAFE_FEATURE_ABS = 2.0**510
"""The largest feature magnitude the statistics hold: the difference of two such values squared
(2^1022) is still a float64. One value beyond it (1e300, say) would make the variance infinite for
good, and every later row unscalable, so the stream refuses such values before they get here."""


class OnlineStandardScaler:
    """Running standardisation of dense feature rows.

    >>> s = OnlineStandardScaler(2)
    >>> for row in ([1.0, 10.0], [3.0, 10.0]):
    ...     s.learn_one(np.array(row))
    >>> s.transform(np.array([[3.0, 10.0]])).tolist()
    [[1.0, 0.0]]
    """

    def __init__(self, n_features: int) -> None:
        self.n_features = n_features
        self.count = 0
        self.mean = np.zeros(n_features)
        self.var = np.zeros(n_features)

    def absorbed(self, x: FloatArray) -> tuple[FloatArray, FloatArray]:
        """The mean and variance after absorbing row ``x`` (river's recurrence, operation for
        operation), without changing the scaler: :meth:`accept` them, or drop them."""
        count = self.count + 1
        mean = self.mean + (x - self.mean) / count
        var = self.var + ((x - self.mean) * (x - mean) - self.var) / count
        return mean, var

    def accept(self, mean: FloatArray, var: FloatArray) -> None:
        """Take the statistics :meth:`absorbed` computed for the next row."""
        self.count += 1
        np.copyto(self.mean, mean)
        np.copyto(self.var, var)

    def learn_one(self, x: FloatArray) -> None:
        """Absorb one row."""
        self.accept(*self.absorbed(x))

    def learn_many(self, X: FloatArray) -> None:
        """Absorb every row of ``X`` in order: the same statistics, bit for bit, as :meth:`learn_one`
        row after row (the compiled kernel when built)."""
        rows = np.ascontiguousarray(X, dtype=np.float64)
        if accel.compiled is not None and rows.ndim == 2 and rows.shape[1] == self.n_features and rows.size:
            self.count = accel.compiled.welford(rows, self.mean, self.var, self.count)
            return
        for row in rows:
            self.learn_one(row)

    def transform(self, X: FloatArray, stats: tuple[FloatArray, FloatArray] | None = None) -> FloatArray:
        """Scale rows (or one row) with the current statistics, or with ``stats`` (mean, variance);
        zero-variance features become 0."""
        mean, var = (self.mean, self.var) if stats is None else stats
        std = np.sqrt(var)
        safe = np.where(std > 0, std, 1.0)
        return np.where(std > 0, (X - mean) / safe, 0.0)

    def copy(self) -> OnlineStandardScaler:
        twin = OnlineStandardScaler(self.n_features)
        twin.count, twin.mean, twin.var = self.count, self.mean.copy(), self.var.copy()
        return twin

    def finite(self) -> bool:
        return bool(np.isfinite(self.mean).all() and np.isfinite(self.var).all())

    def to_dict(self) -> dict[str, Any]:
        return {"count": self.count, "mean": self.mean.tolist(), "var": self.var.tolist()}

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> OnlineStandardScaler:
        mean = np.asarray(state["mean"], dtype=np.float64)
        scaler = cls(mean.shape[0])
        scaler.count = int(state["count"])
        scaler.mean = mean.copy()
        scaler.var = np.asarray(state["var"], dtype=np.float64).copy()
        if scaler.var.shape != mean.shape or mean.ndim != 1:
            raise ValueError("scaler state: mean and var must be lists of one length")
        if scaler.count < 0 or not scaler.finite() or (scaler.var < 0).any():
            raise ValueError("scaler state: count, mean and var must be finite (var and count >= 0)")
        return scaler
