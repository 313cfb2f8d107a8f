from __future__ import annotations

from blocwatch.core.models import DeadLetter
from blocwatch.core.topics import TOPICS, Topics


def test_prefix_applies_to_every_topic() -> None:
    names = Topics("prod.").all()
    assert names == [f"prod.{spec.base}" for spec in TOPICS]
    assert "prod.news.raw.dlq" in names


def test_names_and_dead_letter_topics() -> None:
    topics = Topics()
    assert topics.news_raw == "news.raw"
    assert topics.events("escalation") == "events.escalation"
    assert topics.dlq(topics.news_raw) == "news.raw.dlq"
    assert all(s.model is DeadLetter for s in TOPICS if s.base.endswith(".dlq"))
