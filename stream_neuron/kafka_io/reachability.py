"""A fast, clear answer to "is there a broker at all?" before kafka-python's 30 s bootstrap timeout."""

from __future__ import annotations

import socket
import time

from stream_neuron.kafka_io.errors import StartupError


def require_broker(bootstrap_servers: str, wait_s: float = 10.0) -> None:
    """Return once any bootstrap server accepts a TCP connection; else :class:`StartupError`."""
    servers = [s.strip() for s in bootstrap_servers.split(",") if s.strip()]
    if not servers:
        raise StartupError("--bootstrap-servers is empty")
    deadline = time.monotonic() + wait_s
    while True:
        for server in servers:
            host, _, port = server.rpartition(":")
            try:
                with socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout=2.0):
                    return
            except (OSError, ValueError):
                continue
        if time.monotonic() >= deadline:
            raise StartupError(
                f"no Kafka broker answers at {bootstrap_servers}: start one (deploy/local-kafka start, or "
                "docker compose up kafka) or fix --bootstrap-servers"
            )
        time.sleep(0.5)
