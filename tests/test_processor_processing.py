"""Pure record processing: decode, tag (injected), cluster, route; poison to the DLQ."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry

from blocwatch.core.codec import decode, encode
from blocwatch.core.models import DeadLetter, Evidence, NewsItem, Tag, TaggedItem
from blocwatch.core.topics import Topics
from blocwatch.processor.metrics import ProcessorMetrics
from blocwatch.processor.processing import Outcome, Source, process_record, routes
from blocwatch.processor.stories import StoryConfig, StoryIndex
from blocwatch.processor.tagging import Tagging

NOW = datetime(2026, 6, 19, 9, 0, tzinfo=UTC)
TOPICS = Topics("p.")
SOURCE = Source("p.news.raw", partition=2, offset=41, key=b"k")


def _tag(label: str, subtype: str) -> Tag:
    cameo, plover = ("057", "AGREE") if label == "alliance" else ("150", "MOBILIZE")
    evidence = [Evidence(rule=f"test.{subtype}", text=subtype, start=0, end=len(subtype))]
    return Tag(label=label, subtype=subtype, cameo=cameo, plover=plover, intensity=5.0,
               confidence=0.9, evidence=evidence)  # fmt: skip


def fake_tagger(title: str, summary: str) -> Tagging:
    """Tags by keyword, so routing is tested without depending on the real tagger."""
    tags = []
    if "pact" in title:
        tags.append(_tag("alliance", "defence_pact"))
    if "drill" in title:
        tags.append(_tag("escalation", "exercise"))
    return Tagging(tags=tags, regions=["Korean Peninsula"] if tags else [])


def _news(item_id: str, title: str, **extra: object) -> bytes:
    item = NewsItem(
        id=item_id,
        url=f"https://example.org/{item_id}",
        title=title,
        source="Harbour Times",
        fetched_at=NOW - timedelta(minutes=1),
        **extra,
    )
    return encode(item)


def _run(value: bytes | None, stories: StoryIndex | None = None, tag=fake_tagger) -> Outcome:  # type: ignore[no-untyped-def]
    return process_record(
        value,
        SOURCE,
        topics=TOPICS,
        stories=StoryIndex(StoryConfig()) if stories is None else stories,
        tag=tag,
        tagger_version="test-1",
        now=NOW,
    )


def test_untagged_item_goes_to_news_tagged_only() -> None:
    outcome = _run(_news("a1", "Foreign ministers meet in Geneva"))
    assert [o.topic for o in outcome.outputs] == ["p.news.tagged"]
    assert outcome.outputs[0].key == b"a1"
    item = decode(TaggedItem, outcome.outputs[0].value)
    assert item.tags == []
    assert item.tagger_version == "test-1"
    assert item.tagged_at == NOW
    assert item.story_id
    assert item.story_sources == 1


def test_tagged_item_is_routed_once_per_label() -> None:
    outcome = _run(_news("b1", "Allies sign pact during live-fire drill"))
    topics = [o.topic for o in outcome.outputs]
    assert topics == ["p.news.tagged", "p.events.alliance", "p.events.escalation"]
    assert {o.key for o in outcome.outputs} == {b"b1"}
    assert len({o.value for o in outcome.outputs}) == 1  # the same TaggedItem everywhere
    item = decode(TaggedItem, outcome.outputs[1].value)
    assert item.labels == {"alliance", "escalation"}
    assert item.regions == ["Korean Peninsula"]
    assert item.tags[0].evidence[0].rule == "test.defence_pact"


def test_two_tags_of_one_label_route_once() -> None:
    def two_escalations(title: str, summary: str) -> Tagging:
        return Tagging(tags=[_tag("escalation", "exercise"), _tag("escalation", "threat")])

    outcome = _run(_news("c1", "anything"), tag=two_escalations)
    assert [o.topic for o in outcome.outputs] == ["p.news.tagged", "p.events.escalation"]
    assert outcome.item is not None
    assert routes(sorted(outcome.item.labels), TOPICS) == ["p.news.tagged", "p.events.escalation"]


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"\xff\x00 not json", "Invalid JSON"),
        (b'{"id": "x", "title": "trunc', "EOF while parsing"),
        (json.dumps({"id": "x"}).encode(), "title: Field required"),
        (None, "empty record"),
    ],
)
def test_poison_becomes_a_dead_letter_with_the_reason(value: bytes | None, reason: str) -> None:
    outcome = _run(value)
    assert outcome.item is None
    assert outcome.dead_letter is not None
    [dlq] = outcome.outputs
    assert dlq.topic == "p.news.raw.dlq"
    assert dlq.key == b"k"
    letter = decode(DeadLetter, dlq.value)
    assert reason in letter.error
    assert letter.value == (value or b"")
    assert (letter.topic, letter.partition, letter.offset) == ("p.news.raw", 2, 41)
    assert letter.stage == "processor"
    assert letter.failed_at == NOW


def test_a_tagger_failure_dead_letters_the_item_instead_of_stopping() -> None:
    def broken(title: str, summary: str) -> Tagging:
        raise IndexError("tagger bug")

    outcome = _run(_news("d1", "fine item"), tag=broken)
    assert outcome.dead_letter is not None
    assert outcome.dead_letter.error == "tagger bug"
    assert outcome.dead_letter.error_type == "IndexError"


def test_near_duplicates_carry_story_and_source_count() -> None:
    stories = StoryIndex(StoryConfig())
    first = _run(_news("e1", "Russia and North Korea sign mutual defence pact"), stories)
    other = NewsItem.model_validate_json(_news("e2", "Russia, North Korea sign defence pact"))
    second = _run(encode(other.model_copy(update={"source": "Steppe Daily"})), stories)
    assert first.item is not None
    assert second.item is not None
    assert second.item.story_id == first.item.story_id
    assert second.item.story_sources == 2
    assert first.story is not None
    assert first.story.new
    assert second.story is not None
    assert not second.story.new


def test_future_dated_item_is_clustered_at_processing_time() -> None:
    stories = StoryIndex(StoryConfig(horizon_seconds=3600))
    _run(_news("f1", "Navy drill in the Yellow Sea", published_at=NOW + timedelta(days=3)), stories)
    kept = _run(_news("f2", "Unrelated story about trade talks"), stories)
    assert kept.item is not None
    assert len(stories) == 2


def test_metrics_count_items_tags_stories_and_dead_letters() -> None:
    registry = CollectorRegistry()
    metrics = ProcessorMetrics(registry)
    stories = StoryIndex(StoryConfig())
    metrics.record(_run(_news("g1", "Allies sign pact"), stories))
    metrics.record(_run(_news("g2", "Allies sign pact"), stories))
    metrics.record(_run(b"junk"))
    value = registry.get_sample_value
    assert value("blocwatch_processor_items_total") == 2
    assert value("blocwatch_processor_dead_letters_total") == 1
    assert value("blocwatch_processor_stories_total") == 1
    labels = {"label": "alliance", "subtype": "defence_pact"}
    assert value("blocwatch_processor_tags_total", labels) == 2


def test_story_fields_spliced_into_the_json_make_a_valid_tagged_item() -> None:
    stories = StoryIndex(StoryConfig())
    _run(_news("j0", "Partners sign pact and hold drill near Busan"), stories)
    outcome = _run(_news("j1", "Partners sign pact, hold drill near Busan"), stories)
    assert outcome.story is not None
    payload = outcome.outputs[0].value
    objects: list[list[str]] = []  # keys of each JSON object, innermost first, top level last

    def keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
        objects.append([key for key, _ in pairs])
        return dict(pairs)

    json.loads(payload, object_pairs_hook=keys)
    assert sorted(objects[-1]) == sorted(TaggedItem.model_fields), "every field once, no other"
    item = decode(TaggedItem, payload)
    assert (item.story_id, item.story_sources) == (outcome.story.story_id, outcome.story.sources)
    assert item.tagged_at == NOW
    assert item.tagger_version == "test-1"
    assert outcome.tags == (("alliance", "defence_pact"), ("escalation", "exercise"))


def test_tagger_output_that_fails_validation_is_dead_lettered() -> None:
    def invalid(title: str, summary: str) -> Tagging:
        return Tagging(regions=[None])  # type: ignore[list-item]  # a region must be a string

    outcome = _run(_news("v1", "fine item"), tag=invalid)
    assert outcome.dead_letter is not None
    assert outcome.dead_letter.error_type == "ValidationError"
    assert [o.topic for o in outcome.outputs] == ["p.news.raw.dlq"]
