"""Drift detection against river's detectors: the same detections at the same events, on error streams
with known drifts, fed whole or in pieces, through a restart, and through ``run``'s processor on the
synthetic drifting producer and on Phishing (the error stream taken independently from the published
predictions)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from river import drift as river_drift

from stream_neuron.config import Settings
from stream_neuron.contracts import Metrics, Prediction
from stream_neuron.drift import Adwin, CompiledAdwin, PageHinkley, compiled_drift
from stream_neuron.processor import Processor
from stream_neuron.records import InputRecord
from stream_neuron.tools.sources import synthetic
from tests.datasets import phishing

ADWIN_PARAMS = [
    {},
    {"delta": 0.05, "clock": 1},
    {"delta": 0.002, "clock": 7, "max_buckets": 3, "min_window_length": 3, "grace_period": 50},
    {"delta": 0.5, "clock": 1, "max_buckets": 2, "min_window_length": 1, "grace_period": 0},
]
PAGE_HINKLEY_PARAMS = [
    {},
    {"threshold": 10.0, "mode": "up"},
    {"threshold": 5.0, "mode": "down", "alpha": 0.99, "min_instances": 5},
    {"threshold": 3.0, "delta": 0.0, "mode": "both"},
]
ADWINS = [Adwin] + ([CompiledAdwin] if compiled_drift is not None else [])


def error_stream(n: int, seed: int) -> np.ndarray:
    """Errors (1 wrong, 0 right) whose rate moves 0.1 -> 0.4 -> 0.15 at thirds of the stream."""
    rng = np.random.default_rng(seed)
    rate = np.repeat([0.1, 0.4, 0.15], [n // 3, n // 3, n - 2 * (n // 3)])
    return (rng.random(n) < rate).astype(np.float64)


def river_detections(detector: Any, errors: np.ndarray) -> list[int]:
    found = []
    for i, error in enumerate(errors.tolist()):
        detector.update(error)
        if detector.drift_detected:
            found.append(i)
    return found


def fed_in_pieces(detector: Any, errors: np.ndarray, piece: int) -> list[int]:
    found: list[int] = []
    for at in range(0, len(errors), piece):
        found += [at + i for i in detector.update_many(errors[at : at + piece])]
    return found


@pytest.mark.parametrize("params", ADWIN_PARAMS, ids=range(len(ADWIN_PARAMS)))
@pytest.mark.parametrize("kind", ADWINS, ids=lambda k: k.__name__)
def test_adwin_detects_where_rivers_does(kind: type[Adwin], params: dict[str, Any]) -> None:
    for seed in range(3):
        errors = error_stream(9000, seed)
        expected = river_detections(river_drift.ADWIN(**params), errors)
        assert len(expected) >= 2, "the stream has drifts to find"
        ours = kind(**params)
        assert fed_in_pieces(ours, errors, 500 + 37 * seed) == expected
        reference = Adwin(**params)
        reference.update_many(errors)
        assert ours.state() == reference.state()  # the same floats, bucket for bucket


@pytest.mark.parametrize("params", PAGE_HINKLEY_PARAMS, ids=range(len(PAGE_HINKLEY_PARAMS)))
def test_page_hinkley_detects_where_rivers_does(params: dict[str, Any]) -> None:
    for seed in range(3):
        errors = error_stream(9000, seed)
        expected = river_detections(river_drift.PageHinkley(**params), errors)
        assert expected, "the stream has drifts to find"
        assert fed_in_pieces(PageHinkley(**params), errors, 611) == expected


@pytest.mark.parametrize("kind", [*ADWINS, PageHinkley], ids=lambda k: k.__name__)
def test_a_detector_restored_from_its_state_goes_on_exactly(kind: Any) -> None:
    errors = error_stream(6000, 4)
    whole = kind().update_many(errors)
    first = kind()
    before = first.update_many(errors[:2500])
    second = kind()
    second.restore(json.loads(json.dumps(first.state())))
    assert before + [2500 + i for i in second.update_many(errors[2500:])] == whole


def test_adwin_needs_two_buckets_a_size_and_refuses_a_broken_state() -> None:
    with pytest.raises(ValueError, match="at least 2 buckets"):
        Adwin(max_buckets=1)
    state = Adwin().state()
    with pytest.raises(ValueError, match="width is not its buckets"):
        Adwin().restore(dict(state, width=3.0))
    with pytest.raises(ValueError, match="not ADWIN's"):
        Adwin(max_buckets=2).restore(dict(state, rows=[[[1.0, 0.0]] * 3]))


def run_stream(
    settings: Settings, events: list[dict[str, Any]], poll: int = 50
) -> tuple[list[Any], list[Any]]:
    """The processor over ``events`` in polls: its predictions and metrics records, in order."""
    processor = Processor(settings, 0.0)
    predictions, metrics = [], []
    for at in range(0, len(events), poll):
        part = [
            InputRecord("in", 0, at + i, None, json.dumps(e).encode(), [])
            for i, e in enumerate(events[at : at + poll])
        ]
        out = processor.process(part, float(at))
        predictions += out.predictions
        metrics += out.metrics
    out = processor.close(1e9)
    return predictions + out.predictions, metrics + out.metrics


def detections_in_records(records: list[Any]) -> list[int]:
    """Where each detection was (0-based labelled event), from the metrics records' drift sections."""
    found, count = [], 0
    for record in records:
        m = Metrics.model_validate_json(record.value)
        assert m.drift is not None
        while count < m.drift.count:  # one record an event: at most one detection each
            count += 1
            found.append(m.labelled - 1 - m.drift.events_since_last)
    return found


