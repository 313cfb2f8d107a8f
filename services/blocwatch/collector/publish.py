"""Publishing NewsItems to `news.raw` without loss.

Items wait in a bounded buffer until the broker acknowledges them; only then are they marked
seen (and the poll that found them may store its validators). While the broker is down the
buffer holds them and sending is retried with backoff; the producer is rebuilt when it stays
broken, and the topic is recreated when it vanished (a restarted in-memory broker).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from blocwatch.collector.metrics import CollectorMetrics
from blocwatch.collector.seen import SeenStore
from blocwatch.core.codec import encode
from blocwatch.core.errors import BlocwatchError
from blocwatch.core.kafka import refresh_metadata
from blocwatch.core.models import NewsItem

__all__ = ["Publisher"]

log = logging.getLogger(__name__)

BATCH = 500
RETRY_BASE_S = 0.2
RETRY_MAX_S = 5.0
IDLE_CONNECT_CHECK_S = 5.0


class _Submission:
    """The new items of one poll; `on_done` runs once all of them are acknowledged."""

    def __init__(self, count: int, on_done: Callable[[], None] | None) -> None:
        self.remaining = count
        self.on_done = on_done

    def acked(self, count: int) -> None:
        self.remaining -= count
        if self.remaining <= 0 and self.on_done is not None:
            done, self.on_done = self.on_done, None
            try:
                done()
            except Exception:  # a callback must never stop publishing
                log.exception("after-publish callback failed")


@dataclass
class _Pending:
    item: NewsItem
    submission: _Submission


class Publisher:
    """Bounded buffer → producer → broker ack → seen-set."""

    def __init__(
        self,
        producer_factory: Callable[[], AIOKafkaProducer],
        topic: str,
        seen: SeenStore,
        metrics: CollectorMetrics,
        *,
        capacity: int,
        ensure_topic: Callable[[], Awaitable[object]] | None = None,
        metadata_timeout_s: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.producer_factory = producer_factory
        self.topic = topic
        self.seen = seen
        self.metrics = metrics
        self.capacity = capacity
        self.ensure_topic = ensure_topic
        self.metadata_timeout_s = metadata_timeout_s
        self.clock = clock
        self._buffer: deque[_Pending] = deque()
        self._pending_ids: set[str] = set()
        self._wakeup = asyncio.Event()
        self._drained = asyncio.Event()
        self._drained.set()
        self._producer: AIOKafkaProducer | None = None
        self._failures = 0
        self.connected = False

    # -- the poll side -------------------------------------------------------------------------

    def is_pending(self, item_id: str) -> bool:
        return item_id in self._pending_ids

    def offer(self, items: list[NewsItem], on_done: Callable[[], None] | None = None) -> bool:
        """Queue all of a poll's new items, or none when the buffer cannot take them.

        An empty buffer takes any poll, however large, so one huge feed cannot starve forever.
        """
        if self._buffer and len(self._buffer) + len(items) > self.capacity:
            return False
        submission = _Submission(len(items), on_done)
        for item in items:
            self._buffer.append(_Pending(item, submission))
            self._pending_ids.add(item.id)
        self._changed()
        if not items:
            submission.acked(0)
        return True

    @property
    def depth(self) -> int:
        return len(self._buffer)

    def _changed(self) -> None:
        self.metrics.buffer_depth.set(len(self._buffer))
        if self._buffer:
            self._drained.clear()
            self._wakeup.set()
        else:
            self._drained.set()

    # -- the broker side -----------------------------------------------------------------------

    async def run(self) -> None:
        """Publish until cancelled."""
        try:
            while True:
                if self._producer is None and not self._buffer:
                    await self._try_connect()  # readiness: connect before there is anything
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(IDLE_CONNECT_CHECK_S):
                        await self._wakeup.wait()
                self._wakeup.clear()
                while self._buffer:
                    if not await self._publish_batch():
                        await asyncio.sleep(self._retry_delay())
        finally:
            await self._drop_producer()

    async def flush(self, timeout_s: float) -> bool:
        """Wait until every queued item is acknowledged; False when the deadline passed."""
        try:
            async with asyncio.timeout(timeout_s):
                await self._drained.wait()
        except TimeoutError:
            return False
        return True

    async def _publish_batch(self) -> bool:
        batch = [self._buffer[i] for i in range(min(BATCH, len(self._buffer)))]
        try:
            if self._failures:
                await self._ensure_topic()
            producer = await self._ready_producer()
            await self._check_topic(producer)
            futures = [
                await producer.send(self.topic, encode(p.item), key=p.item.id.encode())
                for p in batch
            ]
            results = await asyncio.gather(*futures, return_exceptions=True)
        except (KafkaError, OSError) as exc:
            return await self._failed(exc)
        acked = [p for p, r in zip(batch, results, strict=True) if not isinstance(r, BaseException)]
        self._acknowledge(acked)
        failed = next((r for r in results if isinstance(r, BaseException)), None)
        if failed is not None:
            return await self._failed(failed)
        self._recovered()
        return True

    def _acknowledge(self, acked: list[_Pending]) -> None:
        if not acked:
            return
        done = {id(p) for p in acked}
        self._buffer = deque(p for p in self._buffer if id(p) not in done)
        self.seen.mark([p.item.id for p in acked], self.clock())
        for pending in acked:
            self._pending_ids.discard(pending.item.id)
            self.metrics.published.labels(feed=pending.item.feed or "ingest").inc()
            pending.submission.acked(1)
        self._changed()

    async def _ready_producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = self.producer_factory()
            # Shielded: a shutdown arriving mid-start must not leave a half-open connection.
            starting = asyncio.ensure_future(producer.start())
            try:
                await asyncio.shield(starting)
            except BaseException:
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await starting
                with contextlib.suppress(Exception):
                    await producer.stop()
                raise
            self._producer = producer
            self.connected = True
        return self._producer

    async def _ensure_topic(self) -> None:
        """After an outage the topic may be gone (a restarted in-memory broker, which accepts
        records for a missing topic and loses them): recreate it before sending. Best effort:
        without create permission on a real cluster the topic simply has to exist already."""
        if self.ensure_topic is None:
            return
        try:
            await self.ensure_topic()
        except (BlocwatchError, KafkaError, OSError) as exc:
            log.debug("could not ensure topic %s: %s", self.topic, exc)

    async def _check_topic(self, producer: AIOKafkaProducer) -> None:
        """Re-read the topic's metadata before each batch, and recreate the topic if it is gone.

        A broker can restart and lose its state between two batches without any send failing
        (an idle collector sees no error). The producer would then send with its cached
        metadata to a topic the broker no longer has; the embedded broker acknowledges such
        records and drops them. Re-reading metadata first means sending only to a topic the
        broker describes now (on Kafka with auto-creation off, a missing one is recreated here
        first). One small request per batch; batches are per poll, so few.
        """
        # bounded like a send: while the broker is down, the send below fails just as soon
        await refresh_metadata(producer, self.metadata_timeout_s)
        if producer.client.cluster.partitions_for_topic(self.topic) is None:
            await self._ensure_topic()
            await refresh_metadata(producer, self.metadata_timeout_s)

    async def _try_connect(self) -> None:
        try:
            await self._ready_producer()
        except (KafkaError, OSError) as exc:
            if self.connected or not self._failures:
                log.warning("broker unreachable (%s); will retry", type(exc).__name__)
            self.connected = False
            self._failures = max(self._failures, 1)

    async def _failed(self, exc: BaseException) -> bool:
        self._failures += 1
        self.metrics.publish_failures.inc()
        if self.connected or self._failures == 1:
            log.warning(
                "broker not acknowledging (%s: %s); %d items buffered, retrying",
                type(exc).__name__,
                exc,
                len(self._buffer),
            )
        self.connected = False
        # A fresh client re-bootstraps and re-reads metadata: the old one's cached view may
        # describe a topic the (restarted) broker no longer has.
        await self._drop_producer()
        return False

    def _recovered(self) -> None:
        if not self.connected and self._failures:
            log.info("broker acknowledging again; buffer %d", len(self._buffer))
        self.connected = True
        self._failures = 0

    def _retry_delay(self) -> float:
        return float(min(RETRY_MAX_S, RETRY_BASE_S * 2 ** min(self._failures, 10)))

    async def _drop_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(Exception):
                await producer.stop()
