"""Contracts: pure validation rules every stage relies on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from blocwatch.core.codec import dead_letter, decode, encode
from blocwatch.core.errors import ContractError
from blocwatch.core.models import (
    CATEGORIES_MAX,
    SUMMARY_MAX,
    TITLE_MAX,
    DeadLetter,
    NewsItem,
    Tag,
    TaggedItem,
)

FETCHED = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def news(**overrides: object) -> NewsItem:
    fields: dict[str, object] = {
        "id": "guid-1",
        "url": "https://example.org/a",
        "title": "Russia and North Korea sign mutual defence pact",
        "summary": "The treaty obliges each side to aid the other.",
        "source": "Example News",
        "feed_url": "https://example.org/rss",
        "fetched_at": FETCHED,
    }
    fields.update(overrides)
    return NewsItem.model_validate(fields)


def test_datetimes_are_normalised_to_utc() -> None:
    seoul = timezone(timedelta(hours=9))
    item = news(published_at=datetime(2026, 11, 23, 21, 0, tzinfo=seoul))
    assert item.published_at == datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    assert item.published_at is not None
    assert item.published_at.utcoffset() == timedelta(0)


def test_naive_datetimes_are_rejected_with_the_field_named() -> None:
    payload = encode(news()).replace(b'"2026-11-23T12:00:00Z"', b'"2026-11-23T12:00:00"')
    with pytest.raises(ContractError, match="fetched_at"):
        decode(NewsItem, payload)


def test_event_time_falls_back_to_fetch_time() -> None:
    assert news().event_time == FETCHED
    published = FETCHED - timedelta(hours=1)
    assert news(published_at=published).event_time == published


def test_oversized_fields_are_capped_not_passed_on() -> None:
    item = news(title="x" * 100_000, summary="y" * 5_000_000, categories=["c"] * 10_000)
    assert len(item.title) == TITLE_MAX
    assert len(item.summary) == SUMMARY_MAX
    assert len(item.categories) == CATEGORIES_MAX


def test_round_trip_is_lossless() -> None:
    item = news(published_at=FETCHED, categories=["Asia"], region_hints=["Korean Peninsula"])
    assert decode(NewsItem, encode(item)) == item


def test_invalid_payload_names_every_failing_field() -> None:
    with pytest.raises(ContractError) as caught:
        decode(NewsItem, b'{"id": "", "url": "u", "title": "t", "source": "s"}')
    message = str(caught.value)
    assert "id:" in message
    assert "fetched_at:" in message


def test_garbage_bytes_are_a_contract_error() -> None:
    with pytest.raises(ContractError, match="invalid NewsItem"):
        decode(NewsItem, b"\xff\x00not json")


def test_tag_rejects_out_of_range_intensity() -> None:
    with pytest.raises(ValueError, match="intensity"):
        Tag(label="escalation", subtype="weapons_test", cameo="150", plover="MOBILIZE",
            intensity=12, confidence=0.9)  # fmt: skip


def test_tagged_item_extends_news_item() -> None:
    tagged = TaggedItem(
        **news().model_dump(),
        tags=[
            Tag(
                label="alliance",
                subtype="defence_pact",
                cameo="057",
                plover="COOPERATE",
                intensity=8.0,
                confidence=0.9,
            )
        ],
        story_id="s1",
        tagged_at=FETCHED,
        tagger_version="test",
    )
    assert tagged.labels == {"alliance"}
    assert decode(NewsItem, encode(tagged)).id == "guid-1"  # readable as a plain NewsItem


def test_dead_letter_keeps_the_original_bytes() -> None:
    raw = b"\x00\xffpoison"
    letter = dead_letter(topic="news.raw", value=raw, stage="processor",
                         error=ValueError("bad"), now=FETCHED, partition=1, offset=7)  # fmt: skip
    back = decode(DeadLetter, encode(letter))
    assert back.value == raw
    assert back.error_type == "ValueError"
    assert (back.partition, back.offset) == (1, 7)
