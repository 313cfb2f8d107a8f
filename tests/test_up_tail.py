"""`blocwatch tail` against the embedded broker, as a user runs it (a subprocess)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from datetime import UTC, datetime

import pytest

from blocwatch.core.codec import encode
from blocwatch.core.kafka import make_producer
from blocwatch.core.models import NewsItem
from blocwatch.core.settings import KafkaSettings

pytestmark = pytest.mark.broker

ITEM = NewsItem(
    id="urn:tail:1",
    url="https://example.org/drills",
    title="Navies begin joint drills in the Yellow Sea",
    source="Example Wire",
    fetched_at=datetime(2026, 11, 23, 12, 0, tzinfo=UTC),
)
POISON = b"\xff\xfe not json [bold]x[/bold]"


def _env(settings: KafkaSettings) -> dict[str, str]:
    return {
        **os.environ,
        "BLOCWATCH_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "BLOCWATCH_TOPIC_PREFIX": settings.topic_prefix,
        "COLUMNS": "200",
    }


async def _produce(settings: KafkaSettings, *records: tuple[bytes | None, bytes]) -> None:
    producer = make_producer(settings, "test")
    await producer.start()
    try:
        for key, value in records:
            await producer.send_and_wait(settings.topics.news_raw, value, key=key)
    finally:
        await producer.stop()


async def _tail(settings: KafkaSettings, *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "blocwatch",
        "tail",
        *args,
        env=_env(settings),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_tail_pretty_prints_items_and_poison(kafka_settings: KafkaSettings) -> None:
    await _produce(kafka_settings, (ITEM.id.encode(), encode(ITEM)), (b"bad", POISON))
    code, out, err = await _tail(
        kafka_settings, "news.raw", "--from-beginning", "--count", "2", "--timeout", "60"
    )
    assert code == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == 2
    good = next(line for line in lines if "urn:tail:1" in line)
    assert "Example Wire: Navies begin joint drills in the Yellow Sea" in good
    assert f"{kafka_settings.topics.news_raw}[" in good
    bad = next(line for line in lines if line.split()[1] == "bad")
    assert "invalid NewsItem" in bad
    assert "\\xff\\xfe not json [bold]x[/bold]" in bad


async def test_tail_json_is_one_document_per_line(kafka_settings: KafkaSettings) -> None:
    await _produce(kafka_settings, (ITEM.id.encode(), encode(ITEM)), (None, POISON))
    code, out, err = await _tail(
        kafka_settings, "news.raw", "--from-beginning", "--json", "--count", "2", "--timeout", "60"
    )
    assert code == 0, err
    documents = [json.loads(line) for line in out.strip().splitlines()]
    decoded = next(d for d in documents if "id" in d)
    assert NewsItem.model_validate(decoded) == ITEM
    envelope = next(d for d in documents if "error" in d)
    assert envelope["key"] is None
    assert envelope["topic"] == kafka_settings.topics.news_raw


async def test_tail_stops_at_timeout_and_names_missing_topics(
    kafka_settings: KafkaSettings,
) -> None:
    code, out, _ = await _tail(kafka_settings, "alerts", "--from-beginning", "--timeout", "2")
    assert code == 0
    assert out == ""
    code, _, err = await _tail(kafka_settings, "no.such.topic", "--timeout", "2")
    assert code == 2
    assert f"topic {kafka_settings.topic_prefix}no.such.topic does not exist" in err
    assert "Traceback" not in err
