"""A producer must not spin a core while the broker is away.

Upstream behaviour it corrects: kafka-python 3.0 (up to at least 3.0.12), ``kafka/cluster.py``,
``ClusterMetadata.request_update``, wakes the client's network selector every time it is called
(``WakeupNotifier.notify`` -> ``call_soon_threadsafe``). The producer's I/O thread calls it on every
turn of its loop while a partition's leader is unknown (``Sender._send_producer_data``), and the
wake-up ends that same loop's wait at once: during a broker outage the thread turns as fast as it can,
a whole core (seen: 73 CPU seconds in a 75 s outage). The Java client flags the update without waking
its I/O thread for a request already pending.

:func:`install` wraps ``request_update``: while an update is already requested and its future is not
done (the refresh loop was woken for it, and retries on its own backoff), a further request returns
that future without waking anyone. The first request of each refresh attempt (a failed refresh clears
the future) still wakes the refresh loop, so metadata is asked for exactly as often as before.

Cost: none on a healthy run (an update is rarely pending). It is installed wherever this backend makes
a client (``config.py``), after checking that ``request_update`` takes the parameters it was written
against and that the metadata keeps its pending flag and future where the fix reads them.
"""

from __future__ import annotations

from typing import Any

from kafka.cluster import ClusterMetadata

from stream_neuron.kafka_io.kafka_python.patching import check_patchable, check_source

_MARK = "_stream_neuron_metadata_fix"
_EXPECTED_PARAMETERS = ["self"]


def install() -> None:
    """Idempotent; wraps ``ClusterMetadata.request_update`` (see the module docstring)."""
    original = ClusterMetadata.request_update
    if getattr(original, _MARK, False):
        return
    check_patchable(original, _EXPECTED_PARAMETERS, "the outage spin fix")
    check_source(
        original,
        ["self._need_update = True", "self._future"],
        "the outage spin fix",
        "ClusterMetadata no longer keeps _need_update/_future",
    )

    def request_update(self: ClusterMetadata) -> Any:
        pending = self._future
        if self._need_update and pending is not None and not pending.is_done:
            return pending
        return original(self)

    setattr(request_update, _MARK, True)
    ClusterMetadata.request_update = request_update
