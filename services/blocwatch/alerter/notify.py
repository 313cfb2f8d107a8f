"""Receivers (webhook, Apprise, console, the `alerts` topic) and the delivery loop.

Each receiver drains its own slice of the durable outbox in its own task, so a failing receiver
never blocks the others or the stream. Failed attempts are retried with exponential backoff and
jitter; when the budget is spent the notification goes to `alerts.dlq` as a DeadLetter with the
reason. Errors never carry receiver URLs: they may hold tokens.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import random
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TextIO

import aiohttp

from blocwatch.alerter.messages import render_text, render_title
from blocwatch.alerter.metrics import AlerterMetrics
from blocwatch.alerter.store import OutboxEntry, StateStore
from blocwatch.core.codec import dead_letter, encode
from blocwatch.core.logs import quiet_logger
from blocwatch.core.models import Alert

__all__ = [
    "SIGNATURE_HEADER",
    "AppriseReceiver",
    "ConsoleReceiver",
    "DeliveryError",
    "Dispatcher",
    "Receiver",
    "RetryPolicy",
    "TopicReceiver",
    "WebhookReceiver",
    "sign",
]

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Blocwatch-Signature"
DELIVERY_HEADER = "X-Blocwatch-Delivery"


class DeliveryError(Exception):
    """One delivery attempt failed; the message is safe to log (no URLs, no secrets)."""


class Receiver(Protocol):
    """Something that takes an alert: `kind` is what rules name, `name` is the metric label."""

    kind: str
    name: str

    async def send(self, alert: Alert) -> None: ...


def sign(secret: bytes, body: bytes) -> str:
    """`sha256=<hex HMAC-SHA256 of the body>`, the value of the signature header."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def _describe(exc: BaseException) -> str:
    """A reason without the URL: aiohttp messages can quote the request URL (and its token)."""
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"cannot connect ({exc.os_error.strerror or type(exc.os_error).__name__})"
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return "timed out"
    return type(exc).__name__


class WebhookReceiver:
    """POST the Alert as JSON with an HMAC-SHA256 signature of the body."""

    kind = "webhook"

    def __init__(
        self,
        name: str,
        url: str,
        secret: bytes | None,
        session: aiohttp.ClientSession,
        timeout_s: float = 10.0,
    ) -> None:
        self.name = name
        self._url = url
        self._secret = secret
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)

    def __repr__(self) -> str:  # never show the URL
        return f"WebhookReceiver({self.name!r})"

    async def send(self, alert: Alert) -> None:
        body = encode(alert)
        headers = {
            "Content-Type": "application/json",
            DELIVERY_HEADER: f"{alert.fingerprint}:{alert.status}:{alert.notification}",
        }
        if self._secret is not None:
            headers[SIGNATURE_HEADER] = sign(self._secret, body)
        try:
            async with self._session.post(
                self._url, data=body, headers=headers, timeout=self._timeout
            ) as response:
                if response.status >= 300:
                    raise DeliveryError(f"HTTP {response.status}")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise DeliveryError(_describe(exc)) from exc


class AppriseReceiver:
    """Slack, Teams, Telegram, e-mail and the rest through Apprise URLs."""

    kind = "apprise"

    def __init__(self, name: str, urls: list[str]) -> None:
        self.name = name
        # apprise loads its plugins lazily on add(); one imports the deprecated imghdr on 3.11+
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import apprise  # heavy: imported only when Apprise URLs are configured

            self._apprise: Any = apprise.Apprise()
            for url in urls:
                if not self._apprise.add(url):
                    raise ValueError(f"{name}: an Apprise URL is not recognised")

    def __repr__(self) -> str:
        return f"AppriseReceiver({self.name!r})"

    async def send(self, alert: Alert) -> None:
        # Apprise's own log lines may quote service URLs; our DeliveryError says what failed.
        with quiet_logger("apprise"):
            result = await self._apprise.async_notify(
                title=render_title(alert), body=render_text(alert)
            )
        if not result:
            raise DeliveryError("apprise: at least one service refused the notification")


class ConsoleReceiver:
    """The readable text on stdout (or any stream)."""

    kind = "console"
    name = "console"

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream

    async def send(self, alert: Alert) -> None:
        stream = self._stream or sys.stdout
        stream.write(render_text(alert) + "\n\n")
        stream.flush()


class _Producer(Protocol):
    async def send_and_wait(self, topic: str, value: bytes, key: bytes | None = None) -> Any: ...


class TopicReceiver:
    """The `alerts` topic, key = fingerprint: downstream consumers and the console read it."""

    kind = "topic"
    name = "alerts_topic"

    def __init__(self, producer: _Producer, topic: str) -> None:
        self._producer = producer
        self._topic = topic

    async def send(self, alert: Alert) -> None:
        try:
            await self._producer.send_and_wait(
                self._topic, encode(alert), key=alert.fingerprint.encode()
            )
        except Exception as exc:  # any producer failure is a failed attempt, retried
            raise DeliveryError(f"produce failed: {type(exc).__name__}") from exc


