"""The guard every hot path keeps: a row whose logit, or whose step, would not be finite changes
nothing and is marked refused (its output NaN), for the caller to dead-letter with the reason."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

ACCEPTED, REFUSED_SCORE, REFUSED_STEP = 0, 1, 2

REFUSAL_REASONS = {
    REFUSED_SCORE: "the logit is not finite: the features are too large for the model's weights",
    REFUSED_STEP: "the step would make the model non-finite: the features are too large to learn from",
}


def quiet_overflow() -> np.errstate:
    """The guard looks at every result for overflow itself: numpy's warnings would only repeat it."""
    return np.errstate(over="ignore", invalid="ignore")


def guarded_batch_step(
    try_step: Callable[[NDArray[np.bool_], bool], bool],
    usable: NDArray[np.bool_],
    refused: NDArray[np.int8],
) -> None:
    """One mini-batch step over the ``usable`` rows, ``try_step(rows, commit)`` taking it when the
    model stays finite. If it would not, the rows whose step alone would not are refused and the
    step is taken over the rest (or over none)."""
    if try_step(usable, True):
        return
    for i in np.flatnonzero(usable):
        alone = np.zeros_like(usable)
        alone[i] = True
        if not try_step(alone, False):
            refused[i], usable[i] = REFUSED_STEP, False
    if usable.any() and not try_step(usable, True):
        refused[usable] = REFUSED_STEP
