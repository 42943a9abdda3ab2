"""The probes on the metrics port: ``/healthz`` fails when the loop is held still while the server's
thread runs, ``/readyz`` is false until start-up is over (connected, the model chosen, positions
settled); and the scorer's Prometheus figures."""

from __future__ import annotations

import sys
import threading
import time
import urllib.error
import urllib.request
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from stream_neuron import runner as runner_module
from stream_neuron.config import Settings, run_names
from stream_neuron.metrics_server import Health, MetricsServer
from stream_neuron.processor import Processor
from stream_neuron.runner import StopFlag, run
from tests.component import Topics, free_port, run_component, scrape, send, start, synthetic_events, wait_for
from tests.kafka_helpers import create_topic, unique_name


def probe(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except urllib.error.URLError as error:  # not listening (yet)
        return 0, str(error)


def test_the_probes_answer_what_the_loop_last_said() -> None:
    health = Health(stale_after_s=0.3)
    server = MetricsServer(0, "127.0.0.1", CollectorRegistry(), health)
    try:
        assert probe(server.port, "/healthz") == (200, "ok\n")
        status, why = probe(server.port, "/readyz")
        assert status == 503 and "starting" in why
        health.set_ready()
        assert probe(server.port, "/readyz") == (200, "ok\n")
        time.sleep(0.5)  # no beat: the loop is held still, the server's thread is not
        status, why = probe(server.port, "/healthz")
        assert status == 503 and "has not polled" in why
        health.beat()
        assert probe(server.port, "/healthz") == (200, "ok\n")
        assert probe(server.port, "/metrics")[0] == 200
    finally:
        server.close()


def test_a_port_in_use_is_named_in_one_line() -> None:
    from stream_neuron.errors import OperatorError

    first = MetricsServer(0, "127.0.0.1", CollectorRegistry(), Health(60))
    try:
        with pytest.raises(OperatorError, match=f"cannot serve metrics on 127.0.0.1:{first.port}: Address"):
            MetricsServer(first.port, "127.0.0.1", CollectorRegistry(), Health(60))
    finally:
        first.close()


@pytest.mark.kafka
def test_run_is_not_ready_before_start_up_and_not_alive_when_its_loop_is_held(
    kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    topics = Topics.create(kafka_bootstrap)
    events, _, _ = synthetic_events(400, 3, seed=5)
    send(kafka_bootstrap, topics.input, events[:200])
    port = free_port()
    settings = Settings(
        bootstrap_servers=kafka_bootstrap,
        **(run_names(topics.model_name) | {"input_topic": topics.input}),
        metrics_port=port,
        health_timeout_s=1.0,
        idle_timeout_s=30.0,
    )
    start_up, held, release = threading.Event(), threading.Event(), threading.Event()
    real_init, real_process = runner_module.Runner.__init__, Processor.process

    def slow_start(self: Any, *args: Any) -> None:
        start_up.wait(30)
        real_init(self, *args)

    def hold(self: Any, records: Any, now: float) -> Any:
        if any(r.offset >= 200 for r in records) and not release.is_set():
            held.set()
            release.wait(30)
        return real_process(self, records, now)

    monkeypatch.setattr(runner_module.Runner, "__init__", slow_start)
    monkeypatch.setattr(Processor, "process", hold)
    stop = StopFlag()
    thread = threading.Thread(target=run, args=(settings, stop), daemon=True)
    thread.start()
    try:
        wait_for(lambda: probe(port, "/healthz")[0] == 200, 30)
        status, why = probe(port, "/readyz")
        assert status == 503 and "starting" in why  # not connected yet: start-up is held
        start_up.set()
        wait_for(lambda: probe(port, "/readyz")[0] == 200, 60)
        send(kafka_bootstrap, topics.input, events[200:])
        assert held.wait(60)
        wait_for(lambda: probe(port, "/healthz")[0] == 503, 30)  # the loop holds; the server answers
        assert "has not polled" in probe(port, "/healthz")[1]
        release.set()
        wait_for(lambda: probe(port, "/healthz")[0] == 200, 30)
    finally:
        start_up.set()
        release.set()
        stop.stopping = True
        thread.join(60)
    assert not thread.is_alive()


@pytest.mark.kafka
def test_a_scorer_serves_its_figures_and_probes(kafka_bootstrap: str) -> None:
    topics = Topics.create(kafka_bootstrap)
    events, _, _ = synthetic_events(300, 3, seed=6)
    send(kafka_bootstrap, topics.input, events)
    run_component(kafka_bootstrap, topics, "--idle-timeout-s", "2")
    requests = unique_name("requests")
    create_topic(kafka_bootstrap, requests, 1)
    port = free_port()
    scorer = start(
        [
            *[sys.executable, "-m", "stream_neuron", "score", "--bootstrap-servers", kafka_bootstrap],
            *["--input-topic", requests, "--predictions-topic", f"{requests}-pred", "--group-id", requests],
            *["--model-topic", topics.model, "--model-name", topics.model_name],
            *["--dead-letter-topic", f"{requests}-dlq", "--metrics-port", str(port)],
        ]
    )
    try:
        scorer.wait_for_line("serving partitions")
        wait_for(lambda: probe(port, "/readyz")[0] == 200, 30)
        assert probe(port, "/healthz")[0] == 200
        send(
            kafka_bootstrap,
            requests,
            [{"id": f"r{i}", "features": e["features"]} for i, e in enumerate(events[:40])],
        )
        send(kafka_bootstrap, requests, [b"not json"])

        wait_for(lambda: scrape(port).get("stream_neuron_scorer_requests_total") == 41, 60)
        seen = scrape(port, "stream_neuron_scorer_")
        assert seen["stream_neuron_scorer_predictions_total"] == 40
        assert seen["stream_neuron_scorer_dead_letters_total"] == 1
        assert seen["stream_neuron_scorer_model_version"] == 300
        assert seen["stream_neuron_scorer_latency_seconds_count"] >= 1
    finally:
        scorer.terminate()
        scorer.finish(60)
