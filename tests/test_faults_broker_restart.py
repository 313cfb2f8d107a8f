"""Cross-service fault: the broker dies and comes back empty while the whole pipeline runs.

A real collector (against a local aiohttp feed server), a real processor and a real alerter run
as subprocesses on our own embedded broker (a fixed port, not the session broker, because we kill
it). Memory storage loses every topic, offset and consumer group, so each service must reconnect,
recreate the topics it writes and resume. The run feeds N distinct items, some of them while the
broker is down, and must end with N distinct ids on news.tagged (duplicates allowed) and every
process still running.
"""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from blocwatch.core.broker import EmbeddedBroker, free_port
from blocwatch.core.kafka import ensure_topics, list_topics
from blocwatch.core.settings import KafkaSettings

from .collecting import eventually
from .feedserver import FeedServer, Route, rss
from .processor_workers import FAST_GROUP, distinct_ids, read_until

pytestmark = pytest.mark.broker

REPO = Path(__file__).resolve().parents[1]
BLOCWATCH = Path(sys.executable).with_name("blocwatch")
# items before the outage, items that appear while the broker is down, items after it
FIRST, SECOND, THIRD = 6, 6, 6
TOTAL = FIRST + SECOND + THIRD


class Service:
    """One `blocwatch <command>` subprocess with its metrics port and log file."""

    def __init__(self, command: str, env: dict[str, str], tmp: Path, port_var: str) -> None:
        self.name = command
        self.port = free_port()
        self.log = tmp / f"{command}.log"
        full_env = {**os.environ, **env, port_var: str(self.port)}
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [str(BLOCWATCH), command], env=full_env, cwd=REPO, stdout=log,
                stderr=subprocess.STDOUT,
            )  # fmt: skip

    def metric(self, name: str) -> float:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=2) as r:
                body = r.read().decode()
        except (urllib.error.URLError, OSError):
            return 0.0
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in body.splitlines()
            if line.startswith(name) and not line.startswith("#")
        )

    def alive(self) -> bool:
        return self.process.poll() is None

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def close(self) -> int | None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)
        return self.process.returncode


@pytest.fixture
async def feeds() -> AsyncIterator[FeedServer]:
    async with FeedServer() as running:
        yield running


@pytest.fixture
def services() -> Iterator[list[Service]]:
    started: list[Service] = []
    yield started
    for service in started:
        service.close()


def entries(stop: int) -> list[tuple[str, str, str]]:
    # distinct wording per item so none is a near-duplicate of another (stories stay apart)
    return [
        (f"g{i}", f"Navy drill number {i} near island {i * 7}", f"Report {i}") for i in range(stop)
    ]


def news_tagged_ids(values: list[bytes]) -> set[str]:
    return distinct_ids(values)


async def test_broker_killed_and_restarted_empty_mid_stream_loses_nothing(
    feeds: FeedServer, services: list[Service], tmp_path: Path
) -> None:
    broker = EmbeddedBroker(port=free_port(), log_path=tmp_path / "tansu.log")
    await broker.start()
    try:
        kafka = KafkaSettings(
            kafka_bootstrap_servers=broker.bootstrap_servers, topic_prefix="fault."
        )
        await ensure_topics(kafka)
        feeds.routes["wire"] = Route(rss(entries(FIRST)))
        feeds_file = tmp_path / "feeds.yaml"
        feeds_file.write_text(
            f"feeds:\n  - {{name: wire, url: '{feeds.url('wire')}', poll_interval_s: 1}}\n"
        )
        env = {
            **FAST_GROUP,
            "BLOCWATCH_LOG_LEVEL": "INFO",
            "BLOCWATCH_KAFKA_BOOTSTRAP_SERVERS": kafka.kafka_bootstrap_servers,
            "BLOCWATCH_TOPIC_PREFIX": kafka.topic_prefix,
            "BLOCWATCH_COLLECTOR_FEEDS_FILE": str(feeds_file),
            "BLOCWATCH_COLLECTOR_DATA_DIR": str(tmp_path / "collector"),
            "BLOCWATCH_COLLECTOR_ALLOW_PRIVATE_ADDRESSES": "true",  # the feed is on loopback
            "BLOCWATCH_COLLECTOR_PUBLISH_TIMEOUT_S": "2",
            "BLOCWATCH_PROCESSOR_DATA_DIR": str(tmp_path / "processor"),
            "BLOCWATCH_ALERTER_DATA_DIR": str(tmp_path / "alerter"),
            "BLOCWATCH_ALERTER_SESSION_TIMEOUT_MS": "6000",
            "BLOCWATCH_ALERTER_TICK_S": "1",
        }
        processor = Service("process", env, tmp_path, "BLOCWATCH_PROCESSOR_METRICS_PORT")
        alerter = Service("alert", env, tmp_path, "BLOCWATCH_ALERTER_METRICS_PORT")
        collector = Service("collect", env, tmp_path, "BLOCWATCH_COLLECTOR_METRICS_PORT")
        services += [processor, alerter, collector]

        first = {f"wire:g{i}" for i in range(FIRST)}
        before = await read_until(kafka, kafka.topics.news_tagged, first, timeout_s=120)
        assert news_tagged_ids(before) >= first, processor.tail()
        await eventually(
            lambda: alerter.metric("blocwatch_alerter_items_total") >= FIRST,
            "alerter consumed the first items",
            60,
        )

        # The broker dies: every topic, offset and group is gone. New items appear meanwhile.
        broker.kill()
        feeds.routes["wire"] = Route(rss(entries(FIRST + SECOND)))
        failures = "blocwatch_collector_publish_failures_total"
        # Down for several publish attempts (2 s each), so every client notices, not just one.
        await eventually(lambda: collector.metric(failures) >= 3, "collector saw the outage", 60)
        await broker.start()  # same port, empty
        # Steady state after the restart: items published from now on flow through as well.
        await eventually(
            lambda: collector.metric("blocwatch_collector_items_published_total") >= FIRST + SECOND,
            "collector drained its buffer into the new broker",
            90,
        )
        feeds.routes["wire"] = Route(rss(entries(TOTAL)))

        everything = {f"wire:g{i}" for i in range(TOTAL)}
        after = await read_until(kafka, kafka.topics.news_tagged, everything - first, 180)
        missing = everything - news_tagged_ids(before) - news_tagged_ids(after)
        assert not missing, f"missing {sorted(missing)}\n{collector.tail()}\n{processor.tail()}"
        # Every topic a service writes exists again (events.* and the DLQs included, which no
        # consumer here would have brought back): records sent to a topic the restarted broker
        # lacks are acknowledged and dropped, so each service recreates what it writes.
        assert set(await list_topics(kafka)) >= set(kafka.topics.all())
        await eventually(
            lambda: alerter.metric("blocwatch_alerter_items_total") >= TOTAL,
            "alerter resumed on the new news.tagged",
            90,
        )
        for service in services:
            assert service.alive(), f"{service.name} exited:\n{service.tail()}"
    finally:
        statuses = {s.name: s.close() for s in services}
        await broker.stop()
    assert all(code == 0 for code in statuses.values()), statuses
    for service in services:
        assert "Traceback" not in service.log.read_text(errors="replace"), service.tail()
