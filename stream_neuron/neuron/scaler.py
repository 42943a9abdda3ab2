"""Online standardisation with river's ``preprocessing.StandardScaler`` semantics.

Running mean and population variance by Welford's recurrence, in river's exact operation order so
the statistics are bit-identical; a feature whose variance is still 0 scales to 0. Inside a model the
order is river's pipeline order: an event is scored with the statistics from before it, and learned
from after the statistics have absorbed it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from stream_neuron.neuron.numeric import FloatArray


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
        self._old_mean = np.zeros(n_features)

    def learn_one(self, x: FloatArray) -> None:
        """Absorb one row (river's recurrence, operation for operation)."""
        self.count += 1
        np.copyto(self._old_mean, self.mean)
        self.mean += (x - self._old_mean) / self.count
        self.var += ((x - self._old_mean) * (x - self.mean) - self.var) / self.count

    def transform(self, X: FloatArray) -> FloatArray:
        """Scale rows (or one row) with the current statistics; zero-variance features become 0."""
        std = np.sqrt(self.var)
        safe = np.where(std > 0, std, 1.0)
        return np.where(std > 0, (X - self.mean) / safe, 0.0)

    def to_dict(self) -> dict[str, Any]:
        return {"count": self.count, "mean": self.mean.tolist(), "var": self.var.tolist()}

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> OnlineStandardScaler:
        mean = np.asarray(state["mean"], dtype=np.float64)
        scaler = cls(mean.shape[0])
        scaler.count = int(state["count"])
        scaler.mean = mean.copy()
        scaler.var = np.asarray(state["var"], dtype=np.float64).copy()
        if scaler.var.shape != mean.shape:
            raise ValueError("scaler state: mean and var differ in length")
        return scaler
