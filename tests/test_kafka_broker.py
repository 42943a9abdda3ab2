"""The real broker itself: plain produce/consume and the transactional guarantees we build on."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import pytest
from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient

from tests.kafka_helpers import create_topic, delete_topics_named, read_to_end, unique_name

pytestmark = pytest.mark.kafka


def test_produce_then_consume(kafka_bootstrap: str, new_topic: Callable[..., str], group_id: str) -> None:
    topic = new_topic("smoke")
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    for i in range(10):
        producer.send(topic, key=f"k{i}".encode(), value=f"v{i}".encode(), headers=[("h", b"x")])
    producer.flush()
    producer.close()
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        group_id=group_id,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=10000,
    )
    got = []
    for record in consumer:
        got.append((record.key, record.value, record.headers))
        if len(got) == 10:
            break
    consumer.commit()
    consumer.close()
    assert got == [(f"k{i}".encode(), f"v{i}".encode(), [("h", b"x")]) for i in range(10)]


def test_read_committed_sees_committed_never_aborted(
    kafka_bootstrap: str, new_topic: Callable[..., str]
) -> None:
    topic = new_topic("txn")
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, transactional_id=unique_name("txn"))
    producer.init_transactions()
    producer.begin_transaction()
    producer.send(topic, b"committed-1")
    producer.send(topic, b"committed-2")
    producer.commit_transaction()
    producer.begin_transaction()
    producer.send(topic, b"aborted")
    producer.flush()
    producer.abort_transaction()
    producer.begin_transaction()
    producer.send(topic, b"committed-3")
    producer.commit_transaction()
    producer.close()

    committed = [r.value for r in read_to_end(kafka_bootstrap, topic, "read_committed")]
    assert committed == [b"committed-1", b"committed-2", b"committed-3"]
    everything = [r.value for r in read_to_end(kafka_bootstrap, topic, "read_uncommitted")]
    assert b"aborted" in everything


def test_offsets_sent_to_a_transaction_commit_with_it(
    kafka_bootstrap: str, new_topic: Callable[..., str], group_id: str
) -> None:
    source, sink = new_topic("src"), new_topic("sink")
    plain = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    for i in range(4):
        plain.send(source, str(i).encode())
    plain.flush()
    plain.close()
    consumer = KafkaConsumer(
        source,
        bootstrap_servers=kafka_bootstrap,
        group_id=group_id,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        isolation_level="read_committed",
    )
    records = []
    while len(records) < 4:
        for batch in consumer.poll(timeout_ms=1000).values():
            records.extend(batch)
    from kafka import OffsetAndMetadata, TopicPartition

    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, transactional_id=unique_name("txn"))
    producer.init_transactions()
    producer.begin_transaction()
    for record in records:
        producer.send(sink, record.value)
    tp = TopicPartition(source, 0)
    producer.send_offsets_to_transaction({tp: OffsetAndMetadata(4, "", -1)}, consumer.group_metadata())
    producer.commit_transaction()
    producer.close()
    assert consumer.committed(tp) == 4
    consumer.close(autocommit=False)
    assert [r.value for r in read_to_end(kafka_bootstrap, sink)] == [b"0", b"1", b"2", b"3"]


def test_compacted_topic_helper(kafka_bootstrap: str, new_topic: Callable[..., str]) -> None:
    topic = new_topic("model", compacted=True)
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        described = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
        text = repr(described)
    finally:
        admin.close()
    assert "cleanup.policy" in text and "compact" in text


def test_the_session_deletes_the_topics_named_after_its_names(kafka_bootstrap: str) -> None:
    made = unique_name("doomed")
    derived = create_topic(kafka_bootstrap, create_topic(kafka_bootstrap, made) + "-pred")
    kept = create_topic(kafka_bootstrap, f"kept-{uuid.uuid4().hex[:12]}")  # not a name of ours
    assert delete_topics_named(kafka_bootstrap, {made.rsplit("-", 1)[1]}) == 2
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        for _ in range(100):  # deletion reaches the metadata a moment after the reply
            left = set(admin.list_topics()) & {made, derived, kept}
            if left == {kept}:
                break
            time.sleep(0.1)
        assert left == {kept}
        admin.delete_topics([kept])
    finally:
        admin.close()
