"""Reading confluent-kafka's admin futures without keeping their client for the garbage collector.

confluent-kafka settles an admin future on the client's own librdkafka background thread, running
Python code there. ``future.result()`` raises the exception the future keeps, and raising gives that
exception a traceback through the waiting frame, which holds the future and, by way of its locals, the
admin client: a reference cycle, freed only by the garbage collector on whichever thread it happens to
run. Run on that client's background thread (still in its callback after it woke the waiter), the
collection destroys the client there, and librdkafka aborts the whole process ("rd_kafka_destroy()
called from librdkafka owned thread"; seen in CI as a SIGABRT while a broker was away).

:func:`outcome` reads the future without raising, so no cycle is made and a client goes with its last
reference, on the thread that drops it. The cost: callers test the error instead of catching it.
"""

from __future__ import annotations

from typing import Any


def outcome(future: Any, timeout_s: float | None = None) -> tuple[Any, BaseException | None]:
    """``(result, None)``, or ``(None, error)`` when the request failed; ``error`` is the future's
    ``KafkaException`` (or other exception), never raised here. ``TimeoutError`` after ``timeout_s``."""
    error = future.exception(timeout_s)
    if error is not None:
        return None, error
    return future.result(), None
