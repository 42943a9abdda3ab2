"""A call that may wait on the broker for longer than its own timeout says, given up on in time.

Both clients have transaction calls that were seen waiting for good: kafka-python's take no timeout at
all, and librdkafka's ``send_offsets_to_transaction`` ignored its own after a broker restart (the group
coordinator had moved). Each such call runs in a helper thread and is abandoned after ``timeout_s``;
the caller then aborts and replaces the producer, whose successor's ``init`` aborts whatever is left.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

from stream_neuron.kafka_io.errors import TimedOutError

T = TypeVar("T")


def guarded(call: Callable[[], T], timeout_s: float, what: str) -> T:
    """``call()``, or :class:`TimedOutError` once ``timeout_s`` passes (the call goes on in its
    thread, which is a daemon)."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = call()
        except BaseException as error:  # re-raised in the caller's thread
            outcome["error"] = error

    worker = threading.Thread(target=target, name=f"guard-{what}", daemon=True)
    worker.start()
    worker.join(timeout_s)
    if worker.is_alive():
        raise TimedOutError(f"{what} did not finish within {timeout_s:.0f} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")  # type: ignore[return-value]