class _Gone:
    """Stands in for a receiver that was removed from the configuration."""

    kind = "gone"

    def __init__(self, name: str) -> None:
        self.name = name

    async def send(self, alert: Alert) -> None:
        raise DeliveryError("receiver no longer configured")


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 8
    initial_s: float = 1.0
    max_s: float = 60.0

    def delay(self, attempt: int, rng: random.Random) -> timedelta:
        """Exponential backoff with jitter (80–100 %) so retries of many alerts spread out."""
        base = min(self.max_s, self.initial_s * 2 ** max(0, attempt - 1))
        return timedelta(seconds=base * rng.uniform(0.8, 1.0))


class Dispatcher:
    """Delivers outbox entries, one task per receiver, with retries and dead-lettering."""

    def __init__(
        self,
        store: StateStore,
        receivers: list[Receiver],
        *,
        dlq: Callable[[bytes, bytes, str], Any],
        metrics: AlerterMetrics,
        clock: Callable[[], datetime],
        policy: RetryPolicy,
        rng: random.Random | None = None,
        poll_s: float = 1.0,
    ) -> None:
        self.store = store
        self.receivers = {r.name: r for r in receivers}
        self._dlq = dlq
        self._metrics = metrics
        self._clock = clock
        self._policy = policy
        self._rng = rng or random.Random()
        self._poll_s = poll_s
        self._wake = {name: asyncio.Event() for name in self.receivers}

    def wake(self) -> None:
        """New outbox entries were committed: deliver now rather than at the next poll."""
        for event in self._wake.values():
            event.set()

    async def run(self) -> None:
        await self.orphans()
        async with asyncio.TaskGroup() as group:
            for name in self.receivers:
                group.create_task(self._loop(name), name=f"deliver-{name}")

    async def _loop(self, name: str) -> None:
        event = self._wake[name]
        while True:
            event.clear()
            await self.deliver_due(name)
            self._metrics.outbox_depth.set(self.store.pending())
            nxt = self.store.next_due(name)
            wait = self._poll_s
            if nxt is not None:
                wait = max(0.01, min(wait, (nxt - self._clock()).total_seconds()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), wait)

    async def orphans(self) -> int:
        """Dead-letter entries for receivers no longer configured: never silently dropped."""
        orphaned = 0
        for name in self.store.receivers_pending() - set(self.receivers):
            gone = _Gone(name)
            for entry in self.store.due(name, datetime.max.replace(tzinfo=UTC), limit=1_000_000):
                await self._failed(
                    gone,
                    entry,
                    Alert.model_validate_json(entry.alert),
                    "receiver no longer configured",
                    final=True,
                )
                orphaned += 1
        return orphaned

    async def deliver_due(self, name: str) -> int:
        """Attempt every due entry of one receiver once; returns how many were delivered."""
        delivered = 0
        for entry in self.store.due(name, self._clock()):
            delivered += await self._attempt(self.receivers[name], entry)
        return delivered

    async def _attempt(self, receiver: Receiver, entry: OutboxEntry) -> int:
        alert = Alert.model_validate_json(entry.alert)
        started = time.perf_counter()
        try:
            await receiver.send(alert)
        except DeliveryError as exc:
            return await self._failed(receiver, entry, alert, str(exc))
        except Exception as exc:  # a receiver bug must not kill its delivery loop
            log.exception("receiver %s raised", receiver.name)
            return await self._failed(receiver, entry, alert, type(exc).__name__)
        finally:
            self._metrics.notification_duration.labels(receiver=receiver.name).observe(
                time.perf_counter() - started
            )
        self.store.done(entry.id)
        self._metrics.notifications.labels(receiver=receiver.name, result="sent").inc()
        if entry.origin is not None and receiver.kind != "topic":
            latency = (self._clock() - entry.origin).total_seconds()
            self._metrics.end_to_end.observe(max(0.0, latency))
        return 1

    async def _failed(
        self, receiver: Receiver, entry: OutboxEntry, alert: Alert, why: str, final: bool = False
    ) -> int:
        attempts = entry.attempts + 1
        now = self._clock()
        if attempts < self._policy.attempts and not final:
            self._metrics.notifications.labels(receiver=receiver.name, result="failed").inc()
            log.warning(
                "delivery of %s to %s failed (attempt %d of %d): %s",
                alert.rule, receiver.name, attempts, self._policy.attempts, why,
            )  # fmt: skip
            next_at = now + self._policy.delay(attempts, self._rng)
            self.store.retry_later(entry.id, attempts, next_at, why)
            return 0
        reason = f"{receiver.name}: gave up after {attempts} attempts: {why}"
        letter = dead_letter(
            topic=receiver.name,
            value=entry.alert.encode(),
            key=alert.fingerprint.encode(),
            stage=f"notify:{receiver.name}",
            error=reason,
            now=now,
        )
        try:
            await self._dlq(encode(letter), alert.fingerprint.encode(), reason)
        except Exception as exc:  # keep it in the outbox: the DLQ itself is unavailable
            log.error("cannot dead-letter %s (%s); will retry", alert.rule, type(exc).__name__)
            self.store.retry_later(
                entry.id, entry.attempts, now + self._policy.delay(1, self._rng), why
            )
            return 0
        log.error("notification %s to %s dead-lettered: %s", alert.rule, receiver.name, why)
        self.store.done(entry.id)
        self._metrics.notifications.labels(receiver=receiver.name, result="dead_lettered").inc()
        self._metrics.dead_letters.inc()
        return 0
