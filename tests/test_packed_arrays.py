"""A sparse snapshot's packed arrays: the SIMD base64 codec they go through gives the standard
library's text, byte for byte, reads it back exactly, and refuses what is not such an array; the
features a snapshot holds and its entries at them, compiled, are numpy's bit for bit."""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
import pytest

from stream_neuron import LogisticNeuron
from stream_neuron.neuron import accel
from stream_neuron.neuron.sparse_state import (
    PACKED_TYPES,
    PackedText,
    SnapshotScratch,
    bitmap_index,
    packed,
    packed_bits,
    unpacked,
)
from tests.test_neuron_kernels import CountedKernels


def _arrays(dtype: str) -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    if dtype == "<i8":
        return [np.zeros(0, dtype=np.int64), rng.integers(-(2**62), 2**62, size=1001), np.array([2**63 - 1])]
    return [
        np.zeros(0),
        rng.normal(size=1001) * 10.0 ** rng.integers(-300, 300, size=1001),
        np.array([5e-324, -0.0, 1.7976931348623157e308]),
        np.arange(12.0)[::3],  # not contiguous
        np.arange(4.0).astype(">f8"),  # big-endian
    ]


@pytest.mark.parametrize("name", sorted(PACKED_TYPES))
def test_packed_text_is_the_standard_library_s_and_reads_back_exactly(name: str) -> None:
    dtype = PACKED_TYPES[name]
    for array in _arrays(dtype):
        text = packed(array, dtype)
        assert type(text) is PackedText and text.raw == text.encode("ascii")  # what a snapshot copies
        assert text == base64.b64encode(np.ascontiguousarray(array).astype(dtype).tobytes()).decode("ascii")
        back = unpacked(text, dtype)
        assert back.dtype == np.dtype(dtype) and back.tobytes() == array.astype(dtype).tobytes()


def test_a_bitmap_index_round_trips_and_is_the_standard_library_s() -> None:
    mask = np.random.default_rng(3).random(1000) < 0.3
    text = packed_bits(np.packbits(mask, bitorder="little"))
    assert text == base64.b64encode(np.packbits(mask, bitorder="little").tobytes()).decode("ascii")
    assert bitmap_index({"bits": text}, 1000).tolist() == np.flatnonzero(mask).tolist()


@pytest.mark.parametrize(
    "text",
    [
        "not base64!",  # a character outside the alphabet
        "QUJ",  # a missing pad
        "QU JD",  # a space
        "QUJD\n",  # a line break
        "caf\u00e9",  # not ASCII
        "QUJDRA==QUJD",  # a pad in the middle
        "QUJDRA==",  # 4 bytes: not a whole float64
    ],
)
def test_what_is_not_a_packed_array_is_refused_as_such(text: str) -> None:
    with pytest.raises(ValueError, match=r"^sparse state: "):
        unpacked(text, "<f8")


@pytest.mark.parametrize("value", [None, 5, ["QUJD"], b"QUJD"])
def test_a_packed_array_must_be_text(value: object) -> None:
    with pytest.raises(ValueError, match="must be base64 text"):
        unpacked(value, "<f8")


def test_bitmap_index_refuses_bits_past_the_features_and_the_wrong_length() -> None:
    with pytest.raises(ValueError, match="past 9"):
        bitmap_index({"bits": packed_bits(np.packbits(np.arange(16) == 12, bitorder="little"))}, 10)
    with pytest.raises(ValueError, match="not 100 bits"):
        bitmap_index({"bits": packed_bits(np.full(1, 255, dtype=np.uint8))}, 100)
    with pytest.raises(ValueError, match="not base64"):
        bitmap_index({"bits": "%%%%"}, 8)


def _touched_and_gathered(arrays: list[np.ndarray]) -> tuple[bytes, int, list[bytes]]:
    scratch = SnapshotScratch()
    bits, count = scratch.touched(arrays)
    kept = bits.tobytes()
    return kept, count, [scratch.gathered(bits, array, count).tobytes() for array in arrays]


