"""Scorer replicas: throughput of 1 and 2 replicas on a 4-partition requests topic, and the hot-swap
delay (a snapshot committed on the model topic to the first prediction scored with it).

    python benchmarks/scoring.py [--requests 200000] [--rounds 2] [--swaps 30]

Throughput: the same requests scored from the start by a fresh consumer group, 1 and 2 replicas
alternated round by round; events per second from the first prediction written to the last (the
predictions' own timestamps), and each replica's CPU seconds (its rusage). The broker shares the
machine's 2 cores with the replicas, so 2 replicas contend with it.

Hot swap: two replicas score requests sent at a steady rate while snapshots of new versions are
committed to the model topic; for each version, the delay from its commit (acknowledged) to the first
prediction carrying it. p50 and p99 over the swaps.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass

import numpy as np
from bench_topics import delete_at_exit, unique
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

from stream_neuron import LogisticNeuron
from stream_neuron.snapshots import build_snapshot

FEATURES = 10


@dataclass
class Throughput:
    replicas: int
    events_per_second: float
    cpu_seconds: list[float]


def create(bootstrap: str, *topics: tuple[str, int, dict[str, str]]) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics(
        [NewTopic(name, partitions, 1, topic_configs=configs) for name, partitions, configs in topics]
    )
    admin.close()


def publish_model(producer: KafkaProducer, topic: str, name: str, version: int) -> float:
    """A snapshot of ``version`` (random weights); returns when it is acknowledged (monotonic)."""
    model = LogisticNeuron(FEATURES, learning_rate=0.05)
    rng = np.random.default_rng(version)
    state = model.to_dict() | {"weights": rng.normal(size=FEATURES).tolist(), "n_updates": version}
    model.load_dict(state)
    snapshot = build_snapshot(name, model, None, {"events": version, "labelled": version, "loss_sum": 0.0,
                                                  "correct": 0, "dead_letters": 0}, None, {})  # fmt: skip
    producer.send(topic, key=name.encode(), value=json.dumps(snapshot).encode()).get(timeout=30)
    return time.time()


def scorer(bootstrap: str, base: str, group: str, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "stream_neuron", "score", "--bootstrap-servers", bootstrap,
         "--input-topic", f"{base}-requests", "--predictions-topic", f"{base}-pred-{group}",
         "--dead-letter-topic", f"{base}-dlq", "--model-topic", f"{base}-model", "--model-name", base,
         "--group-id", group, *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def wait_rusage(process: subprocess.Popen[bytes]) -> float:
    _, _, usage = os.wait4(process.pid, 0)
    process.returncode = 0
    return usage.ru_utime + usage.ru_stime


def prediction_times(bootstrap: str, topic: str) -> list[tuple[float, dict[str, object]]]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    ends = consumer.end_offsets(partitions)
    out: list[tuple[float, dict[str, object]]] = []
    while any(consumer.position(tp) < ends[tp] for tp in partitions):
        for batch in consumer.poll(timeout_ms=500).values():
            out.extend((r.timestamp / 1000, json.loads(r.value)) for r in batch)
    consumer.close()
    return out


def throughput(bootstrap: str, base: str, replicas: int, requests: int) -> Throughput:
    group = f"g{replicas}-{uuid.uuid4().hex[:6]}"
    processes = [scorer(bootstrap, base, group, "--idle-timeout-s", "4") for _ in range(replicas)]
    cpu = [wait_rusage(p) for p in processes]
    times = [t for t, _ in prediction_times(bootstrap, f"{base}-pred-{group}")]
    assert len(times) >= requests, f"{len(times)} predictions for {requests} requests"
    return Throughput(replicas, requests / (max(times) - min(times)), cpu)


def swap_delays(bootstrap: str, base: str, swaps: int, rate: float) -> list[float]:
    group = f"swap-{uuid.uuid4().hex[:6]}"
    processes = [scorer(bootstrap, base, group) for _ in range(2)]
    time.sleep(4)
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
    stop = threading.Event()

    def feed() -> None:
        rng = np.random.default_rng(1)
        i = 0
        while not stop.is_set():
            producer.send(
                f"{base}-requests",
                json.dumps({"id": f"s{i}", "features": rng.normal(size=FEATURES).tolist()}).encode(),
            )
            i += 1
            time.sleep(1 / rate)

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    committed: dict[int, float] = {}
    for k in range(swaps):
        time.sleep(0.7)
        version = 1_000_000 + k
        committed[version] = publish_model(producer, f"{base}-model", base, version)
    time.sleep(2)
    stop.set()
    feeder.join()
    for process in processes:
        process.terminate()
        process.wait(60)
    first: dict[int, float] = {}
    for stamp, prediction in prediction_times(bootstrap, f"{base}-pred-{group}"):
        version = int(prediction["model_version"])  # type: ignore[call-overload]
        first[version] = min(first.get(version, stamp), stamp)
    return [first[v] - committed[v] for v in committed if v in first]


def measure(
    bootstrap: str, requests: int, rounds: int, swaps: int
) -> tuple[dict[int, list[Throughput]], list[float]]:
    base = unique("scoring")
    create(bootstrap, (f"{base}-requests", 4, {}), (f"{base}-model", 1, {"cleanup.policy": "compact"}))
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, batch_size=512 * 1024)
    publish_model(producer, f"{base}-model", base, 1)
    rng = np.random.default_rng(0)
    for i in range(requests):
        value = json.dumps({"id": f"r{i}", "features": rng.normal(size=FEATURES).tolist()}).encode()
        producer.send(f"{base}-requests", key=f"r{i}".encode(), value=value)
    producer.flush()
    results: dict[int, list[Throughput]] = {1: [], 2: []}
    for _ in range(rounds):  # alternated, so both see the same machine
        for replicas in (1, 2):
            results[replicas].append(throughput(bootstrap, base, replicas, requests))
    delays = swap_delays(bootstrap, base, swaps, rate=2000)
    return results, delays


def format_results(results: dict[int, list[Throughput]], delays: list[float], requests: int) -> str:
    lines = [
        f"| {requests:,} requests, 4 partitions | events/s (median) | x 1 replica | CPU s per replica |",
        "|---|---|---|---|",
    ]
    one = statistics.median(r.events_per_second for r in results[1])
    for replicas, runs in results.items():
        rate = statistics.median(r.events_per_second for r in runs)
        cpu = statistics.median(c for r in runs for c in r.cpu_seconds)
        label = f"{replicas} replica{'s' if replicas > 1 else ''}"
        lines.append(f"| {label} | {rate:,.0f} | {rate / one:.2f}x | {cpu:.1f} |")
    if delays:
        ms = np.array(delays) * 1000
        lines.append("")
        lines.append(
            f"Hot swap, {len(delays)} snapshots committed while 2 replicas scored 2,000 requests/s: "
            f"committed to first prediction with it p50 {np.percentile(ms, 50):.0f} ms, "
            f"p99 {np.percentile(ms, 99):.0f} ms, max {ms.max():.0f} ms."
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--bootstrap-servers", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    )
    parser.add_argument("--requests", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--swaps", type=int, default=30)
    args = parser.parse_args()
    delete_at_exit(args.bootstrap_servers)
    results, delays = measure(args.bootstrap_servers, args.requests, args.rounds, args.swaps)
    print(format_results(results, delays, args.requests))


if __name__ == "__main__":
    main()
