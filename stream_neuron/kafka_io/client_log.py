"""kafka-python's own log lines, digested: one warning when its errors start, a count when they stop.

While the broker is away kafka-python logs every failed connection attempt and request, about ten
ERROR lines a second, which buries the component's own lines. :func:`install` routes the ``kafka``
loggers through :class:`ClientErrorDigest`: the first warning or error of an episode is shown (as one
line of ours), the rest are counted, and :func:`recovered` (called once the component is working again)
says how many there were and for how long. After a broker restart the clients reconnect one by one:
errors in the :data:`SETTLE_S` seconds after a recovery belong to the same outage and are counted at
debug level, not shown as a new one (seen: a second and a third "episode" of one restart, each a
metadata refresh finding no node yet).
"""

from __future__ import annotations

import logging
import time

log = logging.getLogger("stream_neuron.kafka")
SETTLE_S = 15.0


class ClientErrorDigest(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0
        self.since = 0.0
        self.recovered_at = float("-inf")

    def emit(self, record: logging.LogRecord) -> None:
        if self.count == 0 and time.monotonic() - self.recovered_at < SETTLE_S:
            log.debug("Kafka client, reconnecting after the outage: %s", record.getMessage())
            return
        self.count += 1
        if self.count == 1:
            self.since = time.monotonic()
            log.warning(
                "Kafka client: %s (until it recovers, further client errors are counted, not shown)",
                record.getMessage(),
            )

    def recovered(self) -> None:
        if self.count:
            log.warning(
                "Kafka client recovered after %.0f s (%d client errors not shown)",
                time.monotonic() - self.since,
                self.count - 1,
            )
            self.count = 0
            self.recovered_at = time.monotonic()


_digest = ClientErrorDigest()


def install() -> None:
    """Idempotent; the ``kafka`` loggers no longer print on their own."""
    kafka_log = logging.getLogger("kafka")
    kafka_log.setLevel(logging.WARNING)
    kafka_log.propagate = False
    if _digest not in kafka_log.handlers:
        kafka_log.addHandler(_digest)


def recovered() -> None:
    """The component got through to the broker again: report the episode, if there was one."""
    _digest.recovered()
