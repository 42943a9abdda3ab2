"""What production traffic and operators throw at every command, on the Kafka client under test: a
record with neither key nor value, absurd feature values, files and topics with bytes that are not
UTF-8, two producers creating one topic, foreign records on the metrics topic. Each is a dead letter
or a reported skip, never a stop, never a traceback."""

from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from kafka import KafkaProducer

from stream_neuron import LogisticNeuron
from stream_neuron.contracts import ERROR_CLASS_HEADER, NULL_FIELDS_HEADER, SOURCE_OFFSET_HEADER
from tests.component import (
    Topics,
    json_records,
    last_snapshot,
    raw_records,
    run_component,
    send,
    synthetic_events,
    tool_command,
    weights,
)
from tests.kafka_helpers import client, create_topic, kcat_produce, unique_name
from tests.test_scorers import scorer

pytestmark = pytest.mark.kafka


def cli(*args: str, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(tool_command(*args), capture_output=True, text=True, timeout=timeout_s, check=False)


def send_raw(bootstrap: str, topic: str, records: list[tuple[bytes | None, bytes | None]]) -> None:
    """(key, value) records as they are, in order (kafka-python sends neither both null: see below)."""
    producer = KafkaProducer(**client(bootstrap), acks="all")
    for key, value in records:
        producer.send(topic, key=key, value=value).get(30)
    producer.close()


def keyless_tombstone(bootstrap: str, topic: str) -> None:
    """A record with a null key and a null value, as kcat writes it (-Z: empty is null; -K: an empty key
    before the colon, an empty value after it). kafka-python refuses to send one."""
    import shutil

    kcat = shutil.which("kcat") or shutil.which("kafkacat")
    assert kcat is not None
    subprocess.run(
        [kcat, "-b", bootstrap, "-t", topic, "-P", "-Z", "-K:"], input=b":\n", check=True, timeout=60
    )


def dead_letters_by_offset(bootstrap: str, topic: str) -> dict[int, Any]:
    return {int(dict(r.headers)[SOURCE_OFFSET_HEADER]): r for r in raw_records(bootstrap, topic)}


@pytest.mark.parametrize("guarantee", ["at-least-once", "exactly-once"])
def test_a_record_without_key_and_value_is_a_dead_letter_that_says_so(
    kafka_bootstrap: str, guarantee: str
) -> None:
    events, X, y = synthetic_events(200, 3, seed=61)
    topics = Topics.create(kafka_bootstrap)
    send(kafka_bootstrap, topics.input, events[:100])
    keyless_tombstone(kafka_bootstrap, topics.input)
    send(kafka_bootstrap, topics.input, events[100:])
    for _ in range(2):  # and a restart reads past it again
        done = run_component(kafka_bootstrap, topics, "--guarantee", guarantee, "--idle-timeout-s", "3")
        assert "Traceback" not in done.stderr
    [dead] = raw_records(kafka_bootstrap, topics.dead_letters)
    headers = dict(dead.headers)
    assert (dead.key, dead.value) == (None, b"")
    assert headers[NULL_FIELDS_HEADER] == b"key, value" and headers[ERROR_CLASS_HEADER] == b"EmptyValue"
    assert headers[SOURCE_OFFSET_HEADER] == b"100"
    offline = LogisticNeuron(3, learning_rate=0.05)
    offline.score_then_learn(X, y)
    np.testing.assert_allclose(weights(last_snapshot(kafka_bootstrap, topics)), offline.weights, atol=1e-12)


def test_a_scorer_and_a_labels_topic_read_past_a_record_without_key_and_value(kafka_bootstrap: str) -> None:
    events, _, _ = synthetic_events(300, 3, seed=62)
    topics = Topics.create(kafka_bootstrap)
    labels = create_topic(kafka_bootstrap, unique_name("sn-labels"))
    questions = [{k: v for k, v in e.items() if k != "label"} for e in events]
    send(kafka_bootstrap, topics.input, questions)
    keyless_tombstone(kafka_bootstrap, labels)
    send(kafka_bootstrap, labels, [{"id": e["id"], "label": e["label"]} for e in events])
    done = run_component(
        kafka_bootstrap, topics, "--label-window", "1000", "--labels-topic", labels, "--idle-timeout-s", "3"
    )
    assert "Traceback" not in done.stderr
    assert last_snapshot(kafka_bootstrap, topics)["version"] == 300
    assert (
        dict(raw_records(kafka_bootstrap, topics.dead_letters)[0].headers)[NULL_FIELDS_HEADER]
        == b"key, value"
    )
    requests_topic = create_topic(kafka_bootstrap, unique_name("sn-requests"), partitions=2)
    send(kafka_bootstrap, requests_topic, questions[:50])
    keyless_tombstone(kafka_bootstrap, requests_topic)
    replica = scorer(kafka_bootstrap, topics, requests_topic, unique_name("scorers"), "--idle-timeout-s", "3")
    status, stderr = replica.finish(120)
    assert status == 0 and "Traceback" not in stderr, stderr[-3000:]
    assert {p["id"] for p in json_records(kafka_bootstrap, f"{requests_topic}-pred")} == {
        q["id"] for q in questions[:50]
    }
    [dead] = raw_records(kafka_bootstrap, f"{requests_topic}-dlq")
    assert dict(dead.headers)[ERROR_CLASS_HEADER] == b"EmptyValue"


@pytest.mark.parametrize("mode", ["sgd", "minibatch"])
def test_an_absurd_first_value_cannot_stop_a_standardised_stream(kafka_bootstrap: str, mode: str) -> None:
    """1e300 first: its square would make the scaler's variance infinite for good (every later event
    unscalable). It is refused as out of range by default; the rest learn as if it never came."""
    events, X, y = synthetic_events(500, 3, seed=63)
    topics = Topics.create(kafka_bootstrap)
    send(
        kafka_bootstrap, topics.input, [{"id": "absurd", "features": [1e300, 0.0, 0.0], "label": 1}, *events]
    )
    run_component(
        kafka_bootstrap,
        topics,
        "--standardize",
        "--mode",
        mode,
        "--batch-size",
        "16",
        "--idle-timeout-s",
        "3",
    )
    [dead] = raw_records(kafka_bootstrap, topics.dead_letters)
    assert dict(dead.headers)[ERROR_CLASS_HEADER] == b"FeatureOutOfRange"
    offline = LogisticNeuron(3, learning_rate=0.05, standardize=True)
    if mode == "sgd":
        offline.score_then_learn(X, y)
    else:
        for start in range(0, len(y), 16):
            offline.score_then_learn_batch(X[start : start + 16], y[start : start + 16])
    np.testing.assert_allclose(weights(last_snapshot(kafka_bootstrap, topics)), offline.weights, atol=1e-12)
    assert len(json_records(kafka_bootstrap, topics.predictions)) == 500


def fit_command(bootstrap: str, topics: Topics, *extra: str) -> subprocess.CompletedProcess[str]:
    return cli(
        "fit", "--bootstrap-servers", bootstrap, "--model-topic", topics.model,
        "--metrics-topic", topics.metrics, "--model-name", topics.model_name, "--epochs", "30",
        "--learning-rate", "0.5", *extra,
    )  # fmt: skip


@pytest.mark.parametrize("standardize", [False, True])
def test_fit_skips_what_run_would_refuse_and_one_row_never_fails_it(
    kafka_bootstrap: str, standardize: bool
) -> None:
    events, X, _ = synthetic_events(1_000, 3, seed=64)
    topics = Topics.create(kafka_bootstrap)
    send(kafka_bootstrap, topics.input, events[:500])
    send(kafka_bootstrap, topics.input, [{"features": [1e300, 1.0, 1.0], "label": 1}])
    # a header key that is not UTF-8: kafka-python's reader would stop on it without its fix
    kcat_produce(kafka_bootstrap, topics.input, [json.dumps(events[500])], "-H", b"\xff\xfe-key=v")  # type: ignore[arg-type]
    send(kafka_bootstrap, topics.input, events[501:])
    flags = ["--standardize"] if standardize else []
    done = fit_command(kafka_bootstrap, topics, "--input-topic", topics.input, *flags)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert "1,000 labelled events" in done.stderr and "1 FeatureOutOfRange" in done.stderr
    bounded = fit_command(
        kafka_bootstrap,
        topics,
        "--input-topic",
        topics.input,
        "--max-feature-abs",
        "2.5",
        "--replace",
        *flags,
    )
    assert bounded.returncode == 0, bounded.stderr[-3000:]
    kept = int(np.sum(np.abs(X).max(axis=1) <= 2.5))
    assert f"{kept:,} labelled events" in bounded.stderr


def test_fit_and_produce_skip_file_lines_they_cannot_read_and_name_them(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    lines = [
        json.dumps({"id": "a", "features": [1.0, 2.0], "label": 1}).encode(),
        b'{"id": "b\\ud800", "features": [1.0, 2.0], "label": 0}',  # a lone surrogate escape
        b"\xff\xfe not UTF-8",
        json.dumps({"id": "c", "features": [2.0, 1.0], "label": 0}).encode(),
    ]
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    topic = unique_name("sn-file")
    produced = cli("produce", "--bootstrap-servers", kafka_bootstrap, "--topic", topic, "--file", str(path))
    assert produced.returncode == 0 and "Traceback" not in produced.stderr, produced.stderr
    assert "skipped line 2" in produced.stderr and "skipped line 3" in produced.stderr
    assert "sent 2 events" in produced.stdout
    assert [json.loads(r.value)["id"] for r in raw_records(kafka_bootstrap, topic)] == ["a", "c"]
    topics = Topics.create(kafka_bootstrap)
    fitted = fit_command(kafka_bootstrap, topics, "--file", str(path))
    assert fitted.returncode == 0 and "Traceback" not in fitted.stderr, fitted.stderr
    assert "2 labelled events" in fitted.stderr and "2 bad" in fitted.stderr
    first = 'e.g. line 2: the value is not valid JSON text: "b\\ud800" escapes a lone surrogate'
    assert first in fitted.stderr


def test_two_producers_creating_one_topic_at_once_both_succeed(kafka_bootstrap: str) -> None:
    topic = unique_name("sn-race")
    done: list[subprocess.CompletedProcess[str]] = []
    command = ["produce", "--bootstrap-servers", kafka_bootstrap, "--topic", topic, "--dataset", "synthetic"]
    threads = [threading.Thread(target=lambda: done.append(cli(*command, "--n", "200"))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for result in done:
        assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert len(raw_records(kafka_bootstrap, topic)) == 400


def test_monitor_reads_any_record_and_follows_from_the_newest_on_a_transactional_topic(
    kafka_bootstrap: str,
) -> None:
    events, _, _ = synthetic_events(300, 3, seed=65)
    topics = Topics.create(kafka_bootstrap)
    send(kafka_bootstrap, topics.input, events)
    run_component(
        kafka_bootstrap,
        topics,
        "--guarantee",
        "exactly-once",
        "--metrics-every",
        "100",
        "--idle-timeout-s",
        "3",
    )
    newest = json_records(kafka_bootstrap, topics.metrics)[-1]
    # --follow starts from the newest record though the topic ends in a transaction marker
    follow = subprocess.Popen(
        tool_command("monitor", "--bootstrap-servers", kafka_bootstrap, "--metrics-topic", topics.metrics,
                     "--follow"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert follow.stdout is not None
        table = []
        while not table or table[-1].strip():
            table.append(follow.stdout.readline())
        rows = dict(line.rsplit("  ", 1) for line in table if "  " in line)
        assert {k.strip(): v.strip() for k, v in rows.items()}["events"] == str(newest["events"]), table
    finally:
        follow.kill()
        follow.communicate(timeout=30)
    send_raw(kafka_bootstrap, topics.metrics, [(None, b"\xff\xfe garbage"), (b"k", None), (None, b"[1, 2]")])
    shown = cli("monitor", "--bootstrap-servers", kafka_bootstrap, "--metrics-topic", topics.metrics)
    assert shown.returncode == 0 and "Traceback" not in shown.stderr, shown.stderr
    assert "3 of" in shown.stdout and "are malformed" in shown.stdout


def test_the_same_corpus_is_refused_by_score_as_by_run(kafka_bootstrap: str) -> None:
    """Every poison category of run's corpus sent as requests: the scorer dead-letters each, for the
    same reason (a label is checked as run checks it, then ignored)."""
    from tests.test_poison_records import CORPUS

    events, _, _ = synthetic_events(50, 3, seed=66)
    topics = Topics.create(kafka_bootstrap)
    send(
        kafka_bootstrap,
        topics.input,
        [e | {"features": dict(zip("abc", e["features"], strict=True))} for e in events],
    )
    run_component(
        kafka_bootstrap,
        topics,
        "--idle-timeout-s",
        "3",
        "--feature-names",
        "a,b,c",
        "--max-feature-abs",
        "1e12",
    )
    requests_topic = create_topic(kafka_bootstrap, unique_name("sn-requests"))
    corpus = [(name, value, cls) for name, value, cls in CORPUS if cls != "OversizedRecord"]
    send_raw(kafka_bootstrap, requests_topic, [(b"poison", value) for _, value, _ in corpus])
    replica = scorer(
        kafka_bootstrap, topics, requests_topic, unique_name("scorers"), "--idle-timeout-s", "3",
        "--max-feature-abs", "1e12",
    )  # fmt: skip
    status, stderr = replica.finish(120)
    assert status == 0 and "Traceback" not in stderr, stderr[-3000:]
    dead = dead_letters_by_offset(kafka_bootstrap, f"{requests_topic}-dlq")
    got = {offset: dict(record.headers)[ERROR_CLASS_HEADER].decode() for offset, record in dead.items()}
    assert got == {offset: cls for offset, (_, _, cls) in enumerate(corpus)}
