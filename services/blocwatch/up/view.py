"""Console views: firing alerts for a watch officer, and any topic's records for `tail`.

Everything here turns a record into text or a rich renderable; reading Kafka happens in
`commands.py`. Feed text comes from the internet, so it is always escaped before rich sees it
(a headline containing `[bold]` or control bytes must print as itself).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rich.console import Group, RenderableType
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from blocwatch.core.codec import decode
from blocwatch.core.errors import ContractError
from blocwatch.core.models import Alert, Contract, DeadLetter, NewsItem, TaggedItem
from blocwatch.core.topics import TOPICS

__all__ = [
    "Decoded",
    "alert_panel",
    "decode_record",
    "model_for_topic",
    "record_json",
    "record_line",
]

SEVERITY_STYLE = {"critical": "bold red", "warning": "yellow", "info": "cyan"}
PREVIEW_BYTES = 200
TOP_ITEMS = 5


def model_for_topic(topic: str, prefix: str = "") -> type[Contract] | None:
    """The contract a topic carries: by prefixed name, by base name, or None if unknown."""
    for spec in TOPICS:
        if topic in (spec.name(prefix), spec.base):
            return spec.model
    base = topic.removeprefix(prefix)
    if base.endswith(".dlq"):
        return DeadLetter
    if base.startswith("events."):
        return TaggedItem
    return None


@dataclass(frozen=True)
class Decoded:
    """A record's value decoded with its topic's model, or why it could not be."""

    message: Contract | None
    error: str | None


def decode_record(model: type[Contract] | None, value: bytes | None) -> Decoded:
    """Never raises: poison bytes become an error description to show beside a safe preview."""
    if value is None:
        return Decoded(None, "tombstone (no value)")
    if model is None:
        return Decoded(None, "unknown topic: no contract to decode with")
    try:
        return Decoded(decode(model, value), None)
    except ContractError as exc:
        return Decoded(None, exc.message)
    except (UnicodeDecodeError, ValueError) as exc:
        return Decoded(None, f"undecodable: {exc}")


def _preview(value: bytes | None) -> str:
    """A printable, escaped preview of arbitrary bytes (repr keeps control bytes visible)."""
    if value is None:
        return ""
    text = repr(value[:PREVIEW_BYTES])
    return text + (" …" if len(value) > PREVIEW_BYTES else "")


def _time(value: datetime | None) -> str:
    return value.strftime("%H:%M:%S") if value else "--:--:--"


def _describe(message: Contract) -> str:
    """One line of plain text for any contract (not yet escaped)."""
    if isinstance(message, TaggedItem):
        tags = ", ".join(f"{t.label}/{t.subtype}" for t in message.tags) or "no tags"
        regions = f" [{', '.join(message.regions)}]" if message.regions else ""
        return (
            f"{message.source}: {message.title} — {tags}{regions} "
            f"(story {message.story_id[:8]}, {message.story_sources} sources)"
        )
    if isinstance(message, NewsItem):
        return f"{message.source}: {message.title} ({_time(message.published_at)})"
    if isinstance(message, Alert):
        return f"{message.severity.upper()} {message.status} {message.rule}: {message.summary}"
    if isinstance(message, DeadLetter):
        return f"dead letter from {message.stage} ({message.topic}): {message.error}"
    return message.model_dump_json()


def record_line(
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    decoded: Decoded,
    value: bytes | None,
) -> Text:
    """`tail`'s human format: where, key, then the message or the error with a byte preview."""
    where = Text(f"{topic}[{partition}]@{offset} ", style="dim")
    shown_key = key.decode("utf-8", "replace") if key is not None else "-"
    line = where + Text(f"{shown_key[:60]} ", style="cyan")
    if decoded.message is not None:
        return line + Text(_describe(decoded.message))
    return line + Text(f"{decoded.error} ", style="red") + Text(_preview(value), style="dim")


def record_json(
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    decoded: Decoded,
    value: bytes | None,
) -> str:
    """`tail --json`: the message as JSON, or an envelope with the raw bytes in base64."""
    if decoded.message is not None:
        return decoded.message.model_dump_json()
    envelope: dict[str, Any] = {
        "topic": topic,
        "partition": partition,
        "offset": offset,
        "key": key.decode("utf-8", "replace") if key is not None else None,
        "error": decoded.error,
        "value_base64": base64.b64encode(value).decode() if value is not None else None,
    }
    return json.dumps(envelope)


def alert_panel(alert: Alert) -> Panel:
    """What a watch officer sees when an alert fires: summary, counts, top items and why."""
    style = SEVERITY_STYLE.get(alert.severity, "white") if alert.status == "firing" else "green"
    where = ", ".join(f"{k}={v}" for k, v in alert.group.items())
    header = Text.assemble(
        (f"{alert.severity.upper()} {alert.status.upper()} ", style),
        (alert.rule, "bold"),
        (f"  {where}" if where else "", "cyan"),
        (f"  #{alert.notification}" if alert.notification > 1 else "", "dim"),
    )
    counts = (
        f"{alert.counts.stories} stories, {alert.counts.sources} sources, "
        f"{alert.counts.items} items in {alert.window_seconds / 60:g} min "
        f"(threshold {alert.threshold:g}) · first {_time(alert.first_seen)} "
        f"last {_time(alert.last_seen)} · fired {_time(alert.fired_at)}"
    )
    table = Table(show_header=True, header_style="dim", box=None, padding=(0, 1), expand=True)
    table.add_column("time", no_wrap=True)
    table.add_column("source", no_wrap=True, max_width=22)
    table.add_column("headline", ratio=3)
    table.add_column("why", ratio=2)
    for item in alert.items[:TOP_ITEMS]:
        why = "; ".join(
            f"{t.label}/{t.subtype}: “{' … '.join(e.text for e in t.evidence[:2])}”"
            for t in item.tags
        )
        table.add_row(
            _time(item.published_at),
            escape(item.source),
            f"[link={escape(item.url)}]{escape(item.title)}[/link]",
            escape(why),
        )
    more = len(alert.items) - TOP_ITEMS
    parts: list[RenderableType] = [Text(alert.summary), Text(counts, style="dim"), table]
    if more > 0:
        parts.append(Text(f"… and {more} more items", style="dim"))
    return Panel(Group(*parts), title=header, title_align="left", border_style=style)
