"""Prequential metrics: every labelled event's cost and hit, with the weights from before it.

The model supplies the terms (its loss and its right answers, :meth:`LinearNeuron.prequential_terms`);
this module only sums them into windows and the cumulative tally, and writes the metrics record.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


@dataclass
class Tally:
    events: int = 0
    labelled: int = 0
    loss_sum: float = 0.0
    correct: int = 0
    busy_s: float = 0.0  # time with input flowing (idle waits between polls left out)

    def mean_loss(self) -> float | None:
        return self.loss_sum / self.labelled if self.labelled else None

    def accuracy(self) -> float | None:
        return self.correct / self.labelled if self.labelled else None


@dataclass
class MetricsTracker:
    """Window (since the last metrics record) and cumulative tallies, plus counters. ``log_loss``:
    whether the model's loss is the log loss (a probabilistic model), reported as such."""

    log_loss: bool
    cumulative: Tally = field(default_factory=Tally)
    window: Tally = field(default_factory=Tally)
    dead_letters: int = 0
    window_started: float = 0.0

    def count_events(self, n: int, busy_s: float) -> None:
        """``n`` input records taken in ``busy_s`` seconds of input flowing."""
        self.cumulative.events += n
        self.window.events += n
        self.window.busy_s += busy_s

    def count_dead_letter(self) -> None:
        self.dead_letters += 1

    def add_terms(self, labelled: int, loss_sum: float, correct: int) -> None:
        """Add a scored chunk's labelled rows: their summed loss and right answers."""
        if labelled == 0:
            return
        for tally in (self.cumulative, self.window):
            tally.labelled += labelled
            tally.loss_sum += loss_sum
            tally.correct += correct

    def due(self, every: int, interval_s: float, now: float) -> bool:
        return self.window.events >= every or (
            self.window.events > 0 and now - self.window_started >= interval_s
        )

    def record(
        self, model_version: int, learning_rate: float, weight_norm: float, lag: int | None, now: float
    ) -> dict[str, Any]:
        """The metrics record for the current window; starts a new window."""
        window, cumulative = self.window, self.cumulative
        rate = window.events / window.busy_s if window.busy_s > 0 else 0.0
        record = {
            "model_version": model_version,
            "events": cumulative.events,
            "labelled": cumulative.labelled,
            "dead_letters": self.dead_letters,
            "window": {
                "events": window.events,
                "log_loss": window.mean_loss() if self.log_loss else None,
                "accuracy": window.accuracy(),
            },
            "cumulative": {
                "log_loss": cumulative.mean_loss() if self.log_loss else None,
                "accuracy": cumulative.accuracy(),
            },
            "learning_rate": learning_rate,
            "weight_norm": weight_norm if math.isfinite(weight_norm) else None,
            "events_per_second": round(rate, 1),
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
