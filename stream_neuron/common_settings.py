"""What every command's settings share: the config file (``--config``: a TOML file one or all commands
read, each taking the keys it knows) and how to reach the cluster (TLS, SASL, the Kafka client)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from stream_neuron.errors import OperatorError
from stream_neuron.kafka_io.connection import Connection


class CommonSettings(BaseSettings):
    """What every command shares: the config file and how to reach the cluster.

    The SASL password is never a setting (a flag shows in ``ps``, a config file holds it in clear): it
    is read from ``--sasl-password-file`` (a Docker or Kubernetes secret) or else from the environment
    variable ``--sasl-password-env`` names."""

    model_config = SettingsConfigDict(env_prefix="STREAM_NEURON_", frozen=True, extra="forbid")

    config: Path | None = Field(None, description="TOML file with any of these settings")
    bootstrap_servers: str = "127.0.0.1:9092"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        None, description="SASL mechanism (with SASL_PLAINTEXT or SASL_SSL)"
    )
    sasl_username: str | None = None
    sasl_password_file: Path | None = Field(None, description="a file holding the SASL password")
    sasl_password_env: str = Field(
        "STREAM_NEURON_SASL_PASSWORD", description="the environment variable holding the SASL password"
    )
    ssl_cafile: Path | None = Field(None, description="CA certificates to trust (PEM)")
    ssl_certfile: Path | None = Field(None, description="client certificate for mutual TLS (PEM)")
    ssl_keyfile: Path | None = Field(None, description="the client certificate's private key (PEM)")
    ssl_check_hostname: bool = Field(True, description="check the broker's name against its certificate")
    kafka_client: Literal["confluent", "kafka-python"] = Field(
        "confluent",
        description="the Kafka client: confluent (librdkafka: faster, and the one every peer uses) or "
        "kafka-python (pure Python)",
    )

    @field_validator("sasl_password_file", "ssl_cafile", "ssl_certfile", "ssl_keyfile", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return None if value == "" else value

    @model_validator(mode="after")
    def _security_is_complete(self) -> CommonSettings:
        if self.security_protocol.startswith("SASL") and (
            self.sasl_mechanism is None or not self.sasl_username
        ):
            raise ValueError(f"{self.security_protocol} needs --sasl-mechanism and --sasl-username")
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            raise ValueError("mutual TLS needs both --ssl-certfile and --ssl-keyfile")
        return self

    @property
    def connection(self) -> Connection:
        """How to reach the cluster, with the password read now (:class:`OperatorError` when it
        cannot be, or when a TLS file is missing)."""
        for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            path = getattr(self, name)
            if path is not None and self.security_protocol in ("SSL", "SASL_SSL") and not path.is_file():
                raise OperatorError(f"--{name.replace('_', '-')} {path} does not exist")

        def text(path: Path | None) -> str | None:
            return None if path is None else str(path)

        return Connection(
            bootstrap_servers=self.bootstrap_servers,
            security_protocol=self.security_protocol,
            sasl_mechanism=self.sasl_mechanism,
            sasl_username=self.sasl_username,
            sasl_password=self._password(),
            ssl_cafile=text(self.ssl_cafile),
            ssl_certfile=text(self.ssl_certfile),
            ssl_keyfile=text(self.ssl_keyfile),
            ssl_check_hostname=self.ssl_check_hostname,
            client=self.kafka_client,
        )

    def _password(self) -> str | None:
        if not self.security_protocol.startswith("SASL"):
            return None
        if self.sasl_password_file is not None:
            try:
                return self.sasl_password_file.read_text(encoding="utf-8").rstrip("\r\n")
            except OSError as error:
                raise OperatorError(
                    f"cannot read the SASL password file {self.sasl_password_file}: {error.strerror}"
                ) from None
        password = os.environ.get(self.sasl_password_env)
        if password is None:
            raise OperatorError(
                f"{self.security_protocol} needs a password: give --sasl-password-file, or set "
                f"{self.sasl_password_env}"
            )
        return password

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        config_file = _config_file(init_settings, env_settings)
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if config_file is not None:
            if not config_file.is_file():
                raise ValueError(f"config file {config_file} does not exist")
            sources.append(_SharedTomlSource(settings_cls, config_file))
        return tuple(sources)


class _SharedTomlSource(TomlConfigSettingsSource):
    """A config file shared by the commands: this command's keys; the others are other commands'. (A
    key that no command knows is refused by the command line, which knows every command:
    ``command_config.check_sources``.)"""

    def __init__(self, settings_cls: type[BaseSettings], path: Path) -> None:
        super().__init__(settings_cls, toml_file=path)
        own = set(settings_cls.model_fields)
        self.toml_data = {k: v for k, v in self.toml_data.items() if k in own}
        self.init_kwargs = self.toml_data


def _config_file(*sources: PydanticBaseSettingsSource) -> Path | None:
    for source in sources:
        value = source().get("config")
        if value:
            return Path(value)
    return None
