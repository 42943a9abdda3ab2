"""A real Prometheus (Debian's, installed by deploy/install-system-deps) with the shipped
deploy/prometheus/prometheus.yml and alert rules, scraping a running `run --metrics-port` and two
`score` replicas: the series arrive, and the divergence alert fires on a run whose rate is far too
large. Only the targets and the intervals of the file are changed for the test."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.component import Topics, free_port, send, start, start_component, synthetic_events, wait_for
from tests.kafka_helpers import create_topic, unique_name

pytestmark = pytest.mark.kafka
DEPLOY = Path(__file__).resolve().parent.parent / "deploy" / "prometheus"


def prometheus_config(targets: list[str]) -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    config["rule_files"] = [str(DEPLOY / rules) for rules in config["rule_files"]]
    [job] = config["scrape_configs"]
    job.pop("dns_sd_configs")  # the compose service names do not resolve here: the processes' ports do
    job["static_configs"] = [{"targets": targets}]
    return config


def api(port: int, path: str, **query: str) -> Any:
    url = f"http://127.0.0.1:{port}/api/v1/{path}"
    if query:
        url += "?" + urllib.parse.urlencode(query)
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return json.loads(answer.read())["data"]
    except OSError:
        return None


def series(port: int, query: str) -> list[dict[str, Any]]:
    data = api(port, "query", query=query)
    return [] if data is None else list(data["result"])


def test_prometheus_scrapes_the_trainer_and_two_scorers_and_fires_the_divergence_alert(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    binary = shutil.which("prometheus")
    assert binary is not None, "prometheus is missing: run deploy/install-system-deps (Debian's prometheus)"
    topics = Topics.create(kafka_bootstrap)
    events, _, _ = synthetic_events(2000, 5, seed=8)
    send(
        kafka_bootstrap, topics.input, [dict(e, features=[1000.0 * v for v in e["features"]]) for e in events]
    )
    requests = unique_name("requests")
    create_topic(kafka_bootstrap, requests, 2)
    trainer_port, scorer_ports, prometheus_port = free_port(), [free_port(), free_port()], free_port()
    trainer = start_component(
        kafka_bootstrap, topics, "--learning-rate", "1000000", "--metrics-every", "100",
        "--metrics-port", str(trainer_port),
    )  # fmt: skip
    trainer.wait_for_line("running model")  # its topics exist: the scorers may follow the model topic
    scorers = [
        start(
            [
                *[sys.executable, "-m", "stream_neuron", "score", "--bootstrap-servers", kafka_bootstrap],
                *[
                    "--input-topic",
                    requests,
                    "--predictions-topic",
                    f"{requests}-pred",
                    "--group-id",
                    requests,
                ],
                *["--model-topic", topics.model, "--model-name", topics.model_name, "--wait-for-model"],
                *["--dead-letter-topic", f"{requests}-dlq", "--metrics-port", str(port)],
            ]
        )
        for port in scorer_ports
    ]
    config = tmp_path / "prometheus.yml"
    config.write_text(
        yaml.safe_dump(prometheus_config([f"127.0.0.1:{p}" for p in [trainer_port, *scorer_ports]]))
    )
    log = (tmp_path / "prometheus.log").open("w")
    server = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{prometheus_port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=log,  # read on failure; a pipe would fill
    )
    try:
        try:
            wait_for(lambda: len(series(prometheus_port, 'up{job="stream-neuron"} == 1')) == 3, 120)
        except AssertionError:
            raise AssertionError(
                f"targets: {api(prometheus_port, 'targets')}\ntrainer: {''.join(trainer.lines)[-2000:]}\n"
                f"scorer: {''.join(scorers[0].lines)[-2000:]}\n"
                f"prometheus: {(tmp_path / 'prometheus.log').read_text()[-2000:]}"
            ) from None
        wait_for(lambda: series(prometheus_port, "stream_neuron_events_total"), 60)
        wait_for(lambda: len(series(prometheus_port, "stream_neuron_scorer_model_version")) == 2, 60)
        assert series(prometheus_port, "stream_neuron_diverging == 1"), "the run is flagged diverging"

        def firing() -> bool:
            data = api(prometheus_port, "alerts")
            return data is not None and any(
                a["labels"]["alertname"] == "StreamNeuronDiverging" and a["state"] == "firing"
                for a in data["alerts"]
            )

        wait_for(firing, 150, interval_s=2)  # the rule holds for a minute before it fires
        [alert] = [a for a in api(prometheus_port, "alerts")["alerts"] if a["state"] == "firing"]
        assert alert["labels"]["model"] == topics.model_name
        assert "is diverging" in alert["annotations"]["summary"]
    finally:
        server.terminate()
        server.wait(30)
        log.close()
        for process in [trainer, *scorers]:
            process.terminate()
            process.finish(60)
