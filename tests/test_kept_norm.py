"""|w| of a sparse model: the compiled kernel keeps the sum of squares as it steps, so a metrics
record of 2^20 hashed buckets does not pass over every weight. Checked against numpy's norm of the
weights after every chunk, through the paths that leave the kept sum stale (numpy's step, a
mini-batch, a restore, a growth), its periodic sum over every weight, and weights near the float
limit."""

from __future__ import annotations

import math

import numpy as np
import pytest

from stream_neuron import LogisticNeuron, Perceptron
from stream_neuron.feature_encoding import sparse_rows
from stream_neuron.feature_hashing import FeatureHashing
from stream_neuron.neuron import LinearNeuron, accel, sparse
from stream_neuron.neuron.numeric import robust_norm
from stream_neuron.neuron.sparse_rows import SparseRows

pytestmark = pytest.mark.skipif(accel.compiled is None, reason="never: the kernel is built")
BUCKET_BITS = 12
BUCKETS = 2**BUCKET_BITS


def hashed_stream(n: int, seed: int) -> tuple[list[SparseRows], list[np.ndarray]]:
    """Chunks of 50 events of 8 numbers and 4 ids, hashed into 2^12 buckets."""
    rng = np.random.default_rng(seed)
    hashing = FeatureHashing(bits=BUCKET_BITS)
    chunks, labels = [], []
    for _ in range(0, n, 50):
        events = [
            {**{f"x{j}": float(v) for j, v in enumerate(rng.normal(size=8))},
             **{f"id{j}": f"u{rng.integers(500)}" for j in range(4)}}
            for _ in range(50)
        ]  # fmt: skip
        chunks.append(sparse_rows((hashing.encode(e) for e in events), len(events)))
        y = (rng.random(50) < 0.5).astype(float)
        y[rng.random(50) < 0.1] = np.nan  # unlabelled: scored, not stepped
        labels.append(y)
    return chunks, labels


def assert_norm_true(model: LinearNeuron) -> None:
    assert model.weight_norm() == pytest.approx(float(np.linalg.norm(model.weights)), rel=1e-12)


def learn_checking_the_norm(model: LinearNeuron, chunks: list[SparseRows], labels: list[np.ndarray]) -> None:
    for rows, y in zip(chunks, labels, strict=True):
        model.score_then_learn(rows, y)
        assert_norm_true(model)


def full_sums(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the passes over every weight."""
    calls: list[int] = []
    summed = accel.sum_of_squares

    def counted(weights: np.ndarray) -> float:
        calls.append(weights.size)
        return summed(weights)

    monkeypatch.setattr(accel, "sum_of_squares", counted)
    return calls


@pytest.mark.parametrize("kind", [LogisticNeuron, Perceptron])
def test_the_kept_norm_is_the_weights_norm_with_one_pass_over_them(
    kind: type[LinearNeuron], monkeypatch: pytest.MonkeyPatch
) -> None:
    chunks, labels = hashed_stream(3000, seed=5)
    model = kind(BUCKETS, sparse=True)
    calls = full_sums(monkeypatch)
    learn_checking_the_norm(model, chunks, labels)
    assert len(calls) == 1  # the first record's; after it the kernel kept the sum


def test_every_path_that_leaves_the_kept_sum_stale_sums_the_weights_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    chunks, labels = hashed_stream(1500, seed=6)
    model = LogisticNeuron(BUCKETS, 0.3, sparse=True)
    calls = full_sums(monkeypatch)
    for i, (rows, y) in enumerate(zip(chunks, labels, strict=True)):
        if i % 5 == 2:
            with monkeypatch.context() as numpy_only:  # numpy's per-event reference
                numpy_only.setattr(accel, "compiled", None)
                model.score_then_learn(rows, y)
        elif i % 6 == 3:
            model.learn_batch(rows, np.nan_to_num(y))  # one mini-batch step
        else:
            model.score_then_learn(rows, y)
        assert_norm_true(model)
        if i == 10:
            model = LogisticNeuron.from_dict(model.to_dict())  # a restore: another array
            assert_norm_true(model)
        if i == 20:
            model.grow(model.n_features + 7)
            assert_norm_true(model)
    assert len(calls) > 10


def test_the_kept_sum_is_summed_again_every_resum_every_updates(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sparse, "RESUM_EVERY", 200)
    chunks, labels = hashed_stream(2000, seed=7)
    model = LogisticNeuron(BUCKETS, sparse=True)
    calls = full_sums(monkeypatch)
    learn_checking_the_norm(model, chunks, labels)
    assert 1 < len(calls) <= model.n_updates // 200 + 1


def test_weights_near_the_float_limit_take_the_scaled_norm() -> None:
    model = LogisticNeuron(3, 1.0, sparse=True)
    rows = SparseRows(np.array([0, 2]), np.array([0, 1]), np.array([1e155, -1e155]), np.zeros(2, bool))
    model.score_then_learn(rows, np.array([1.0]))  # |w| about 7e154: its square overflows
    norm = model.weight_norm()
    assert math.isfinite(norm) and norm == robust_norm(np.asarray(model.weights))
