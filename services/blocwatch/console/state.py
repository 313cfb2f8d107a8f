"""The board: Alert and AlertAction events folded into what a watch officer sees now.

Pure: no Kafka, HTTP or clock here. The console feeds every record of `alerts` and
`alerts.actions` (from the beginning) through `Board.apply_alert` / `Board.apply_action`, and
asks `Board.views(now)` for the sorted board. Several consoles reading the same topics agree.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Literal

from blocwatch.alerter.silences import match_labels
from blocwatch.core.models import Alert, AlertAction, AlertCounts

__all__ = [
    "SEVERITY_RANK",
    "Ack",
    "AlertView",
    "Board",
    "BoardFilter",
    "Claim",
    "SilenceView",
    "default_matchers",
    "sparkline_counts",
]

SEVERITY_RANK = {"critical": 0, "warning": 1, "info": 2}
DisplayStatus = Literal["firing", "acknowledged", "silenced", "resolved"]


@dataclass(frozen=True)
class Ack:
    who: str
    comment: str
    at: datetime
    counts: AlertCounts  # what the officer acknowledged: growth beyond it re-opens the alert


@dataclass(frozen=True)
class Claim:
    who: str
    at: datetime


@dataclass(frozen=True)
class SilenceView:
    id: str
    fingerprint: str
    matchers: dict[str, str]
    starts_at: datetime
    ends_at: datetime
    who: str
    comment: str

    def active(self, now: datetime) -> bool:
        return self.starts_at <= now < self.ends_at

    def matches(self, alert: Alert) -> bool:
        labels = match_labels(
            alert.rule, alert.severity, alert.rule_type, alert.group, alert.labels
        )
        return all(labels.get(key) == value for key, value in self.matchers.items())


@dataclass(frozen=True)
class AlertView:
    """One alert as the board shows it: the latest notification plus what people did."""

    alert: Alert
    ack: Ack | None = None
    claim: Claim | None = None
    silences: tuple[SilenceView, ...] = ()
    history: tuple[AlertAction, ...] = ()

    @property
    def fingerprint(self) -> str:
        return self.alert.fingerprint

    @property
    def status(self) -> DisplayStatus:
        if self.alert.status == "resolved":
            return "resolved"
        if self.silences:
            return "silenced"
        return "acknowledged" if self.ack is not None else "firing"

    @property
    def labels(self) -> list[str]:
        """The tag labels of the contributing items (alliance, escalation)."""
        return sorted({tag.label for item in self.alert.items for tag in item.tags})

    def sort_key(self) -> tuple[int, int, datetime]:
        # Firing (any open state) before resolved, then severity, then age: the alert that has
        # been open longest comes first, so nothing old hides under a stream of new ones.
        return (
            0 if self.alert.status == "firing" else 1,
            SEVERITY_RANK.get(self.alert.severity, 9),
            self.alert.first_seen,
        )


@dataclass(frozen=True)
class BoardFilter:
    """The board's filters; empty strings mean "any"."""

    severity: str = ""
    region: str = ""
    label: str = ""
    status: str = ""

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> BoardFilter:
        return cls(
            severity=query.get("severity", ""),
            region=query.get("region", ""),
            label=query.get("label", ""),
            status=query.get("status", ""),
        )

    def accepts(self, view: AlertView) -> bool:
        alert = view.alert
        regions = set(alert.regions) | set(alert.group.values())
        return (
            (not self.severity or alert.severity == self.severity)
            and (not self.region or self.region in regions)
            and (not self.label or self.label in view.labels)
            and (not self.status or self.status == view.status)
        )


