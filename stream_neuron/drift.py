"""Drift detectors on the prequential error stream (1 for a wrong prediction, 0 for a right one):
river's ``drift.ADWIN`` and ``drift.PageHinkley``, the same detections at the same events.

Both are written here rather than imported: river is the reference the tests hold them to, not a
dependency of the component. The arithmetic follows river's in its order, so the floats, and with
them the detections, are the same. Like river's, a detector starts afresh at the event after a
detection.

>>> detector = Adwin()
>>> stream = [0.0] * 1000 + [1.0] * 100
>>> [i for i, error in enumerate(stream) if detector.update(error)]
[1023]
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from stream_neuron.neuron.accel import load_compiled

log = logging.getLogger("stream_neuron")
compiled_drift = load_compiled("stream_neuron._drift")

PageHinkleyMode = Literal["up", "down", "both"]


class Adwin:
    """ADaptive WINdowing (Bifet and Gavaldà, 2007), as river's ``drift.ADWIN(delta, clock,
    max_buckets, min_window_length, grace_period)``: the window is kept as rows of buckets, row ``i``
    summarising ``2**i`` values each (their total and the sum of squared deviations), at most
    ``max_buckets`` a row; every ``clock`` values, each cut of the window into an older and a newer
    part is tested, and while one shows different means the oldest bucket is dropped."""

    def __init__(
        self,
        delta: float = 0.002,
        clock: int = 32,
        max_buckets: int = 5,
        min_window_length: int = 5,
        grace_period: int = 10,
    ) -> None:
        if max_buckets < 2:  # one a row would empty rows in the middle of the window (river's fails too)
            raise ValueError(f"ADWIN keeps at least 2 buckets of each size, not {max_buckets}")
        self.delta, self.clock, self.max_buckets = delta, clock, max_buckets
        self.min_window_length, self.grace_period = float(min_window_length), float(grace_period)
        self.reset()

    def reset(self) -> None:
        self.total = self.variance = self.width = 0.0
        self.tick = 0
        # rows[i]: the buckets of 2**i values, oldest first, as [total, variance] pairs
        self.rows: list[list[list[float]]] = [[]]
        self.detected = False

    def update(self, value: float) -> bool:
        """Take the next value; whether a drift is detected at it."""
        if self.detected:
            self.reset()
        self._insert(value)
        self.detected = self._detect()
        return self.detected

    def update_many(self, values: NDArray[np.float64]) -> list[int]:
        """Take the values in order; the positions among them where a drift was detected."""
        update = self.update
        return [i for i, value in enumerate(values.tolist()) if update(value)]

    def _insert(self, value: float) -> None:
        self.rows[0].append([value, 0.0])
        self.width += 1.0
        gain = 0.0
        if self.width > 1.0:
            deviation = value - self.total / (self.width - 1.0)
            gain = (self.width - 1.0) * deviation * deviation / self.width
        self.variance += gain
        self.total += value
        row = 0
        while len(self.rows[row]) == self.max_buckets + 1:  # full: its two oldest become one
            size = float(1 << row)
            (t0, v0), (t1, v1) = self.rows[row][0], self.rows[row][1]
            mean0, mean1 = t0 / size, t1 / size
            merged = [t0 + t1, v0 + v1 + size * 0.5 * (mean0 - mean1) * (mean0 - mean1)]
            if row + 1 == len(self.rows):
                self.rows.append([])
            self.rows[row + 1].append(merged)
            del self.rows[row][:2]
            row += 1

    def _drop_oldest(self) -> None:
        last = len(self.rows) - 1
        size = float(1 << last)
        total, variance = self.rows[last][0]
        self.width -= size
        self.total -= total
        mean, rest_mean = total / size, self.total / self.width
        self.variance -= variance + size * self.width * (mean - rest_mean) * (mean - rest_mean) / (
            size + self.width
        )
        del self.rows[last][0]
        if not self.rows[last]:
            self.rows.pop()

    def _detect(self) -> bool:
        self.tick += 1
        if self.tick % self.clock or self.width <= self.grace_period:
            return False
        detected = False
        while self._cut_found():
            detected = True
            self._drop_oldest()
        return detected

    def _cut_found(self) -> bool:
        """Whether some cut of the window (older part first) splits it into different means."""
        older_n, newer_n, older_total, newer_total = 0.0, self.width, 0.0, self.total
        least = self.min_window_length
        for row in range(len(self.rows) - 1, -1, -1):
            size = float(1 << row)
            buckets = self.rows[row]
            for k, (total, _) in enumerate(buckets):
                older_n += size
                newer_n -= size
                older_total += total
                newer_total -= total
                if row == 0 and k == len(buckets) - 1:
                    return False  # the newest bucket: no newer part left
                if newer_n >= least and older_n >= least:
                    gap = older_total / older_n - newer_total / newer_n
                    if self._differ(older_n, newer_n, gap):
                        return True
        return False

    def _differ(self, older_n: float, newer_n: float, gap: float) -> bool:
        log_term = math.log(2.0 * math.log(self.width) / self.delta)
        harmonic = 1.0 / (older_n - self.min_window_length + 1.0) + 1.0 / (
            newer_n - self.min_window_length + 1.0
        )
        epsilon = (
            math.sqrt(2.0 * harmonic * (self.variance / self.width) * log_term)
            + 2.0 / 3.0 * log_term * harmonic
        )
        return abs(gap) > epsilon

    def state(self) -> dict[str, Any]:
        return {
            "total": self.total, "variance": self.variance, "width": self.width, "tick": self.tick,
            "rows": self.rows, "detected": self.detected,
        }  # fmt: skip

    def restore(self, state: dict[str, Any]) -> None:
        rows = [[[float(t), float(v)] for t, v in row] for row in state["rows"]]
        if not rows or any(len(row) > self.max_buckets for row in rows):
            raise ValueError("ADWIN state: its rows of buckets are not ADWIN's")
        width = float(sum(len(row) << i for i, row in enumerate(rows)))
        if width != float(state["width"]):
            raise ValueError("ADWIN state: the width is not its buckets' sum")
        self.rows, self.width = rows, width
        self.total, self.variance = float(state["total"]), float(state["variance"])
        self.tick, self.detected = int(state["tick"]), bool(state["detected"])


class PageHinkley:
    """The Page-Hinkley test, as river's ``drift.PageHinkley(min_instances, delta, threshold, alpha,
    mode)``: cumulative deviations from the running mean, faded by ``alpha`` and less (or, downward,
    more) ``delta``; a drift when either has moved more than ``threshold`` from its extreme."""

    def __init__(
        self,
        min_instances: int = 30,
        delta: float = 0.005,
        threshold: float = 50.0,
        alpha: float = 1 - 0.0001,
        mode: PageHinkleyMode = "both",
    ) -> None:
        self.min_instances, self.delta, self.threshold, self.alpha = min_instances, delta, threshold, alpha
        self.up, self.down = mode in ("up", "both"), mode in ("down", "both")
        self.reset()

    def reset(self) -> None:
        self.n, self.mean = 0.0, 0.0
        self.sum_increase = self.sum_decrease = 0.0
        self.min_increase, self.max_decrease = math.inf, -1.0
        self.detected = False

    def update(self, value: float) -> bool:
        """Take the next value; whether a drift is detected at it."""
        if self.detected:
            self.reset()
        self.n += 1.0
        self.mean += (1.0 / self.n) * (value - self.mean)
        deviation = value - self.mean
        self.sum_increase = self.alpha * self.sum_increase + deviation - self.delta
        self.sum_decrease = self.alpha * self.sum_decrease + deviation + self.delta
        self.min_increase = min(self.min_increase, self.sum_increase)
        self.max_decrease = max(self.max_decrease, self.sum_decrease)
        if self.n >= self.min_instances:
            rise = self.sum_increase - self.min_increase
            fall = self.max_decrease - self.sum_decrease
            self.detected = (self.up and rise > self.threshold) or (self.down and fall > self.threshold)
        return self.detected

    def update_many(self, values: NDArray[np.float64]) -> list[int]:
        """Take the values in order; the positions among them where a drift was detected."""
        update = self.update
        return [i for i, value in enumerate(values.tolist()) if update(value)]

    def state(self) -> dict[str, Any]:
        return {
            "n": self.n, "mean": self.mean, "sum_increase": self.sum_increase,
            "sum_decrease": self.sum_decrease, "min_increase": _json_number(self.min_increase),
            "max_decrease": self.max_decrease, "detected": self.detected,
        }  # fmt: skip

    def restore(self, state: dict[str, Any]) -> None:
        self.n, self.mean = float(state["n"]), float(state["mean"])
        self.sum_increase, self.sum_decrease = float(state["sum_increase"]), float(state["sum_decrease"])
        low = state["min_increase"]
        self.min_increase = math.inf if low is None else float(low)
        self.max_decrease, self.detected = float(state["max_decrease"]), bool(state["detected"])
        if self.n < 0 or not all(
            map(math.isfinite, (self.n, self.mean, self.sum_increase, self.sum_decrease))
        ):
            raise ValueError("Page-Hinkley state: its sums are not finite")


class CompiledAdwin(Adwin):
    """:class:`Adwin` with its window in numpy arrays and its updates in C (``_drift.adwin_update``):
    the same floats and detections, at a few tens of nanoseconds an error rather than microseconds."""

    ROWS = 64

    def reset(self) -> None:
        # total, variance, width, tick, detected, rows in use
        self.scalars = np.array([0.0, 0.0, 0.0, 0.0, 0.0, 1.0])
        self.buckets = np.zeros((self.ROWS, self.max_buckets + 1, 2))
        self.lengths = np.zeros(self.ROWS, dtype=np.int64)
        self.params = np.array(
            [self.delta, self.clock, self.max_buckets, self.min_window_length, self.grace_period]
        )

    def update(self, value: float) -> bool:
        return bool(self.update_many(np.array([value])))

    def update_many(self, values: NDArray[np.float64]) -> list[int]:
        errors = np.ascontiguousarray(values, dtype=np.float64)
        found = np.empty(errors.size, dtype=np.int64)
        assert compiled_drift is not None
        count = compiled_drift.adwin_update(
            errors, self.scalars, self.buckets, self.lengths, self.params, found
        )
        return found[:count].tolist()  # type: ignore[no-any-return]

    def state(self) -> dict[str, Any]:
        total, variance, width, tick, detected, rows = self.scalars.tolist()
        return {
            "total": total, "variance": variance, "width": width, "tick": int(tick),
            "rows": [self.buckets[i, : self.lengths[i]].tolist() for i in range(int(rows))],
            "detected": bool(detected),
        }  # fmt: skip

    def restore(self, state: dict[str, Any]) -> None:
        reference = Adwin(self.delta, self.clock, self.max_buckets, int(self.min_window_length))
        reference.restore(state)  # checks it
        if len(reference.rows) > self.ROWS:
            raise ValueError("ADWIN state: more rows of buckets than a window holds")
        self.reset()
        for i, row in enumerate(reference.rows):
            self.lengths[i] = len(row)
            if row:
                self.buckets[i, : len(row)] = row
        self.scalars[:] = [
            reference.total, reference.variance, reference.width, reference.tick, float(reference.detected),
            len(reference.rows),
        ]  # fmt: skip


def new_adwin(*args: Any) -> Adwin:
    """An :class:`Adwin` of these parameters, compiled when the C path was built."""
    return Adwin(*args) if compiled_drift is None else CompiledAdwin(*args)


def _json_number(value: float) -> float | None:
    return value if math.isfinite(value) else None


Detector = Adwin | PageHinkley


@dataclass
class DriftWatch:
    """A detector over the labelled events' errors in the order they were scored, and what the
    metrics record says of it: the detector's name, the labelled events since the last detection,
    and how many detections there have been."""

    name: str
    detector: Detector
    count: int = 0
    since: int = 0

    def observe(self, right: NDArray[np.bool_], labelled_before: int) -> int:
        """Take the next labelled events (``right``: each prediction's hit, in order; ``labelled_before``
        of them came earlier): how many drifts were detected among them, each logged."""
        detections = self.detector.update_many((~right).astype(np.float64))
        for i in detections:
            self.count += 1
            log.warning(
                "drift detected by %s at labelled event %d (%d so far): the error rate changed",
                self.name, labelled_before + i + 1, self.count,
            )  # fmt: skip
        self.since = len(right) - 1 - detections[-1] if detections else self.since + len(right)
        return len(detections)

    def section(self) -> dict[str, Any]:
        return {"detector": self.name, "events_since_last": self.since, "count": self.count}

    def state(self) -> dict[str, Any]:
        return {"count": self.count, "since": self.since, "detector": self.detector.state()}

    def restore(self, state: dict[str, Any]) -> None:
        count, since = int(state["count"]), int(state["since"])
        if count < 0 or since < 0:
            raise ValueError(f"drift state is inconsistent: {state}")
        self.detector.restore(state["detector"])
        self.count, self.since = count, since
