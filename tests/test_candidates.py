"""Several learning rates raced on one stream, without a broker: each candidate learns exactly what a
model of its own rate would, its progressive accuracy is river's at that rate, the champion's
prediction is published and names it, a diverging candidate never publishes, and a snapshot continues
every candidate and the champion exactly."""

from __future__ import annotations

import itertools
import json
from typing import Any

import numpy as np
import pytest

from stream_neuron import LogisticNeuron
from stream_neuron.candidates import Candidates
from stream_neuron.config import Settings
from stream_neuron.contracts import Metrics
from stream_neuron.learner import PerEventLearner
from stream_neuron.neuron import Perceptron
from stream_neuron.processor import Processor
from stream_neuron.records import InputRecord
from tests.datasets import phishing, river_phishing_correct, synthetic

pytestmark = pytest.mark.usefixtures("kernel")

RATES = (0.001, 0.01, 0.1, 1.0)


def phishing_records() -> list[InputRecord]:
    _names, rows, _, y = phishing()
    return [
        InputRecord(
            "in", 0, i, None, json.dumps({"id": f"p{i}", "features": row, "label": int(label)}).encode(), []
        )
        for i, (row, label) in enumerate(zip(rows, y, strict=True))
    ]


def run(settings: Settings, records: list[InputRecord], chunk: int = 100) -> tuple[Processor, Any]:
    processor = Processor(settings, 0.0)
    out = None
    for start in range(0, len(records), chunk):
        emitted = processor.process(records[start : start + chunk], 1.0)
        if out is None:
            out = emitted
        else:
            out.extend(emitted)
    assert out is not None
    out.extend(processor.close(2.0))
    return processor, out


@pytest.mark.parametrize("mode", ["sgd", "minibatch"])
def test_each_candidate_learns_as_a_model_of_its_own_rate_would(mode: str) -> None:
    _names, _, X, y = phishing()
    settings = Settings(
        learning_rate=RATES, standardize=True, mode=mode, batch_size=8, linger_ms=60_000, champion_window=100
    )
    processor, out = run(settings, phishing_records())
    assert processor.models is not None and processor.models.racing
    for rate, candidate in zip(RATES, processor.models.models, strict=True):
        alone = LogisticNeuron(9, learning_rate=rate, standardize=True)
        if mode == "sgd":
            alone.score_then_learn(X, y)
        else:
            for start in range(0, len(y), 8):
                alone.score_then_learn_batch(X[start : start + 8], y[start : start + 8])
        np.testing.assert_array_equal(candidate.weights, alone.weights)
    final = json.loads(out.metrics[-1].value)
    Metrics.model_validate(final)
    assert [c["learning_rate"] for c in final["candidates"]] == list(RATES)
    assert [c["champion"] for c in final["candidates"]].count(True) == 1
    assert final["candidates"][final["champion"]]["champion"]
    if mode == "sgd":  # progressive accuracy of each candidate: river's at its rate
        for rate, record in zip(RATES, final["candidates"], strict=True):
            assert record["cumulative"]["accuracy"] == pytest.approx(
                river_phishing_correct(rate) / 1250, abs=1e-12
            )


def test_the_published_prediction_is_the_champion_s_and_names_it() -> None:
    _, _, X, y = phishing()
    settings = Settings(learning_rate=RATES, standardize=True, champion_window=50)
    processor, out = run(settings, phishing_records())
    predictions = [json.loads(r.value) for r in out.predictions]
    alone = {
        rate: LogisticNeuron(9, learning_rate=rate, standardize=True).score_then_learn(X, y) for rate in RATES
    }
    for i, p in enumerate(predictions):
        assert p["learning_rate"] == RATES[p["candidate"]]
        assert p["probability"] == alone[p["learning_rate"]][i]
    used = {p["candidate"] for p in predictions}
    assert used != {0}, "the champion changed at least once on Phishing"
    assert processor.models is not None and processor.models.champion.changes >= 1
    # the top-level metrics count the published predictions
    correct = sum(p["prediction"] == p["label"] for p in predictions)
    final = json.loads(out.metrics[-1].value)
    assert final["cumulative"]["accuracy"] == pytest.approx(correct / 1250, abs=1e-12)


def test_a_diverging_candidate_is_never_champion() -> None:
    """Unscaled features in the thousands: a rate of 10 bounces, and is flagged diverging now and then
    (its log loss is over 2 and its weights grew in the window). From each metrics record that flags a
    candidate, up to the next, that candidate publishes nothing while another one is not flagged; and
    a rate far too large for healthy data never publishes at all."""
    X, y = synthetic(3_000, 4, seed=81)
    for scale, rates in ((1e3, (1e-5, 10.0)), (1.0, (0.01, 1000.0))):
        values = [
            {"features": row.tolist(), "label": int(label)} for row, label in zip(X * scale, y, strict=True)
        ]
        records = [InputRecord("in", 0, i, None, json.dumps(v).encode(), []) for i, v in enumerate(values)]
        settings = Settings(learning_rate=rates, champion_window=50, metrics_every=100)
        _, out = run(settings, records)
        published = [json.loads(r.value)["candidate"] for r in out.predictions]
        reports = [json.loads(r.value) for r in out.metrics]
        assert any(report["candidates"][1]["diverging"] for report in reports)
        for report, following in itertools.pairwise(reports):
            flagged = {j for j, c in enumerate(report["candidates"]) if c["diverging"]}
            if len(flagged) == 1:
                assert flagged.isdisjoint(published[report["events"] : following["events"]]), report["events"]
                assert not report["candidates"][report["champion"]]["diverging"] or report["events"] == 0
    assert set(published) == {0}
    assert all(not report["candidates"][0]["diverging"] for report in reports)


