"""Notification text a person can read at 3 a.m.: one summary line, then the evidence."""

from __future__ import annotations

from datetime import datetime, timedelta

from blocwatch.alerter.evaluation import human_duration
from blocwatch.core.models import Alert, AlertItem

__all__ = ["render_text", "render_title"]


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%MZ") if value else "time unknown"


def render_title(alert: Alert) -> str:
    state = "RESOLVED" if alert.status == "resolved" else "FIRING"
    where = ", ".join(v for k, v in alert.group.items() if k != "story")
    return f"[{alert.severity.upper()}] {state} {alert.rule}" + (f" ({where})" if where else "")


def _why(item: AlertItem) -> str:
    reasons = []
    for tag in item.tags:
        spans = "; ".join(f'{e.rule} matched "{e.text}"' for e in tag.evidence[:2])
        reasons.append(
            f"{tag.label}/{tag.subtype} (CAMEO {tag.cameo}, {tag.plover}, "
            f"intensity {tag.intensity:+g})" + (f": {spans}" if spans else "")
        )
    return " | ".join(reasons) or "matched the rule's filter"


def render_text(alert: Alert, max_items: int = 10) -> str:
    """Summary line, top items (source, time, link, why tagged), then window and identity."""
    lines = [f"[{alert.severity.upper()}] {alert.summary}"]
    for item in alert.items[:max_items]:
        lines.append(f"  • {_when(item.published_at)}  {item.source} — {item.title}")
        lines.append(f"    {item.url}")
        lines.append(f"    why: {_why(item)}")
    hidden = alert.counts.items - min(len(alert.items), max_items)
    if hidden > 0:
        lines.append(f"  … and {hidden} more articles")
    window = human_duration(timedelta(seconds=alert.window_seconds))
    lines.append(
        f"  window {window} · first seen {_when(alert.first_seen)} · last seen "
        f"{_when(alert.last_seen)} · notification #{alert.notification} · "
        f"fingerprint {alert.fingerprint}"
    )
    return "\n".join(lines)
