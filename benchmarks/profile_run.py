"""Where ``run``'s time goes on librdkafka: py-spy samples of one run, by part of the poll loop.

    python benchmarks/profile_run.py [--events 200000] [--rate 250]

Loads the events (10 features, one partition) and records ``run --mode sgd`` (at-least-once,
librdkafka) with ``py-spy record --format raw`` as its own process. Each sample inside the poll loop
is given to the innermost frame of the package's own code (a C call counts for the line that made
it), and that frame's module to one part of the loop. Prints the table of parts and their shares.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from bench_topics import delete_at_exit, unique
from pipeline_vs_bare import load

HERE = Path(__file__).resolve().parent

# The loop's parts, by the module (under stream_neuron/) of the innermost frame of the package's own.
PARTS: list[tuple[str, tuple[str, ...]]] = [
    (
        "reading the events (the compiled parse; the reference path for what it declines)",
        ("event_readers.py", "decode.py", "schema.py", "row_sink.py", "feature_"),
    ),
    ("writing the predictions' JSON", ("outputs.py",)),
    ("consuming: librdkafka's consume and the input records", ("librdkafka/input.py", "record_order.py")),
    ("producing: librdkafka's produce and the delivery checks", ("librdkafka/sender.py", "delivery.py")),
    ("checkpoints: snapshots and commits", ("checkpoints.py", "processor_state.py", "snapshots.py")),
    ("learning: the neuron and its update policy", ("neuron/", "learner.py", "candidates.py", "champion.py")),
    ("metrics and drift detection", ("metrics.py", "drift.py", "prometheus.py")),
    ("the loop's own work (the poll loop, records)", ("processor.py", "runner.py", "records.py")),
]
OTHER = "other"

RUN = (
    "import sys; sys.path.insert(0, sys.argv[1]); import pipeline_vs_bare as bench; "
    "bench.pipeline(sys.argv[2], sys.argv[3], int(sys.argv[4]), 'sgd', 'at-least-once', 'confluent')"
)


def part_of(stack: list[str]) -> str | None:
    """The loop part of one sample (innermost frame last), or ``None`` outside the poll loop."""
    if not any(frame.startswith("Runner.loop (") for frame in stack):
        return None
    for frame in reversed(stack):
        if "stream_neuron/" not in frame:
            continue
        module = frame.rsplit("stream_neuron/", 1)[1].split(":", 1)[0]
        for name, modules in PARTS:
            if any(module.startswith(m) or m in module for m in modules):
                return name
        return OTHER
    return OTHER


def measure(bootstrap: str, events: int, rate: int) -> Counter[str]:
    topic = unique("bench-profile")
    load(bootstrap, topic, events, 10)
    spy = Path(sys.executable).with_name("py-spy")
    with tempfile.TemporaryDirectory() as scratch:
        raw = Path(scratch) / "samples.txt"
        subprocess.run(
            [str(spy), "record", "--rate", str(rate), "--format", "raw", "--output", str(raw), "--",
             sys.executable, "-c", RUN, str(HERE), bootstrap, topic, str(events)],
            check=True, capture_output=True, cwd=scratch,
        )  # fmt: skip
        parts: Counter[str] = Counter()
        for line in raw.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            part = part_of(stack.split(";"))
            if part is not None:
                parts[part] += int(count)
    return parts


def format_results(parts: Counter[str]) -> str:
    total = sum(parts.values())
    lines = [f"| part of the poll loop ({total:,} samples) | share |", "|---|---|"]
    for name in [name for name, _ in PARTS] + [OTHER]:
        lines.append(f"| {name} | {100 * parts[name] / total:.0f}% |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--bootstrap-servers", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    )
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--rate", type=int, default=250, help="samples a second")
    args = parser.parse_args()
    delete_at_exit(args.bootstrap_servers)
    print(format_results(measure(args.bootstrap_servers, args.events, args.rate)))


if __name__ == "__main__":
    main()
