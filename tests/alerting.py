"""Test helpers for the alerter: tagged items written by the tests, a local webhook receiver."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from aiohttp import web

from blocwatch.alerter.rules import RulesFile, parse_rules
from blocwatch.core.models import Actor, Dyad, Evidence, Tag, TaggedItem

__all__ = ["T0", "Clock", "WebhookServer", "rules", "tagged", "wait_until"]

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def rules(text: str) -> RulesFile:
    return parse_rules(text, "test-rules.yaml")


def tagged(
    item_id: str,
    *,
    story: str | None = None,
    source: str = "Yonhap",
    at: datetime = T0,
    fetched: datetime | None = None,
    label: str = "escalation",
    subtype: str = "weapons_test",
    regions: tuple[str, ...] = ("Korean Peninsula",),
    actors: tuple[str, ...] = ("PRK",),
    dyads: tuple[tuple[str, str], ...] = (),
    story_sources: int = 1,
    feed: str = "",
    intensity: float = -7.0,
    tags: bool = True,
) -> TaggedItem:
    """A TaggedItem about a North Korean missile test unless told otherwise."""
    tag = Tag(
        label=label,
        subtype=subtype,
        cameo="150" if label == "escalation" else "057",
        plover="MOBILIZE" if label == "escalation" else "AGREE",
        intensity=intensity,
        confidence=0.9,
        evidence=[Evidence(rule=f"{label}.{subtype}", text="fired a missile", start=0, end=15)],
    )
    return TaggedItem(
        id=item_id,
        url=f"https://news.example/{item_id}",
        title=f"Headline {item_id}: North Korea fired a missile",
        source=source,
        feed=feed or source,
        published_at=at,
        fetched_at=fetched or at + timedelta(seconds=30),
        tags=[tag] if tags else [],
        actors=[Actor(code=code) for code in actors],
        dyads=[Dyad(source=a, target=b) for a, b in dyads],
        regions=list(regions),
        story_id=story or f"story-{item_id}",
        story_sources=story_sources,
        tagged_at=at + timedelta(seconds=31),
        tagger_version="test",
    )


@dataclass
class Clock:
    """A settable clock for the service (tests move time, never sleep for it)."""

    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


async def wait_until(condition: Callable[[], bool], timeout_s: float = 30.0) -> None:
    """Poll a condition with a deadline (never a fixed sleep)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met before the deadline")
        await asyncio.sleep(0.05)


@dataclass
class WebhookServer:
    """A real aiohttp webhook receiver on 127.0.0.1; `down=True` answers 503."""

    secret: bytes
    down: bool = False
    received: list[dict[str, object]] = field(default_factory=list)
    signatures_ok: list[bool] = field(default_factory=list)
    attempts: int = 0
    port: int = 0
    _runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        self.attempts += 1
        body = await request.read()
        if self.down:
            return web.Response(status=503)
        expected = "sha256=" + hmac.new(self.secret, body, hashlib.sha256).hexdigest()
        given = request.headers.get("X-Blocwatch-Signature", "")
        self.signatures_ok.append(hmac.compare_digest(expected, given))
        self.received.append(await request.json())
        return web.Response(text="ok")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
