"""Latency from an event produced to its prediction readable, at a steady input rate.

    python benchmarks/latency.py [--rate 2000] [--seconds 15] [--guarantee at-least-once]
                                 [--kafka-client kafka-python|confluent]

Starts ``stream-neuron run`` (per-event mode) as its own process, produces synthetic events at
``--rate`` per second, and reads the predictions as they appear; each latency is the reading time
minus the producing time of the same event id. The first 2 seconds are warm-up and not counted. The
harness's own producer and reader are librdkafka's (their I/O threads leave the GIL to the
measuring loop), the same for every contender.
Goal (at-least-once, per-event): p99 < 20 ms at 2,000 events per second on librdkafka, < 50 ms on
kafka-python. ``--bare``: the bare loop of ``bare_loops.py`` on the client given instead.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from bench_topics import delete_at_exit, unique
from kafka.admin import KafkaAdminClient, NewTopic

WARM_UP_S = 2.0
BARE_LOOPS = Path(__file__).resolve().parent / "bare_loops.py"


@dataclass
class Latency:
    rate: float
    guarantee: str
    events: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float


def component_command(bootstrap: str, base: str, guarantee: str, client: str) -> list[str]:
    return [
        sys.executable, "-m", "stream_neuron", "run", "--bootstrap-servers", bootstrap,
        "--input-topic", f"{base}-in", "--predictions-topic", f"{base}-pred",
        "--metrics-topic", f"{base}-m", "--dead-letter-topic", f"{base}-d", "--model-topic", f"{base}-s",
        "--group-id", base, "--model-name", base, "--guarantee", guarantee, "--kafka-client", client,
    ]  # fmt: skip


def measure(
    bootstrap: str,
    rate: float,
    seconds: float,
    guarantee: str,
    bare: bool = False,
    client: str = "kafka-python",
) -> Latency:
    base = unique("latency")
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(f"{base}-in", 1, 1), NewTopic(f"{base}-pred", 1, 1)])
    admin.close()
    bare_loop = [sys.executable, str(BARE_LOOPS), "serve", client, bootstrap, f"{base}-in", f"{base}-pred"]
    command = bare_loop if bare else component_command(bootstrap, base, guarantee, client)
    component = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    assert component.stderr is not None
    while "running model" not in (line := component.stderr.readline()):
        if not line:
            raise SystemExit("the component did not start")

    sent_at: dict[str, float] = {}
    latencies: list[float] = []
    total = int(rate * seconds)
    done = threading.Event()

    def read() -> None:
        from confluent_kafka import Consumer, TopicPartition

        consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"{base}-reader",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "fetch.wait.max.ms": 5,
            }
        )
        consumer.assign([TopicPartition(f"{base}-pred", 0, 0)])
        seen = 0
        while seen < total:
            batch = consumer.consume(500, 0) or consumer.consume(1, 0.05)
            now = time.monotonic()
            for record in batch:
                if record.error() is not None:
                    continue
                event_id = json.loads(record.value())["id"]
                latencies.append(now - sent_at[event_id])
                seen += 1
        consumer.close()
        done.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0, "acks": 1})
    rng = np.random.default_rng(0)
    started = time.monotonic()
    for i in range(total):
        due = started + i / rate
        while (delay := due - time.monotonic()) > 0:
            time.sleep(min(delay, 0.002))
        event_id = f"l{i}"
        event = {"id": event_id, "features": rng.normal(size=10).tolist(), "label": int(rng.random() < 0.5)}
        payload = json.dumps(event).encode()
        sent_at[event_id] = time.monotonic()
        producer.produce(f"{base}-in", payload)
        producer.poll(0)
    producer.flush(30)
    done.wait(120)
    component.kill() if bare else component.terminate()
    component.wait(60)
    measured = np.array(latencies[int(rate * WARM_UP_S) :]) * 1000
    return Latency(
        rate,
        guarantee,
        len(measured),
        *(float(np.percentile(measured, q)) for q in (50, 95, 99)),
        float(measured.max()),
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--bootstrap-servers", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    )
    parser.add_argument("--rate", type=float, default=2000)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--guarantee", default="at-least-once", choices=["at-least-once", "exactly-once"])
    parser.add_argument("--bare", action="store_true", help="measure the bare loop (bare_loops.py) instead")
    parser.add_argument("--kafka-client", default="kafka-python", choices=["kafka-python", "confluent"])
    args = parser.parse_args()
    delete_at_exit(args.bootstrap_servers)
    result = measure(
        args.bootstrap_servers, args.rate, args.seconds, args.guarantee, args.bare, args.kafka_client
    )
    who = f"bare loop, {args.kafka_client}" if args.bare else f"{result.guarantee}, {args.kafka_client}"
    print(
        f"{result.events:,} events at {result.rate:,.0f}/s ({who}): p50 {result.p50_ms:.1f} ms, "
        f"p95 {result.p95_ms:.1f} ms, p99 {result.p99_ms:.1f} ms, max {result.max_ms:.1f} ms"
    )


if __name__ == "__main__":
    main()
