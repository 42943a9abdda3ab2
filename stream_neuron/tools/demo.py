"""The main job, end to end on a local broker: ``make demo`` (or ``python -m stream_neuron.tools.demo``).

Loads river's Phishing stream (1,250 labelled events) into a fresh input topic, runs the component
(standardised, learning rate 0.01) until the input has been idle for a few seconds, then prints the
final metrics record: the progressive accuracy equals river's documented 89.28%.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Any

from stream_neuron.config import Settings, run_names
from stream_neuron.errors import OperatorError
from stream_neuron.kafka_io.admin import TopicNeed, ensure_topics
from stream_neuron.kafka_io.ports import TopicSpec
from stream_neuron.kafka_io.probe import probe
from stream_neuron.runner import StopFlag, run
from stream_neuron.tools.metrics_view import Malformed
from stream_neuron.tools.monitor import format_metrics, read_metrics
from stream_neuron.tools.produce import produce_events
from stream_neuron.tools.sources import river_dataset


def main() -> int:
    try:
        return demo()
    except OperatorError as error:
        print(f"stream-neuron demo: {error}", file=sys.stderr)
        return error.exit_code


def demo() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("kafka").setLevel(logging.ERROR)
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    run_id = time.strftime("%Y%m%d-%H%M%S")
    base = f"demo-{run_id}"
    options: dict[str, Any] = {
        **run_names(base),
        "bootstrap_servers": bootstrap,
        "standardize": True,
        "learning_rate": 0.01,
        "metrics_every": 200,
        "idle_timeout_s": 3.0,
    }
    settings = Settings(**options)
    connection = settings.connection
    probe(connection)
    topic = settings.input_topic
    ensure_topics(
        connection, "stream-neuron-demo", [TopicNeed(topic, "input topic", ("WRITE",), TopicSpec(topic))]
    )
    sent = produce_events(connection, settings.input_topic, river_dataset("phishing"))
    print(f"loaded {sent.sent:,} Phishing events into {settings.input_topic}", flush=True)
    stop = StopFlag()
    stop.install()
    summary = run(settings, stop)
    metrics = read_metrics(connection, settings.metrics_topic)
    print(
        f"\nlearned from {summary.consumed:,} events; "
        f"{len(metrics)} metrics records on {settings.metrics_topic}"
    )
    print("final metrics (prequential: every event scored before it was learned from):\n")
    final = metrics[-1]
    print(format_metrics(final))
    if isinstance(final, Malformed):
        raise OperatorError(f"the final metrics record on {settings.metrics_topic} is malformed: {final}")
    accuracy = final["cumulative"]["accuracy"]
    print(f"\nprogressive accuracy {accuracy:.2%} (river's documented figure for this model: 89.28%)")
    print(f"predictions: {settings.predictions_topic}   model snapshots: {settings.model_topic}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