def _snapshot_arrays(n: int, seed: int) -> list[np.ndarray]:
    """Weights with -0.0, NaN, huge and tiny numbers among the zeros, a scaler's counts, a moment."""
    rng = np.random.default_rng(seed)
    weights = np.where(rng.random(n) < 0.4, rng.normal(size=n) * 10.0 ** rng.integers(-300, 300, size=n), 0.0)
    weights[rng.random(n) < 0.05] = -0.0
    weights[rng.random(n) < 0.01] = np.nan
    counts = np.where(rng.random(n) < 0.1, rng.integers(1, 2**62, size=n), 0).astype(np.int64)
    counts[rng.random(n) < 0.02] = -(2**63)  # the sign bit alone: an int64 that is not 0
    moment = np.where(rng.random(n) < 0.1, rng.random(n), 0.0)
    return [weights, counts, moment]


@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 63, 64, 65, 1000, 2**16 + 3])
def test_the_compiled_touched_features_and_entries_are_numpy_s(
    n: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each set of arrays alone and together (one array: a model's weights alone), compiled and numpy:
    the same bits, count and entries; and they are the mask's ``packbits`` and ``compress``. The
    counts (under 1 in 8 not 0) take the kernel's gather from bit to bit, the weights (2 in 5) its
    branch-free one."""
    if accel.compiled is None:
        pytest.fail("the compiled kernels are not built")
    arrays, module = _snapshot_arrays(n, seed=n), accel.compiled
    for chosen in ([arrays[0]], [arrays[1]], arrays):
        results: list[Any] = []
        counted = CountedKernels(module)
        for kernels in (counted, None):
            monkeypatch.setattr(accel, "compiled", kernels)
            results.append(_touched_and_gathered(chosen))
        assert counted.calls == {"touched_bits": 1, "gather_bits": len(chosen)}  # none fell back to numpy
        assert results[0] == results[1]
        mask = np.logical_or.reduce([a != 0 for a in chosen]) if n else np.zeros(0, dtype=bool)
        bits, count, entries = results[0]
        assert bits == np.packbits(mask, bitorder="little").tobytes() and count == int(mask.sum())
        assert entries == [np.compress(mask, a).tobytes() for a in chosen]


def test_the_compiled_kernels_refuse_what_does_not_fit() -> None:
    kernels = accel.compiled
    if kernels is None:
        pytest.fail("the compiled kernels are not built")
    weights = np.array([1.0, 0.0, 2.0])
    bits = np.zeros(1, dtype=np.uint8)
    with pytest.raises(ValueError, match="differ in length"):
        kernels.touched_bits((weights, np.zeros(4)), bits)
    with pytest.raises(ValueError, match=r"\(n \+ 7\) // 8"):
        kernels.touched_bits((weights,), np.zeros(2, dtype=np.uint8))
    with pytest.raises(TypeError, match="float64 or int64"):
        kernels.touched_bits((weights.astype(np.float32),), bits)
    assert kernels.touched_bits((weights,), bits) == 2
    with pytest.raises(ValueError, match="an entry per bit set"):
        kernels.gather_bits(bits, weights, np.zeros(3))
    with pytest.raises(ValueError, match="a bit per entry"):  # a bit past the array's 3 entries
        kernels.gather_bits(np.array([0b1001], dtype=np.uint8), weights, np.zeros(2))
    with pytest.raises(TypeError, match="the array's type"):
        kernels.gather_bits(bits, weights, np.zeros(2, dtype=np.int64))


def test_a_hashed_model_s_snapshot_takes_the_compiled_kernels(monkeypatch: pytest.MonkeyPatch) -> None:
    """A sparse model's snapshot (weights and the scaler's three arrays, bitmap-indexed) goes through
    the compiled kernels, and its state is numpy's."""
    if accel.compiled is None:
        pytest.fail("the compiled kernels are not built")
    rng = np.random.default_rng(5)
    model = LogisticNeuron(4096, sparse=True, standardize=True)
    model.mutable_weights()[rng.random(4096) < 0.5] = 1.5
    assert model.sparse_scaler is not None
    model.sparse_scaler.counts[::7] = 3
    states = []
    counted = CountedKernels(accel.compiled)
    for kernels in (counted, None):
        monkeypatch.setattr(accel, "compiled", kernels)
        states.append(model.sparse_state())
    assert counted.calls == {"touched_bits": 1, "gather_bits": 4}
    assert isinstance(states[0]["index"], dict) and states[0] == states[1]