def test_a_snapshot_continues_every_candidate_and_the_champion_exactly() -> None:
    settings = Settings(learning_rate=RATES, standardize=True, champion_window=50)
    records = phishing_records()
    whole, whole_out = run(settings, records)
    half, _ = run(settings, records[:600])
    snapshot = json.loads(half.snapshot_record().value)  # type: ignore[union-attr]
    assert len(snapshot["candidates"]) == 4 and "champion" in snapshot
    restored = Processor.restored(settings, snapshot, 0.0, lambda p: None)
    rest = restored.process(records[600:], 1.0)
    assert restored.models is not None and whole.models is not None
    for a, b in zip(restored.models.models, whole.models.models, strict=True):
        np.testing.assert_array_equal(a.weights, b.weights)
    assert restored.models.champion.state() == whole.models.champion.state()
    whole_tail = [json.loads(r.value) for r in whole_out.predictions[600:]]
    assert [json.loads(r.value) for r in rest.predictions] == whole_tail
    # a scorer serves the champion: the top level of the snapshot is the champion's model
    scorer = Processor.restored(Settings(standardize=True), snapshot, 0.0, lambda p: None, learning=False)
    assert scorer.model is not None
    np.testing.assert_array_equal(scorer.model.weights, half.model.weights)  # type: ignore[union-attr]


def test_delayed_labels_count_each_candidate_s_question_time_prediction() -> None:
    names, rows, X, y = phishing()
    values: list[dict[str, Any]] = []
    delay = 50
    for i in range(len(y) + delay):  # river's simulate_qa order: answer i just before question i + delay
        if i >= delay:
            values.append({"id": f"q{i - delay}", "label": int(y[i - delay])})
        if i < len(y):
            values.append({"id": f"q{i}", "features": rows[i]})
    records = [InputRecord("in", 0, i, None, json.dumps(v).encode(), [], i) for i, v in enumerate(values)]
    settings = Settings(learning_rate=(0.01, 0.1), standardize=True, label_window=1000, champion_window=50)
    _processor, out = run(settings, records)
    final = json.loads(out.metrics[-1].value)
    from river import compose, evaluate, linear_model, metrics, optim, preprocessing, stream

    for rate, record in zip((0.01, 0.1), final["candidates"], strict=True):
        model = compose.Pipeline(
            preprocessing.StandardScaler(),
            linear_model.LogisticRegression(optim.SGD(rate), intercept_lr=rate),
        )
        data = stream.iter_array(X, y.astype(bool), feature_names=names)
        accuracy = evaluate.progressive_val_score(data, model, metrics.Accuracy(), delay=delay).get()
        assert record["cumulative"]["accuracy"] == pytest.approx(accuracy, abs=1e-12)


def test_monitor_shows_the_candidates_and_the_plot_marks_each_change_of_champion(tmp_path: Any) -> None:
    from stream_neuron.tools.curve import draw, learning_curve
    from stream_neuron.tools.metrics_view import clean_record
    from stream_neuron.tools.monitor import format_metrics

    settings = Settings(learning_rate=RATES, standardize=True, champion_window=50, metrics_every=50)
    _, out = run(settings, phishing_records())
    records = [clean_record(r.value) for r in out.metrics]
    last = records[-1]
    assert isinstance(last, dict)
    table = format_metrics(last)
    for j, rate in enumerate(RATES):
        line = next(row for row in table.splitlines() if row[3:].startswith(f"{j} "))
        assert f"{rate:g}" in line and line.startswith("*" if j == last["champion"] else " ")
    curve = learning_curve(records)
    assert curve.candidate_rates == list(RATES)
    assert all(len(series) == len(curve.events) for series in curve.candidate_log_loss)
    # a change of champion is marked where the record after it first names the new champion
    raw = [json.loads(r.value) for r in out.metrics if json.loads(r.value)["window"]["events"]]
    expected = [
        (b["events"], b["champion"]) for a, b in itertools.pairwise(raw) if a["champion"] != b["champion"]
    ]
    assert curve.champion_changes == expected and expected
    assert curve.champions == [r["champion"] for r in raw]
    draw(curve, tmp_path / "candidates.png")
    assert (tmp_path / "candidates.png").stat().st_size > 10_000


def test_candidates_are_models_of_one_kind() -> None:
    """Their losses are computed together, with one model's loss: a logistic neuron and a perceptron
    cannot race."""
    with pytest.raises(ValueError, match="one kind"):
        Candidates([LogisticNeuron(2, 0.1), Perceptron(2, 0.1)], PerEventLearner, 100, 0.0)
