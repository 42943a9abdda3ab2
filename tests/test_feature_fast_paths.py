"""The encoders' compiled fast paths against their Python reference: the same entries, the same
refusals with the same reasons, the same buckets in use, event by event and through a chunk's sink."""

from __future__ import annotations

from typing import Any

import mmh3
import numpy as np
import pytest

from stream_neuron import (
    _encode,  # type: ignore[attr-defined]
    feature_encoding,
    feature_hashing,
)
from stream_neuron.decode import BadEventError
from stream_neuron.feature_encoding import OpenVocabulary
from stream_neuron.feature_hashing import FeatureHashing
from stream_neuron.feature_values import ValueBound
from stream_neuron.row_sink import SparseSink
from tests.test_open_features_parity import open_stream

ODD_EVENTS: list[dict[str, Any]] = [
    {"n0": 2**70, "country": "fr"}, {"n0": 10**400}, {"country": "x" * 70}, {"x" * 70: 1.0},
    {"country_fr": 1.0, "country": "fr"}, {"vip": False, "n1": True}, {"n2": float("inf")},
    {"n3": None}, {"n4": [1]}, {"n4": {"a": 1}}, {f"k{i}": 1.0 for i in range(300)},
    {"country": "fr", "é": 1.0}, {"é": "ü", "n0": -0.0}, {"s": "\ud800"}, {"\udc00": 1.0}, {},
]  # fmt: skip
# Beyond the encoders' bound below, with names of their own: refused before a name or bucket is taken.
FAR_EVENTS: list[dict[str, Any]] = [{"far0": 5e3, "tag": "t-far"}, {"n0": -2e3, "x-far": 1.0}]
BOUND = ValueBound(1000.0, "a feature is beyond +/-1000 (--max-feature-abs)")


