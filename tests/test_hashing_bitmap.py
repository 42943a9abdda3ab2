"""The buckets a hashing has in use, a bit each: what a snapshot's ``features.in_use`` carries."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from stream_neuron.feature_hashing import FeatureHashing


@pytest.mark.parametrize("bits", [1, 2, 3, 4, 9, 20])
def test_the_buckets_in_use_come_back_from_the_bitmap_at_every_size(bits: int) -> None:
    hashing = FeatureHashing(bits, seed=5)
    for i in range(12):
        hashing.encode({f"x{i}": 1.5, "id": f"u{i}"})
    bitmap = hashing.in_use_bitmap()
    restored = FeatureHashing(bits, seed=5)
    restored.use_bitmap(bitmap)
    assert restored.in_use.tolist() == hashing.in_use.tolist()
    assert restored.budget.features == hashing.budget.features == int(hashing.in_use.sum())
    # the bitmap is numpy's packbits of the buckets, little-endian bit order
    packed = np.packbits(hashing.in_use, bitorder="little").tobytes()
    assert base64.b64decode(bitmap) == packed


def test_the_python_and_the_compiled_encoders_mark_the_same_bits() -> None:
    events = [{"a": 1.0, "b": "x", "c": True}, {"a": 2.0, "b": "y", "d": 3}]
    compiled, reference = FeatureHashing(6, seed=1), FeatureHashing(6, seed=1)
    for features in events:
        assert compiled.encode(features) == reference.encode(features, fast=False)
    assert compiled.in_use_bitmap() == reference.in_use_bitmap()


@pytest.mark.parametrize(
    ("bits", "raw", "reason"),
    [
        (3, b"\x01\x00", "is not 8 bits"),
        (20, b"\x00" * 10, "is not 1048576 bits"),
        (1, b"\x04", "marks a bucket past 1"),
        (2, b"\x10", "marks a bucket past 3"),
    ],
)
def test_a_bitmap_of_another_size_is_refused_with_its_reason(bits: int, raw: bytes, reason: str) -> None:
    hashing = FeatureHashing(bits)
    with pytest.raises(ValueError, match=reason):
        hashing.use_bitmap(base64.b64encode(raw).decode())
    assert not hashing.in_use.any()
