"""Message contracts: the single source of truth for every payload on every topic.

`schemas/*.schema.json` is generated from these models (`blocwatch schemas write`) and a test fails
when they drift. Changing a contract means adding optional fields; anything else bumps
SCHEMA_VERSION and is documented for consumers in the README.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
)

__all__ = [
    "CATEGORIES_MAX",
    "SCHEMA_VERSION",
    "SUMMARY_MAX",
    "TITLE_MAX",
    "Actor",
    "Alert",
    "AlertAction",
    "AlertCounts",
    "AlertItem",
    "Contract",
    "DeadLetter",
    "Dyad",
    "Evidence",
    "Label",
    "NewsItem",
    "Severity",
    "Tag",
    "TaggedItem",
]

SCHEMA_VERSION = 1

# Caps protect every stage from one hostile feed: a 5 MB summary is cut here, not passed on.
TITLE_MAX = 500
SUMMARY_MAX = 4000
URL_MAX = 2048
CATEGORIES_MAX = 50
CATEGORY_MAX = 100
ITEMS_PER_ALERT_MAX = 50


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def _cap(limit: int) -> BeforeValidator:
    def cut(value: Any) -> Any:
        return value[:limit] if isinstance(value, str) else value

    return BeforeValidator(cut)


def _cap_list(limit: int, item_limit: int) -> BeforeValidator:
    def cut(value: Any) -> Any:
        if not isinstance(value, list | tuple):
            return value
        return [v[:item_limit] if isinstance(v, str) else v for v in list(value)[:limit]]

    return BeforeValidator(cut)


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]
Title = Annotated[str, _cap(TITLE_MAX), Field(max_length=TITLE_MAX)]
Summary = Annotated[str, _cap(SUMMARY_MAX), Field(max_length=SUMMARY_MAX)]
Url = Annotated[str, Field(max_length=URL_MAX)]
Categories = Annotated[
    list[Annotated[str, Field(max_length=CATEGORY_MAX)]],
    _cap_list(CATEGORIES_MAX, CATEGORY_MAX),
    Field(max_length=CATEGORIES_MAX),
]
Label = Literal["alliance", "escalation"]
Severity = Literal["info", "warning", "critical"]
Plover = Literal["COOPERATE", "AID", "AGREE", "SUPPORT", "THREATEN", "MOBILIZE", "SANCTION",
                 "COERCE", "ASSAULT"]  # fmt: skip


class Contract(BaseModel):
    """Base of every message: immutable, and tolerant of fields added by newer producers."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    schema_version: int = Field(
        default=SCHEMA_VERSION, description="Contract version; bumped only on breaking changes."
    )


class NewsItem(Contract):
    """One news entry from a feed, normalised. Topic `news.raw`, key = id."""

    id: str = Field(
        min_length=1,
        max_length=512,
        description="Stable id: the entry guid, else the canonical link without tracking params.",
    )
    url: Url = Field(description="Canonical link to the article.")
    title: Title = Field(description="Plain text, no markup, whitespace collapsed.")
    summary: Summary = Field(default="", description="Plain text, no markup, length-capped.")
    source: str = Field(max_length=200, description="The outlet that published the item.")
    feed: str = Field(default="", max_length=200, description="Feed name from the feeds file.")
    feed_url: Url = Field(default="", description="URL of the feed the item came from.")
    published_at: UtcDatetime | None = Field(
        default=None, description="Publication time in UTC, when the feed gives one."
    )
    fetched_at: UtcDatetime = Field(description="When the collector fetched the feed (UTC).")
    language: str | None = Field(default=None, max_length=35, description="BCP 47 tag.")
    categories: Categories = Field(default_factory=list, description="Feed categories.")
    region_hints: Categories = Field(
        default_factory=list, description="Region hints from the feed's configuration."
    )

    @property
    def event_time(self) -> datetime:
        """The time the item is about: published when known, otherwise fetched."""
        return self.published_at or self.fetched_at


class Evidence(Contract):
    """Why a tag was given: the rule and the exact words it matched."""

    rule: str = Field(description="Id of the tagging rule that fired.")
    text: str = Field(max_length=500, description="The matched span of text.")
    start: int = Field(ge=0, description="Offset of the span in the tagged text.")
    end: int = Field(ge=0, description="End offset (exclusive) of the span.")
    field: Literal["title", "summary", "text"] = Field(
        default="text", description="Which part of the item the span is in."
    )


class Tag(Contract):
    """One label on an item, mapped to the CAMEO and PLOVER ontologies."""

    label: Label
    subtype: str = Field(description="e.g. defence_pact, joint_exercise, weapons_test, sanction.")
    cameo: str = Field(pattern=r"^\d{2,4}$", description="CAMEO event code.")
    plover: Plover = Field(description="PLOVER event type.")
    intensity: float = Field(ge=-10, le=10, description="Goldstein-style intensity, −10…+10.")
    confidence: float = Field(ge=0, le=1)
    evidence: list[Evidence] = Field(default_factory=list)


