"""Per-test topics and reading a topic to its end, over kafka-python against the real broker."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

from stream_neuron.kafka_io.kafka_python import header_keys_fix

header_keys_fix.install()  # the tests read topics where producers wrote header keys that are not UTF-8

# Client settings beyond the address, by bootstrap address: a secured broker's TLS and SASL settings
# (registered by the fixture that starts it), so every helper below works against it too.
CLIENT_SETTINGS: dict[str, dict[str, Any]] = {}


def client(bootstrap: str) -> dict[str, Any]:
    """The kafka-python configuration of a test client of the broker at ``bootstrap``."""
    return {"bootstrap_servers": bootstrap, **CLIENT_SETTINGS.get(bootstrap, {})}


@dataclass(frozen=True)
class Record:
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    partition: int
    offset: int


# The uuid part of every name this process made: the session deletes the topics that carry one
# (those the tests created and those the component derived from a test's names) when it ends.
NAMES_MADE: set[str] = set()


def unique_name(prefix: str) -> str:
    token = uuid.uuid4().hex[:12]
    NAMES_MADE.add(token)
    return f"{prefix}-{token}"


def delete_topics_named(bootstrap: str, tokens: set[str], chunk: int = 200) -> int:
    """Deletes every topic whose name contains one of ``tokens``; returns how many. Without it the
    broker's data folder grows by hundreds of partitions a run, and after an unclean stop the broker
    recovers every one of them before it listens."""
    admin = KafkaAdminClient(**client(bootstrap), client_id="stream-neuron-tests")
    try:
        doomed = sorted(t for t in admin.list_topics() if any(token in t for token in tokens))
        for start in range(0, len(doomed), chunk):
            # A topic a test deleted itself is already gone: no error for that.
            admin.delete_topics(doomed[start : start + chunk], timeout_ms=60_000, raise_errors=False)
    finally:
        admin.close()
    return len(doomed)


def create_topic(
    bootstrap: str,
    name: str,
    partitions: int = 1,
    compacted: bool = False,
    configs: dict[str, str] | None = None,
) -> str:
    configs = {**({"cleanup.policy": "compact"} if compacted else {}), **(configs or {})}
    admin = KafkaAdminClient(**client(bootstrap), client_id="stream-neuron-tests")
    try:
        admin.create_topics([NewTopic(name, partitions, 1, topic_configs=configs)])
    finally:
        admin.close()
    return name


def read_to_end(
    bootstrap: str, topic: str, isolation_level: str = "read_committed", timeout_s: float = 60.0
) -> list[Record]:
    """Every record of ``topic`` from the beginning to the current end, in partition order."""
    consumer = KafkaConsumer(
        **client(bootstrap),
        enable_auto_commit=False,
        isolation_level=isolation_level,
        consumer_timeout_ms=1000,
    )
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        if not partitions:
            raise AssertionError(f"topic {topic} does not exist")
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        records: list[Record] = []
        deadline = time.monotonic() + timeout_s
        while any(consumer.position(tp) < ends[tp] for tp in partitions):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out reading {topic} to its end {ends}")
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(
                    Record(r.key, r.value, list(r.headers or []), r.partition, r.offset) for r in batch
                )
        return sorted(records, key=lambda r: (r.partition, r.offset))
    finally:
        consumer.close(autocommit=False)


def recreate_topic(bootstrap: str, name: str, timeout_s: float = 30.0) -> None:
    """Create a topic deleted a moment ago: the broker refuses it as existing while the deletion
    completes in the background (any other error fails the test)."""
    from kafka.errors import TopicAlreadyExistsError

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            create_topic(bootstrap, name)
            return
        except TopicAlreadyExistsError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def topic_exists(bootstrap: str, name: str) -> bool:
    admin = KafkaAdminClient(**client(bootstrap), client_id="stream-neuron-tests")
    try:
        return name in admin.list_topics()
    finally:
        admin.close()


def alter_topic(bootstrap: str, name: str, configs: dict[str, str]) -> None:
    """Change topic settings now (as an operator would with kafka-configs)."""
    from kafka.admin import ConfigResource, ConfigResourceType

    admin = KafkaAdminClient(**client(bootstrap), client_id="stream-neuron-tests")
    try:
        admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, name, configs)])
    finally:
        admin.close()


def delete_topic(bootstrap: str, name: str) -> None:
    admin = KafkaAdminClient(**client(bootstrap), client_id="stream-neuron-tests")
    try:
        admin.delete_topics([name])
    finally:
        admin.close()


def kcat_produce(bootstrap: str, topic: str, lines: list[str], *options: str) -> None:
    """Produce one record per line with kcat (librdkafka: a client we did not write); ``options`` such
    as ``-z snappy`` or ``-H key=value`` apply to every record."""
    import shutil
    import subprocess

    kcat = shutil.which("kcat") or shutil.which("kafkacat")
    assert kcat is not None, "kcat is not installed: deploy/install-system-deps installs it"
    subprocess.run(
        [kcat, "-b", bootstrap, "-t", topic, "-P", *options],
        input="".join(line + "\n" for line in lines).encode(),
        check=True,
        timeout=120,
    )
