"""faust's aiokafka transport with a configurable fetch wait, and a hook before each group join.

faust hard-codes `fetch_max_wait_ms=1500` for the consumer that reads the agent's topics. Apache
Kafka answers a fetch as soon as `fetch_min_bytes` (1) is there, so there the wait only paces idle
polls; the embedded broker (Tansu) holds every fetch for the whole wait even when records are
waiting, which added up to 1.5 s to every hop and put the end-to-end p99 over its 1 s goal.

aiokafka revokes the partitions right before every (re)join of the group, and waits for the
callback: `before_join` runs then, in the consumer's own thread and event loop (where its Kafka
client lives), so that the join sees the source topics as they exist now (`prepare_join`).
Everything else is faust's own driver.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from faust.transport.drivers import aiokafka as driver

__all__ = ["BeforeJoin", "transport_class"]

BeforeJoin = Callable[[Any], Awaitable[None]]  # called with the worker's AIOKafkaConsumer


def transport_class(fetch_max_wait_ms: int, before_join: BeforeJoin | None = None) -> type[Any]:
    """A faust Transport class whose worker consumer waits at most `fetch_max_wait_ms` per fetch
    and calls `before_join(consumer)` before each group (re)join."""

    class ConsumerThread(driver.AIOKafkaConsumerThread):
        def _create_worker_consumer(self, transport: Any) -> Any:
            consumer = super()._create_worker_consumer(transport)
            # read by AIOKafkaConsumer.start() when it builds its fetcher, which comes later
            consumer._fetch_max_wait_ms = fetch_max_wait_ms
            return consumer

        async def on_partitions_revoked(self, revoked: Any) -> None:
            await super().on_partitions_revoked(revoked)  # faust's own handling, main thread
            if before_join is not None:
                await before_join(self._ensure_consumer())

    class Consumer(driver.Consumer):
        def _new_consumer_thread(self) -> ConsumerThread:
            return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    class Transport(driver.Transport):
        pass

    Transport.Consumer = Consumer
    return Transport
