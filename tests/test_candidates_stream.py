"""Learning-rate candidates against the real broker: SIGKILLs under both guarantees continue every
candidate and the champion exactly (compared with each rate's model learned alone, and with the
champion an offline replay picks), the Prometheus endpoint gives each candidate's figures, and scorer
replicas serve the champion of the newest snapshot."""

from __future__ import annotations

import json
import sys
import urllib.request
from collections import Counter
from typing import Any

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from stream_neuron import LogisticNeuron
from stream_neuron.config import Settings
from stream_neuron.processor import Processor
from stream_neuron.records import InputRecord
from tests.component import (
    Topics,
    free_port,
    json_records,
    kill_mid_run,
    last_snapshot,
    phishing_events,
    run_component,
    send,
    start,
    start_component,
    synthetic_events,
    wait_for,
)
from tests.kafka_helpers import create_topic, unique_name

pytestmark = pytest.mark.kafka

RATES = (0.002, 0.02, 0.2, 2.0)
RACE = ("--learning-rate", ",".join(map(str, RATES)), "--standardize", "--champion-window", "200")


def offline_champions(events: list[dict[str, Any]]) -> list[int]:
    """The candidate that publishes each event, from a replay without Kafka (the champion depends on
    the events and their order only)."""
    settings = Settings(learning_rate=RATES, standardize=True, champion_window=200)
    processor = Processor(settings, 0.0)
    records = [InputRecord("in", 0, i, None, json.dumps(e).encode(), []) for i, e in enumerate(events)]
    out = processor.process(records, 1.0)
    out.extend(processor.close(2.0))
    return [json.loads(r.value)["candidate"] for r in out.predictions]


@pytest.mark.parametrize("guarantee", ["at-least-once", "exactly-once"])
def test_sigkills_continue_every_candidate_and_the_champion_exactly(
    kafka_bootstrap: str, guarantee: str
) -> None:
    events, X, y = synthetic_events(40_000, 6, seed=91)  # each kill well before the end, at any speed
    topics = Topics.create(kafka_bootstrap)
    send(kafka_bootstrap, topics.input, events)
    flags = (*RACE, "--guarantee", guarantee, "--commit-interval-ms", "100", "--poll-max-records", "300")
    kill_mid_run(kafka_bootstrap, topics, flags, 3, (1_500, 4_000), guarantee)
    run_component(kafka_bootstrap, topics, *flags, "--idle-timeout-s", "3")

    alone = {}
    for rate in RATES:
        model = LogisticNeuron(6, learning_rate=rate, standardize=True)
        alone[rate] = (model.score_then_learn(X, y), model)
    champions = offline_champions(events)
    assert len(set(champions)) > 1, "the champion changed on this stream"
    predictions = json_records(kafka_bootstrap, topics.predictions)
    counts = Counter(p["id"] for p in predictions)
    assert set(counts) == {e["id"] for e in events}
    if guarantee == "exactly-once":
        assert max(counts.values()) == 1
    for p in predictions:  # a repeat (at-least-once) is the same prediction again
        i = int(p["id"][1:])
        assert p["candidate"] == champions[i] and p["learning_rate"] == RATES[champions[i]]
        assert p["probability"] == pytest.approx(alone[p["learning_rate"]][0][i], abs=1e-12)
    snapshot = last_snapshot(kafka_bootstrap, topics)
    for rate, candidate in zip(RATES, snapshot["candidates"], strict=True):
        np.testing.assert_allclose(candidate["model"]["weights"], alone[rate][1].weights, rtol=0, atol=1e-12)
        assert candidate["model"]["n_updates"] == len(y)
    final = json_records(kafka_bootstrap, topics.metrics)[-1]
    assert final["champion"] == champions[-1] or final["champion_changes"] > 0
    assert [c["cumulative"]["accuracy"] for c in final["candidates"]] == [
        pytest.approx(float(np.mean((alone[r][0] > 0.5) == y)), abs=1e-12) for r in RATES
    ]


def test_prometheus_gives_each_candidate_and_scorers_serve_the_champion(kafka_bootstrap: str) -> None:
    events = phishing_events()
    topics = Topics.create(kafka_bootstrap)
    send(kafka_bootstrap, topics.input, events)
    port = free_port()
    trainer = start_component(
        kafka_bootstrap, topics, *RACE, "--metrics-every", "250", "--metrics-port", str(port)
    )

    def scrape() -> dict[tuple[str, str], float]:
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        return {
            (sample.name, sample.labels.get("candidate", "")): sample.value
            for family in text_string_to_metric_families(body)
            for sample in family.samples
            if sample.name.startswith("stream_neuron_")
        }

    trainer.wait_for_line("running model")  # the output topics exist
    wait_for(lambda: len(json_records(kafka_bootstrap, topics.metrics)) >= 5, 120)
    values = scrape()
    trainer.terminate()
    trainer.finish(60)
    record = json_records(kafka_bootstrap, topics.metrics)[4]
    assert record["events"] == 1250
    for j, candidate in enumerate(record["candidates"]):
        assert values[("stream_neuron_candidate_window_log_loss", str(j))] == candidate["window"]["log_loss"]
        assert (
            values[("stream_neuron_candidate_cumulative_accuracy", str(j))]
            == candidate["cumulative"]["accuracy"]
        )
        assert values[("stream_neuron_candidate_champion", str(j))] == float(j == record["champion"])
        assert values[("stream_neuron_candidate_diverging", str(j))] == float(candidate["diverging"])

    snapshot = last_snapshot(kafka_bootstrap, topics)
    champion = snapshot["candidates"][snapshot["champion"]["champion"]]["model"]
    assert snapshot["weights"] == champion["weights"] and snapshot["bias"] == champion["bias"]
    requests_topic = unique_name("requests")
    create_topic(kafka_bootstrap, requests_topic, 2)
    served = start(
        [
            *[sys.executable, "-m", "stream_neuron", "score", "--bootstrap-servers", kafka_bootstrap],
            *["--input-topic", requests_topic, "--predictions-topic", f"{requests_topic}-pred"],
            *["--model-topic", topics.model, "--model-name", topics.model_name, "--group-id", requests_topic],
            *["--dead-letter-topic", f"{requests_topic}-dlq", "--idle-timeout-s", "3"],
        ]
    )
    send(kafka_bootstrap, requests_topic, [{"id": e["id"], "features": e["features"]} for e in events[:200]])
    status, stderr = served.finish(120)
    assert status == 0, stderr[-3000:]
    model = LogisticNeuron(9, learning_rate=0.01, standardize=True)
    model.load_dict(champion)
    names = snapshot["feature_names"]
    expected = model.predict_proba(np.array([[e["features"][n] for n in names] for e in events[:200]]))
    scored = {p["id"]: p for p in json_records(kafka_bootstrap, f"{requests_topic}-pred")}
    assert len(scored) == 200
    for i, e in enumerate(events[:200]):
        assert scored[e["id"]]["probability"] == pytest.approx(expected[i], abs=1e-12)
        assert scored[e["id"]]["model_version"] == snapshot["version"]
