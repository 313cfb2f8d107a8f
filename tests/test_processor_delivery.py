"""Delivery: the processor's batched output path, on the real embedded broker."""

from __future__ import annotations

import asyncio
from collections import defaultdict

import pytest
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner

from blocwatch.core.kafka import make_producer
from blocwatch.core.settings import KafkaSettings
from blocwatch.processor.delivery import Delivery
from blocwatch.processor.processing import Output
from tests.streams import read_topic


async def test_every_output_arrives_in_order_on_the_default_partitioners_partition(
    kafka_settings: KafkaSettings,
) -> None:
    topics = kafka_settings.topics
    producer = make_producer(kafka_settings, "test", linger_ms=0, max_batch_size=4096)
    await producer.start()
    try:
        delivery = Delivery(producer, linger_s=0.002)
        futures = []
        for n in range(600):  # small batches: many of them fill up and go before the linger
            key = f"item-{n % 50}".encode()
            for topic in (topics.news_tagged, topics.events("alliance")):
                output = Output(topic, key, f"{n}".encode() * 20)
                futures.append(await delivery.send(output))
        await asyncio.wait_for(asyncio.gather(*futures), timeout=30)
        partitions = sorted(await producer.partitions_for(topics.news_tagged))
    finally:
        await producer.stop()
    for topic in (topics.news_tagged, topics.events("alliance")):
        records = await read_topic(kafka_settings, topic, count=600)
        assert len(records) == 600
        by_key: dict[bytes, list[int]] = defaultdict(list)
        for record in records:
            assert record.key is not None
            assert record.value is not None
            expected = DefaultPartitioner()(record.key, partitions, partitions)
            assert record.partition == expected, "same partition as Kafka's default partitioner"
            by_key[record.key].append(int(record.value[: len(record.value) // 20]))
        assert all(values == sorted(values) for values in by_key.values()), "per-key order kept"


async def test_a_record_larger_than_a_batch_still_goes(kafka_settings: KafkaSettings) -> None:
    producer = make_producer(kafka_settings, "test", linger_ms=0, max_batch_size=1024)
    await producer.start()
    try:
        delivery = Delivery(producer)
        small = await delivery.send(Output(kafka_settings.topics.news_tagged, b"k", b"s"))
        large = await delivery.send(Output(kafka_settings.topics.news_tagged, b"k", b"x" * 50_000))
        await asyncio.wait_for(asyncio.gather(small, large), timeout=30)
    finally:
        await producer.stop()
    records = await read_topic(kafka_settings, kafka_settings.topics.news_tagged, count=2)
    assert [len(r.value or b"") for r in records] == [1, 50_000]


async def test_flush_sends_what_is_open_and_a_stopped_producer_fails_the_futures(
    kafka_settings: KafkaSettings,
) -> None:
    producer = make_producer(kafka_settings, "test", linger_ms=0)
    await producer.start()
    delivery = Delivery(producer, linger_s=60)  # nothing would go before the flush
    sent = await delivery.send(Output(kafka_settings.topics.news_tagged, b"k", b"v"))
    await asyncio.wait_for(delivery.flush(), timeout=30)
    assert isinstance(sent, asyncio.Future)
    assert sent.done()
    await producer.stop()
    # Records accepted after the producer stopped must fail, never hang or look delivered.
    orphan = await delivery.send(Output(kafka_settings.topics.news_tagged, b"k", b"late"))
    await delivery.flush()
    with pytest.raises(KafkaError):
        await asyncio.wait_for(orphan, timeout=10)
