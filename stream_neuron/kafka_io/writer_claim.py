"""One model, one writer, for at-least-once runs (exactly-once has its producer fencing).

Two at-least-once instances with the same model name would both publish: predictions doubled,
snapshots interleaved. So each instance, at start, writes a claim on the model topic (key
``<model name>#writer``, beside the snapshots, which readers pick by the plain model name) and, at
every checkpoint before its snapshot (and every :data:`CHECK_INTERVAL_S` while idle), looks for a
claim written after its own. When it finds one it stops with status 3 without publishing that
snapshot: the newer instance wins, as with fencing. Detection takes a second or two.

Cost: one small record per start, and a consumer of the model topic polled without waiting at each
checkpoint (on ``--kafka-client confluent`` it fetches in librdkafka's threads, outside the GIL).
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from datetime import UTC, datetime
from typing import Any

from stream_neuron.kafka_io.connection import Connection
from stream_neuron.kafka_io.errors import StartupError, TakenOverError
from stream_neuron.kafka_io.record_writer import WriteError, write_records
from stream_neuron.kafka_io.topic_tail import open_tail

CHECK_INTERVAL_S = 1.0


def claim_key(model_name: str) -> bytes:
    return f"{model_name}#writer".encode()


class WriterClaim:
    """This instance's claim to write ``model_name``, and the watch for a newer one."""

    def __init__(self, connection: Connection, model_topic: str, model_name: str) -> None:
        self.model_name = model_name
        self.key = claim_key(model_name)
        self.instance = uuid.uuid4().hex
        self._tail = open_tail(connection, model_topic, f"{model_name}-writer-watch")
        if not self._tail.partitions:
            self._tail.close()
            raise StartupError(f"model topic {model_topic!r} has no partitions")
        self._tail.start_from_end()  # the watch starts before the claim is written
        claim = {
            "model": model_name,
            "instance": self.instance,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "since": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        }
        try:
            [placed] = write_records(
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
        """:class:`TakenOverError` when another instance claimed the model after this one did."""
        for record in self._tail.poll(0):
            if record.key != self.key or record.value is None:
                continue
            claim = _claim(record.value)
            later = record.partition != self.claimed_at[0] or record.offset > self.claimed_at[1]
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
