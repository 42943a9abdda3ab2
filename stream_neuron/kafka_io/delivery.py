"""The at-least-once output: records sent as they come, a flush that waits for every acknowledgement,
whatever the broker does meanwhile.

Delivery: at least once. Every record handed over is acknowledged (``acks=all``) before :meth:`flush`
returns, or :meth:`flush` raises and nothing it covers is committed. A record that fails for a reason
that may pass (a broker away, a batch that expired while the process was paused) is sent again, so a
record may be written twice, which at least once allows; every output carries what it answers. The
producers are not idempotent: kafka-python 3.0 turns an idempotent producer unusable for good after one
record the broker refuses, and idempotence would only spare those repeats.

A record the broker refuses for what it is (too large, invalid) is handed back as :class:`Refused`, so
the caller can replace it (a dead letter of its input). While the broker does not acknowledge,
``check()`` is asked between waits and raises :class:`PublishError` when an output topic is gone for
good (deleted); ``stopping()`` ends the wait.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

from stream_neuron.kafka_io.errors import PublishError, Refused
from stream_neuron.kafka_io.ports import OutputSender
from stream_neuron.records import OutputRecord

log = logging.getLogger(__name__)

SETTLE_WAIT_S = 5.0  # how long one wait for acknowledgements lasts before the topics are checked
RETRY_WAIT_S = 1.0  # between sending again what failed and the next wait


class AtLeastOnceOutput:
    def __init__(
        self,
        sender: OutputSender,
        check: Callable[[], None] = lambda: None,
        stopping: Callable[[], bool] = lambda: False,
    ) -> None:
        self.sender = sender
        self.check = check
        self.stopping = stopping

    def send(self, records: Iterable[OutputRecord]) -> None:
        self.sender.send(records)

    def flush(self) -> list[Refused]:
        """Wait for every record sent so far. Returns the records refused for what they are;
        :class:`PublishError` if any failed for good (nothing it covers may be committed)."""
        refused: list[Refused] = []
        waited_since: float | None = None
        while True:
            settled = self.sender.settle(SETTLE_WAIT_S)
            again: list[OutputRecord] = []
            if settled is not None:
                refused += settled.refused
                again = settled.retry
                if not again:
                    if waited_since is not None:
                        log.warning(
                            "the outputs were acknowledged after %.0f s", time.monotonic() - waited_since
                        )
                    return refused
            if waited_since is None:
                waited_since = time.monotonic()
                log.warning(
                    "the broker is not acknowledging the outputs: waiting (a checkpoint waits for them)"
                )
            self.check()
            if self.stopping():
                raise PublishError(
                    "stopped while the broker was not acknowledging the outputs since the last checkpoint"
                )
            if again:
                time.sleep(RETRY_WAIT_S)
                self.sender.send(again)

    def acknowledged(self) -> bool:
        """Whether every record sent so far has come back (acknowledged or failed), asked without
        waiting: a :meth:`flush` now returns at once, unless it sends a failed record again."""
        return self.sender.unsettled() == 0

    def close(self, timeout_s: float = 10.0) -> None:
        self.sender.close(timeout_s)
