"""How every Kafka client of every command reaches the cluster: the address, TLS and SASL for a secured
cluster, and which client library serves it (each backend turns this into its library's settings)."""

from __future__ import annotations

from dataclasses import dataclass, field


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
    client: str = "confluent"  # the backend: "confluent" (librdkafka) or "kafka-python"

    @property
    def tls(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    @property
    def sasl(self) -> bool:
        return self.security_protocol in ("SASL_PLAINTEXT", "SASL_SSL")
