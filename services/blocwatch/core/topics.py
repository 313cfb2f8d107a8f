"""The topic registry: every topic's name, key, contract and layout, owned in one place."""

from __future__ import annotations

from dataclasses import dataclass

from blocwatch.core.models import Alert, AlertAction, Contract, DeadLetter, NewsItem, TaggedItem

__all__ = ["TOPICS", "TopicSpec", "Topics", "dlq_of"]

DLQ_SUFFIX = ".dlq"


@dataclass(frozen=True)
class TopicSpec:
    """One topic: its unprefixed name, what its key is, and the model each message carries."""

    base: str
    model: type[Contract]
    key: str
    description: str

    def name(self, prefix: str = "") -> str:
        return f"{prefix}{self.base}"


def dlq_of(spec: TopicSpec) -> TopicSpec:
    return TopicSpec(
        base=spec.base + DLQ_SUFFIX,
        model=DeadLetter,
        key="original key",
        description=f"records from {spec.base} a stage could not process, with the reason",
    )


NEWS_RAW = TopicSpec("news.raw", NewsItem, "item id", "every normalised feed entry, once")
NEWS_TAGGED = TopicSpec("news.tagged", TaggedItem, "item id", "every item with its tags (or none)")
EVENTS_ALLIANCE = TopicSpec(
    "events.alliance", TaggedItem, "item id", "items carrying an alliance tag"
)
EVENTS_ESCALATION = TopicSpec(
    "events.escalation", TaggedItem, "item id", "items carrying an escalation tag"
)
ALERTS = TopicSpec("alerts", Alert, "fingerprint", "alert firings, re-notifications, resolutions")
ALERT_ACTIONS = TopicSpec(
    "alerts.actions",
    AlertAction,
    "fingerprint",
    "console actions: acknowledge, claim, unclaim, silence, unsilence (the history)",
)

TOPICS: tuple[TopicSpec, ...] = (
    NEWS_RAW,
    NEWS_TAGGED,
    EVENTS_ALLIANCE,
    EVENTS_ESCALATION,
    ALERTS,
    ALERT_ACTIONS,
    dlq_of(NEWS_RAW),
    dlq_of(NEWS_TAGGED),
    dlq_of(ALERTS),
)


@dataclass(frozen=True)
class Topics:
    """Topic names resolved for one deployment's prefix; services take this, not raw strings."""

    prefix: str = ""

    @property
    def news_raw(self) -> str:
        return NEWS_RAW.name(self.prefix)

    @property
    def news_tagged(self) -> str:
        return NEWS_TAGGED.name(self.prefix)

    @property
    def alerts(self) -> str:
        return ALERTS.name(self.prefix)

    @property
    def alert_actions(self) -> str:
        return ALERT_ACTIONS.name(self.prefix)

    def events(self, label: str) -> str:
        return f"{self.prefix}events.{label}"

    def dlq(self, topic: str) -> str:
        """The dead-letter topic of a (prefixed) topic name."""
        return topic + DLQ_SUFFIX

    def all(self) -> list[str]:
        return [spec.name(self.prefix) for spec in TOPICS]
