"""How every Kafka client of every command reaches the cluster: one value, one place that builds the
client configuration from it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Connection:
    """The cluster's address (and, with it, everything a client needs to connect)."""

    bootstrap_servers: str

    def client_config(self, client_id: str) -> dict[str, Any]:
        """The kafka-python configuration shared by its consumers, producers and admin clients."""
        return {"bootstrap_servers": self.bootstrap_servers, "client_id": client_id}
