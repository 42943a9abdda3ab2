"""How every Kafka client of every command reaches the cluster: one value, one place that builds the
client configuration from it (the address, and TLS and SASL for a secured cluster)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Connection:
    """The cluster's address and credentials. The password is never shown (``repr``), logged or
    written anywhere: it lives here, read from a file or an environment variable at start-up."""

    bootstrap_servers: str
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_check_hostname: bool = True
    client: str = "kafka-python"  # or "confluent" (librdkafka)

    @property
    def tls(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    @property
    def sasl(self) -> bool:
        return self.security_protocol in ("SASL_PLAINTEXT", "SASL_SSL")

    def client_config(self, client_id: str) -> dict[str, Any]:
        """The kafka-python configuration shared by its consumers, producers and admin clients."""
        config: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers,
            "client_id": client_id,
            "security_protocol": self.security_protocol,
        }
        if self.tls:
            config.update(
                ssl_cafile=self.ssl_cafile,
                ssl_certfile=self.ssl_certfile,
                ssl_keyfile=self.ssl_keyfile,
                ssl_check_hostname=self.ssl_check_hostname,
            )
        if self.sasl:
            config.update(
                sasl_mechanism=self.sasl_mechanism,
                sasl_plain_username=self.sasl_username,
                sasl_plain_password=self.sasl_password,
            )
        return config

    def rdkafka_config(self, client_id: str) -> dict[str, Any]:
        """The same, in librdkafka's names (confluent-kafka's clients)."""
        config: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap_servers,
            "client.id": client_id,
            "security.protocol": self.security_protocol.lower(),
            # librdkafka's own lines go to a ``kafka`` logger, digested as kafka-python's are
            "logger": logging.getLogger("kafka.rdkafka"),
        }
        if self.tls:
            config["ssl.endpoint.identification.algorithm"] = "https" if self.ssl_check_hostname else "none"
            for key, value in (
                ("ssl.ca.location", self.ssl_cafile),
                ("ssl.certificate.location", self.ssl_certfile),
                ("ssl.key.location", self.ssl_keyfile),
            ):
                if value is not None:
                    config[key] = value
        if self.sasl:
            config.update(
                {
                    "sasl.mechanisms": self.sasl_mechanism,
                    "sasl.username": self.sasl_username,
                    "sasl.password": self.sasl_password,
                }
            )
        return config