def synthetic_events(n: int, drift_at: int) -> list[dict[str, Any]]:
    return [dict(e) for e in synthetic(n, 5, 0.1, drift_at, 3)]


def phishing_events() -> list[dict[str, Any]]:
    _, rows, _, y = phishing()
    return [
        {"id": f"p{i}", "features": x, "label": int(label)}
        for i, (x, label) in enumerate(zip(rows, y, strict=True))
    ]


@pytest.mark.parametrize("detector", ["adwin", "page-hinkley"])
@pytest.mark.parametrize("source", ["synthetic drift at 1500", "phishing"])
def test_run_detects_where_river_does_on_the_published_errors(detector: str, source: str) -> None:
    """The error stream taken from the published predictions (each scored before its label was
    learned) through river's detector, against the detections the metrics records report."""
    events = synthetic_events(3000, 1500) if source.startswith("synthetic") else phishing_events()
    flags: dict[str, Any] = {"page_hinkley_threshold": 5.0} if detector == "page-hinkley" else {}
    settings = Settings(drift_detector=detector, metrics_every=1, learning_rate=(0.05,), **flags)
    predictions, metrics = run_stream(settings, events)
    published = [Prediction.model_validate_json(p.value) for p in predictions]
    errors = np.array([float(p.prediction != p.label) for p in published])
    assert [p.label for p in published] == [e["label"] for e in events]
    reference = river_drift.ADWIN() if detector == "adwin" else river_drift.PageHinkley(threshold=5.0)
    expected = river_detections(reference, errors)
    assert expected, "the stream drifts"
    assert detections_in_records(metrics) == expected
    if source.startswith("synthetic") and detector == "adwin":
        assert any(1500 <= at < 1800 for at in expected), "the drift found soon after it happened"


def test_run_without_a_detector_says_nothing_of_drift() -> None:
    _, metrics = run_stream(Settings(drift_detector="none"), synthetic_events(300, 100))
    assert all(json.loads(r.value).get("drift") is None for r in metrics)


def test_a_restarted_run_goes_on_detecting_exactly() -> None:
    events = synthetic_events(3000, 1000)
    settings = Settings(metrics_every=1, learning_rate=(0.05,))
    _, whole = run_stream(settings, events)
    first = Processor(settings, 0.0)
    records: list[Any] = []
    for at in range(0, 1700, 50):
        part = [
            InputRecord("in", 0, at + i, None, json.dumps(e).encode(), [])
            for i, e in enumerate(events[at : at + 50])
        ]
        records += first.process(part, float(at)).metrics
    snapshot = json.loads(first.snapshot_record().value)  # type: ignore[union-attr]
    assert snapshot["drift"]["name"] == "adwin"
    second = Processor.restored(settings, snapshot, 0.0, lambda positions: None)
    for at in range(1700, 3000, 50):
        part = [
            InputRecord("in", 0, at + i, None, json.dumps(e).encode(), [])
            for i, e in enumerate(events[at : at + 50])
        ]
        records += second.process(part, float(at)).metrics
    records += second.close(1e9).metrics
    assert detections_in_records(records) == detections_in_records(whole)
    assert detections_in_records(whole), "the stream drifts"


def test_a_restarted_race_crowns_the_best_of_its_first_window_at_once() -> None:
    """--on-drift reset-champion: the champion stays through the first fresh window, then the
    candidate best over that window takes over without a streak; the state carries the restart."""
    from stream_neuron.champion import Champion

    race = Champion(3, window=10)
    early = np.tile([[0.1], [0.5], [0.9]], 30)  # candidate 0 best
    assert set(race.observe(early).tolist()) == {0}
    race.restart()
    twin = Champion(3, window=10)
    twin.restore(json.loads(json.dumps(race.state())))
    late = np.tile([[0.9], [0.6], [0.2]], 25)  # now candidate 2, and 1 beats the champion too
    for champion in (race, twin):
        scored_by = champion.observe(late[:, :4]).tolist() + champion.observe(late[:, 4:]).tolist()
        assert scored_by == [0] * 10 + [2] * 15
        assert champion.champion == 2 and not champion.fresh


def test_a_drift_restarts_the_race_of_candidates_when_asked() -> None:
    """With --on-drift reset-champion the poll that detects a drift restarts the race (none without);
    a --champion-window later the race has its champion."""
    events = synthetic_events(4000, 1500)
    common: dict[str, Any] = {"learning_rate": (0.001, 0.05, 0.5), "champion_window": 200}
    plain, reset = (
        Processor(Settings(**common), 0.0),
        Processor(Settings(on_drift="reset-champion", **common), 0.0),
    )
    restarted_at = None
    for at in range(0, len(events), 50):
        part = [
            InputRecord("in", 0, at + i, None, json.dumps(e).encode(), [])
            for i, e in enumerate(events[at : at + 50])
        ]
        plain.process(part, float(at))
        reset.process(part, float(at))
        assert reset.models is not None and plain.models is not None
        assert not plain.models.champion.fresh
        drift = reset.metrics.drift
        assert drift is not None
        if restarted_at is None and drift.count:
            restarted_at = at
            assert reset.models.champion.fresh and reset.models.champion.seen < 200
        if restarted_at is not None and at >= restarted_at + 250:
            assert not reset.models.champion.fresh or drift.count > 1  # a later drift may restart it again
            break
    assert restarted_at is not None, "the stream drifts"
