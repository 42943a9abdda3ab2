"""Datasets shared by the tests: river's bundled Phishing stream as numpy arrays, and synthetic data."""

from __future__ import annotations

from functools import cache

import numpy as np


@cache
def phishing() -> tuple[list[str], list[dict[str, float]], np.ndarray, np.ndarray]:
    """(feature names, river-style rows, X, y as 0.0/1.0) of river's Phishing dataset (1,250 events)."""
    from river import datasets

    data = list(datasets.Phishing())
    names = list(data[0][0])
    rows = [x for x, _ in data]
    X = np.array([[x[k] for k in names] for x in rows])
    y = np.array([float(label) for _, label in data])
    return names, rows, X, y


@cache
def confident_mistakes(n: int = 5000) -> tuple[list[str], list[dict[str, float]], np.ndarray, np.ndarray]:
    """(names, river-style rows, X, y) of five features on a scale of 10 with 5% of the labels flipped:
    per-event SGD at a rate of 0.02 to 0.05 (``lr |x|^2`` of 10 to 25) grows weights until the model is
    confidently wrong (margins below -18) about the flipped events, and amplifies rounding."""
    rng = np.random.default_rng(11)
    X = rng.normal(scale=10.0, size=(n, 5)).round(3)
    truth = rng.normal(size=5)
    y = ((X @ truth > 0) ^ (rng.random(n) < 0.05)).astype(float)
    names = [f"x{j}" for j in range(5)]
    return names, [dict(zip(names, row.tolist(), strict=True)) for row in X], X, y


@cache
def river_phishing_correct(lr: float = 0.01, intercept_lr: float | None = None) -> int:
    """How many of Phishing's 1,250 events river predicts right before learning from each (its
    progressive validation) with ``StandardScaler() | LogisticRegression(SGD(lr), intercept_lr)``: the
    figure every standardised Phishing run here must reproduce (river documents 89.28% = 1,116 for
    lr 0.01)."""
    from river import compose, linear_model, optim, preprocessing

    _, rows, _, y = phishing()
    model = linear_model.LogisticRegression(
        optim.SGD(lr), intercept_lr=lr if intercept_lr is None else intercept_lr
    )
    pipeline = compose.Pipeline(preprocessing.StandardScaler(), model)
    correct = 0
    for x, label in zip(rows, y, strict=True):
        correct += pipeline.predict_one(x) == bool(label)
        pipeline.learn_one(x, bool(label))
    return correct


def synthetic(
    n: int, d: int, seed: int = 0, unlabelled_fraction: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """A noisy linearly separable problem; NaN labels for a fraction of rows (scored only)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) * rng.uniform(0.5, 3.0, size=d) + rng.normal(size=d)
    y = (X @ rng.normal(size=d) + rng.normal(size=n) > 0).astype(np.float64)
    y[rng.random(n) < unlabelled_fraction] = np.nan
    return X, y
