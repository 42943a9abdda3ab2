"""Delayed labels: ``run`` throughput with 100,000 questions waiting for their answers, against the same
events with their labels inside (today's same-event labels), on the same broker.

    python benchmarks/delayed_labels.py [--events 200000] [--window 100000] [--rounds 2]

Both inputs hold the same events (10 features): one as labelled events, one as questions and answers,
each answer ``--window`` events after its question (so the store holds that many questions at its
fullest). Both runs learn every event once and publish one prediction per event (question). Timed as
in ``pipeline_vs_bare.py`` (first poll with records to the final checkpoint), alternated round by
round; medians. Also prints the store's memory per pending question (tracemalloc).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tracemalloc

import numpy as np
from bench_topics import delete_at_exit, unique
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

from stream_neuron.config import Settings, run_names
from stream_neuron.pending import PendingStore, Question
from stream_neuron.runner import run
from stream_neuron.tools.sources import questions_and_answers, synthetic

FEATURES = 10


def load(bootstrap: str, topic: str, events: list[dict[str, object]]) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(topic, 1, 1)])
    admin.close()
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, batch_size=512 * 1024, acks="all")
    for event in events:
        producer.send(topic, key=str(event["id"]).encode(), value=json.dumps(event).encode())
    producer.flush()
    producer.close()


def timed_run(bootstrap: str, topic: str, records: int, window: int) -> float:
    """Events (labelled events, or questions) per second."""
    name = unique("bench")
    settings = Settings(
        bootstrap_servers=bootstrap,
        **(run_names(name) | {"input_topic": topic}),
        max_events=records,
        label_window=window,
    )
    summary = run(settings)
    assert summary.first_input_at is not None
    return summary.consumed / (summary.finished_at - summary.first_input_at)


def bytes_per_question(n: int = 100_000) -> float:
    store = PendingStore(n, 10**12)
    rows = np.random.default_rng(0).normal(size=(n, FEATURES))
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for i in range(n):
        store.ask(f"synthetic-{i}", Question("in", 0, i, i, rows[i].copy(), 0.5))
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return used / n


def rss_bytes_per_question(n: int = 100_000) -> float:
    """The same store's growth of the process's resident memory (what an operator sees: the allocator's
    own overhead included), in a fresh interpreter so nothing else moves it."""
    import subprocess
    import sys

    program = f"""
import numpy as np
from stream_neuron.pending import PendingStore, Question
def rss():
    return int(open("/proc/self/statm").read().split()[1]) * {os.sysconf("SC_PAGE_SIZE")}
rows = np.random.default_rng(0).normal(size=({n}, {FEATURES}))
store = PendingStore({n}, 10**12)
before = rss()
for i in range({n}):
    store.ask(f"synthetic-{{i}}", Question("in", 0, i, i, rows[i].copy(), 0.5))
print((rss() - before) / {n})
"""
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True)
    return float(done.stdout)


def peak_rss(command: list[str]) -> int:
    """The largest resident set of a process over its life, sampled every 50 ms."""
    import subprocess
    import time

    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak = 0
    while process.poll() is None:
        try:
            status = open(f"/proc/{process.pid}/status").read()  # noqa: SIM115
        except OSError:
            break
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                peak = max(peak, int(line.split()[1]) * 1024)
        time.sleep(0.05)
    assert process.wait() == 0, f"{command} failed"
    return peak


def component_bytes_per_question(bootstrap: str, n: int = 100_000) -> float:
    """What a pending question costs inside ``run``: the peak resident memory of a run over ``n``
    questions that stay pending, less that of a run over the same events with their labels inside."""
    import sys

    labelled = list(synthetic(n, FEATURES, 0.5, None, seed=2))
    questions = [{k: v for k, v in e.items() if k != "label"} for e in labelled]
    peaks = []
    for events, window in ((labelled, 0), (questions, 2 * n)):
        topic = unique("bench-mem")
        load(bootstrap, topic, events)
        names = run_names(unique("bench")) | {"input_topic": topic}
        flags = [f"--{key.replace('_', '-')}={value}" for key, value in names.items()]
        peaks.append(peak_rss([
            sys.executable, "-m", "stream_neuron", "run", "--bootstrap-servers", bootstrap, *flags,
            f"--max-events={n}", f"--label-window={window}",
        ]))  # fmt: skip
    return (peaks[1] - peaks[0]) / n


def measure(bootstrap: str, events: int, window: int, rounds: int) -> dict[str, float]:
    labelled = list(synthetic(events, FEATURES, 0.5, None, seed=1))
    same_event, delayed = unique("bench-in"), unique("bench-qa")
    load(bootstrap, same_event, labelled)
    load(bootstrap, delayed, list(questions_and_answers(iter(labelled), window)))
    runs: dict[str, list[float]] = {"labels in the event": [], f"answers {window:,} events later": []}
    for _ in range(rounds):
        runs["labels in the event"].append(timed_run(bootstrap, same_event, events, 0))
        runs[f"answers {window:,} events later"].append(timed_run(bootstrap, delayed, 2 * events, window))
    return {name: statistics.median(values) for name, values in runs.items()}


def format_results(rates: dict[str, float], events: int, per_question: float) -> str:
    (same_name, same), (delayed_name, delayed) = rates.items()
    return "\n".join(
        [
            f"| {events:,} events, 10 features, at-least-once | input records/s | events learned/s | ratio |",
            "|---|---|---|---|",
            f"| {same_name} | {same:,.0f} | {same:,.0f} | 1.00 |",
            f"| {delayed_name} (question + answer) | {delayed:,.0f} | {delayed / 2:,.0f} | "
            f"{delayed / 2 / same:.2f} |",
            "",
            f"Memory per pending question (10 features): {per_question:,.0f} bytes (tracemalloc, 100,000 "
            "questions).",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--bootstrap-servers", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    )
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--window", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    delete_at_exit(args.bootstrap_servers)
    rates = measure(args.bootstrap_servers, args.events, args.window, args.rounds)
    print(format_results(rates, args.events, bytes_per_question()))


if __name__ == "__main__":
    main()
