"""The collector's settings: one frozen class, every field an environment variable."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from pydantic import Field, ValidationInfo, field_validator

from blocwatch import __version__
from blocwatch.core.settings import ServiceSettings

__all__ = ["DEFAULT_FEEDS_FILE", "CollectorSettings", "IpNetwork"]

DEFAULT_FEEDS_FILE = Path(__file__).with_name("feeds.yaml")

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class CollectorSettings(ServiceSettings):
    """`blocwatch collect` and `blocwatch ingest`."""

    collector_feeds_file: Path | None = Field(
        default=None,
        description="YAML feeds file (default: the feeds.yaml shipped in the package).",
    )
    collector_data_dir: Path = Field(
        default=Path(".blocwatch/collector"),
        description="Directory for the seen-set and HTTP validators (SQLite).",
    )
    collector_metrics_port: int = Field(
        default=9401, ge=0, le=65535, description="Port of the collector's /metrics and /healthz."
    )
    collector_allow_private_addresses: bool = Field(
        default=False,
        description="Allow feeds on private, loopback and link-local addresses (local testing).",
    )
    collector_allowed_cidrs: str = Field(
        default="",
        description="Comma-separated CIDRs fetched even though private, e.g. `10.1.0.0/16`.",
    )
    collector_connect_timeout_s: float = Field(
        default=10.0, gt=0, description="Seconds to connect to a feed server."
    )
    collector_read_timeout_s: float = Field(
        default=20.0, gt=0, description="Seconds without a byte from the server before giving up."
    )
    collector_total_timeout_s: float = Field(
        default=60.0, gt=0, description="Upper bound on one fetch, redirects included."
    )
    collector_max_body_bytes: int = Field(
        default=10 * 1024 * 1024, ge=1024, description="Feed bodies larger than this are aborted."
    )
    collector_max_redirects: int = Field(
        default=5, ge=0, description="Redirects followed per fetch (each one re-checked)."
    )
    collector_per_host_concurrency: int = Field(
        default=4, ge=1, description="Concurrent requests to one host."
    )
    collector_concurrency: int = Field(
        default=100, ge=1, description="Concurrent fetches in one collector process."
    )
    collector_user_agent: str = Field(
        default=f"blocwatch/{__version__} (+https://github.com/blocwatch/blocwatch)",
        description="User-Agent sent to feed servers.",
    )
    collector_default_poll_interval_s: float = Field(
        default=300.0, gt=0, description="Poll interval of feeds that do not set one."
    )
    collector_max_backoff_s: float = Field(
        default=3600.0, gt=0, description="Longest wait before retrying a failing feed."
    )
    collector_buffer_size: int = Field(
        default=10_000, ge=1, description="Items waiting for the broker before polls stop adding."
    )
    collector_publish_timeout_s: float = Field(
        default=30.0, gt=0, description="Seconds to wait for a broker ack before retrying."
    )
    collector_seen_ttl_s: float = Field(
        default=30 * 24 * 3600.0, gt=0, description="How long a published item id is remembered."
    )
    collector_seen_max: int = Field(
        default=1_000_000, ge=1000, description="Most item ids remembered (oldest forgotten first)."
    )
    collector_clock_skew_s: float = Field(
        default=300.0, ge=0, description="Published times further in the future are not trusted."
    )
    collector_create_topics: bool = Field(
        default=True, description="Create `news.raw` when it is missing (e.g. after a restart)."
    )

    collector_shard_count: int = Field(
        default=1, ge=1, description="Replicas sharing the feeds file (each polls its share)."
    )
    collector_shard_index: int = Field(
        default=0, ge=0, description="This replica's shard, 0 … shard count − 1."
    )

    @field_validator("collector_shard_index")
    @classmethod
    def _shard_in_range(cls, value: int, info: ValidationInfo) -> int:
        count = info.data.get("collector_shard_count", 1)
        if value >= count:
            raise ValueError(f"must be below BLOCWATCH_COLLECTOR_SHARD_COUNT ({count})")
        return value

    @field_validator("collector_allowed_cidrs")
    @classmethod
    def _cidrs_parse(cls, value: str) -> str:
        for part in _split(value):
            ipaddress.ip_network(part, strict=False)  # ValueError names the bad CIDR
        return value

    @property
    def allowed_networks(self) -> tuple[IpNetwork, ...]:
        return tuple(
            ipaddress.ip_network(p, strict=False) for p in _split(self.collector_allowed_cidrs)
        )

    @property
    def feeds_file(self) -> Path:
        return self.collector_feeds_file or DEFAULT_FEEDS_FILE

    @property
    def metrics_port(self) -> int:
        return self.collector_metrics_port

    @property
    def seen_db(self) -> Path:
        return self.collector_data_dir / "seen.sqlite3"


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]
