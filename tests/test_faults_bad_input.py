"""Bad input, oversized fields and skewed clocks through the real stages.

Property tests (hypothesis) drive the pure paths with many inputs; one broker test then sends a
seeded corpus of the same kinds of input through a real `blocwatch process` worker and a real
alerter, chained on the embedded broker: poison reaches `<topic>.dlq` with the reason, oversized
fields arrive capped, items from the future or days late are tagged and counted by policy, and
nothing stops.
"""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from blocwatch.alerter.rules import load_rules
from blocwatch.alerter.service import Alerter
from blocwatch.alerter.settings import DEFAULT_RULES_FILE, AlerterSettings
from blocwatch.collector.commands import ingest
from blocwatch.collector.feeds import parse_feeds
from blocwatch.core.codec import decode, encode
from blocwatch.core.errors import ConfigError, ContractError
from blocwatch.core.metrics import new_registry
from blocwatch.core.models import (
    CATEGORIES_MAX,
    SUMMARY_MAX,
    TITLE_MAX,
    DeadLetter,
    NewsItem,
    TaggedItem,
)
from blocwatch.core.settings import KafkaSettings
from blocwatch.core.topics import Topics
from blocwatch.processor.processing import Source, process_record
from blocwatch.processor.stories import StoryConfig, StoryIndex
from blocwatch.processor.tagging import tag_text

from .collecting import collector_settings, eventually
from .processor_workers import Worker, produce, read_until

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
TOPICS = Topics("")
VALID = NewsItem(
    id="ok-1",
    url="https://news.example.org/1",
    title="North Korea test-fired a ballistic missile into the East Sea",
    summary="Seoul said the launch came hours after drills.",
    source="Harbour Times",
    fetched_at=NOW,
)
VALID_BYTES = encode(VALID)


def _stories() -> StoryIndex:
    return StoryIndex(StoryConfig(horizon_seconds=43200, similarity=0.3, max_stories=1000))


def _process(value: bytes | None) -> tuple[bool, str]:
    """(dead-lettered?, reason) of one record through the real processing path."""
    outcome = process_record(
        value,
        Source(TOPICS.news_raw, 0, 7, b"k"),
        topics=TOPICS,
        stories=_stories(),
        tag=tag_text,
        tagger_version="t",
        now=NOW,
    )
    if outcome.dead_letter is None:
        assert outcome.item is not None
        assert outcome.outputs[0].topic == TOPICS.news_tagged
        return False, ""
    [output] = outcome.outputs
    assert output.topic == TOPICS.dlq(TOPICS.news_raw)
    return True, outcome.dead_letter.error


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(
    st.binary(max_size=300)
    | st.integers(0, len(VALID_BYTES) - 1).map(lambda cut: VALID_BYTES[:cut])
    | json_values.map(lambda v: json.dumps(v).encode())
)
def test_any_record_on_news_raw_is_tagged_or_dead_lettered_with_a_reason(value: bytes) -> None:
    dead, reason = _process(value)
    if dead:
        assert reason.strip()
        assert value != VALID_BYTES


@settings(max_examples=100, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["title", "summary", "categories", "published_at", "language", "url"]),
        json_values,
        max_size=3,
    )
)
def test_mutated_fields_of_a_valid_item_never_crash_the_processor(
    changes: dict[str, object],
) -> None:
    document = json.loads(VALID_BYTES) | changes
    dead, reason = _process(json.dumps(document).encode())
    assert not dead or reason.strip()


@settings(max_examples=150, deadline=None)
@given(
    st.binary(max_size=300)
    | st.integers(0, 400).map(lambda cut: _tagged_bytes()[:cut])
    | json_values.map(lambda v: json.dumps(v).encode())
)
def test_any_record_on_news_tagged_decodes_or_is_a_contract_error(value: bytes) -> None:
    """The alerter's decode step: a ContractError (→ DLQ with its message), never anything else."""
    try:
        decode(TaggedItem, value)
    except ContractError as exc:
        message = exc.message
    else:
        return
    assert message.strip()


def _tagged_bytes() -> bytes:
    outcome = process_record(
        VALID_BYTES, Source(TOPICS.news_raw), topics=TOPICS, stories=_stories(), tag=tag_text,
        tagger_version="t", now=NOW,
    )  # fmt: skip
    return outcome.outputs[0].value


feed_fields = st.sampled_from(
    ["name", "url", "source", "poll_interval_s", "enabled", "regions", "topics", "language"]
)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.dictionaries(feed_fields, json_values, max_size=5), max_size=3),
    st.dictionaries(st.sampled_from(["poll_interval_s", "language", "bogus"]), json_values),
)
def test_any_feeds_document_loads_or_names_file_and_field(
    entries: list[dict[str, object]], defaults: dict[str, object]
) -> None:
    text = yaml.safe_dump({"defaults": defaults, "feeds": entries})
    message = _feeds_error(text)
    if message is None:
        return
    assert message.startswith("fuzz-feeds.yaml: ")
    # a problem with an entry names the entry and the field
    if "entry" in message and "duplicate" not in message:
        assert "field" in message, message


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_any_bytes_as_a_feeds_file_load_or_name_the_file(data: bytes) -> None:
    message = _feeds_error(data.decode("utf-8", "replace"))
    assert message is None or message.startswith("fuzz-feeds.yaml")


def _feeds_error(text: str) -> str | None:
    try:
        parse_feeds(text, "fuzz-feeds.yaml")
    except ConfigError as exc:
        return exc.message
    return None


# -- the real stages on the embedded broker ------------------------------------------------------


