"""Test helpers for the console: Alerts and AlertActions as the alerter and consoles write them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from aiokafka import AIOKafkaProducer

from blocwatch.console.service import Console
from blocwatch.console.settings import ConsoleSettings
from blocwatch.core.codec import encode
from blocwatch.core.metrics import new_registry
from blocwatch.core.models import Alert, AlertAction, AlertCounts, AlertItem, Evidence, Tag
from blocwatch.core.settings import KafkaSettings
from tests.alerting import T0, wait_until

__all__ = [
    "HOSTILE_TITLE",
    "action",
    "alert",
    "alert_item",
    "console_settings",
    "publish",
    "running_console",
]

# What a hostile feed could put in a title: both must show as text and never run.
HOSTILE_TITLE = (
    '<script>window.__pwned = 1</script> Missile <img src=x onerror="window.__pwned = 2"> '
    "fired over the sea"
)


def alert_item(n: int, title: str = "", *, evidence: str = "fired a missile") -> AlertItem:
    tag = Tag(
        label="escalation",
        subtype="weapons_test",
        cameo="150",
        plover="MOBILIZE",
        intensity=-7.0,
        confidence=0.9,
        evidence=[Evidence(rule="esc.weapons_test", text=evidence, start=0, end=len(evidence))],
    )
    return AlertItem(
        id=f"item-{n}",
        title=title or f"North Korea fired a missile into the East Sea ({n})",
        url=f"https://news.example/item-{n}",
        source=f"Outlet {n}",
        published_at=T0 + timedelta(minutes=n),
        story_id=f"story-{n}",
        tags=[tag],
    )


def alert(
    fingerprint: str = "fp-kp",
    *,
    rule: str = "kp-surge",
    severity: str = "critical",
    status: str = "firing",
    notification: int = 1,
    stories: int = 3,
    fired_at: Any = None,
    first_seen: Any = None,
    region: str = "Korean Peninsula",
    items: list[AlertItem] | None = None,
) -> Alert:
    items = items if items is not None else [alert_item(n) for n in range(stories)]
    return Alert(
        fingerprint=fingerprint,
        rule=rule,
        severity=severity,
        status=status,
        group={"region": region},
        summary=f"{stories} escalation stories in region {region} in the last 2h",
        counts=AlertCounts(items=len(items), stories=stories, sources=stories),
        threshold=3,
        window_seconds=7200,
        first_seen=first_seen or T0,
        last_seen=T0 + timedelta(minutes=30),
        items=items,
        actors=["PRK"],
        regions=[region],
        notification=notification,
        fired_at=fired_at or T0 + timedelta(minutes=30, seconds=notification),
    )


def action(
    kind: str,
    fingerprint: str = "fp-kp",
    *,
    action_id: str = "",
    who: str = "duty officer",
    comment: str = "",
    minutes: int = 40,
    notification: int = 1,
    **extra: Any,
) -> AlertAction:
    return AlertAction(
        id=action_id or f"{kind}-{minutes}",
        fingerprint=fingerprint,
        action=kind,
        who=who,
        comment=comment,
        at=T0 + timedelta(minutes=minutes),
        notification=notification,
        **extra,
    )


@asynccontextmanager
async def running_console(settings: ConsoleSettings) -> AsyncIterator[Console]:
    """A console on the test broker, on free ports, ready (history read)."""
    console = Console(settings, registry=new_registry("console"))
    async with console:
        await wait_until(lambda: console.ready)
        yield console


def console_settings(kafka_settings: KafkaSettings, **overrides: Any) -> ConsoleSettings:
    return ConsoleSettings(
        **kafka_settings.model_dump(), console_port=0, console_metrics_port=0, **overrides
    )


async def publish(producer: AIOKafkaProducer, topic: str, *messages: Alert | AlertAction) -> None:
    for message in messages:
        await producer.send_and_wait(topic, encode(message), key=message.fingerprint.encode())
