"""Assembling a running collector from settings: the I/O edge (HTTP client, SQLite, producer)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer
from prometheus_client import CollectorRegistry

from blocwatch.collector.feeds import Feed
from blocwatch.collector.fetch import AddressGuard, Fetcher, FetchPolicy, make_session
from blocwatch.collector.metrics import CollectorMetrics
from blocwatch.collector.publish import Publisher
from blocwatch.collector.seen import SeenStore
from blocwatch.collector.service import Collector, utc_now
from blocwatch.collector.settings import CollectorSettings
from blocwatch.core.kafka import ensure_topics, make_producer

__all__ = ["Running", "running_collector", "running_publisher"]

log = logging.getLogger(__name__)

FLUSH_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Running:
    collector: Collector
    publisher: Publisher
    seen: SeenStore
    metrics: CollectorMetrics


@contextlib.asynccontextmanager
async def running_publisher(
    settings: CollectorSettings, seen: SeenStore, metrics: CollectorMetrics
) -> AsyncIterator[Publisher]:
    """A publisher with its send loop running; flushed (bounded wait) on the way out."""
    topic = settings.topics.news_raw
    timeout_ms = int(settings.collector_publish_timeout_s * 1000)

    def producer() -> AIOKafkaProducer:
        return make_producer(settings, "collector", request_timeout_ms=timeout_ms)

    async def ensure() -> object:
        return await ensure_topics(settings, [topic])

    publisher = Publisher(
        producer,
        topic,
        seen,
        metrics,
        capacity=settings.collector_buffer_size,
        ensure_topic=ensure if settings.collector_create_topics else None,
        metadata_timeout_s=settings.collector_publish_timeout_s,
    )
    task = asyncio.create_task(publisher.run(), name="publisher")
    try:
        yield publisher
    finally:
        if not await publisher.flush(FLUSH_TIMEOUT_S):
            log.warning(
                "shutdown: %d items not acknowledged (re-polled next start)", publisher.depth
            )
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@contextlib.asynccontextmanager
async def running_collector(
    settings: CollectorSettings, feeds: list[Feed], registry: CollectorRegistry
) -> AsyncIterator[Running]:
    """Everything a collector needs, opened in order and closed in reverse."""
    metrics = CollectorMetrics.create(registry)
    policy = FetchPolicy.from_settings(settings)
    guard = AddressGuard.from_settings(settings)
    with SeenStore(
        settings.seen_db, settings.collector_seen_ttl_s, settings.collector_seen_max
    ) as seen:
        async with (
            make_session(policy, guard) as session,
            running_publisher(settings, seen, metrics) as publisher,
        ):
            fetcher = Fetcher(session, policy, guard, utc_now)
            collector = Collector(
                feeds,
                fetcher,
                seen,
                publisher,
                metrics,
                max_backoff_s=settings.collector_max_backoff_s,
                clock_skew_s=settings.collector_clock_skew_s,
                concurrency=settings.collector_concurrency,
            )
            yield Running(collector, publisher, seen, metrics)
