"""The per-event SGD hot path over a poll batch, without a numpy call per event.

Plain per-row SGD costs several numpy calls per event, and numpy's call overhead (about a microsecond)
dwarfs the arithmetic for ten features. The recurrence is rewritten so that only scalars stay
sequential. With ``c_s = lr_w(s) * g_s`` the weights after ``t`` steps of a block are
``w_0 - sum_{s<t} c_s x_s``, hence

    z_t = x_t . w_t + b_t = (x_t . w_0 + b_0) - sum_{s<t} c_s (x_s . x_t) - sum_{s<t} lr_b(s) g_s.

Per block of rows: one matrix-vector product for the starting logits, one small Gram matrix, a
Python loop over floats for the scalar recurrence (the only sequential part), and one
vector-matrix product to fold the block's steps into the weights. The result equals a loop of
``predict_proba`` + ``learn_one`` up to floating-point rounding (~1e-15, see the parity tests).
"""

from __future__ import annotations

import math
from operator import mul
from typing import Literal

import numpy as np

from stream_neuron.neuron.numeric import FloatArray

Loss = Literal["log", "hinge"]

# Per-event Python work grows with the block (the triangle of the Gram matrix); per-block numpy work
# is fixed. 24 balances the two for 10-100 features (benchmarks/neuron_vs_river.py).
BLOCK_ROWS = 12


def _loss_gradient(loss: Loss, z: float, label: float) -> float:
    if loss == "log":
        if z >= 0:
            return 1.0 / (1.0 + math.exp(-z)) - label
        e = math.exp(z)
        return e / (1.0 + e) - label
    return -label if label * z <= 0.0 else 0.0


def score_then_learn_rows(
    score_rows: FloatArray,
    learn_rows: FloatArray,
    y: FloatArray,
    weights: FloatArray,
    bias: float,
    lr_weights: FloatArray,
    lr_bias: FloatArray,
    loss: Loss,
    scores_out: FloatArray,
) -> float:
    """Score each row with the weights from before it, then take one SGD step on it when labelled.

    ``score_rows[t]`` is what row ``t`` is scored on and ``learn_rows[t]`` what it is learned from
    (the same array unless an online scaler sits in front). ``y`` is NaN for an unlabelled row.
    ``lr_weights[t]``/``lr_bias[t]`` are the rates of row ``t``'s step (ignored when unlabelled).
    ``weights`` is updated in place, logits go to ``scores_out``; the new bias is returned.
    For ``loss="log"`` labels are {0,1} and the step is ``(p - y) * x``; for ``"hinge"`` (the
    perceptron) labels are {-1,+1} and the step is ``-y * x`` on a mistake (``y * z <= 0``).
    """
    if score_rows is learn_rows and loss == "log":
        return _logistic_same_rows(score_rows, y, weights, bias, lr_weights, lr_bias, scores_out)
    n = score_rows.shape[0]
    for start in range(0, n, BLOCK_ROWS):
        stop = min(start + BLOCK_ROWS, n)
        learn_block = learn_rows[start:stop]
        score_block = score_rows[start:stop]
        z_learn0 = (learn_block @ weights + bias).tolist()
        z_score0 = (score_block @ weights + bias).tolist()
        gram = (learn_block @ learn_block.T).tolist()
        cross = (score_block @ learn_block.T).tolist()
        labels = y[start:stop].tolist()
        rates_w = lr_weights[start:stop].tolist()
        rates_b = lr_bias[start:stop].tolist()
        steps: list[float] = []  # c_s = lr_w(s) * g_s of the block's rows so far
        scores: list[float] = []
        bias_shift = 0.0
        for t in range(stop - start):
            # map() stops at the shorter sequence: only the rows before t contribute.
            scores.append(z_score0[t] - bias_shift - sum(map(mul, steps, cross[t])))
            label = labels[t]
            if label != label:  # NaN: unlabelled, scored only
                steps.append(0.0)
                continue
            z = z_learn0[t] - bias_shift - sum(map(mul, steps, gram[t]))
            g = _loss_gradient(loss, z, label)
            steps.append(rates_w[t] * g)
            bias_shift += rates_b[t] * g
        scores_out[start:stop] = scores
        weights -= np.asarray(steps) @ learn_block
        bias -= bias_shift
    return bias


def _block_grams(rows: FloatArray) -> list[list[list[float]]]:
    """The Gram matrix of every block of rows, from one batched product (one numpy call, not one a
    block)."""
    n, d = rows.shape
    full = n - n % BLOCK_ROWS
    grams: list[list[list[float]]] = []
    if full:
        blocks = rows[:full].reshape(-1, BLOCK_ROWS, d)
        grams.extend((blocks @ blocks.transpose(0, 2, 1)).tolist())
    if full < n:
        tail = rows[full:]
        grams.append((tail @ tail.T).tolist())
    return grams


def _logistic_same_rows(
    rows: FloatArray,
    y: FloatArray,
    weights: FloatArray,
    bias: float,
    lr_weights: FloatArray,
    lr_bias: FloatArray,
    scores_out: FloatArray,
) -> float:
    """The common case (logistic, no scaler) with the loss inlined: it is most of the per-event cost."""
    exp = math.exp
    n = rows.shape[0]
    labels = y.tolist()
    rates_w = lr_weights.tolist()
    rates_b = lr_bias.tolist()
    scores: list[float] = []
    for gram, start in zip(_block_grams(rows), range(0, n, BLOCK_ROWS), strict=True):
        stop = start + len(gram)
        block = rows[start:stop]
        steps: list[float] = []
        for z_start, label, gram_row, rate_w, rate_b in zip(
            (block @ weights).tolist(),
            labels[start:stop],
            gram,
            rates_w[start:stop],
            rates_b[start:stop],
            strict=True,
        ):
            z = z_start + bias - sum(map(mul, steps, gram_row))
            scores.append(z)
            if label != label:
                steps.append(0.0)
                continue
            if z >= 0:
                g = 1.0 / (1.0 + exp(-z)) - label
            else:
                e = exp(z)
                g = e / (1.0 + e) - label
            steps.append(rate_w * g)
            bias -= rate_b * g
        weights -= np.asarray(steps) @ block
    scores_out[:] = scores
    return bias
