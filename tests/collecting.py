"""Helpers for collector tests: settings on the test broker, waiting on conditions, samples."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from blocwatch.collector.settings import CollectorSettings
from blocwatch.core.settings import KafkaSettings

__all__ = ["collector_settings", "eventually", "sample"]


def collector_settings(kafka: KafkaSettings, data_dir: Path, **extra: Any) -> CollectorSettings:
    options: dict[str, Any] = {
        "kafka_bootstrap_servers": kafka.kafka_bootstrap_servers,
        "topic_prefix": kafka.topic_prefix,
        "topic_partitions": kafka.topic_partitions,
        "collector_data_dir": data_dir,
        # The explicit SSRF opt-out: every test feed is served on 127.0.0.1.
        "collector_allow_private_addresses": True,
        "collector_read_timeout_s": 1.0,
        "collector_total_timeout_s": 3.0,
        "collector_publish_timeout_s": 3.0,
        "collector_metrics_port": 0,
    }
    options.update(extra)
    return CollectorSettings(**options)


async def eventually(
    condition: Callable[[], bool], what: str, timeout_s: float = 30.0, every_s: float = 0.05
) -> None:
    """Wait until `condition()` holds; fail naming `what` after the deadline."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for: {what}")
        await asyncio.sleep(every_s)


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0
