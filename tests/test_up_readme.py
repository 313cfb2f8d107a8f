"""The README's downstream-consumer example really consumes from the broker."""

from __future__ import annotations

import asyncio
import re
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from blocwatch.core.codec import encode
from blocwatch.core.kafka import make_producer
from blocwatch.core.models import Evidence, Tag, TaggedItem
from blocwatch.core.settings import KafkaSettings

from .conftest import REPO

pytestmark = pytest.mark.broker


def _consumer_example() -> str:
    readme = (REPO / "README.md").read_text("utf-8")
    section = readme.split("## Downstream consumers", 1)[1].split("\n## ", 1)[0]
    [code] = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    return str(code)


def test_example_is_about_ten_lines() -> None:
    lines = [line for line in _consumer_example().splitlines() if line.strip()]
    assert len(lines) <= 14


async def test_readme_consumer_example_prints_a_tagged_item(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    now = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    item = TaggedItem(
        id="urn:readme:1",
        url="https://example.org/test",
        title="Pyongyang test-fires a ballistic missile",
        source="Example Wire",
        fetched_at=now,
        tags=[
            Tag(
                label="escalation",
                subtype="weapons_test",
                cameo="150",
                plover="MOBILIZE",
                intensity=-6,
                confidence=0.9,
                evidence=[Evidence(rule="r", text="test-fires", start=10, end=20)],
            )
        ],
        story_id="s1",
        tagged_at=now,
        tagger_version="test",
    )
    topic = kafka_settings.topics.events("escalation")
    producer = make_producer(kafka_settings, "test")
    await producer.start()
    try:
        await producer.send_and_wait(topic, encode(item), key=item.id.encode())
    finally:
        await producer.stop()

    code = _consumer_example()
    code = code.replace('"127.0.0.1:9092"', repr(kafka_settings.kafka_bootstrap_servers))
    code = code.replace('"events.escalation"', repr(topic))
    code = code.replace('"my-service"', repr(f"{kafka_settings.topic_prefix}readme"))
    script = tmp_path / "consumer.py"
    script.write_text(code, encoding="utf-8")
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(script), stdout=asyncio.subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), timeout=60)
    finally:
        process.kill()
        await process.wait()
    assert (
        line.decode().strip()
        == "urn:readme:1 Pyongyang test-fires a ballistic missile ['weapons_test']"
    )
