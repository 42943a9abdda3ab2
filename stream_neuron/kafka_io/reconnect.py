"""How fast the component's long-lived clients reconnect after the broker was away.

kafka-python backs reconnects off exponentially up to 30 s; the Java client stops at 1 s. With 30 s,
a consumer that lost the broker for a few seconds may sit idle for half a minute after it is back
(and a bounded run could mistake that for the end of its input), so the clients that stay open for
the whole run use Java's ceiling.
"""

RECONNECT_BACKOFF_MAX_MS = 1_000
