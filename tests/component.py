"""Driving ``stream-neuron run`` as a real process against the real broker, and reading its outputs."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from kafka import KafkaProducer

from tests.datasets import phishing
from tests.kafka_helpers import Record, client, create_topic, read_to_end, unique_name


@dataclass(frozen=True)
class Topics:
    input: str
    predictions: str
    metrics: str
    dead_letters: str
    model: str
    group: str
    model_name: str

    @classmethod
    def create(cls, bootstrap: str, partitions: int = 1) -> Topics:
        """A fresh input topic; the component creates the output topics itself."""
        base = unique_name("sn")
        create_topic(bootstrap, f"{base}-in", partitions)
        return cls(
            f"{base}-in",
            f"{base}-pred",
            f"{base}-metrics",
            f"{base}-dlq",
            f"{base}-model",
            f"{base}-group",
            base,
        )

    def flags(self, bootstrap: str) -> list[str]:
        return [
            "--bootstrap-servers", bootstrap,
            "--input-topic", self.input,
            "--predictions-topic", self.predictions,
            "--metrics-topic", self.metrics,
            "--dead-letter-topic", self.dead_letters,
            "--model-topic", self.model,
            "--group-id", self.group,
            "--model-name", self.model_name,
        ]  # fmt: skip


def tool_command(command_name: str, *args: str) -> list[str]:
    """``stream-neuron <command_name> <args>``, on the Kafka client under test
    (``STREAM_NEURON_KAFKA_CLIENT``, as every command)."""
    return [sys.executable, "-m", "stream_neuron", command_name, *args]


def command(bootstrap: str, topics: Topics, *extra: str) -> list[str]:
    return [sys.executable, "-m", "stream_neuron", "run", *topics.flags(bootstrap), *extra]


def run_component(
    bootstrap: str, topics: Topics, *extra: str, timeout_s: float = 300
) -> subprocess.CompletedProcess[str]:
    """A bounded run (pass --idle-timeout-s or --max-events); fails the test on a non-zero exit."""
    done = subprocess.run(
        command(bootstrap, topics, *extra), capture_output=True, text=True, timeout=timeout_s, check=False
    )
    assert done.returncode == 0, f"run exited {done.returncode}:\n{done.stderr[-4000:]}"
    return done


class Running:
    """A command started in the background whose stderr is read as it comes, so a test can wait for a
    line it logs (:meth:`wait_for_line`) instead of sleeping, and still gets all of it at the end."""

    def __init__(self, command: list[str], env: dict[str, str] | None = None) -> None:
        # faulthandler: a hung process asked to abort (finish) prints every thread's stack first.
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            env=dict(os.environ, PYTHONFAULTHANDLER="1", **(env or {})),
        )  # fmt: skip
        self.pid = self.process.pid
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()

    def last_line(self, words: str) -> str | None:
        with self._changed:
            return next((line for line in reversed(self.lines) if words in line), None)

    def count(self, words: str) -> int:
        with self._changed:
            return sum(words in line for line in self.lines)

    def wait_for_line(self, words: str, timeout_s: float = 120, count: int = 1) -> None:
        """Until ``count`` lines containing ``words`` were logged; fails with the log otherwise (and
        when the process ends first)."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while sum(words in line for line in self.lines) < count:
                left = deadline - time.monotonic()
                if left <= 0 or (self.process.poll() is not None and not self._reader.is_alive()):
                    raise AssertionError(f"no {words!r} in the log:\n{''.join(self.lines)[-4000:]}")
                self._changed.wait(min(left, 0.5))

    def poll(self) -> int | None:
        return self.process.poll()

    def story(self) -> str:
        """Whether it still runs (or how it ended), and the end of its log."""
        status = self.process.poll()
        with self._changed:
            log = "".join(self.lines)[-4000:]
        return f"{'still running' if status is None else f'exited {status}'}, its log:\n{log}"

    def send_signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def terminate(self) -> None:
        self.process.terminate()

    def kill(self) -> None:
        self.process.kill()

    def finish(self, timeout_s: float) -> tuple[int, str]:
        """Exit status and stderr; a process still running after ``timeout_s`` is aborted (SIGABRT, so
        faulthandler prints where each of its threads waits), killed if that does not end it, and reported
        as -9 with everything it wrote: a hang fails with its own story instead of a bare timeout."""
        try:
            status = self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.send_signal(signal.SIGABRT)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(30)
            self._reader.join(30)
            told = "its threads' stacks are at the end"
            return -9, f"(hung for {timeout_s:.0f} s: aborted; {told})\n{''.join(self.lines)}"
        self._reader.join(30)
        return status, "".join(self.lines)


STARTED: list[Running] = []  # killed after each test by conftest, should it fail midway


def start(command: list[str], env: dict[str, str] | None = None) -> Running:
    running = Running(command, env)
    STARTED.append(running)
    return running


def start_component(bootstrap: str, topics: Topics, *extra: str) -> Running:
    return start(command(bootstrap, topics, *extra))


def kill_leftovers() -> None:
    """A failed test must not leave a component running into the next one."""
    while STARTED:
        running = STARTED.pop()
        if running.poll() is None:
            running.kill()
            running.finish(30)


