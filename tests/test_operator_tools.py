"""The operator's tools against the real broker: produce, monitor (table, live view, plot), check-river,
and the Prometheus endpoint of run."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from stream_neuron.tools.check_river import Comparison
from stream_neuron.tools.curve import draw, learning_curve
from stream_neuron.tools.live import sparkline, view
from stream_neuron.tools.metrics_view import clean_record
from stream_neuron.tools.monitor import format_metrics
from tests.component import (
    EndWatcher,
    Topics,
    free_port,
    json_records,
    raw_records,
    run_component,
    scrape,
    start_component,
    wait_for,
)
from tests.datasets import river_phishing_correct
from tests.kafka_helpers import create_topic, unique_name

pytestmark = pytest.mark.kafka


def cli(*args: str, timeout_s: float = 300) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "stream_neuron", *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    return done


def png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", header[16:24])
    return width, height


def test_produce_run_monitor_reproduces_the_final_figures_and_plots(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    topics = Topics.create(kafka_bootstrap)
    produced = cli(
        "produce", "--bootstrap-servers", kafka_bootstrap, "--topic", topics.input, "--dataset", "phishing"
    )
    assert produced.returncode == 0, produced.stderr
    assert "sent 1,250 events" in produced.stdout and "0 bad rows skipped" in produced.stdout
    run_component(
        kafka_bootstrap,
        topics,
        "--standardize",
        "--learning-rate",
        "0.01",
        "--metrics-every",
        "100",
        "--max-events",
        "1250",
    )
    final = json_records(kafka_bootstrap, topics.metrics)[-1]

    plot = tmp_path / "curve.png"
    shown = cli(
        "monitor",
        "--bootstrap-servers",
        kafka_bootstrap,
        "--metrics-topic",
        topics.metrics,
        "--plot",
        str(plot),
    )
    assert shown.returncode == 0, shown.stderr
    table = dict(line.rsplit("  ", 1) for line in shown.stdout.splitlines() if "  " in line)
    table = {k.strip(): v.strip() for k, v in table.items()}
    river_accuracy = river_phishing_correct(0.01) / 1250
    assert table["cumulative accuracy"] == f"{river_accuracy:.6g}" == f"{final['cumulative']['accuracy']:.6g}"
    assert table["cumulative log loss"] == f"{final['cumulative']['log_loss']:.6g}"
    assert table["events"] == "1250" and table["dead letters"] == "0" and table["model version"] == "1250"

    width, height = png_size(plot)
    assert 600 <= width <= 2000 and 400 <= height <= 1500
    assert 10_000 < plot.stat().st_size < 2_000_000
    curve = learning_curve(json_records(kafka_bootstrap, topics.metrics))
    assert curve.events == [*range(100, 1300, 100), 1250]
    assert all(0.0 < v < 1.0 for v in curve.window_log_loss if v is not None)
    assert all(0.0 <= v <= 1.0 for v in curve.window_accuracy if v is not None)
    assert curve.cumulative_accuracy[-1] == final["cumulative"]["accuracy"]
    assert curve.rate_changes == [] and set(curve.learning_rate) == {0.01}


def test_learning_rate_changes_are_marked() -> None:
    records = [
        {"events": e, "learning_rate": lr, "window": {"events": 100, "log_loss": 0.5, "accuracy": 0.8},
         "cumulative": {"log_loss": 0.5, "accuracy": 0.8}}
        for e, lr in ((100, 0.1), (200, 0.1), (300, 0.01), (400, 0.01), (500, 0.5))
    ]  # fmt: skip
    assert learning_curve(records).rate_changes == [(300, 0.01), (500, 0.5)]


def test_drifts_are_marked_where_their_window_ends(tmp_path: Path) -> None:
    records = [
        {"events": e, "learning_rate": 0.1, "window": {"events": 100, "log_loss": 0.5, "accuracy": 0.8},
         "cumulative": {"log_loss": 0.5, "accuracy": 0.8},
         "drift": {"detector": "adwin", "events_since_last": 10, "count": count}}
        for e, count in ((100, 0), (200, 0), (300, 1), (400, 1), (500, 3))
    ]  # fmt: skip
    cleaned = [clean_record(json.dumps(r).encode()) for r in records]  # as monitor reads them
    assert cleaned[-1]["drift"] == records[-1]["drift"]  # type: ignore[index]
    curve = learning_curve(cleaned)
    assert curve.drifts == [(300, 1), (500, 2)]
    rows = (line.rsplit("  ", 1) for line in format_metrics(cleaned[-1]).splitlines())
    table = {name.strip(): value.strip() for name, value in rows}
    assert table["drifts (adwin)"] == "3" and table["labelled since"] == "10"
    assert clean_record(json.dumps(dict(records[0], drift={"count": -1})).encode()) == (
        "drift is not a detector's counts"
    )
    draw(curve, tmp_path / "curve.png")
    assert png_size(tmp_path / "curve.png")[0] >= 600


def test_produce_from_csv_and_jsonl_reports_bad_rows_and_carries_on(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    csv_file = tmp_path / "events.csv"
    csv_file.write_text("id,a,b,label\nr1,1.0,2.0,1\nr2,oops,2.0,0\nr3,0.5,-1,0\nr4,1.0\nr5,3,4,\n")
    topics = Topics.create(kafka_bootstrap)
    done = cli(
        "produce",
        "--bootstrap-servers",
        kafka_bootstrap,
        "--topic",
        topics.input,
        "--file",
        str(csv_file),
        "--label-column",
        "label",
    )
    assert done.returncode == 0, done.stderr
    assert (
        "sent 3 events" in done.stdout
        and "2 bad rows skipped" in done.stdout
        and "1 unlabelled" in done.stdout
    )
    assert "line 3" in done.stderr and "line 5" in done.stderr
    events = [json.loads(r.value) for r in raw_records(kafka_bootstrap, topics.input)]
    assert events == [
        {"id": "r1", "features": {"a": 1.0, "b": 2.0}, "label": 1},
        {"id": "r3", "features": {"a": 0.5, "b": -1.0}, "label": 0},
        {"id": "r5", "features": {"a": 3.0, "b": 4.0}},
    ]

    jsonl = tmp_path / "events.jsonl"
    jsonl.write_text(
        '{"id": "j1", "features": [1, 2], "label": 1}\nnot json\n[1, 2]\n\n{"id": "j2", "features": [3, 4]}\n'
        '{"id": "j3", "features": [1e400, 1]}\n{"id": "j4", "features": {"a": NaN}}\n'
    )
    topics = Topics.create(kafka_bootstrap)
    done = cli(
        "produce", "--bootstrap-servers", kafka_bootstrap, "--topic", topics.input, "--file", str(jsonl)
    )
    assert done.returncode == 0, done.stderr
    assert "sent 2 events" in done.stdout and "4 bad rows skipped" in done.stdout
    # Python's json would read both, and send them as Infinity and NaN: not JSON
    assert "line 6: the number 1e400 is beyond a float64" in done.stderr
    assert "line 7: NaN is not a JSON number" in done.stderr
    assert [json.loads(r.value)["id"] for r in raw_records(kafka_bootstrap, topics.input)] == ["j1", "j2"]
    run_component(kafka_bootstrap, topics, "--max-events", "2")
    assert len(json_records(kafka_bootstrap, topics.predictions)) == 2


def test_prometheus_endpoint_serves_the_counters(kafka_bootstrap: str) -> None:
    topics = Topics.create(kafka_bootstrap)
    cli(
        "produce",
        "--bootstrap-servers",
        kafka_bootstrap,
        "--topic",
        topics.input,
        "--dataset",
        "synthetic",
        "--n",
        "3000",
        "--unlabelled-fraction",
        "0.25",
    )
    from tests.component import send

    send(kafka_bootstrap, topics.input, [b"not json", b"{}"])
    port = free_port()
    process = start_component(kafka_bootstrap, topics, "--metrics-port", str(port), "--metrics-every", "500")
    watcher = EndWatcher(kafka_bootstrap, topics.dead_letters)
    wait_for(lambda: watcher.end() >= 2, 120)
    watcher.close()

    wait_for(lambda: scrape(port).get("stream_neuron_events_total") == 3002, 60)
    values = scrape(port)
    process.terminate()
    process.finish(60)
    labelled = sum(1 for p in json_records(kafka_bootstrap, topics.predictions) if p["label"] is not None)
    assert values["stream_neuron_dead_letters_total"] == 2
    assert values["stream_neuron_labelled_events_total"] == labelled
    assert values["stream_neuron_model_version"] == labelled
    assert values["stream_neuron_learning_rate"] == 0.05
    assert values["stream_neuron_lag"] == 0
    assert 0.0 < values["stream_neuron_window_log_loss"] < 1.0
    assert 0.5 < values["stream_neuron_window_accuracy"] <= 1.0


@pytest.mark.parametrize(
    "flags",
    [
        [],
        ["--standardize"],
        ["--model", "perceptron"],
        ["--dataset", "bananas", "--learning-rate", "0.1"],
        ["--learning-rate", "0.001,0.01,0.1,1", "--standardize"],
        ["--optimizer", "adam", "--learning-rate", "0.01", "--standardize"],
        ["--optimizer", "adagrad", "--learning-rate", "0.1", "--l2", "0.01"],
        ["--l1", "0.001", "--learning-rate", "0.05", "--standardize", "--delay", "25"],
        ["--model", "perceptron", "--l2", "0.01", "--learning-rate", "0.5"],
        [
            "--dataset",
            "bananas",
            "--learning-rate",
            "0.01,0.1",
            "--optimizer",
            "adam",
            "--l1",
            "0.001",
            "--delay",
            "10",
        ],
    ],
)
def test_check_river_agrees(flags: list[str]) -> None:
    done = cli("check-river", *flags)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip().endswith("agree")
    rates = flags[flags.index("--learning-rate") + 1].split(",") if "--learning-rate" in flags else ["x"]
    assert done.stdout.count("progressive accuracy") == len(rates)


def test_check_river_disagreement_is_a_failure() -> None:
    assert not Comparison(10, 1e-6, 0.0, 0.9, 0.9).agree
    assert not Comparison(10, 0.0, 0.0, 0.9, 0.8).agree
    assert Comparison(10, 1e-15, 1e-15, 0.9, 0.9).agree


def test_live_view_shows_the_figures_and_trend() -> None:
    assert sparkline([0.0, 0.5, 1.0, None]) == "▁▄█ "
    record = {
        "model_version": 42, "events": 1000, "labelled": 900, "dead_letters": 3,
        "window": {"events": 100, "log_loss": 0.25, "accuracy": 0.9},
        "cumulative": {"log_loss": 0.3, "accuracy": 0.88},
        "learning_rate": 0.05, "weight_norm": 1.5, "events_per_second": 1234.0, "lag": 7, "ts": "now",
    }  # fmt: skip
    console = Console(record=True, width=100)
    from collections import deque

    console.print(view(record, deque([0.5, 0.25]), deque([0.8, 0.9])))
    text = console.export_text()
    for words in ("model version 42", "0.2500", "0.8800", "1000", "0.050000", "log loss trend", "█"):
        assert words in text


def test_follow_without_a_terminal_prints_one_plain_table_a_record(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from stream_neuron.tools.live import follow

    records = [
        {
            "model_version": v,
            "events": v * 10,
            "window": {"events": 10, "log_loss": 0.5, "accuracy": 0.7},
            "cumulative": {},
        }
        for v in (1, 2)
    ]
    follow(iter(records))
    out = capsys.readouterr().out
    assert out.count("model version") == 2 and "window log loss      0.5" in out


def test_produce_creates_a_missing_topic_and_run_learns_from_it(kafka_bootstrap: str) -> None:
    """A new user's first steps with the project's own commands: produce (the topic is created), run."""
    topics = Topics(*(f"{unique_name('first')}-{part}" for part in ("in", "p", "m", "d", "s", "g", "n")))
    produced = cli(
        "produce", "--bootstrap-servers", kafka_bootstrap, "--topic", topics.input,
        "--partitions", "3", "--dataset", "synthetic", "--n", "600",
    )  # fmt: skip
    assert produced.returncode == 0, produced.stderr
    assert f"created topics {topics.input}" in produced.stderr
    records = raw_records(kafka_bootstrap, topics.input)
    assert len(records) == 600 and {r.partition for r in records} == {0, 1, 2}
    again = cli(
        "produce", "--bootstrap-servers", kafka_bootstrap, "--topic", topics.input,
        "--dataset", "synthetic", "--n", "10",
    )  # fmt: skip
    assert again.returncode == 0 and "created" not in again.stderr
    run_component(kafka_bootstrap, topics, "--max-events", "610")
    assert len(json_records(kafka_bootstrap, topics.predictions)) == 610


def operator_errors(bootstrap: str, tmp_path: Path) -> list[tuple[list[str], str]]:
    unlabelled_csv = tmp_path / "plain.csv"
    unlabelled_csv.write_text("a,b\n1,2\n")
    config = tmp_path / "bad.toml"
    config.write_text("no_such_setting = 1\n")
    server = ["--bootstrap-servers", bootstrap, "--topic", unique_name("never-created")]
    run_server = server[:2]
    return [
        (
            ["run", *run_server, "--input-topic", "no-such-input"],
            "input topic 'no-such-input' does not exist",
        ),
        (["monitor", *run_server, "--metrics-topic", "no-such-metrics"], "metrics topic 'no-such-metrics'"),
        (["produce", *server, "--file", str(tmp_path / "none.csv")], "no such file"),
        (["produce", *server, "--file", str(unlabelled_csv), "--label-column", "y"], "no column 'y'"),
        (["produce", *server], "give one source: --dataset or --file"),
        (["produce", *server, "--dataset", "iris"], "invalid choice: 'iris'"),
        (["produce", *server, "--dataset", "phishing", "--rate", "-1"], "rate: Input should be greater"),
        (["run", *run_server, "--config", str(tmp_path / "none.toml")], "config file"),
        (
            ["monitor", *run_server, "--config", str(config)],
            "'no_such_setting' is not a setting of any command",
        ),
        (["check-river", "--model", "svm"], "invalid choice: 'svm'"),
        (["check-river", "--l1", "0.1", "--l2", "0.1"], "--l1 and --l2 together are not supported"),
        (["run", "--model", "perceptron", "--optimizer", "adam"], "the perceptron learns by plain SGD"),
        (["run", "--learning-rate", "0.1,0.1"], "each learning rate once"),
        (["run", "--learning-rate", "0.1,abc"], "not a list of numbers: '0.1,abc'"),
        (["score", *run_server, "--input-topic", "no-such-requests"], "requests topic 'no-such-requests'"),
        (["fit", *run_server, "--input-topic", "no-such-history"], "input topic 'no-such-history'"),
        (["run", "--bootstrap-servers", "127.0.0.1:1"], "no Kafka broker answers at 127.0.0.1:1"),
        (["score", "--bootstrap-servers", "127.0.0.1:1"], "no Kafka broker answers at 127.0.0.1:1"),
        (["fit", "--bootstrap-servers", "127.0.0.1:1", "--input-topic", "x"], "no Kafka broker answers"),
        (["produce", "--bootstrap-servers", "127.0.0.1:1", "--dataset", "phishing"], "no Kafka broker"),
        (["monitor", "--bootstrap-servers", "127.0.0.1:1"], "no Kafka broker answers at 127.0.0.1:1"),
        (["no-such-command"], "invalid choice: 'no-such-command'"),
    ]


def test_every_operator_error_is_one_line_without_a_traceback(kafka_bootstrap: str, tmp_path: Path) -> None:
    for args, words in operator_errors(kafka_bootstrap, tmp_path):
        done = cli(*args, timeout_s=40)
        lines = done.stderr.strip().splitlines()
        assert done.returncode != 0, (args, done.stderr)
        assert len(lines) == 1 and words in lines[0] and lines[0].startswith("stream-neuron"), (args, lines)


def test_a_plot_that_cannot_be_written_is_one_line(kafka_bootstrap: str, tmp_path: Path) -> None:
    from tests.component import send

    topic = unique_name("metrics")
    create_topic(kafka_bootstrap, topic)
    record = {"events": 10, "learning_rate": 0.1, "window": {"events": 10, "log_loss": 0.5, "accuracy": 0.5}}
    send(kafka_bootstrap, topic, [record | {"cumulative": {"log_loss": 0.5, "accuracy": 0.5}}])
    done = cli(
        "monitor", "--bootstrap-servers", kafka_bootstrap, "--metrics-topic", topic,
        "--plot", str(tmp_path / "no" / "such" / "dir" / "curve.png"),
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"stream-neuron monitor: [Errno 2] No such file or directory: '{tmp_path}/no/such/dir/curve.png'"
    ]


def test_topics_creates_a_stack_in_one_process_and_leaves_existing_topics_alone(kafka_bootstrap: str) -> None:
    from kafka import KafkaConsumer
    from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient

    base = unique_name("sn-stack")
    names = {
        "--input-topic": f"{base}-in", "--predictions-topic": f"{base}-pred",
        "--metrics-topic": f"{base}-metrics", "--dead-letter-topic": f"{base}-dlq",
        "--model-topic": f"{base}-model", "--requests-topic": f"{base}-req",
    }  # fmt: skip
    flags = [part for pair in names.items() for part in pair]
    done = cli("topics", "--bootstrap-servers", kafka_bootstrap, *flags, timeout_s=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"created: {', '.join(names.values())}; already there: none"
    again = cli("topics", "--bootstrap-servers", kafka_bootstrap, *flags, timeout_s=60)
    assert again.stdout.strip() == f"created: none; already there: {', '.join(names.values())}"
    consumer = KafkaConsumer(bootstrap_servers=kafka_bootstrap)
    try:
        assert len(consumer.partitions_for_topic(names["--requests-topic"]) or ()) == 4
        assert len(consumer.partitions_for_topic(names["--input-topic"]) or ()) == 1
    finally:
        consumer.close()
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        configs = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, names["--model-topic"])])
        assert configs["topic"][names["--model-topic"]]["cleanup.policy"]["value"] == "compact"
    finally:
        admin.close()
