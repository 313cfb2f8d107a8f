"""The console in a real browser: Debian's headless Chromium driven by Playwright.

On the embedded broker with the real alerter: an alert appears without reload, the detail view
shows the evidence, an acknowledgement made in one page shows in another, a silence made in the
page stops the alerter's next notification, and hostile feed titles never execute. A screenshot
of the board is saved to test-output/console-board.png for a person to look at.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from blocwatch.alerter.rules import parse_rules
from blocwatch.alerter.service import Alerter
from blocwatch.alerter.settings import AlerterSettings
from blocwatch.core.codec import encode
from blocwatch.core.kafka import make_producer
from blocwatch.core.metrics import new_registry
from blocwatch.core.models import TaggedItem
from blocwatch.core.settings import KafkaSettings
from tests.alerting import WebhookServer, tagged, wait_until
from tests.conftest import REPO
from tests.consoling import HOSTILE_TITLE, console_settings, running_console

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [
    pytest.mark.broker,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="Debian's chromium is not installed (make system-deps)"
    ),
]
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
OUTPUT = REPO / "test-output"
RULES = """
rules:
  - name: surge
    severity: critical
    filter: {labels: [escalation], regions: [Korean Peninsula]}
    count: stories
    threshold: 3
    group_by: [region]
    window: 1h
    cooldown: 0s
    renotify_growth: 1.5
    resolve: true
    receivers: [webhook]
"""


class WallClock:
    """The alerter on wall time: the console stamps actions (and silences) with wall time."""

    def __call__(self) -> datetime:
        return datetime.now(UTC)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        # Never a downloaded browser: the distribution's Chromium, headless.
        launched = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        yield launched
        await launched.close()


def _items(names: list[str], now: datetime) -> list[TaggedItem]:
    return [
        tagged(name, at=now - timedelta(minutes=5) + timedelta(seconds=n), source=f"Outlet {n}")
        for n, name in enumerate(names)
    ]


async def _not_pwned(page: Page) -> None:
    assert await page.evaluate("() => window.__pwned") is None


async def test_console_in_a_real_browser(
    browser: Browser, kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    hook = WebhookServer(secret=b"k")
    await hook.start()
    alerter_settings = AlerterSettings(
        **kafka_settings.model_dump(),
        alerter_data_dir=tmp_path / "alerter",
        alerter_group_id=f"alerter-{uuid.uuid4().hex[:8]}",
        alerter_metrics_port=0,
        alerter_webhook_urls=hook.url,
        alerter_webhook_secret="k",
        alerter_console=False,
        alerter_tick_s=0.2,
    )
    registry = new_registry("alerter")
    alerter = Alerter(
        alerter_settings,
        parse_rules(RULES, "browser-test.yaml"),
        registry=registry,
        clock=WallClock(),
        consumer_options={"session_timeout_ms": 1000, "heartbeat_interval_ms": 200},
    )
    producer = make_producer(kafka_settings, "test")
    await producer.start()

    async def publish(items: list[TaggedItem]) -> None:
        for item in items:
            await producer.send_and_wait(
                kafka_settings.topics.news_tagged, encode(item), key=item.id.encode()
            )

    try:
        async with alerter, running_console(console_settings(kafka_settings)) as console:
            await wait_until(lambda: alerter.ready)
            board = await browser.new_page()
            await board.goto(console.url)
            await expect(board.locator("#conn")).to_have_text("live")

            # 1. an alert published to `alerts` (by the alerter) appears without reload
            now = datetime.now(UTC)
            first = _items(["a", "b", "c"], now)
            first[0] = first[0].model_copy(update={"title": HOSTILE_TITLE})
            await publish(first)
            card = board.locator("article.alert").first
            await expect(card).to_be_visible(timeout=30_000)
            await expect(card.locator(".n-stories")).to_have_text("3")
            await _not_pwned(board)
            assert len(hook.received) == 1

            # 2. the detail view shows every item with its evidence; hostile text is text
            detail = await browser.new_page()
            fingerprint = await card.get_attribute("data-fingerprint")
            await detail.goto(f"{console.url}alerts/{fingerprint}")
            await expect(detail.locator("li.item")).to_have_count(3)
            await expect(detail.locator("li.item mark").first).to_have_text("fired a missile")
            await expect(detail.locator("li.item").first).to_contain_text("CAMEO 150")
            hostile = detail.locator("a.headline", has_text="<script>")
            await expect(hostile).to_contain_text('<img src=x onerror="window.__pwned = 2">')
            await _not_pwned(detail)

            # 3. acknowledge with a comment: an action event, and the other page shows it live
            await detail.fill("#who-name", "Kim (night desk)")
            await detail.locator("#who-name").dispatch_event("change")
            await detail.fill('form:has([data-action="acknowledge"]) input[name="comment"]',
                              "called the Seoul desk")  # fmt: skip
            await detail.click('[data-action="acknowledge"]')
            await expect(detail.locator("#flash")).to_have_text("acknowledged surge")
            await expect(board.locator("article.alert .ack").first).to_have_text(
                "acknowledged by Kim (night desk)", timeout=30_000
            )
            assert await board.locator("article.alert").first.get_attribute("data-status") == (
                "acknowledged"
            )
            history = console.board.history[str(fingerprint)]
            assert [(a.action, a.who, a.comment) for a in history] == [
                ("acknowledge", "Kim (night desk)", "called the Seoul desk")
            ]

            # 4. a silence made in the page stops the alerter's next notification of the rule
            await detail.fill('form.silence input[name="comment"]', "known drill")
            await detail.select_option('form.silence select[name="duration"]', "4h")
            await detail.click('[data-action="silence"]')
            await expect(detail.locator("#flash")).to_have_text("silenced surge")
            assert alerter.store is not None
            store = alerter.store
            await wait_until(
                lambda: any(s.created_by == "Kim (night desk)" for s in store.silences())
            )
            await publish(_items(["d", "e"], now))  # 5 stories ≥ 3 × 1.5: would re-notify
            silenced = {"rule": "surge", "severity": "critical", "status": "silenced"}
            await wait_until(
                lambda: (
                    (registry.get_sample_value("blocwatch_alerter_alerts_total", silenced) or 0)
                    >= 1
                )
            )
            assert len(hook.received) == 1  # nothing more was delivered
            await expect(board.locator("article.alert").first).to_have_attribute(
                "data-status", "silenced", timeout=30_000
            )
            await _not_pwned(board)
            await _not_pwned(detail)

            OUTPUT.mkdir(exist_ok=True)
            await board.screenshot(path=str(OUTPUT / "console-board.png"), full_page=True)
            await detail.screenshot(path=str(OUTPUT / "console-detail.png"), full_page=True)
    finally:
        await producer.stop()
        await hook.stop()
