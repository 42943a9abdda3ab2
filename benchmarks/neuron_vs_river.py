"""The neuron's hot paths against river's on the same data, measured side by side in one run.

    python benchmarks/neuron_vs_river.py [--features 10] [--events 20000] [--repeats 5]

Prints events per second of each and their ratio (best of ``--repeats`` alternated rounds, so
both sides see the same machine load), for the compiled accelerator (when built) and for the numpy
reference path. Goals: per-event >= 3x river's predict_proba_one + learn_one over 500-row poll
batches; mini-batch (32 rows) >= 50x river's predict_proba_many + learn_many.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import pandas as pd
from river import linear_model, optim

from stream_neuron import LogisticNeuron
from stream_neuron.neuron import accel

LEARNING_RATE = 0.05


def synthetic(n: int, d: int, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = (X @ rng.normal(size=d) + rng.normal(scale=0.5, size=n) > 0).astype(np.float64)
    return X, y


def per_event_ours(X: np.ndarray, y: np.ndarray, poll: int) -> Callable[[], None]:
    def run() -> None:
        model = LogisticNeuron(X.shape[1], LEARNING_RATE)
        scores = np.empty(poll)
        for start in range(0, len(X), poll):
            model.score_then_learn(X[start : start + poll], y[start : start + poll], scores)

    return run


def per_event_river(X: np.ndarray, y: np.ndarray) -> Callable[[], None]:
    names = [f"f{i}" for i in range(X.shape[1])]
    rows = [dict(zip(names, r, strict=True)) for r in X.tolist()]
    labels = [bool(v) for v in y]

    def run() -> None:
        model = linear_model.LogisticRegression(
            optimizer=optim.SGD(LEARNING_RATE), intercept_lr=LEARNING_RATE
        )
        for x, label in zip(rows, labels, strict=True):
            model.predict_proba_one(x)
            model.learn_one(x, label)

    return run


def minibatch_ours(X: np.ndarray, y: np.ndarray, batch: int) -> Callable[[], None]:
    batches = [(X[s : s + batch], y[s : s + batch]) for s in range(0, len(X), batch)]

    def run() -> None:
        model = LogisticNeuron(X.shape[1], LEARNING_RATE)
        scores = np.empty(batch)
        for Xb, yb in batches:
            model.score_then_learn_batch(Xb, yb, scores if len(Xb) == batch else None)

    return run


def minibatch_river(X: np.ndarray, y: np.ndarray, batch: int) -> Callable[[], None]:
    names = [f"f{i}" for i in range(X.shape[1])]
    frames = [
        (pd.DataFrame(X[s : s + batch], columns=names), pd.Series(y[s : s + batch].astype(bool)))
        for s in range(0, len(X), batch)
    ]

    def run() -> None:
        model = linear_model.LogisticRegression(
            optimizer=optim.SGD(LEARNING_RATE), intercept_lr=LEARNING_RATE
        )
        for Xb, yb in frames:
            model.predict_proba_many(Xb)
            model.learn_many(Xb, yb)

    return run


def best_rates(runs: dict[str, Callable[[], None]], events: int, repeats: int) -> dict[str, float]:
    best = dict.fromkeys(runs, 0.0)
    for _ in range(repeats):
        for name, run in runs.items():  # alternated, so a load spike hits both sides
            start = time.perf_counter()
            run()
            best[name] = max(best[name], events / (time.perf_counter() - start))
    return best


def compare(features: int, events: int, repeats: int) -> list[tuple[str, float, float, float, float]]:
    X, y = synthetic(events, features)
    per_event = best_rates(
        {"ours": per_event_ours(X, y, 500), "river": per_event_river(X, y)}, events, repeats
    )
    mb_events = min(events, 4000)  # river's learn_many is slow; fewer batches keep the run short
    mini = best_rates(
        {
            "ours": minibatch_ours(X[:mb_events], y[:mb_events], 32),
            "river": minibatch_river(X[:mb_events], y[:mb_events], 32),
        },
        mb_events,
        repeats,
    )
    return [
        (
            "per-event (500-row polls)",
            per_event["ours"],
            per_event["river"],
            per_event["ours"] / per_event["river"],
            3.0,
        ),
        ("mini-batch (32 rows)", mini["ours"], mini["river"], mini["ours"] / mini["river"], 50.0),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--features", type=int, nargs="+", default=[10])
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    compiled = accel.compiled
    kernels = {"compiled": compiled, "numpy": None} if compiled is not None else {"numpy": None}
    header = f"{'kernel':<9}{'features':>8}  {'hot path':<26} {'ours ev/s':>12} {'river ev/s':>12}"
    print(f"{header} {'ratio':>7} {'goal':>6}")
    for kernel, module in kernels.items():
        accel.compiled = module
        for d in args.features:
            for name, ours, river, ratio, goal in compare(d, args.events, args.repeats):
                verdict = "ok" if ratio >= goal else "MISS"
                row = f"{kernel:<9}{d:>8}  {name:<26} {ours:>12,.0f} {river:>12,.0f}"
                print(f"{row} {ratio:>6.1f}x {goal:>5.0f}x {verdict}")
    accel.compiled = compiled


if __name__ == "__main__":
    main()
