"""One model, one writer: the claim an instance writes on the model topic when it starts.

Two instances with the same model name would both publish: predictions doubled, snapshots
interleaved. So each instance, at start, writes a claim on the model topic (key ``<model name>#writer``,
beside the snapshots, which readers pick by the plain model name) and watches for a claim written
after its own; the newer instance wins.

- At least once: the watch is looked at every checkpoint, before the snapshot (and every
  :data:`CHECK_INTERVAL_S` while idle); a newer claim stops this instance with status 3 without
  publishing that snapshot. Detection takes a second or two.
- Exactly once: producer fencing stops the writes; the claim says whose they were. A newer epoch of the
  transactional id comes either from a new instance (which writes its claim before it initialises its
  producer) or from the broker aborting a transaction that ran too long; :meth:`check_to_end` tells the
  two apart after a fencing.

Cost: one small record per start, and a consumer of the model topic polled without waiting at each
checkpoint (on librdkafka it fetches in the client's own threads, outside the GIL).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from stream_neuron.kafka_io.backends import backend
from stream_neuron.kafka_io.connection import Connection
from stream_neuron.kafka_io.errors import (
    KafkaIOError,
    StartupError,
    TakenOverError,
    TimedOutError,
    WriteError,
)
from stream_neuron.kafka_io.ports import TopicTail

CHECK_INTERVAL_S = 1.0
FETCH_WAIT_MS = 500
READ_TO_END_S = 30.0


def claim_key(model_name: str) -> bytes:
    return f"{model_name}#writer".encode()


class WriterClaim:
    """This instance's claim to write ``model_name``, and the watch for a newer one."""

    def __init__(self, connection: Connection, model_topic: str, model_name: str) -> None:
        self.model_name, self.model_topic = model_name, model_topic
        self.key = claim_key(model_name)
        self.instance = uuid.uuid4().hex
        self._connection = connection
        kafka = backend(connection)
        self._tail = self._new_tail()
        if not self._tail.partitions:
            self._tail.close()
            raise StartupError(f"model topic {model_topic!r} has no partitions")
        try:  # the watch starts before the claim is written
            self._next = self._tail.end_offsets()  # per partition, the next offset to look at
        except KafkaIOError:
            self._tail.close()
            raise
        self._tail.start_at(dict(self._next))
        claim = {
            "model": model_name,
            "instance": self.instance,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "since": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        }
        try:
            [placed] = kafka.write_records(
                connection,
                f"{model_name}-writer-claim",
                [(model_topic, self.key, json.dumps(claim).encode())],
                30,
            )
        except WriteError as error:
            self._tail.close()
            raise StartupError(
                f"cannot write the writer claim of {model_name!r} to {model_topic!r}: {error}"
            ) from None
        self.claimed_at = placed
        self._next_check = 0.0

    def check_due(self, now: float) -> None:
        """:meth:`check`, at most every :data:`CHECK_INTERVAL_S` (the loop calls it at every turn)."""
        if now >= self._next_check:
            self._next_check = now + CHECK_INTERVAL_S
            self.check()

    def check(self) -> None:
        """:class:`TakenOverError` when a claim written after this one by another instance has arrived."""
        for record in self._tail.poll(0):
            self._look_at(record.partition, record.offset, record.key, record.value)

    def check_to_end(self) -> None:
        """:meth:`check` over everything the model topic holds now (a neutral error when the broker
        does not answer within :data:`READ_TO_END_S`).

        After a failure the watch's consumer is replaced by a new one, from where it had read, for the
        next call: after a broker restart, librdkafka's consumer was seen answering every read of the
        model topic's offsets with ``_UNKNOWN_PARTITION`` for ten minutes, and the fenced run, which
        must read the claims before it goes on, retried all that time. A new consumer costs one
        connection and a metadata request, once per failed recovery attempt."""
        try:
            self._read_to_end()
        except TakenOverError:
            raise
        except KafkaIOError:
            self._replace_tail()
            raise

    def _read_to_end(self) -> None:
        ends = self._tail.end_offsets()
        deadline = time.monotonic() + READ_TO_END_S
        while not self._tail.reached(ends):
            if time.monotonic() > deadline:
                raise TimedOutError(f"timed out reading the writer claims on {self.model_topic!r}")
            for record in self._tail.poll(FETCH_WAIT_MS):
                self._look_at(record.partition, record.offset, record.key, record.value)

    def _new_tail(self) -> TopicTail:
        return backend(self._connection).tail(
            self._connection, self.model_topic, f"{self.model_name}-writer-watch", FETCH_WAIT_MS
        )

    def _replace_tail(self) -> None:
        """A new consumer of the watch, at the offsets looked at so far (the old one is kept when no
        new one can be made: the broker is away; the next failure tries again)."""
        try:
            tail = self._new_tail()
        except KafkaIOError:
            return
        tail.start_at(dict(self._next))
        old, self._tail = self._tail, tail
        with contextlib.suppress(KafkaIOError):  # one that lost its broker may not close cleanly
            old.close()

    def _look_at(self, partition: int, offset: int, key: bytes | None, value: bytes | None) -> None:
        self._next[partition] = offset + 1
        if key != self.key or value is None:
            return
        claim = _claim(value)
        later = partition != self.claimed_at[0] or offset > self.claimed_at[1]
        if later and claim.get("instance") != self.instance:
            raise TakenOverError(
                f"another instance took over model {self.model_name!r} (host {claim.get('host')}, "
                f"pid {claim.get('pid')}, since {claim.get('since')}): this one stops without "
                "publishing its last snapshot; one model is written by one instance"
            )

    def close(self) -> None:
        self._tail.close()


def _claim(value: bytes) -> dict[str, Any]:
    try:
        claim = json.loads(value)
    except ValueError:
        return {}
    return claim if isinstance(claim, dict) else {}
