"""The whole pipeline as subprocesses on one embedded broker, and one broker-restart round.

Used by the cross-service fault test (one short round) and by the soak (`python -m bench.soak`,
many longer rounds): a real collector polling a local aiohttp feed server, a real processor and a
real alerter, each a `blocwatch` subprocess with its own metrics port and log file.
"""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from blocwatch.core.broker import EmbeddedBroker, free_port
from blocwatch.core.kafka import list_topics
from blocwatch.core.settings import KafkaSettings

from .collecting import eventually
from .feedserver import FeedServer, Route, rss
from .processor_workers import FAST_GROUP, distinct_ids, read_until

__all__ = ["FEED", "Pipeline", "Service", "consumers_resumed", "restart_round"]

REPO = Path(__file__).resolve().parents[1]
BLOCWATCH = Path(sys.executable).with_name("blocwatch")
FEED = "wire"


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
        """Sum of a metric's samples (0 while the endpoint is not up)."""
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


def entries(stop: int) -> list[tuple[str, str, str]]:
    # distinct wording per item so none is a near-duplicate of another (stories stay apart)
    return [
        (f"g{i}", f"Navy drill number {i} near island {i * 7}", f"Report {i}") for i in range(stop)
    ]


@dataclass
class Pipeline:
    """collector → processor → alerter on `kafka`, the collector polling `feeds`."""

    kafka: KafkaSettings
    feeds: FeedServer
    collector: Service
    processor: Service
    alerter: Service
    fed: int = 0  # items the feed offers so far

    @classmethod
    def start(cls, kafka: KafkaSettings, feeds: FeedServer, tmp: Path) -> Pipeline:
        feeds.routes[FEED] = Route(rss([]))
        feeds_file = tmp / "feeds.yaml"
        url = feeds.url(FEED)
        feeds_file.write_text(f"feeds:\n  - {{name: {FEED}, url: '{url}', poll_interval_s: 1}}\n")
        env = {
            **FAST_GROUP,
            "BLOCWATCH_LOG_LEVEL": "INFO",
            "BLOCWATCH_KAFKA_BOOTSTRAP_SERVERS": kafka.kafka_bootstrap_servers,
            "BLOCWATCH_TOPIC_PREFIX": kafka.topic_prefix,
            "BLOCWATCH_COLLECTOR_FEEDS_FILE": str(feeds_file),
            "BLOCWATCH_COLLECTOR_DATA_DIR": str(tmp / "collector"),
            "BLOCWATCH_COLLECTOR_ALLOW_PRIVATE_ADDRESSES": "true",  # the feed is on loopback
            "BLOCWATCH_COLLECTOR_PUBLISH_TIMEOUT_S": "2",
            "BLOCWATCH_PROCESSOR_DATA_DIR": str(tmp / "processor"),
            "BLOCWATCH_ALERTER_DATA_DIR": str(tmp / "alerter"),
            "BLOCWATCH_ALERTER_SESSION_TIMEOUT_MS": "6000",
            "BLOCWATCH_ALERTER_TICK_S": "1",
        }
        processor = Service("process", env, tmp, "BLOCWATCH_PROCESSOR_METRICS_PORT")
        alerter = Service("alert", env, tmp, "BLOCWATCH_ALERTER_METRICS_PORT")
        collector = Service("collect", env, tmp, "BLOCWATCH_COLLECTOR_METRICS_PORT")
        return cls(kafka, feeds, collector, processor, alerter)

    @property
    def services(self) -> list[Service]:
        return [self.collector, self.processor, self.alerter]

    def offer(self, count: int) -> set[str]:
        """The feed grows by `count` new entries; returns their item ids."""
        start, self.fed = self.fed, self.fed + count
        self.feeds.routes[FEED] = Route(rss(entries(self.fed)))
        return {f"{FEED}:g{i}" for i in range(start, self.fed)}

    def published(self) -> float:
        return self.collector.metric("blocwatch_collector_items_published_total")

    def close(self) -> dict[str, int | None]:
        return {service.name: service.close() for service in self.services}


async def restart_round(
    pipeline: Pipeline, broker: EmbeddedBroker, per_phase: int, timeout_s: float = 180.0
) -> set[str]:
    """Items before, during and after a broker kill + empty restart; returns the ids missing
    from news.tagged (duplicates allowed, losses not)."""
    kafka, topic = pipeline.kafka, pipeline.kafka.topics.news_tagged
    # Before: the pipeline has delivered this phase (what the killed broker had acknowledged but
    # nobody consumed yet would be lost with its memory; that is memory storage, not a service).
    before_ids = pipeline.offer(per_phase)
    before = distinct_ids(await read_until(kafka, topic, before_ids, timeout_s))
    # The alerter too (its count includes redeliveries, so this is a lower bound): what it had
    # not read from the old news.tagged when the broker died is gone with it, and would then
    # look like a consumer that did not resume.
    await eventually(
        lambda: pipeline.alerter.metric("blocwatch_alerter_items_total") >= pipeline.fed,
        "alerter read the items before the outage",
        timeout_s,
    )
    # The broker dies: every topic, offset and consumer group is gone. New items appear meanwhile.
    failures = "blocwatch_collector_publish_failures_total"
    failed_before = pipeline.collector.metric(failures)
    broker.kill()
    during_ids = pipeline.offer(per_phase)
    # Down for several publish attempts (2 s each), so every client notices, not just one.
    await eventually(
        lambda: pipeline.collector.metric(failures) >= failed_before + 3,
        "collector saw the outage",
        timeout_s,
    )
    await broker.start()  # same port, empty
    await eventually(
        lambda: pipeline.published() >= pipeline.fed,
        "collector drained its buffer into the new broker",
        timeout_s,
    )
    # Steady state after the restart: items published from now on flow through as well.
    after_ids = pipeline.offer(per_phase)
    wanted = during_ids | after_ids
    after = distinct_ids(await read_until(kafka, topic, wanted, timeout_s))
    return (before_ids | wanted) - before - after


async def consumers_resumed(pipeline: Pipeline, timeout_s: float = 60.0) -> None:
    """Wait until each consumer holds every partition of its recreated input topic, and the
    alerter has read as many items as were fed (redeliveries count); AssertionError otherwise.

    A topic can come back with the broker's default partition count (a client's metadata request
    recreated it first); a consumer assigned from its pre-restart metadata would never read the
    extra partitions, which the ids on news.tagged alone do not show for the alerter.
    """
    kafka = pipeline.kafka
    partitions = await list_topics(kafka)
    processor, alerter = pipeline.processor, pipeline.alerter
    raw, tagged = partitions[kafka.topics.news_raw], partitions[kafka.topics.news_tagged]
    await eventually(
        lambda: processor.metric("blocwatch_processor_assigned_partitions") == raw,
        f"processor assigned all {raw} partitions of the new news.raw",
        timeout_s,
    )
    await eventually(
        lambda: (
            alerter.metric("blocwatch_alerter_assigned_partitions") == tagged
            and alerter.metric("blocwatch_alerter_items_total") >= pipeline.fed
        ),
        f"alerter assigned all {tagged} partitions of the new news.tagged and resumed",
        timeout_s,
    )
