"""`blocwatch console`: fold `alerts` and `alerts.actions` into the board; serve it; act.

Every console instance reads both topics from the beginning without a consumer group, so each
holds the whole history and any two agree; an action is only shown once it came back from the
topic, which is what makes instances (and restarts) consistent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from aiohttp import web
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError
from prometheus_client import CollectorRegistry

from blocwatch.console.metrics import ConsoleMetrics
from blocwatch.console.settings import ConsoleSettings
from blocwatch.console.state import Board
from blocwatch.console.web import make_app
from blocwatch.core.codec import decode, encode
from blocwatch.core.errors import BrokerError, ConfigError, ContractError
from blocwatch.core.kafka import make_consumer, make_producer
from blocwatch.core.logs import quiet_logger
from blocwatch.core.metrics import OpsServer
from blocwatch.core.models import Alert, AlertAction
from blocwatch.core.serving import serve_app

__all__ = ["Console", "utc_now"]

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
CAUGHT_UP_IDLE_S = 1.0  # end offsets are unreliable on the embedded broker: idle = caught up
REFRESH_S = 30.0  # re-render open pages this often: ages move on, silences end by the clock


def utc_now() -> datetime:
    return datetime.now(UTC)


class Console:
    """The console service: board state, the Kafka reader, the web app and the ops server."""

    def __init__(
        self,
        settings: ConsoleSettings,
        *,
        registry: CollectorRegistry,
        clock: Clock = utc_now,
        serve_metrics: bool = True,
    ) -> None:
        if settings.console_auth == "basic" and settings.console_password is None:
            raise ConfigError(
                "BLOCWATCH_CONSOLE_AUTH=basic needs BLOCWATCH_CONSOLE_PASSWORD",
                "set the password, or use BLOCWATCH_CONSOLE_AUTH=header behind a proxy",
            )
        self.settings = settings
        self.registry = registry
        self.metrics = ConsoleMetrics.create(registry)
        self.clock = clock
        self.board = Board(
            ack_until_growth=settings.console_ack_until_growth,
            max_alerts=settings.console_max_alerts,
        )
        self.changed = asyncio.Condition()
        self.version = 0
        self.caught_up = False
        self.closing = False  # tells open SSE streams to end, so shutdown does not wait on them
        self._serve_metrics = serve_metrics
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._runner: web.AppRunner | None = None
        self._ops: OpsServer | None = None
        self._task: asyncio.Task[None] | None = None
        self.port = settings.console_port

    @property
    def url(self) -> str:
        return f"http://{self.settings.console_host}:{self.port}/"

    @property
    def ready(self) -> bool:
        return self.caught_up and self._runner is not None

    async def start(self) -> None:
        try:
            with quiet_logger("aiokafka"):
                await self._start()
        except KafkaError as exc:
            await self.stop()
            raise BrokerError(
                f"console cannot reach Kafka at {self.settings.kafka_bootstrap_servers}: "
                f"{type(exc).__name__}",
                "start one with `blocwatch broker` or set BLOCWATCH_KAFKA_BOOTSTRAP_SERVERS",
            ) from exc
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        settings = self.settings
        topics = settings.topics
        self._producer = make_producer(settings, "console")
        await self._producer.start()
        # No group: every instance reads the whole history of both topics from offset 0.
        self._consumer = make_consumer(
            settings, "console", topics.alerts, topics.alert_actions, group_id=None
        )
        await self._consumer.start()
        self._task = asyncio.create_task(self._consume(), name="console-consume")
        self._runner, self.port = await serve_app(
            make_app(self),
            settings.console_host,
            settings.console_port,
            what="the console",
            fix="set BLOCWATCH_CONSOLE_PORT to a free port",
        )
        if self._serve_metrics:
            self._ops = OpsServer(
                self.registry,
                settings.metrics_host,
                settings.metrics_port,
                ready=lambda: self.ready,
            )
            await self._ops.start()
        log.info("console on %s", self.url)

    async def stop(self) -> None:
        self.closing = True
        async with self.changed:
            self.changed.notify_all()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self._runner is not None:
            await self._runner.cleanup()
        if self._ops is not None:
            await self._ops.stop()
        if self._consumer is not None:
            with contextlib.suppress(KafkaError):
                await self._consumer.stop()
        if self._producer is not None:
            with contextlib.suppress(KafkaError):
                await self._producer.stop()
        self._task = None
        self._runner = self._ops = None
        self._consumer = None
        self._producer = None

    async def __aenter__(self) -> Console:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def wait(self) -> None:
        """Return when the reader task ends (it should not): surfaces its exception."""
        if self._task is not None:
            await self._task

    # -- reading the topics

    async def _consume(self) -> None:
        assert self._consumer is not None
        quiet_since = last_change = time.monotonic()
        while True:
            try:
                batch = await self._consumer.getmany(timeout_ms=200, max_records=500)
            except KafkaError as exc:
                log.warning("Kafka error in the console reader (%s); retrying", type(exc).__name__)
                await asyncio.sleep(1.0)
                continue
            changed = False
            for records in batch.values():
                for record in records:
                    changed |= self.apply_record(record.topic, record.value)
            if batch:
                quiet_since = time.monotonic()
            elif not self.caught_up and time.monotonic() - quiet_since >= CAUGHT_UP_IDLE_S:
                self.caught_up = True
            if changed or time.monotonic() - last_change >= REFRESH_S:
                last_change = time.monotonic()
                await self.publish_change()

    def apply_record(self, topic: str, value: bytes | None) -> bool:
        """Fold one record into the board; undecodable records are counted and skipped."""
        kind = "actions" if topic == self.settings.topics.alert_actions else "alerts"
        self.metrics.records.labels(topic=kind).inc()
        try:
            if kind == "alerts":
                return self.board.apply_alert(decode(Alert, value or b""))
            return self.board.apply_action(decode(AlertAction, value or b""))
        except ContractError as exc:
            self.metrics.invalid_records.labels(topic=kind).inc()
            log.warning("skipped an undecodable %s record: %s", kind, exc.message)
            return False

    async def publish_change(self) -> None:
        now = self.clock()
        counts: dict[str, int] = {"firing": 0, "acknowledged": 0, "silenced": 0, "resolved": 0}
        for view in self.board.views(now):
            counts[view.status] += 1
        for status, count in counts.items():
            self.metrics.alerts_tracked.labels(status=status).set(count)
        async with self.changed:
            self.version += 1
            self.changed.notify_all()

    # -- writing actions

    async def act(self, action: AlertAction) -> None:
        """Publish an action; the board shows it when it comes back from the topic."""
        if self._producer is None:
            raise BrokerError("console is not running", "start it first")
        await self._producer.send_and_wait(
            self.settings.topics.alert_actions, encode(action), key=action.fingerprint.encode()
        )
        self.metrics.actions.labels(action=action.action).inc()

    @staticmethod
    def new_id() -> str:
        return uuid.uuid4().hex[:16]
