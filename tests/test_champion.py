"""The champion rule against a plain event-by-event reference, whatever the batching: the same events
give the same champions (its hysteresis: a whole window better before a change; a candidate that may
not be champion never is)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_neuron.champion import LOSS_CAP, Champion


def reference(losses: np.ndarray, window: int, eligible: np.ndarray) -> list[int]:
    """The rule as the README states it, one event at a time."""
    k, n = losses.shape
    losses = np.minimum(np.nan_to_num(losses, nan=LOSS_CAP), LOSS_CAP)
    totals = np.zeros((k, n + 1))
    champion, streak, out = 0, np.zeros(k, dtype=int), []
    for t in range(n):
        out.append(champion)
        for j in range(k):  # one addition after the other, as the running totals are kept
            totals[j, t + 1] = totals[j, t] + losses[j, t]
        if t + 1 < window:
            continue
        sums = totals[:, t + 1] - totals[:, t + 1 - window]
        for j in range(k):
            better = j != champion and eligible[j] and sums[j] < sums[champion]
            streak[j] = streak[j] + 1 if better else 0
        ready = [j for j in range(k) if streak[j] >= window]
        if ready:
            champion = min(ready, key=lambda j: (sums[j], j))
            streak[:] = 0
    return out


@st.composite
def streams(draw: st.DrawFn) -> tuple[np.ndarray, int, list[int], np.ndarray]:
    k = draw(st.integers(2, 5))
    n = draw(st.integers(0, 120))
    window = draw(st.integers(1, 12))
    levels = draw(st.lists(st.floats(0.05, 2.0), min_size=k, max_size=k))
    noise = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(noise)
    # each candidate's loss level drifts, so the best changes now and then
    drift = np.cumsum(rng.normal(scale=0.05, size=(k, n)), axis=1)
    losses = np.abs(np.array(levels)[:, None] + drift + rng.normal(scale=0.2, size=(k, n)))
    cuts = sorted(draw(st.lists(st.integers(0, n), max_size=6)))
    eligible = np.array(draw(st.lists(st.booleans(), min_size=k, max_size=k)))
    eligible[0] = True
    return losses, window, cuts, eligible


@settings(max_examples=400, derandomize=True, deadline=None)
@given(stream=streams())
def test_the_champions_are_the_reference_s_whatever_the_batching(
    stream: tuple[np.ndarray, int, list[int], np.ndarray],
) -> None:
    losses, window, cuts, eligible = stream
    champion = Champion(losses.shape[0], window)
    champion.eligible = eligible.copy()
    got: list[int] = []
    for start, stop in zip([0, *cuts], [*cuts, losses.shape[1]], strict=True):
        got += champion.observe(losses[:, start:stop]).tolist()
    assert got == reference(losses, window, eligible)


def test_a_challenger_takes_over_only_after_a_whole_window_and_a_diverging_one_never() -> None:
    window = 10
    champion = Champion(3, window)
    good, bad = np.full(40, 0.1), np.full(40, 1.0)
    champion.eligible[2] = False  # flagged diverging: better than all, never champion
    losses = np.vstack([bad, good, np.zeros(40)])
    scored = champion.observe(losses)
    # candidate 1 is better from the first full window (event 10) on; 10 events in a row later it leads
    assert scored[:19].tolist() == [0] * 19 and scored[19:].tolist() == [1] * 21
    assert champion.changes == 1
    state = champion.state()
    again = Champion(3, window)
    again.restore(state)
    assert again.state() == state
