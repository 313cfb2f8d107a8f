"""Test helpers for reading topics with deadlines (never fixed sleeps)."""

from __future__ import annotations

import asyncio
import time

from aiokafka.structs import ConsumerRecord

from blocwatch.core.kafka import make_consumer
from blocwatch.core.settings import KafkaSettings

__all__ = ["read_topic"]


async def read_topic(
    settings: KafkaSettings,
    topic: str,
    *,
    count: int,
    timeout_s: float = 30.0,
    idle_s: float = 0.0,
) -> list[ConsumerRecord[bytes, bytes]]:
    """Read a topic from the beginning until `count` records arrive or the deadline passes.

    With idle_s > 0, keep reading that long after reaching `count` to catch unexpected extras.
    """
    consumer = make_consumer(settings, "test-reader", topic, group_id=None)
    await consumer.start()
    records: list[ConsumerRecord[bytes, bytes]] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(records) < count and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            for part in batch.values():
                records.extend(part)
        extra_until = time.monotonic() + idle_s
        while idle_s and time.monotonic() < extra_until:
            batch = await consumer.getmany(timeout_ms=100)
            for part in batch.values():
                records.extend(part)
            await asyncio.sleep(0)
    finally:
        await consumer.stop()
    return records