@dataclass
class Board:
    """Every alert and every action, folded in topic order; never reads a clock.

    The two topics interleave in any order (an action may be read before its alert when a
    console replays history), so acknowledgement and claim are derived when a view is asked
    for, from the actions of the alert's current episode, not kept as running state.
    """

    ack_until_growth: bool = True
    max_alerts: int = 500
    alerts: dict[str, Alert] = field(default_factory=dict)
    episodes: dict[str, datetime] = field(default_factory=dict)  # fp → episode start
    counts_seen: dict[tuple[str, int], AlertCounts] = field(default_factory=dict)
    silences: dict[str, SilenceView] = field(default_factory=dict)
    history: dict[str, list[AlertAction]] = field(default_factory=dict)
    seen_actions: set[str] = field(default_factory=set)

    def apply_alert(self, alert: Alert) -> bool:
        """Take a notification; False when it is older than what the board holds."""
        fp = alert.fingerprint
        known = self.alerts.get(fp)
        if known is not None and (alert.fired_at, alert.notification) < (
            known.fired_at,
            known.notification,
        ):
            return False  # partitions interleave: an older notification changes nothing
        if alert.status == "firing" and alert.notification == 1:
            self.episodes[fp] = alert.fired_at  # a new episode: earlier actions are history
            for key in [k for k in self.counts_seen if k[0] == fp]:
                del self.counts_seen[key]
        self.counts_seen[(fp, alert.notification)] = alert.counts
        self.alerts[fp] = alert
        self._trim()
        return True

    def apply_action(self, action: AlertAction) -> bool:
        """Take a console action; False for a duplicate (redelivery) or an unknown silence."""
        if action.id in self.seen_actions:
            return False
        self.seen_actions.add(action.id)
        self.history.setdefault(action.fingerprint, []).append(action)
        if action.action == "silence" and action.ends_at is not None and action.matchers:
            self.silences[action.id] = SilenceView(
                action.id, action.fingerprint, dict(action.matchers), action.at, action.ends_at,
                action.who, action.comment,
            )  # fmt: skip
        elif action.action == "unsilence":
            silence = self.silences.get(action.silence_id)
            if silence is None:
                return False
            self.silences[silence.id] = replace(silence, ends_at=max(action.at, silence.starts_at))
        return True

    def _episode_actions(self, alert: Alert) -> list[AlertAction]:
        start = self.episodes.get(alert.fingerprint, alert.first_seen)
        actions = [a for a in self.history.get(alert.fingerprint, ()) if a.at >= start]
        return sorted(actions, key=lambda a: a.at)

    def _ack(self, alert: Alert, actions: list[AlertAction]) -> Ack | None:
        acks = [a for a in actions if a.action == "acknowledge"]
        if not acks:
            return None
        last = acks[-1]
        # Counts the officer saw; unknown (not read yet, or trimmed) counts as "no growth".
        seen = self.counts_seen.get((alert.fingerprint, last.notification or 0), alert.counts)
        if self.ack_until_growth and _grew(seen, alert.counts):
            return None  # it grew since: it needs eyes again
        return Ack(last.who, last.comment, last.at, seen)

    @staticmethod
    def _claim(actions: list[AlertAction]) -> Claim | None:
        claim = None
        for action in actions:
            if action.action == "claim":
                claim = Claim(action.who, action.at)
            elif action.action == "unclaim":
                claim = None
        return claim

    def view(self, fingerprint: str, now: datetime) -> AlertView | None:
        alert = self.alerts.get(fingerprint)
        if alert is None:
            return None
        actions = self._episode_actions(alert)
        return AlertView(
            alert=alert,
            ack=self._ack(alert, actions),
            claim=self._claim(actions),
            silences=tuple(s for s in self.silences.values() if s.active(now) and s.matches(alert)),
            history=tuple(self.history.get(fingerprint, ())),
        )

    def views(self, now: datetime, board_filter: BoardFilter | None = None) -> list[AlertView]:
        """Every alert, firing first by severity and age, then resolved (newest first)."""
        views = [v for fp in self.alerts if (v := self.view(fp, now)) is not None]
        if board_filter is not None:
            views = [v for v in views if board_filter.accepts(v)]
        firing = sorted((v for v in views if v.alert.status == "firing"), key=AlertView.sort_key)
        resolved = sorted(
            (v for v in views if v.alert.status != "firing"),
            key=lambda v: (SEVERITY_RANK.get(v.alert.severity, 9), -v.alert.fired_at.timestamp()),
        )
        return firing + resolved

    def active_silences(self, now: datetime) -> list[SilenceView]:
        return sorted((s for s in self.silences.values() if s.active(now)), key=lambda s: s.ends_at)

    def _trim(self) -> None:
        """Bound memory: drop the oldest resolved alerts beyond max_alerts."""
        excess = len(self.alerts) - self.max_alerts
        if excess <= 0:
            return
        resolved = sorted(
            (a for a in self.alerts.values() if a.status == "resolved"), key=lambda a: a.fired_at
        )
        for alert in resolved[:excess]:
            del self.alerts[alert.fingerprint]
            self.episodes.pop(alert.fingerprint, None)
            self.history.pop(alert.fingerprint, None)


def _grew(before: AlertCounts, after: AlertCounts) -> bool:
    """Any count went up (a re-notification without growth is a repeat, not news)."""
    return (
        after.stories > before.stories
        or after.items > before.items
        or after.sources > before.sources
    )


def default_matchers(alert: Alert) -> dict[str, str]:
    """A silence prefilled from an alert: its rule and group values (what makes it unique)."""
    return {"rule": alert.rule, **alert.group}


def sparkline_counts(alert: Alert, bins: int = 12) -> list[int]:
    """Contributing items per time bin over the alert's window ending at last_seen."""
    window = timedelta(seconds=alert.window_seconds) or (alert.last_seen - alert.first_seen)
    start = alert.last_seen - window
    width = window / bins if window > timedelta(0) else timedelta(seconds=1)
    counts = [0] * bins
    times: Iterable[datetime] = (i.published_at or alert.last_seen for i in alert.items)
    for at in times:
        index = int((at - start) / width) if at >= start else 0
        counts[min(max(index, 0), bins - 1)] += 1
    return counts
