"""Which of several candidates publishes: the champion rule.

Every labelled event gives each candidate a loss (its prediction, made before it learned the event).
A candidate's window loss is the sum of its losses over the last ``window`` labelled events. The
champion changes only when another candidate has had a lower window loss than the champion for a
whole window, ``window`` labelled events in a row (no flapping); among several such, the lowest window
loss wins. A candidate that may not be champion (``eligible`` false: its numbers left the floats, or
it is flagged diverging) never becomes it, and a champion that stops being eligible gives way at once
to the best eligible candidate. Until the first window fills, the champion is the first candidate
(or the one a snapshot, or a fit, hands over).

The sums are differences of each candidate's running total of losses (``np.cumsum`` in event order,
carried across batches), so the choice depends on the events and their order only, never on how they
were batched: the same input gives the same champions.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from stream_neuron.neuron.numeric import FloatArray

LOSS_CAP = 1e6


class Champion:
    def __init__(self, n_candidates: int, window: int, champion: int = 0) -> None:
        self.k, self.window = n_candidates, window
        self.champion = champion
        self.totals: FloatArray = np.zeros((n_candidates, window + 1))  # the last window+1 running totals
        self.seen = 0  # labelled events so far
        self.streaks = np.zeros(n_candidates, dtype=np.int64)  # events in a row better than the champion
        self.changes = 0
        self.eligible = np.ones(n_candidates, dtype=bool)
        self.fresh = False  # a race restarted (--on-drift reset-champion): its first window decides

    def restart(self) -> None:
        """Start the race afresh: the losses so far are forgotten, and once ``window`` labelled events
        have been seen the best eligible candidate over them is champion at once (no streak needed);
        till then the champion stays."""
        self.totals[:] = 0.0
        self.seen = 0
        self.streaks[:] = 0
        self.fresh = True

    def _sums(self, losses: FloatArray) -> tuple[FloatArray, FloatArray]:
        """The running totals after each event, and the window sums they give (NaN before the first
        window fills). The totals are summed one event after the other from the carried total, so
        they do not depend on how the events were batched."""
        n = losses.shape[1]
        running = np.cumsum(np.concatenate([self.totals[:, -1:], losses], axis=1), axis=1)[:, 1:]
        history = np.concatenate([self.totals, running], axis=1)  # totals of events seen-w .. seen+n
        sums = history[:, self.window + 1 :] - history[:, 1 : n + 1]
        counts = self.seen + np.arange(1, n + 1)
        sums[:, counts < self.window] = np.nan
        return history, sums

    def observe(self, losses: FloatArray) -> np.ndarray:
        """Take the losses of the next labelled events (candidates x events); the champion that scored
        each of them (the one chosen from the events before it)."""
        if self.fresh and self.seen + losses.shape[1] >= self.window:
            first = self.window - self.seen
            before = self._observe(losses[:, :first])
            self.fresh = False
            self._switch(self._best_eligible())
            return np.concatenate([before, self._observe(losses[:, first:])])
        return self._observe(losses)

    def _observe(self, losses: FloatArray) -> np.ndarray:
        n = losses.shape[1]
        before = np.empty(n, dtype=np.int64)
        if not self.eligible[self.champion] and self.eligible.any():
            self._switch(self._best_eligible())
        # A loss beyond LOSS_CAP (a refused row's NaN, a confident mistake at a huge logit) counts as
        # LOSS_CAP: the running totals stay finite.
        history, sums = self._sums(np.minimum(np.nan_to_num(losses, nan=LOSS_CAP), LOSS_CAP))
        start = 0
        while start < n:
            before[start:] = self.champion
            moved = self._scan(sums[:, start:])
            if moved is None:
                break
            at, challenger = moved
            before[start : start + at + 1] = self.champion
            self._switch(challenger)
            start += at + 1
        self.totals = history[:, -(self.window + 1) :]
        self.seen += n
        return before

    def _scan(self, sums: FloatArray) -> tuple[int, int] | None:
        """The first event after which a challenger has been better for a whole window, and which
        (``None``: none in these events); the streaks carry on otherwise. Every challenger at once:
        a candidates x events array of runs of events in a row better than the champion."""
        n = sums.shape[1]  # at least one event: _observe scans only what is left
        challengers = self.eligible.copy()
        challengers[self.champion] = False
        better = (sums < sums[self.champion]) & challengers[:, None]
        counted = np.cumsum(better, axis=1)
        # the run at an event: the better events since the last one that was not (counted at it)
        since = np.maximum.accumulate(np.where(better, 0, counted), axis=1)
        runs = counted - since
        # the streak carried in from the previous batch continues up to each row's first reset
        first_reset = np.where(better.all(axis=1), n, np.argmin(better, axis=1))
        carried = np.where(challengers, self.streaks, 0)
        runs += carried[:, None] * (np.arange(n)[None, :] < first_reset[:, None])
        reached = np.flatnonzero((runs >= self.window).any(axis=0))
        if reached.size == 0:
            self.streaks = runs[:, n - 1].copy()
            self.streaks[self.champion] = 0
            return None
        at = int(reached[0])
        ready = np.flatnonzero(runs[:, at] >= self.window)
        challenger = int(ready[np.argmin(sums[ready, at])])
        return at, challenger

    def set_eligible(self, eligible: np.ndarray) -> None:
        """Which candidates may be champion from now on; a champion that may not gives way at once to
        the best that may (when none may, the champion stays: something must publish)."""
        self.eligible = np.asarray(eligible, dtype=bool).copy()
        if not self.eligible[self.champion] and self.eligible.any():
            self._switch(self._best_eligible())

    def _best_eligible(self) -> int:
        """The eligible candidate with the lowest loss over the last window (the first, before one)."""
        candidates = np.flatnonzero(self.eligible)
        if self.seen < self.window:
            return int(candidates[0])
        sums = self.totals[:, -1] - self.totals[:, 0]
        return int(candidates[np.argmin(sums[candidates])])

    def _switch(self, challenger: int) -> None:
        if challenger != self.champion:
            self.champion = challenger
            self.changes += 1
        self.streaks[:] = 0

    def state(self) -> dict[str, Any]:
        return {
            "champion": self.champion,
            "totals": self.totals.tolist(),
            "seen": self.seen,
            "streaks": self.streaks.tolist(),
            "changes": self.changes,
            "fresh": self.fresh,
        }

    def restore(self, state: dict[str, Any]) -> None:
        totals = np.asarray(state["totals"], dtype=np.float64)
        streaks = np.asarray(state["streaks"], dtype=np.int64)
        champion, seen, changes = int(state["champion"]), int(state["seen"]), int(state["changes"])
        if totals.ndim != 2 or totals.shape[0] != self.k or streaks.shape != (self.k,):
            raise ValueError(f"champion state for {self.k} candidates expected")
        if not (0 <= champion < self.k and seen >= 0 and changes >= 0 and np.isfinite(totals).all()):
            raise ValueError("champion state: out of range")
        if totals.shape[1] != self.window + 1:
            # Another --champion-window (or a fit's first champion): the champion stays, and the
            # comparison starts afresh with windows of the new size.
            totals, seen, streaks = np.zeros((self.k, self.window + 1)), 0, np.zeros(self.k, dtype=np.int64)
        self.totals, self.streaks, self.champion, self.seen, self.changes = (
            totals,
            streaks,
            champion,
            seen,
            changes,
        )
        self.fresh = bool(state.get("fresh", False))