def test_the_compiled_encoder_gives_what_the_python_one_gives(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fast path takes events of known names; anything else (a new name, a long one, a number a
    float64 does not hold, a feature twice) falls to the Python encoder, which names the problem."""
    events, _ = open_stream(300, seed=34)
    events += ODD_EVENTS + FAR_EVENTS
    outcomes = []
    for compiled in (_encode, None):
        monkeypatch.setattr(feature_encoding, "compiled_encoder", compiled)
        vocabulary = OpenVocabulary(max_name_bytes=200)
        vocabulary.bound = BOUND
        seen: list[Any] = []
        for _ in range(2):  # the second pass: every name known
            for x in events:
                try:
                    seen.append(vocabulary.encode(x))
                except BadEventError as bad:
                    seen.append((bad.error_class, bad.reason))
        outcomes.append((seen, vocabulary.names))
    assert outcomes[0] == outcomes[1]


def test_the_compiled_hashing_gives_what_the_python_one_gives(monkeypatch: pytest.MonkeyPatch) -> None:
    """mmh3's MurmurHash3 called from C, the buckets in use marked alike; anything the C path does not
    take (a bad value, a long text, a huge event) the Python one names."""
    events, _ = open_stream(300, seed=35)
    events += ODD_EVENTS + FAR_EVENTS
    outcomes = []
    for compiled in (_encode, None):
        monkeypatch.setattr(feature_hashing, "compiled_encoder", compiled)
        for bits in (20, 3):
            hashing = FeatureHashing(bits, 7, max_name_bytes=200)
            hashing.bound = BOUND
            seen: list[Any] = []
            for x in events * 2:
                try:
                    seen.append(hashing.encode(x))
                except BadEventError as bad:
                    seen.append((bad.error_class, bad.reason))
            outcomes.append((seen, hashing.in_use.tolist(), hashing.budget.features))
    assert outcomes[:2] == outcomes[2:]
    assert sum(o[0] == "FeatureOutOfRange" for o in outcomes[0][0] if isinstance(o, tuple)) >= 2 * 2


def _through_sink(encoder: Any, events: list[dict[str, Any]], grow: bool = True) -> list[Any]:
    """Each event put into a sink as the processor puts them (a refused event's place taken by the
    next; now and then a kept row put again, and rows dropped), and every chunk's rows."""
    sink = SparseSink(encoder, grow)
    seen: list[Any] = []
    for start in range(0, len(events), 37):
        sink.start(37, 0, 37)
        n = 0
        for i, x in enumerate(events[start : start + 37]):
            try:
                sink.put_event(n, {"features": x})
            except BadEventError as bad:
                seen.append((bad.error_class, bad.reason))
                continue
            n += 1
            if i % 9 == 4:  # a pending question's row, taken out and put back at the next place
                sink.put_row(n, sink.row(n - 1))
                n += 1
        keep = np.arange(n) % 5 != 3
        sink.keep(keep, n)
        rows = sink.rows(int(keep.sum()))
        seen.append([part.tolist() for part in (rows.indptr, rows.indices, rows.values, rows.scaled)])
        seen.append([sink.row(r) for r in range(rows.n_rows)])
    return seen


@pytest.mark.parametrize("kind", ["open", "hashed", "hashed within a budget", "hashed, mmh3 through Python"])
def test_a_chunk_written_by_the_fast_path_equals_the_python_one(
    monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """The sink's rows written in place by C (``encode_into``) against the same sink fed by the
    Python encoders: rows, reasons, the buckets in use and the budget, through rows put again and
    rows dropped; also with a budget some events overrun, and with mmh3 called as a Python function."""
    events, _ = open_stream(400, seed=36)
    events = events[:150] + ODD_EVENTS + FAR_EVENTS + events[150:] + ODD_EVENTS
    if kind.endswith("through Python"):
        _encode.bind_murmur(None, mmh3.hash)
    outcomes = []
    try:
        for compiled in (_encode, None):
            monkeypatch.setattr(feature_encoding, "compiled_encoder", compiled)
            monkeypatch.setattr(feature_hashing, "compiled_encoder", compiled)
            encoder: Any
            if kind == "open":
                encoder = OpenVocabulary(max_name_bytes=200)
            else:
                bound = 40 if "budget" in kind else None
                encoder = FeatureHashing(6, 3, max_name_bytes=200, max_features=bound)
            encoder.bound = BOUND
            seen = _through_sink(encoder, events)
            scorer = _through_sink(encoder, events, grow=False)  # a scorer's view of the same encoder
            state = encoder.names if kind == "open" else encoder.in_use.tolist()
            outcomes.append((seen, scorer, state, encoder.budget.features))
    finally:
        assert _encode.bind_murmur(mmh3.__file__, mmh3.hash) == feature_hashing.NATIVE_MURMUR
    assert outcomes[0] == outcomes[1]
    if "budget" in kind:
        assert any(o[0] == "TooManyFeatures" for o in outcomes[0][0] if isinstance(o, tuple))
    assert any(o[0] == "FeatureOutOfRange" for o in outcomes[0][0] if isinstance(o, tuple))


@pytest.mark.parametrize("compiled", [_encode, None])
def test_a_bucket_whose_sum_is_beyond_the_bound_takes_no_bucket(
    monkeypatch: pytest.MonkeyPatch, compiled: Any
) -> None:
    """Two numbers within the bound on one bucket with one sign sum beyond it: the event is refused
    before any of its buckets is marked, by the compiled paths as by the Python one."""
    monkeypatch.setattr(feature_hashing, "compiled_encoder", compiled)
    hashing = FeatureHashing(2, 0)
    hashing.bound = BOUND
    first: dict[tuple[int, float], str] = {}
    for i in range(100):  # two names on one bucket with one sign, found by the hashing itself
        (bucket,), (sign,), _ = hashing.encode({f"n{i}": 1.0}, grow=False)
        if (bucket, sign) in first:
            twins = {first[bucket, sign]: 600.0, f"n{i}": 600.0, "tag": "new"}
            break
        first[bucket, sign] = f"n{i}"
    with pytest.raises(BadEventError) as refused:
        hashing.encode(twins)
    assert (refused.value.error_class, refused.value.reason) == ("FeatureOutOfRange", BOUND.reason)
    sink = SparseSink(hashing, True)
    sink.start(4, 0, 4)
    with pytest.raises(BadEventError, match="beyond"):
        sink.put_events(0, [{"features": twins}])
    assert not hashing.in_use.any() and hashing.budget.features == 0


def test_mmh3_bound_in_c_hashes_as_mmh3_does() -> None:
    """The MurmurHash3 the fast path calls (mmh3's own, bound by name) against mmh3.hash on tokens
    of every length up to two blocks and beyond, and on several seeds."""
    rng = np.random.default_rng(5)
    tokens = [bytes(rng.integers(0, 256, size=k, dtype=np.uint8)) for k in range(40) for _ in range(5)]
    for seed in (0, 1, 12345, 2**31, 2**32 - 1):
        expected = [mmh3.hash(t, seed, signed=True) for t in tokens]
        assert [_encode.hash_token(t, seed) for t in tokens] == expected


@pytest.mark.parametrize("kind", ["open", "hashed", "hashed within a budget", "a hashing scorer"])
def test_events_put_a_run_at_a_time_equal_the_events_put_one_by_one(kind: str) -> None:
    """``put_events`` (a hashing's runs of plain events in one compiled call) against ``put_event``
    per event on a twin sink: the same rows chunk by chunk, the same refusals with the same reasons,
    the same buckets in use and budget; the odd events and events whose features are not an object
    among them, and a budget the stream's ids overrun in the middle of a run."""
    events, _ = open_stream(400, seed=37)
    odd: list[Any] = [{"features": x} for x in ODD_EVENTS] + [{"features": [1.0]}, {"label": 1}]
    ids = [{"features": {"user": f"u{i}", "item": f"i{i % 50}", "n0": 1.0}} for i in range(120)]
    far = [{"features": x} for x in FAR_EVENTS]
    stream = (
        [{"features": x} for x in events[:150]]
        + odd
        + ids
        + far
        + [{"features": x} for x in events[150:]]
        + odd
    )

    def encoder() -> Any:
        made: Any
        if kind == "open":
            made = OpenVocabulary(max_name_bytes=200)
        else:
            made = FeatureHashing(6, 3, max_name_bytes=200, max_features=40 if "budget" in kind else None)
        made.bound = BOUND
        return made

    grow = kind != "a hashing scorer"
    one_by_one, in_runs = SparseSink(encoder(), grow), SparseSink(encoder(), grow)
    seen: list[list[Any]] = [[], []]
    for start in range(0, len(stream), 61):
        chunk = stream[start : start + 61]
        one_by_one.start(61, 0, 61)
        in_runs.start(61, 0, 61)
        n = 0
        for event in chunk:
            try:
                one_by_one.put_event(n, event)
                n += 1
            except BadEventError as bad:
                seen[0].append((bad.error_class, bad.reason))
        n, at = 0, 0
        while at < len(chunk):  # the whole rest of the chunk each time, on from each refusal
            try:
                in_runs.put_events(n, chunk[at:])
                n, at = in_runs.rows_put, len(chunk)
            except BadEventError as bad:
                seen[1].append((bad.error_class, bad.reason))
                at += in_runs.rows_put - n + 1
                n = in_runs.rows_put
        assert n == one_by_one.rows_put
        for sink, seen_here in zip((one_by_one, in_runs), seen, strict=True):
            rows = sink.rows(n)
            seen_here.append(
                [part.tolist() for part in (rows.indptr, rows.indices, rows.values, rows.scaled)]
            )
    assert seen[0] == seen[1]
    assert sum(isinstance(o, tuple) for o in seen[1]) >= 2 * 8  # each odd set's refusals, at least
    assert any(o[0] == "FeatureOutOfRange" for o in seen[1] if isinstance(o, tuple)) == (
        kind != "a hashing scorer"
    )
    assert in_runs.encoder.budget.features == one_by_one.encoder.budget.features
    if kind != "open":
        assert in_runs.encoder.in_use.tolist() == one_by_one.encoder.in_use.tolist()
        assert any(o[0] == "TooManyFeatures" for o in seen[1] if isinstance(o, tuple)) == ("budget" in kind)
    else:
        assert in_runs.encoder.names == one_by_one.encoder.names
