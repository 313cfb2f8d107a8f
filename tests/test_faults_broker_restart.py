"""Cross-service fault: the broker dies and comes back empty while the whole pipeline runs.

A real collector (against a local aiohttp feed server), a real processor and a real alerter run
as subprocesses on our own embedded broker (a fixed port, not the session broker, because we kill
it). Memory storage loses every topic, offset and consumer group, so each service must reconnect,
recreate the topics it writes and resume. The run feeds N distinct items, some of them while the
broker is down, and must end with N distinct ids on news.tagged (duplicates allowed), every
process still running, and each consumer holding every partition of its recreated input topic
(which may come back with another partition count: a client's metadata request recreates it with
the broker's default).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from blocwatch.core.broker import EmbeddedBroker, free_port
from blocwatch.core.kafka import ensure_topics, list_topics
from blocwatch.core.settings import KafkaSettings

from .feedserver import FeedServer
from .pipeline import Pipeline, consumers_resumed, restart_round

pytestmark = pytest.mark.broker

PER_PHASE = 6  # items before the outage, while the broker is down, and after it


@pytest.fixture
async def feeds() -> AsyncIterator[FeedServer]:
    async with FeedServer() as running:
        yield running


async def test_broker_killed_and_restarted_empty_mid_stream_loses_nothing(
    feeds: FeedServer, tmp_path: Path
) -> None:
    broker = EmbeddedBroker(port=free_port(), log_path=tmp_path / "tansu.log")
    await broker.start()
    pipeline: Pipeline | None = None
    try:
        kafka = KafkaSettings(
            kafka_bootstrap_servers=broker.bootstrap_servers, topic_prefix="fault."
        )
        await ensure_topics(kafka)
        pipeline = Pipeline.start(kafka, feeds, tmp_path)
        missing = await restart_round(pipeline, broker, PER_PHASE)
        assert not missing, (
            f"missing {sorted(missing)}\n{pipeline.collector.tail()}\n{pipeline.processor.tail()}"
        )
        # Every topic a service writes exists again (events.* and the DLQs included, which no
        # consumer here would have brought back): records sent to a topic the restarted broker
        # lacks are acknowledged and dropped, so each service recreates what it writes.
        written = set(kafka.topics.all()) - {kafka.topics.alert_actions}  # the console's, not run
        assert set(await list_topics(kafka)) >= written
        await consumers_resumed(pipeline)
        for service in pipeline.services:
            assert service.alive(), f"{service.name} exited:\n{service.tail()}"
    finally:
        statuses = pipeline.close() if pipeline is not None else {}
        await broker.stop()
    assert all(code == 0 for code in statuses.values()), statuses
    for service in pipeline.services:
        assert "Traceback" not in service.log.read_text(errors="replace"), service.tail()
