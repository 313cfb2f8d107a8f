"""The embedded broker and the Kafka wiring, against the real Tansu binary."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime

import pytest
from aiokafka import TopicPartition
from aiokafka.partitioner import DefaultPartitioner

from blocwatch.core.broker import EmbeddedBroker, free_port
from blocwatch.core.codec import decode, encode
from blocwatch.core.errors import BrokerError, ContractError
from blocwatch.core.kafka import (
    ensure_topics,
    list_topics,
    make_consumer,
    make_producer,
    partition_for,
    send_batched,
)
from blocwatch.core.models import NewsItem
from blocwatch.core.settings import KafkaSettings

from .streams import read_topic

pytestmark = pytest.mark.broker


async def test_news_item_round_trips_through_the_broker(kafka_settings: KafkaSettings) -> None:
    item = NewsItem(
        id="urn:example:1",
        url="https://example.org/pact",
        title="Pyongyang and Moscow ratify defence treaty",
        summary="Both parliaments approved the pact.",
        source="Example Wire",
        fetched_at=datetime(2026, 11, 23, 12, 0, tzinfo=UTC),
        region_hints=["Korean Peninsula"],
    )
    producer = make_producer(kafka_settings, "test")
    await producer.start()
    try:
        await producer.send_and_wait(
            kafka_settings.topics.news_raw, encode(item), key=item.id.encode()
        )
    finally:
        await producer.stop()
    [record] = await read_topic(kafka_settings, kafka_settings.topics.news_raw, count=1)
    assert record.key == b"urn:example:1"
    assert decode(NewsItem, record.value) == item


async def test_invalid_payload_from_the_broker_is_rejected(kafka_settings: KafkaSettings) -> None:
    producer = make_producer(kafka_settings, "test")
    await producer.start()
    try:
        await producer.send_and_wait(kafka_settings.topics.news_raw, b'{"id": "x", "title": 3}')
    finally:
        await producer.stop()
    [record] = await read_topic(kafka_settings, kafka_settings.topics.news_raw, count=1)
    with pytest.raises(ContractError, match=r"title: Input should be a valid string"):
        decode(NewsItem, record.value)


async def test_fetch_high_watermark_is_the_true_end_of_batched_writes(
    kafka_settings: KafkaSettings,
) -> None:
    """What core.kafka.read_to_end relies on: ListOffsets never reads past the
    end, and a fetch response's high watermark is the end. Tansu answers ListOffsets low for
    batched writes (1 for a partition holding 100 records, measured); Apache Kafka exactly."""
    topic = kafka_settings.topics.news_tagged
    producer = make_producer(kafka_settings, "test")
    await producer.start()
    try:
        sent = [await producer.send(topic, b"%d" % n, partition=0) for n in range(100)]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()
    partition = TopicPartition(topic, 0)
    consumer = make_consumer(kafka_settings, "test", group_id=None)
    await consumer.start()
    try:
        consumer.assign([partition])
        listed = (await consumer.end_offsets([partition]))[partition]
        await consumer.seek_to_beginning(partition)
        await consumer.getmany(partition, timeout_ms=5000, max_records=1)
        assert consumer.highwater(partition) == 100
        assert listed <= 100
    finally:
        await consumer.stop()


async def test_batched_sends_land_where_the_default_partitioner_puts_keys(
    kafka_settings: KafkaSettings,
) -> None:
    """send_batched (the processor's outputs): every record arrives once, each key on the
    partition Kafka's default partitioner picks, in order within a partition, also when a
    topic's records overflow several batches (a 4 kB batch size here) and for records without
    a key."""
    topics = [kafka_settings.topics.news_tagged, kafka_settings.topics.events("alliance")]
    records = [
        (topics[n % 3 == 0], None if n % 10 == 9 else b"item-%d" % n, b"%d:" % n + b"x" * 300)
        for n in range(120)
    ]
    producer = make_producer(kafka_settings, "test", max_batch_size=4096)
    await producer.start()
    try:
        futures = await send_batched(producer, records)
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    assert len(futures) > 2 * 3  # more than one batch per topic partition
    for topic in topics:
        sent = [(key, value) for to, key, value in records if to == topic]
        got = await read_topic(kafka_settings, topic, count=len(sent))
        assert sorted((r.key or b"", r.value) for r in got) == sorted(
            (key or b"", value) for key, value in sent
        )
        for record in got:
            if record.key is not None:
                assert record.partition == DefaultPartitioner()(record.key, [0, 1, 2], [])
        for partition in range(3):
            order = [int(r.value.split(b":")[0]) for r in got if r.partition == partition]
            assert order == sorted(order)


# Kafka's own murmur2 test values (UtilsTest, Java's signed int): Utils.toPositive(h) % n is
# the default partitioner's pick for a keyed record.
JAVA_MURMUR2 = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}


def test_partition_for_is_the_java_clients_murmur2() -> None:
    for key, hashed in JAVA_MURMUR2.items():
        for count in (1, 3, 7, 12):
            assert partition_for(key, list(range(count))) == (hashed & 0x7FFFFFFF) % count
    assert partition_for(None, [4]) == 4


async def test_topic_creation_is_idempotent(kafka_settings: KafkaSettings) -> None:
    assert await ensure_topics(kafka_settings) == []  # the fixture created them already
    listed = await list_topics(kafka_settings)
    for name in kafka_settings.topics.all():
        assert listed[name] == 3


async def test_unreachable_broker_is_a_readable_error() -> None:
    settings = KafkaSettings(kafka_bootstrap_servers=f"127.0.0.1:{free_port()}")
    with pytest.raises(BrokerError, match="cannot reach Kafka"):
        await list_topics(settings)


async def test_port_in_use_is_a_readable_error(broker: EmbeddedBroker) -> None:
    with pytest.raises(BrokerError, match="already in use"):
        await EmbeddedBroker(port=broker.port).start()


async def test_restart_serves_again_on_the_same_port() -> None:
    async with EmbeddedBroker() as own:
        port = own.port
        await own.restart()
        assert own.port == port
        settings = KafkaSettings(kafka_bootstrap_servers=own.bootstrap_servers)
        assert await ensure_topics(settings, ["after.restart"]) == ["after.restart"]


def _blocwatch(*args: str, env: dict[str, str] | None = None) -> list[str]:
    return [sys.executable, "-m", "blocwatch", *args]


async def test_cli_broker_then_topics_create_twice() -> None:
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        *_blocwatch("broker", "--port", str(port)),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), timeout=30)
        assert f"broker ready: 127.0.0.1:{port}" in line.decode()
        env = {**os.environ, "BLOCWATCH_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{port}"}
        for expected in ("created  news.raw", "exists   news.raw"):
            done = await asyncio.to_thread(
                subprocess.run,
                _blocwatch("topics", "create"),
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert done.returncode == 0, done.stderr
            assert expected in done.stdout
    finally:
        process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(process.wait(), timeout=30)
    assert code == 0
