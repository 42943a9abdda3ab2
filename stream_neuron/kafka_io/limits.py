"""Sizes, timeouts and backoffs of the Kafka clients, in one place (the reasons beside each)."""

from __future__ import annotations

# Dead letters carry the original value, so their topic must take whatever the input topic took.
DEAD_LETTER_MAX_BYTES = 16 * 1024 * 1024
# A snapshot holds a few numbers a feature: this takes models of hundreds of thousands of features.
MODEL_TOPIC_MAX_BYTES = 16 * 1024 * 1024
# A producer request must hold the largest record any output topic accepts, plus its framing.
MAX_REQUEST_BYTES = max(DEAD_LETTER_MAX_BYTES, MODEL_TOPIC_MAX_BYTES) + 1024 * 1024

# Outputs are sent per poll batch; a short linger lets one request carry a whole batch.
PRODUCER_LINGER_MS = 5
PRODUCER_BATCH_BYTES = 256 * 1024

# Large fetches: the consumer hands a poll's records over in one piece.
FETCH_MAX_BYTES = 64 * 1024 * 1024
MAX_PARTITION_FETCH_BYTES = 16 * 1024 * 1024
# librdkafka stops fetching a partition once its local queue holds queued.min.messages (100,000) or
# queued.max.messages.kbytes (64 MiB), and only looks again after fetch.queue.backoff.ms (1 s by
# default). A trainer drains that queue in well under a second and then sits idle in consume() for
# the rest of it: a stall of up to a second every 64 MiB of a backlog (two of about 150 ms in 100,000
# hashed events of 900 bytes, a quarter of that run's time). With a short backoff, fetching resumes
# once the queue has room; the cost is a timer every few milliseconds while the queue is full.
FETCH_QUEUE_BACKOFF_MS = 10

# kafka-python backs reconnects off exponentially up to 30 s; the Java client stops at 1 s. With 30 s,
# a consumer that lost the broker for a few seconds may sit idle for half a minute after it is back
# (and a bounded run could mistake that for the end of its input), so the clients that stay open for
# the whole run use Java's ceiling.
RECONNECT_BACKOFF_MAX_MS = 1_000

ADMIN_REQUEST_TIMEOUT_MS = 15_000
# The broker aborts a transaction left open this long (a crashed instance's, say).
TRANSACTION_TIMEOUT_MS = 60_000
# How long a new input topic may take to show its partitions in the metadata.
INPUT_METADATA_WAIT_S = 30.0
# A request for offsets (ends of partitions, say) waits this long for the broker.
OFFSETS_TIMEOUT_MS = 10_000
# A scorer replica that dies hands its partitions on after this long without a heartbeat.
SESSION_TIMEOUT_MS = 10_000
# ``produce``: larger batches and a longer linger than the outputs, for throughput.
STREAM_WRITER_LINGER_MS = 10
STREAM_WRITER_BATCH_BYTES = 256 * 1024
# Partitions added to the input while running are looked for this often (the consumers' cached
# metadata refreshes as often): a new partition is read within two of these.
PARTITION_CHECK_S = 5.0