class Actor(Contract):
    """A state (ISO 3166 alpha-3) or a bloc/organisation (short code such as NATO)."""

    code: str = Field(max_length=16, description="ISO 3166 alpha-3, or a bloc code.")
    name: str = Field(default="", max_length=100)
    kind: Literal["state", "bloc", "organisation"] = "state"
    role: Literal["source", "target", "participant"] = "participant"


class Dyad(Contract):
    """Who did what to whom: a pair of actor codes, ordered source → target."""

    source: str = Field(max_length=16)
    target: str = Field(max_length=16)
    label: Label | None = None


class TaggedItem(NewsItem):
    """A NewsItem with its tags. Topics `news.tagged` (every item), `events.<label>`; key = id."""

    tags: list[Tag] = Field(default_factory=list)
    actors: list[Actor] = Field(default_factory=list)
    dyads: list[Dyad] = Field(default_factory=list)
    regions: list[str] = Field(default_factory=list)
    story_id: str = Field(description="Near-duplicate articles about one event share a story_id.")
    story_sources: int = Field(
        default=1, ge=1, description="Distinct sources that have reported this story so far."
    )
    tagged_at: UtcDatetime
    tagger_version: str

    @property
    def labels(self) -> set[str]:
        return {tag.label for tag in self.tags}


class AlertItem(Contract):
    """One contributing item of an alert, with the evidence a watch officer needs."""

    id: str
    title: Title
    url: Url
    source: str
    published_at: UtcDatetime | None = None
    story_id: str = ""
    tags: list[Tag] = Field(default_factory=list)


class AlertCounts(Contract):
    items: int = Field(ge=0)
    stories: int = Field(ge=0)
    sources: int = Field(ge=0)


class Alert(Contract):
    """A rule firing (or resolving) for one group. Topic `alerts`, key = fingerprint."""

    fingerprint: str = Field(description="Stable hash of rule + group values.")
    rule: str
    rule_type: str = Field(default="threshold")
    severity: Severity
    status: Literal["firing", "resolved"]
    group: dict[str, str] = Field(default_factory=dict, description="group_by key → value.")
    summary: str = Field(max_length=1000, description="One line a person can read at 3 a.m.")
    counts: AlertCounts
    threshold: float
    window_seconds: float = Field(ge=0)
    first_seen: UtcDatetime
    last_seen: UtcDatetime
    items: list[AlertItem] = Field(default_factory=list, max_length=ITEMS_PER_ALERT_MAX)
    actors: list[str] = Field(default_factory=list)
    regions: list[str] = Field(default_factory=list)
    labels: dict[str, str] = Field(default_factory=dict)
    notification: int = Field(
        default=1, ge=1, description="1 for the first notification, +1 for each re-notification."
    )
    fired_at: UtcDatetime


ActionKind = Literal["acknowledge", "claim", "unclaim", "silence", "unsilence"]


class AlertAction(Contract):
    """What a watch officer did to an alert in the console. Topic `alerts.actions`, key =
    fingerprint. The topic is the history: consoles and the alerter fold it from the beginning."""

    id: str = Field(max_length=64, description="Unique id of this action (a silence's id).")
    fingerprint: str = Field(max_length=128, description="The Alert this action is about.")
    action: ActionKind
    who: str = Field(max_length=100, description="Display name (or the authenticated user).")
    comment: str = Field(default="", max_length=2000)
    at: UtcDatetime = Field(description="When it was done (UTC).")
    notification: int | None = Field(
        default=None, ge=1, description="The Alert notification the officer was looking at."
    )
    matchers: dict[str, str] = Field(
        default_factory=dict, description="silence: label → value that must all equal."
    )
    ends_at: UtcDatetime | None = Field(default=None, description="silence: when it expires.")
    silence_id: str = Field(
        default="", max_length=64, description="unsilence: id of the silence action to end."
    )


class DeadLetter(Contract):
    """A record a stage could not process, with the reason. Topic `<topic>.dlq`."""

    # The original bytes may be anything (that is often why they are here): base64 in JSON.
    model_config = ConfigDict(ser_json_bytes="base64", val_json_bytes="base64")

    topic: str = Field(description="Topic the original record came from or was bound for.")
    partition: int | None = None
    offset: int | None = None
    key: bytes | None = Field(default=None, description="Original key, base64.")
    value: bytes = Field(description="Original value bytes, base64.")
    stage: str = Field(description="Which stage gave up: processor, alerter, notify:<receiver>.")
    error: str = Field(max_length=2000, description="Why, readable.")
    error_type: str = ""
    failed_at: UtcDatetime
