"""The neuron's hot paths against river's and scikit-learn's on the same data, side by side in one run.

    python benchmarks/neuron_vs_peers.py [--features 10 100] [--events 20000] [--repeats 5]

Prints events per second of each and their ratio (best of ``--repeats`` alternated rounds, so
both sides see the same machine load), for the compiled accelerator (when built) and for the numpy
reference path. Goals: per-event >= 3x river's predict_proba_one + learn_one over 500-row poll
batches; mini-batch (32 rows) >= 50x river's predict_proba_many + learn_many. scikit-learn's
``SGDClassifier.partial_fit`` (log loss, constant rate) is shown beside them, without a goal: per event
it is one predict_proba + partial_fit call per row; per mini-batch one of each per 32 rows (its
partial_fit still steps once per row inside).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass

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


def per_event_sklearn(X: np.ndarray, y: np.ndarray) -> Callable[[], None]:
    from sklearn.linear_model import SGDClassifier

    rows = [X[i : i + 1] for i in range(len(X))]
    labels = [y[i : i + 1] for i in range(len(y))]

    def run() -> None:
        model = SGDClassifier(loss="log_loss", penalty=None, learning_rate="constant", eta0=LEARNING_RATE)
        model.partial_fit(rows[0], labels[0], classes=[0.0, 1.0])
        for row, label in zip(rows[1:], labels[1:], strict=True):
            model.predict_proba(row)
            model.partial_fit(row, label)

    return run


def minibatch_sklearn(X: np.ndarray, y: np.ndarray, batch: int) -> Callable[[], None]:
    from sklearn.linear_model import SGDClassifier

    batches = [(X[s : s + batch], y[s : s + batch]) for s in range(0, len(X), batch)]

    def run() -> None:
        model = SGDClassifier(loss="log_loss", penalty=None, learning_rate="constant", eta0=LEARNING_RATE)
        model.partial_fit(*batches[0], classes=[0.0, 1.0])
        for Xb, yb in batches[1:]:
            model.predict_proba(Xb)
            model.partial_fit(Xb, yb)

    return run


def best_rates(runs: dict[str, Callable[[], None]], events: int, repeats: int) -> dict[str, float]:
    best = dict.fromkeys(runs, 0.0)
    for _ in range(repeats):
        for name, run in runs.items():  # alternated, so a load spike hits both sides
            start = time.perf_counter()
            run()
            best[name] = max(best[name], events / (time.perf_counter() - start))
    return best


@dataclass
class Row:
    kernel: str
    features: int
    hot_path: str
    ours: float
    river: float
    sklearn: float
    goal: float

    @property
    def ratio(self) -> float:
        return self.ours / self.river


def compare(features: int, events: int, repeats: int, kernel: str) -> list[Row]:
    X, y = synthetic(events, features)
    sk_events = min(events, 5000)  # scikit-learn's per-call overhead makes long runs slow
    per_event = best_rates(
        {"ours": per_event_ours(X, y, 500), "river": per_event_river(X, y)}, events, repeats
    )
    per_event_sk = best_rates(
        {"sklearn": per_event_sklearn(X[:sk_events], y[:sk_events])}, sk_events, max(1, repeats // 2)
    )
    mb_events = min(events, 4000)  # river's learn_many is slow; fewer batches keep the run short
    mini = best_rates(
        {
            "ours": minibatch_ours(X[:mb_events], y[:mb_events], 32),
            "river": minibatch_river(X[:mb_events], y[:mb_events], 32),
            "sklearn": minibatch_sklearn(X[:mb_events], y[:mb_events], 32),
        },
        mb_events,
        repeats,
    )
    return [
        Row(
            kernel,
            features,
            "per-event (500-row polls)",
            per_event["ours"],
            per_event["river"],
            per_event_sk["sklearn"],
            3.0,
        ),
        Row(kernel, features, "mini-batch (32 rows)", mini["ours"], mini["river"], mini["sklearn"], 50.0),
    ]


def measure(features: list[int], events: int, repeats: int) -> list[Row]:
    """Every row for the compiled kernel (when built) and the numpy reference."""
    compiled = accel.compiled
    kernels = {"compiled": compiled, "numpy": None} if compiled is not None else {"numpy": None}
    rows: list[Row] = []
    try:
        for kernel, module in kernels.items():
            accel.compiled = module
            for d in features:
                rows.extend(compare(d, events, repeats, kernel))
    finally:
        accel.compiled = compiled
    return rows


def format_rows(rows: list[Row]) -> str:
    lines = [
        "| kernel | features | hot path | ours ev/s | river ev/s | scikit-learn ev/s | ours / river | goal |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        verdict = "met" if r.ratio >= r.goal else "MISSED"
        lines.append(
            f"| {r.kernel} | {r.features} | {r.hot_path} | {r.ours:,.0f} | {r.river:,.0f} | {r.sklearn:,.0f} "
            f"| {r.ratio:.1f}x | >= {r.goal:.0f}x {verdict} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--features", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(format_rows(measure(args.features, args.events, args.repeats)))


if __name__ == "__main__":
    main()
