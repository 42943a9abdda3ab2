"""Prequential metrics: every labelled event's cost and hit, with the weights from before it."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from stream_neuron.neuron.numeric import FloatArray, log_loss_from_scores


@dataclass
class Tally:
    events: int = 0
    labelled: int = 0
    loss_sum: float = 0.0
    correct: int = 0

    def log_loss(self, kind: str) -> float | None:
        return self.loss_sum / self.labelled if self.labelled and kind == "logistic" else None

    def accuracy(self) -> float | None:
        return self.correct / self.labelled if self.labelled else None


@dataclass
class MetricsTracker:
    """Window (since the last metrics record) and cumulative tallies, plus counters."""

    kind: str
    cumulative: Tally = field(default_factory=Tally)
    window: Tally = field(default_factory=Tally)
    dead_letters: int = 0
    window_started: float = 0.0

    def count_events(self, n: int) -> None:
        self.cumulative.events += n
        self.window.events += n

    def count_dead_letter(self) -> None:
        self.dead_letters += 1

    def record_scores(self, z: FloatArray, outputs: FloatArray, labels: FloatArray) -> None:
        """Add the labelled rows of one scored chunk: logits, model outputs (P(y=1), or the
        perceptron's +1/-1) and labels (NaN where unlabelled)."""
        labelled = labels == labels
        n = int(np.count_nonzero(labelled))
        if n == 0:
            return
        y = labels[labelled]
        if self.kind == "logistic":
            loss = float(log_loss_from_scores(z[labelled], y).sum())
            correct = int(np.count_nonzero((outputs[labelled] > 0.5) == (y == 1.0)))
        else:
            loss = 0.0
            correct = int(np.count_nonzero(outputs[labelled] == np.where(y == 0.0, -1.0, y)))
        for tally in (self.cumulative, self.window):
            tally.labelled += n
            tally.loss_sum += loss
            tally.correct += correct

    def due(self, every: int, interval_s: float, now: float) -> bool:
        return self.window.events >= every or (
            self.window.events > 0 and now - self.window_started >= interval_s
        )

    def record(
        self, model_version: int, learning_rate: float, weight_norm: float, lag: int | None, now: float
    ) -> dict[str, Any]:
        """The metrics record for the current window; starts a new window."""
        elapsed = max(now - self.window_started, 1e-9)
        record = {
            "model_version": model_version,
            "events": self.cumulative.events,
            "labelled": self.cumulative.labelled,
            "dead_letters": self.dead_letters,
            "window": {
                "events": self.window.events,
                "log_loss": self.window.log_loss(self.kind),
                "accuracy": self.window.accuracy(),
            },
            "cumulative": {
                "log_loss": self.cumulative.log_loss(self.kind),
                "accuracy": self.cumulative.accuracy(),
            },
            "learning_rate": learning_rate,
            "weight_norm": weight_norm if math.isfinite(weight_norm) else None,
            "events_per_second": round(self.window.events / elapsed, 1),
            "lag": lag,
            "ts": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        }
        self.window = Tally()
        self.window_started = now
        return record

    def state(self) -> dict[str, float | int]:
        c = self.cumulative
        return {
            "events": c.events,
            "labelled": c.labelled,
            "loss_sum": c.loss_sum,
            "correct": c.correct,
            "dead_letters": self.dead_letters,
        }

    def restore(self, state: dict[str, Any]) -> None:
        self.cumulative = Tally(
            int(state["events"]), int(state["labelled"]), float(state["loss_sum"]), int(state["correct"])
        )
        self.dead_letters = int(state["dead_letters"])