def finish(process: Running, timeout_s: float) -> tuple[int, str]:
    return process.finish(timeout_s)


def kill_hard(process: Running) -> None:
    os.kill(process.pid, signal.SIGKILL)
    process.finish(30)


def send(
    bootstrap: str,
    topic: str,
    values: Iterable[bytes | dict[str, Any] | None],
    keys: Sequence[bytes | None] | None = None,
    headers: Sequence[list[tuple[str, bytes]]] | None = None,
) -> int:
    producer = KafkaProducer(**client(bootstrap), acks="all", linger_ms=5, max_request_size=20 * 1024 * 1024)
    count = 0
    for i, value in enumerate(values):
        payload = json.dumps(value).encode() if isinstance(value, dict) else value
        producer.send(
            topic,
            value=payload,
            key=None if keys is None else keys[i],
            headers=None if headers is None else headers[i],
        )
        count += 1
    producer.flush()
    producer.close()
    return count


def phishing_events() -> list[dict[str, Any]]:
    names, _, X, y = phishing()
    return [
        {"id": f"p{i}", "features": dict(zip(names, row.tolist(), strict=True)), "label": int(label)}
        for i, (row, label) in enumerate(zip(X, y, strict=True))
    ]


def json_records(bootstrap: str, topic: str) -> list[dict[str, Any]]:
    return [json.loads(r.value) for r in read_to_end(bootstrap, topic) if r.value is not None]


def raw_records(bootstrap: str, topic: str) -> list[Record]:
    return read_to_end(bootstrap, topic)


def last_snapshot(bootstrap: str, topics: Topics) -> dict[str, Any]:
    snapshots = [r.value for r in read_to_end(bootstrap, topics.model) if r.key == topics.model_name.encode()]
    assert snapshots and snapshots[-1] is not None, "no snapshot was published"
    snapshot: dict[str, Any] = json.loads(snapshots[-1])
    return snapshot


def wait_for(
    predicate: Any, timeout_s: float = 120, interval_s: float = 0.2, *, about: Running | None = None
) -> None:
    """Until ``predicate()`` holds; a timeout fails with the story of ``about`` (the process waited on:
    its exit status and log), so a stuck component says why."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting" + ("" if about is None else f"; {about.story()}"))
        time.sleep(interval_s)


def weights(snapshot: dict[str, Any]) -> np.ndarray:
    return np.array(snapshot["weights"])


class EndWatcher:
    """Cheap repeated reads of a topic's end offset (one consumer, kept open)."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        from kafka import KafkaConsumer

        self.topic = topic
        self.consumer = KafkaConsumer(**client(bootstrap), enable_auto_commit=False)

    def end(self) -> int:
        from kafka import TopicPartition

        partitions = self.consumer.partitions_for_topic(self.topic)
        if not partitions:
            self.consumer.topics()  # refresh metadata: the topic may have been created since
            return 0
        return int(
            sum(self.consumer.end_offsets([TopicPartition(self.topic, p) for p in partitions]).values())
        )

    def close(self) -> None:
        self.consumer.close(autocommit=False)


def committed_offset(bootstrap: str, group: str, topic: str, partition: int = 0) -> int | None:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(**client(bootstrap), group_id=group, enable_auto_commit=False)
    try:
        return consumer.committed(TopicPartition(topic, partition))
    finally:
        consumer.close(autocommit=False)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def synthetic_events(n: int, d: int, seed: int) -> tuple[list[dict[str, Any]], np.ndarray, np.ndarray]:
    """Labelled synthetic events with ids ``e0..`` (features by position), and their X and y."""
    from tests.datasets import synthetic

    X, y = synthetic(n, d, seed=seed)
    events = [
        {"id": f"e{i}", "features": row.tolist(), "label": int(label)}
        for i, (row, label) in enumerate(zip(X, y, strict=True))
    ]
    return events, X, y


def kill_mid_run(
    bootstrap: str, topics: Topics, flags: Sequence[str], kills: int, gap: tuple[int, int], seed: str
) -> None:
    """``kills`` runs of ``run`` with ``flags`` over the input already loaded (one partition), each
    SIGKILLed once it has published a random number (``gap``) of records more; each kill must leave
    input unread, so the next run has work left."""
    ends = EndWatcher(bootstrap, topics.input)
    loaded = ends.end()
    ends.close()
    watcher = EndWatcher(bootstrap, topics.predictions)
    rng = random.Random(seed)
    try:
        for _ in range(kills):
            process = start_component(bootstrap, topics, *flags)
            target = watcher.end() + rng.randint(*gap)
            wait_for(lambda p=process, t=target: watcher.end() >= t or p.poll() is not None, 240, 0.01)
            assert process.poll() is None, "the run finished before the kill"
            kill_hard(process)
            assert (committed_offset(bootstrap, topics.group, topics.input) or 0) < loaded, "nothing left"
    finally:
        watcher.close()


def scrape(port: int, prefix: str = "stream_neuron_") -> dict[str, float]:
    """The samples named ``prefix...`` that the metrics port serves now, by name."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
        if sample.name.startswith(prefix)
    }
