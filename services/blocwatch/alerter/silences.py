"""Silences: time-bounded mute matchers, from the rules file or added with `blocwatch silence`.

A silence matches an alert when every matcher equals the alert's value for that key. Keys are
`rule`, `severity`, `type`, any group key (`region`, `dyad`, …) and any rule label.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from datetime import datetime

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from blocwatch.alerter.rules import ConfigSilence

__all__ = ["Silence", "active_silences", "from_config", "is_silenced", "match_labels"]


class Silence(BaseModel):
    """One mute: matchers, a time range, who and why."""

    model_config = ConfigDict(frozen=True)

    id: str
    matchers: dict[str, str] = Field(min_length=1)
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    comment: str = ""
    created_by: str = ""

    def active(self, now: datetime) -> bool:
        return self.starts_at <= now < self.ends_at

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(labels.get(key) == value for key, value in self.matchers.items())


def match_labels(
    rule: str, severity: str, rule_type: str, group: Mapping[str, str], labels: Mapping[str, str]
) -> dict[str, str]:
    """The label set a silence is matched against (rule labels first, built-ins win)."""
    return {**labels, **group, "rule": rule, "severity": severity, "type": rule_type}


def active_silences(silences: Iterable[Silence], now: datetime) -> list[Silence]:
    return [s for s in silences if s.active(now)]


def is_silenced(silences: Iterable[Silence], labels: Mapping[str, str], now: datetime) -> bool:
    return any(s.active(now) and s.matches(labels) for s in silences)


def from_config(entries: Iterable[ConfigSilence]) -> list[Silence]:
    """Config silences get a stable id from their content, so they never change between loads."""
    silences = []
    for entry in entries:
        digest = hashlib.sha256(entry.model_dump_json().encode()).hexdigest()[:12]
        silences.append(
            Silence(
                id=f"cfg-{digest}",
                matchers=entry.matchers,
                starts_at=entry.starts_at,
                ends_at=entry.ends_at,
                comment=entry.comment,
                created_by=entry.created_by,
            )
        )
    return silences
