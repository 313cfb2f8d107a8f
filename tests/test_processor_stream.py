"""The processor on the embedded broker: routing, dead letters, scale-out and failover.

Workers are real subprocesses (faust starts slowly, so each test reuses its workers for several
checks). Every wait is a condition with a deadline; nothing is timed.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from pathlib import Path

import pytest
from bench.results import child_pids, process_running

from blocwatch.core.codec import decode
from blocwatch.core.models import DeadLetter, TaggedItem
from blocwatch.core.settings import KafkaSettings
from tests.processor_workers import Worker, distinct_ids, news_bytes, produce, read_until

pytestmark = pytest.mark.broker


async def test_every_item_is_tagged_routed_and_poison_is_dead_lettered(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    topics = kafka_settings.topics
    # tagging in a separate process (the fake tagger crosses to it by reference)
    worker = Worker(kafka_settings, tmp_path, "routing", fake_tagger=True, tagging_processes=1)
    try:
        await worker.wait_ready()
        assert worker.ready_statuses <= {0, 503, 200}  # booting is "not ready", never an error
        titles = {
            "plain-1": "Foreign ministers meet in Geneva",
            "pact-1": "Russia and North Korea sign defence pact",
            "both-1": "Partners sign pact, then hold joint drill",
            "drill-1": "Navy drill in the Yellow Sea",
        }
        good = [(k.encode(), news_bytes(k, t)) for k, t in titles.items()]
        poison = [(b"junk-1", b"\xff\xfe not json"), (b"trunc-1", b'{"id": "x", "title": "Na')]
        # poison in the middle: the worker must keep going after it
        await produce(kafka_settings, topics.news_raw, good[:2] + poison + good[2:])

        tagged = await read_until(kafka_settings, topics.news_tagged, set(titles))
        assert distinct_ids(tagged) == set(titles)
        items = {i.id: i for i in (decode(TaggedItem, v) for v in tagged)}
        assert items["plain-1"].tags == []
        assert items["both-1"].labels == {"alliance", "escalation"}
        assert items["pact-1"].tagger_version == "fake-1"

        alliance = await read_until(kafka_settings, topics.events("alliance"), {"pact-1", "both-1"})
        escalation = await read_until(
            kafka_settings, topics.events("escalation"), {"drill-1", "both-1"}
        )
        assert distinct_ids(alliance) == {"pact-1", "both-1"}
        assert distinct_ids(escalation) == {"drill-1", "both-1"}

        dlq = await read_until(kafka_settings, topics.dlq(topics.news_raw), {"junk-1", "trunc-1"})
        letters = {d.key: d for d in (decode(DeadLetter, v) for v in dlq)}
        assert set(letters) == {b"junk-1", b"trunc-1"}
        assert "Invalid JSON" in letters[b"junk-1"].error
        assert letters[b"trunc-1"].value == b'{"id": "x", "title": "Na'
        assert letters[b"trunc-1"].topic == topics.news_raw
        assert letters[b"trunc-1"].offset is not None

        # after the poison, new items still flow; counters show both kinds
        await produce(kafka_settings, topics.news_raw, [(b"late-1", news_bytes("late-1", "x"))])
        await read_until(kafka_settings, topics.news_tagged, {"late-1"})
        assert worker.metric("blocwatch_processor_dead_letters_total") == 2
        assert worker.metric("blocwatch_processor_items_total") == 5
        assert worker.metric("blocwatch_processor_latency_seconds_count") == 7
        assert (worker.metric("blocwatch_processor_stories_total") or 0) >= 1
        assert worker.process.poll() is None
        assert "Traceback" not in worker.log.read_text()

        # story state survives a restart: the new worker recovers it from the table changelog
        assert worker.stop() == 0
        worker = Worker(kafka_settings, tmp_path, "routing-again", fake_tagger=True)
        await worker.wait_ready()
        rewrite = news_bytes("pact-2", "Russia, North Korea sign defence pact", "Steppe Daily")
        await produce(kafka_settings, topics.news_raw, [(b"pact-2", rewrite)])
        again = await read_until(kafka_settings, topics.news_tagged, {"pact-2"})
        [joined] = [i for i in (decode(TaggedItem, v) for v in again) if i.id == "pact-2"]
        assert joined.story_id == items["pact-1"].story_id
        assert joined.story_sources == 2
    finally:
        worker.close()


async def _stream_items(settings: KafkaSettings, ids: list[str]) -> None:
    records = [(i.encode(), news_bytes(i, f"Report {i} on border talks {i}")) for i in ids]
    await produce(settings, settings.topics.news_raw, records, pause_s=0.01)


async def _when(condition: Callable[[], bool], timeout_s: float = 60.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met before the deadline")
        await asyncio.sleep(0.2)


def _assigned(*workers: Worker) -> bool:
    return all((w.metric("blocwatch_processor_assigned_partitions") or 0) > 0 for w in workers)


PACT = "Russia and North Korea sign mutual defence pact in Pyongyang"


def _stories(worker: Worker) -> float:
    return worker.metric("blocwatch_processor_stories_live") or 0


def _processed(worker: Worker) -> float:
    return worker.metric("blocwatch_processor_items_total") or 0


async def _stop_mid_stream(
    settings: KafkaSettings, victim: Worker, stop_signal: signal.Signals, ids: list[str]
) -> None:
    """Feed `ids` slowly and stop `victim` once it has processed some of them."""
    before = _processed(victim)
    feeding = asyncio.create_task(_stream_items(settings, ids))
    await _when(lambda: _processed(victim) > before)
    victim.stop(stop_signal)  # items keep arriving after this
    await feeding


async def test_two_workers_share_partitions_and_a_stopped_or_killed_one_loses_nothing(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    topics = kafka_settings.topics
    first = Worker(kafka_settings, tmp_path, "first")
    second = Worker(kafka_settings, tmp_path, "second", tagging_processes=1)
    third: Worker | None = None
    try:
        await asyncio.gather(first.wait_ready(), second.wait_ready())
        await _when(lambda: _assigned(first, second))  # the group split the partitions

        # one story across workers: the GlobalTable's changelog carries it to the other worker
        await produce(kafka_settings, topics.news_raw, [(b"story-0", news_bytes("story-0", PACT))])
        await read_until(kafka_settings, topics.news_tagged, {"story-0"})
        await _when(lambda: all(_stories(w) >= 1 for w in (first, second)))
        rewrites = {
            f"story-{n}": news_bytes(f"story-{n}", PACT, f"Outlet {n}") for n in range(1, 6)
        }
        await produce(
            kafka_settings, topics.news_raw, [(k.encode(), v) for k, v in rewrites.items()]
        )
        found = await read_until(kafka_settings, topics.news_tagged, {"story-0", *rewrites})
        stories = {i.id: i for i in (decode(TaggedItem, v) for v in found)}
        assert len({i.story_id for i in stories.values()}) == 1
        assert max(i.story_sources for i in stories.values()) >= 2

        terminated = [f"term-{n}" for n in range(200)]
        await _stop_mid_stream(kafka_settings, first, signal.SIGTERM, terminated)
        tagged = await read_until(kafka_settings, topics.news_tagged, set(terminated), 90)
        assert distinct_ids(tagged) >= set(terminated)  # duplicates allowed, losses not

        third = Worker(kafka_settings, tmp_path, "third")
        await third.wait_ready()
        await _when(lambda: _assigned(second, third))
        killed = [f"kill-{n}" for n in range(200)]
        helpers = child_pids(second.process.pid)
        assert helpers, "the second worker runs a tagging process"
        await _stop_mid_stream(kafka_settings, second, signal.SIGKILL, killed)
        tagged = await read_until(kafka_settings, topics.news_tagged, set(killed), 90)
        assert distinct_ids(tagged) >= set(killed)
        assert third.process.poll() is None
        # a killed worker's tagging process notices its parent is gone and exits
        await _when(lambda: not any(process_running(pid) for pid in helpers))
    finally:
        for worker in (first, second, third):
            if worker is not None:
                worker.close()
