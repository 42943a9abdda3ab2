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
        """Scale rows with the current statistics; zero-variance features become 0."""
        std = np.sqrt(self.var)
        safe = np.where(std > 0, std, 1.0)
        return np.where(std > 0, (X - self.mean) / safe, 0.0)

    def transform_row_into(self, x: FloatArray, out: FloatArray) -> None:
        """Scale one row into ``out`` (no allocation beyond numpy temporaries)."""
        np.subtract(x, self.mean, out=out)
        std = np.sqrt(self.var)
        np.divide(out, std, out=out, where=std > 0)
        out[std <= 0] = 0.0

    def sequence(self, X: FloatArray, learn: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Walk a batch in order: row ``t`` is scaled with the statistics before it (to score it) and,
        when ``learn[t]``, absorbed and scaled again with the statistics after it (to learn from it).

        Returns ``(score_rows, learn_rows)``; an unlabelled row's learn row equals its score row.
        """
        score_rows = np.empty_like(X)
        learn_rows = np.empty_like(X)
        for t in range(X.shape[0]):
            self.transform_row_into(X[t], score_rows[t])
            if learn[t]:
                self.learn_one(X[t])
                self.transform_row_into(X[t], learn_rows[t])
            else:
                learn_rows[t] = score_rows[t]
        return score_rows, learn_rows

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