def poison_corpus(seed: int = 9) -> dict[bytes, bytes]:
    """Key → bytes that are not a valid item: random bytes, truncated JSON, wrong shapes."""
    rng = random.Random(seed)
    corpus = {f"rand-{n}".encode(): rng.randbytes(rng.randint(1, 200)) for n in range(8)}
    for n in range(8):
        corpus[f"trunc-{n}".encode()] = VALID_BYTES[: rng.randint(1, len(VALID_BYTES) - 2)]
    corpus[b"shape-list"] = b"[1, 2, 3]"
    corpus[b"shape-missing"] = json.dumps({"id": "x", "title": "no url"}).encode()
    corpus[b"shape-types"] = json.dumps(json.loads(VALID_BYTES) | {"categories": 5}).encode()
    return corpus


def _item(item_id: str, title: str, **fields: object) -> NewsItem:
    return NewsItem.model_validate(
        {"id": item_id, "url": f"https://news.example.org/{item_id}", "title": title,
         "source": "Harbour Times", "fetched_at": datetime.now(UTC), **fields}
    )  # fmt: skip


@pytest.fixture
async def alerter(kafka_settings: KafkaSettings, tmp_path: Path) -> AsyncIterator[Alerter]:
    settings = AlerterSettings(
        **kafka_settings.model_dump(),
        alerter_data_dir=tmp_path / "alerter",
        alerter_group_id="bad-input-alerter",
        alerter_tick_s=0.5,
    )
    service = Alerter(
        settings,
        load_rules(DEFAULT_RULES_FILE),
        registry=new_registry("alerter"),
        receivers=[],  # the alerts topic only
        serve_metrics=False,
        consumer_options={"session_timeout_ms": 1000, "heartbeat_interval_ms": 200},
    )
    async with service:
        yield service


@pytest.mark.broker
async def test_poison_oversized_and_skewed_input_through_the_real_processor_and_alerter(
    kafka_settings: KafkaSettings, tmp_path: Path, alerter: Alerter
) -> None:
    topics = kafka_settings.topics
    worker = Worker(kafka_settings, tmp_path, "bad-input")
    try:
        await worker.wait_ready()
        now = datetime.now(UTC)
        future, late = now + timedelta(days=3), now - timedelta(days=5)
        good = {
            "future-1": _item("future-1", "Navy drill off the coast", published_at=future),
            "late-1": _item("late-1", "North Korea test-fired a missile", published_at=late),
            "plain-1": _item("plain-1", "Ministers meet in Geneva"),
        }
        poison = poison_corpus()
        records = [(k.encode(), encode(v)) for k, v in good.items()] + list(poison.items())
        random.Random(3).shuffle(records)  # poison interleaved with good items
        await produce(kafka_settings, topics.news_raw, records)

        # Oversized fields through `ingest` (JSONL replay), the collector's other entry point.
        huge = {
            "id": "huge-1", "url": "https://news.example.org/huge", "source": "Harbour Times",
            "fetched_at": now.isoformat(), "title": "T" * 100_000, "summary": "word " * 1_000_000,
            "categories": [f"c{i}" for i in range(10_000)],
        }  # fmt: skip
        replay = tmp_path / "huge.jsonl"
        replay.write_text(json.dumps(huge) + "\n")
        report = await ingest(collector_settings(kafka_settings, tmp_path / "ingest"), replay)
        assert (report.published, report.failed) == (1, 0)

        # Poison written straight onto news.tagged is the alerter's to dead-letter.
        tagged_poison = {b"t-rand": b"\x00\x9f garbage", b"t-trunc": _tagged_bytes()[:57]}
        await produce(kafka_settings, topics.news_tagged, list(tagged_poison.items()))

        wanted = {*good, "huge-1"}
        tagged = await read_until(kafka_settings, topics.news_tagged, wanted, 90)
        items = {}
        for value in tagged:
            try:
                item = decode(TaggedItem, value)
            except ContractError:
                continue  # our own poison on the same topic
            items[item.id] = item
        assert set(items) >= wanted
        capped = items["huge-1"]
        assert len(capped.title) <= TITLE_MAX
        assert len(capped.summary) <= SUMMARY_MAX
        assert len(capped.categories) <= CATEGORIES_MAX
        # Clock policy: kept as published (the contract), clustered at processing time.
        assert items["future-1"].published_at is not None
        assert items["future-1"].published_at > now + timedelta(days=2)
        assert items["late-1"].tags  # days late is still news: tagged like any other item

        raw_dlq = await read_until(kafka_settings, topics.dlq(topics.news_raw), set(_keys(poison)))
        letters = {d.key: d for d in (decode(DeadLetter, v) for v in raw_dlq)}
        assert set(letters) == set(poison)
        for key, letter in letters.items():
            assert key is not None
            assert (letter.stage, letter.value, letter.topic) == (
                "processor", poison[key], topics.news_raw)  # fmt: skip
            assert letter.error.strip()
        tagged_dlq = await read_until(
            kafka_settings, topics.dlq(topics.news_tagged), set(_keys(tagged_poison))
        )
        letters = {d.key: d for d in (decode(DeadLetter, v) for v in tagged_dlq)}
        assert set(letters) == set(tagged_poison)
        assert all(d.stage == "alerter" and "TaggedItem" in d.error for d in letters.values())

        registry = alerter.registry

        def consumed() -> float:
            return registry.get_sample_value("blocwatch_alerter_items_total") or 0.0

        await eventually(lambda: consumed() >= len(wanted), "alerter consumed every item", 60)
        assert registry.get_sample_value("blocwatch_alerter_dead_letters_total") == 2
        assert all(not task.done() for task in alerter._tasks)  # still consuming
        assert worker.metric("blocwatch_processor_dead_letters_total") == len(poison)
        assert worker.process.poll() is None
        assert "Traceback" not in worker.log.read_text()
    finally:
        worker.close()


def _keys(records: dict[bytes, bytes]) -> list[str]:
    return [k.decode() for k in records]
