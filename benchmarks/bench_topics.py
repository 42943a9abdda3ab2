"""Names for a benchmark's topics, and their deletion when the benchmark ends.

Every name carries this run's id (inherited by the processes a benchmark starts, through the
environment), so the run deletes its own topics and no one else's: a benchmark writes 100,000-event
topics and model topics of tens of megabytes, and without this the broker's data folder grows by
gigabytes a day of benchmarking, all of which a broker recovers before it listens after a kill.
"""

from __future__ import annotations

import atexit
import os
import uuid

from kafka.admin import KafkaAdminClient

# Not a STREAM_NEURON_* variable: the command refuses those that are no setting of it.
RUN_VARIABLE = "BENCH_RUN"
RUN = os.environ.setdefault(RUN_VARIABLE, uuid.uuid4().hex[:6])


def unique(prefix: str) -> str:
    """``<prefix>-<run id><6 hex>``: unique, and findable as this run's."""
    return f"{prefix}-{RUN}{uuid.uuid4().hex[:6]}"


def delete_run_topics(bootstrap: str) -> int:
    """Deletes every topic named by :func:`unique` in this run; returns how many."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="stream-neuron-bench")
    try:
        doomed = sorted(t for t in admin.list_topics() if f"-{RUN}" in t)
        for start in range(0, len(doomed), 200):
            admin.delete_topics(doomed[start : start + 200], timeout_ms=60_000, raise_errors=False)
    finally:
        admin.close()
    return len(doomed)


def delete_at_exit(bootstrap: str) -> None:
    """Deletes this run's topics when the process that started the run exits (``KEEP_BENCH_TOPICS=1``
    keeps them, to read them after)."""
    if os.environ.get("KEEP_BENCH_TOPICS") != "1":
        atexit.register(delete_run_topics, bootstrap)
