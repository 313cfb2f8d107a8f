"""Outputs appended to per-partition record batches of our own producer, sent after a linger.

`producer.send` costs tens of microseconds per record in Python (faust's wrapper about as much
again); the processor writes two to four records per item, so the per-record path was a large
share of its CPU. Here a record is one `append` to the open batch of its topic-partition; the
batch goes to Kafka when it is full or `linger` after its first record, and every record in it
shares one future that resolves when Kafka acknowledged the batch. The worker acks an event only
after all of its records' futures resolved (at-least-once, as before).

Partitions are chosen like Kafka's default partitioner (murmur2 of the key), so a consumer that
co-partitions by item id agrees with us; batches of one partition are sent in order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import murmur2

from blocwatch.processor.processing import Output

__all__ = ["Delivery"]


@dataclass
class _OpenBatch:
    builder: Any  # aiokafka's BatchBuilder (untyped)
    acked: asyncio.Future[None]


class Delivery:
    """Sends outputs in batches through `producer` (started and stopped by the caller)."""

    def __init__(self, producer: AIOKafkaProducer, linger_s: float = 0.005) -> None:
        self.producer = producer
        self.linger_s = linger_s
        self._open: dict[tuple[str, int], _OpenBatch] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._flushing: set[asyncio.Task[None]] = set()
        self._hashed: tuple[bytes | None, int] = (None, 0)

    async def send(self, output: Output) -> Awaitable[None]:
        """Queue one record; the returned future resolves once Kafka acknowledged it."""
        partition = await self._partition(output.topic, output.key)
        slot = (output.topic, partition)
        batch = self._open.get(slot)
        if batch is None:
            batch = self._open[slot] = self._new_batch()
        if batch.builder.append(key=output.key, value=output.value, timestamp=None) is None:
            await self._submit(slot)  # full: send it, the record opens the next one
            batch = self._open[slot] = self._new_batch()
            # an empty batch takes any record (Kafka's builder rule); oversized ones fail at send
            batch.builder.append(key=output.key, value=output.value, timestamp=None)
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.linger_s, self._linger_over)
        return batch.acked

    def _new_batch(self) -> _OpenBatch:
        return _OpenBatch(self.producer.create_batch(), asyncio.get_running_loop().create_future())

    async def flush(self) -> None:
        """Send every open batch now and wait until Kafka acknowledged them all."""
        pending = [batch.acked for batch in self._open.values()]
        await self._submit_all()
        await asyncio.gather(*pending, *self._flushing, return_exceptions=True)

    async def _partition(self, topic: str, key: bytes | None) -> int:
        partitions: list[int] = sorted(await self.producer.partitions_for(topic))
        if key is None:
            return partitions[0]
        cached_key, hashed = self._hashed  # an item's records share its key: hash it once
        if key != cached_key:
            hashed = int(murmur2(key)) & 0x7FFFFFFF
            self._hashed = (key, hashed)
        return partitions[hashed % len(partitions)]

    def _linger_over(self) -> None:
        self._timer = None
        task = asyncio.get_running_loop().create_task(self._submit_all())
        self._flushing.add(task)
        task.add_done_callback(self._flushing.discard)

    async def _submit_all(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for slot in list(self._open):
            await self._submit(slot)

    async def _submit(self, slot: tuple[str, int]) -> None:
        batch = self._open.pop(slot, None)  # later records open a new batch meanwhile
        if batch is None:
            return
        try:
            sent = await self.producer.send_batch(batch.builder, slot[0], partition=slot[1])
        # The waiting events must not be acked: hand them the failure instead.
        except Exception as exc:
            batch.acked.set_exception(exc)
            return
        sent.add_done_callback(lambda done: _copy_outcome(done, batch.acked))


def _copy_outcome(done: asyncio.Future[Any], acked: asyncio.Future[None]) -> None:
    if acked.done():
        return
    if done.cancelled():
        acked.cancel()
    elif (exc := done.exception()) is not None:
        acked.set_exception(exc)
    else:
        acked.set_result(None)
