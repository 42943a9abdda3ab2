"""``make bench``: every benchmark, each printed against its goal, and ``benchmarks/RESULTS.md`` written.

    python benchmarks/run_all.py [--quick]

Ratios are measured side by side in one run (these machines are shared and noisy; ratios hold,
absolute figures drift). Needs a broker (``make bench`` starts ``deploy/local-kafka``).
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import statistics
import sys
import time
from importlib.metadata import version
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bare_loops
import candidates
import delayed_labels
import features
import fit_descent
import latency
import neuron_vs_peers
import pipeline_vs_bare
import pipeline_vs_peers
import profile_run
import scoring
from bench_topics import delete_at_exit

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def machine() -> str:
    packages = ["numpy", "kafka-python", "pydantic", "river", "scikit-learn", "crc32c"]
    packages += ["confluent-kafka", "quixstreams", "orjson", "jiter", "mmh3", "py-spy"]
    versions = ", ".join(f"{name} {version(name)}" for name in packages)
    pom = Path(__file__).resolve().parent.parent.joinpath("deploy", "pom.xml").read_text()
    kafka = pom.split("<kafka.version>")[1].split("<")[0]
    return (
        f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}, "
        f"Apache Kafka {kafka} (deploy/local-kafka); {versions}"
    )


LATENCY_GOALS_MS = {  # p99 at 2,000 events/s, per-event, at-least-once
    "run --mode sgd (at-least-once, kafka-python)": 50.0,
    "run --mode sgd (at-least-once, confluent)": 20.0,
}


def latency_table(bootstrap: str, rounds: int, seconds: float) -> str:
    contenders = {
        "run --mode sgd (at-least-once, kafka-python)": lambda: latency.measure(
            bootstrap, 2000, seconds, "at-least-once"
        ),
        "run --mode sgd (at-least-once, confluent)": lambda: latency.measure(
            bootstrap, 2000, seconds, "at-least-once", client="confluent"
        ),
        bare_loops.KAFKA_PYTHON: lambda: latency.measure(
            bootstrap, 2000, seconds, "at-least-once", bare=True
        ),
        bare_loops.CONFLUENT: lambda: latency.measure(
            bootstrap, 2000, seconds, "at-least-once", bare=True, client="confluent"
        ),
    }
    runs: dict[str, list[latency.Latency]] = {name: [] for name in contenders}
    for _ in range(rounds):  # alternated, so all see the same machine
        for name, measure in contenders.items():
            runs[name].append(measure())
    lines = [
        f"| at 2,000 events/s (median of {rounds} rounds) | p50 ms | p95 ms | p99 ms | goal |",
        "|---|---|---|---|---|",
    ]
    for name, results in runs.items():
        p50, p95, p99 = (
            statistics.median(getattr(r, f) for r in results) for f in ("p50_ms", "p95_ms", "p99_ms")
        )
        limit = LATENCY_GOALS_MS.get(name)
        goal = (
            "(the stack's own)"
            if limit is None
            else f"p99 < {limit:g} ms {'met' if p99 < limit else 'MISSED'}"
        )
        lines.append(f"| {name} | {p50:.1f} | {p95:.1f} | {p99:.1f} | {goal} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--bootstrap-servers", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    )
    parser.add_argument("--quick", action="store_true", help="fewer events and rounds (a smoke run)")
    args = parser.parse_args()
    delete_at_exit(args.bootstrap_servers)
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("kafka").setLevel(logging.ERROR)
    quick = args.quick
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())

    print("neuron against river and scikit-learn ...", flush=True)
    neuron = neuron_vs_peers.format_rows(
        neuron_vs_peers.measure([10, 100], 5000 if quick else 20000, 2 if quick else 5)
    )
    print(neuron, flush=True)
    print("pipeline against the bare kafka-python loop ...", flush=True)
    events = 20_000 if quick else 100_000
    best = pipeline_vs_bare.measure(
        args.bootstrap_servers, events, 10, 1 if quick else 2, ["at-least-once", "exactly-once"]
    )
    pipeline = pipeline_vs_bare.format_results(best)
    print(pipeline, flush=True)
    print("pipeline against the peers a user would pick instead ...", flush=True)
    peer_events = 30_000 if quick else 300_000
    peers = pipeline_vs_peers.format_results(
        pipeline_vs_peers.measure(args.bootstrap_servers, peer_events, 10, 1 if quick else 3)
    )
    print(peers, flush=True)
    print("where run's time goes (py-spy) ...", flush=True)
    profile_events = 50_000 if quick else 200_000
    profile = profile_run.format_results(profile_run.measure(args.bootstrap_servers, profile_events, 250))
    print(profile, flush=True)
    print("latency ...", flush=True)
    latencies = latency_table(args.bootstrap_servers, 1 if quick else 3, 5 if quick else 12)
    print(latencies, flush=True)
    print("scorer replicas ...", flush=True)
    requests = 50_000 if quick else 200_000
    scored, delays = scoring.measure(args.bootstrap_servers, requests, 1 if quick else 2, 10 if quick else 30)
    scorers = scoring.format_results(scored, delays, requests)
    print(scorers, flush=True)
    print("fit: batch and mini-batch descent ...", flush=True)
    fit_events = 200_000 if quick else 1_000_000
    descent = fit_descent.format_results(
        fit_descent.measure_memory(fit_events, 1 if quick else 3),
        fit_events,
        fit_descent.measure_load(args.bootstrap_servers, fit_events),
    )
    print(descent, flush=True)
    print("delayed labels ...", flush=True)
    qa_events = 50_000 if quick else 200_000
    delayed = delayed_labels.format_results(
        delayed_labels.measure(args.bootstrap_servers, qa_events, qa_events // 2, 1 if quick else 2),
        qa_events,
        delayed_labels.bytes_per_question(),
    )
    print(delayed, flush=True)

    print("learning-rate candidates ...", flush=True)
    raced = candidates.format_results(
        candidates.measure(args.bootstrap_servers, events, 10, 1 if quick else 3, "confluent"),
        candidates.bytes_per_candidate(10),
        "confluent",
    )
    print(raced, flush=True)

    print("open and hashed features ...", flush=True)
    feature_events = 20_000 if quick else 100_000
    started_as = features.as_the_command_starts()
    opened = features.format_results(
        features.measure(args.bootstrap_servers, feature_events, 1 if quick else 3, "confluent"), "confluent"
    )
    print(opened, flush=True)

    RESULTS.write_text(
        "# Benchmark results\n\n"
        f"Measured {started} with `{' '.join(['python', *sys.argv])}` (`make bench`).\n\n"
        f"Machine: {machine()}.\n\n"
        "Ratios come from runs alternated side by side in one session; absolute figures drift with the\n"
        "machine's load.\n\n"
        "## The neuron's hot paths (events per second)\n\n"
        f"{neuron}\n\n"
        "## The bare loop\n\n"
        'Every ratio to "the bare loop" is to the one of `benchmarks/bare_loops.py` on the same client:\n'
        "each event decoded by `orjson.loads` (no contract checks), run's maths on Python floats (the\n"
        "probability with the weights from before the event, then one SGD step), one small prediction\n"
        'record (`{"id", "probability", "prediction"}`) produced with acks=all; no dead letters,\n'
        "metrics, snapshots or offsets. Each contender is timed from its first poll that returns records\n"
        "to its last output acknowledged (the component: its final checkpoint); client start-up is\n"
        "outside the figure.\n\n"
        "## The pipeline on kafka-python, 10 features, one partition\n\n"
        f"{events:,} events through `stream-neuron run --kafka-client kafka-python` and through the bare\n"
        "kafka-python loop, on the same broker, alternated; medians. `benchmarks/pipeline_vs_bare.py`.\n\n"
        f"{pipeline}\n\n"
        "## The pipeline against its peers (at-least-once, one partition)\n\n"
        f"{peer_events:,} events, 10 features: `stream-neuron run` on each client, a quix-streams app doing\n"
        "the same job (the same neuron maths per message), and the bare loop on each client,\n"
        "alternated; medians. `benchmarks/pipeline_vs_peers.py`.\n\n"
        f"{peers}\n\n"
        "## Where run's time goes (librdkafka, at-least-once)\n\n"
        f"py-spy samples (250 a second) of one {profile_events:,}-event run, each given to the innermost\n"
        "frame of the package's own code (a C call counts for the line that made it), by part of the poll\n"
        "loop. `benchmarks/profile_run.py`.\n\n"
        f"{profile}\n\n"
        "## Latency: event produced to prediction readable\n\n"
        f"{latencies}\n\n"
        "## Scorer replicas (`stream-neuron score`)\n\n"
        "The same requests scored from the start by a fresh consumer group of 1 and of 2 replicas,\n"
        "alternated; events per second from the first prediction written to the last, and each\n"
        "replica's CPU seconds (start-up included). The broker runs on the same 2 cores.\n\n"
        f"{scorers}\n\n"
        "## Batch descent (`stream-neuron fit`)\n\n"
        "Events per second per epoch over a set held in memory (medians of alternated rounds); the\n"
        "cost pass each epoch is what `fit` prints and publishes. `benchmarks/fit_descent.py`.\n\n"
        f"{descent}\n\n"
        "## Delayed labels (`run --label-window`)\n\n"
        "The same events with their labels inside, and as questions and answers (each answer half the\n"
        "events later, so the store holds that many questions at its fullest); medians of alternated runs.\n"
        "`benchmarks/delayed_labels.py`.\n\n"
        f"{delayed}\n\n"
        "## Learning-rate candidates (`run --learning-rate a,b,c`)\n\n"
        f"{events:,} events, one rate, then four, then eight raced (the order alternating round by round),\n"
        "at-least-once on librdkafka; medians. `benchmarks/candidates.py`.\n\n"
        f"{raced}\n\n"
        "## Open and hashed features (`run --features open|hashed`)\n\n"
        f"{feature_events:,} events a stream: 40 numeric features (fixed), 30 numeric + 10 categorical of\n"
        "20 values (open), 40 numeric + 10 ids of 100,000 values (hashed, 2^20 buckets); `run` on\n"
        "librdkafka, at-least-once, each run in a process of its own, alternated; medians. The processes\n"
        f"start as `stream-neuron` starts ({started_as}). In process\n"
        "(no Kafka, each mode in a new process), 20,000 events: the\n"
        "component's processor from the records' JSON (the compiled pass reads every mode), and the\n"
        "encoder and neuron alone against river's pipeline on the same decoded dicts; one pass of each\n"
        "of the three a round, alternated, the best of each. The snapshot is the model topic's last\n"
        "record. `benchmarks/features.py`.\n\n"
        f"{opened}\n"
    )
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
