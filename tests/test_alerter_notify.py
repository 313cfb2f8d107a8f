"""Receivers and the delivery loop without Kafka: Apprise to a local server, orphaned entries."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from blocwatch.alerter.evaluation import Engine, event_time
from blocwatch.alerter.metrics import AlerterMetrics
from blocwatch.alerter.notify import AppriseReceiver, ConsoleReceiver, Dispatcher, RetryPolicy
from blocwatch.alerter.store import Delivery, StateStore
from blocwatch.core.codec import decode
from blocwatch.core.metrics import new_registry
from blocwatch.core.models import Alert, DeadLetter

from .alerting import T0, rules, tagged

RULE = """
rules:
  - name: surge
    severity: critical
    filter: {labels: [escalation]}
    threshold: 2
    group_by: [region]
"""


def an_alert() -> Alert:
    engine = Engine(rules(RULE))
    items = [tagged("a", source="Yonhap"), tagged("b", source="NK News")]
    decisions = [d for item in items for d in engine.ingest(item, event_time(item))]
    return decisions[0].alert


@pytest.fixture
async def apprise_server() -> AsyncIterator[tuple[str, list[dict[str, str]]]]:
    received: list[dict[str, str]] = []

    async def handle(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/notify", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"json://127.0.0.1:{port}/notify", received
    await runner.cleanup()


async def test_apprise_delivers_the_readable_text(
    apprise_server: tuple[str, list[dict[str, str]]],
) -> None:
    url, received = apprise_server
    await AppriseReceiver("apprise", [url]).send(an_alert())
    [payload] = received
    assert payload["title"] == "[CRITICAL] FIRING surge (Korean Peninsula)"
    assert payload["message"].startswith("[CRITICAL] surge: 2 escalation stories in region Korea")
    assert "https://news.example/a" in payload["message"]


async def test_console_prints_summary_then_items() -> None:
    out = io.StringIO()
    await ConsoleReceiver(out).send(an_alert())
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("[CRITICAL] surge: 2 escalation stories")
    assert lines[1].startswith("  • 2026-11-23 12:00Z  ")


async def test_entries_of_a_removed_receiver_are_dead_lettered(tmp_path: Path) -> None:
    letters: list[tuple[bytes, bytes, str]] = []

    async def dlq(value: bytes, key: bytes, reason: str) -> None:
        letters.append((value, key, reason))

    alert = an_alert()
    with StateStore(tmp_path / "state.sqlite3") as store:
        store.commit(
            Engine(rules(RULE)).take_changes(), [Delivery("webhook-2", alert.model_dump_json())], T0
        )
        dispatcher = Dispatcher(
            store,
            [ConsoleReceiver(io.StringIO())],
            dlq=dlq,
            metrics=AlerterMetrics.create(new_registry("alerter")),
            clock=lambda: T0,
            policy=RetryPolicy(),
        )
        assert await dispatcher.orphans() == 1
        assert store.pending() == 0
    [(value, key, reason)] = letters
    assert reason == "webhook-2: gave up after 1 attempts: receiver no longer configured"
    assert key == alert.fingerprint.encode()
    assert decode(DeadLetter, value).stage == "notify:webhook-2"
