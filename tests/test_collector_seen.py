"""The seen-set and validators (SQLite), and the no-loss rule between polls and acks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from blocwatch.collector.feeds import Feed
from blocwatch.collector.fetch import AddressGuard, Fetcher, FetchPolicy, Validators, make_session
from blocwatch.collector.metrics import CollectorMetrics
from blocwatch.collector.publish import Publisher
from blocwatch.collector.seen import SeenStore
from blocwatch.collector.service import Collector, PollOutcome
from blocwatch.core.broker import free_port
from blocwatch.core.kafka import make_producer
from blocwatch.core.metrics import new_registry
from blocwatch.core.models import NewsItem
from blocwatch.core.settings import KafkaSettings

from .feedserver import FeedServer, Route, rss


def test_seen_set_is_bounded_by_ttl_and_size(tmp_path: Path) -> None:
    with SeenStore(tmp_path / "seen.db", ttl_s=100, max_entries=1000) as seen:
        seen.mark([f"old{i}" for i in range(10)], now=0)
        seen.mark([f"new{i}" for i in range(1500)], now=150)
        seen.prune(now=160)
        assert len(seen) == 1000
        assert seen.unseen(["old1", "new1499", "never"]) == ["old1", "never"]


def test_validators_persist_and_reset_when_the_url_changes(tmp_path: Path) -> None:
    path = tmp_path / "seen.db"
    with SeenStore(path, ttl_s=100, max_entries=1000) as seen:
        seen.save_validators("a", "https://x.org/f", Validators('"e"', "Mon"))
    with SeenStore(path, ttl_s=100, max_entries=1000) as seen:
        assert seen.validators("a", "https://x.org/f") == Validators('"e"', "Mon")
        assert seen.validators("a", "https://x.org/moved") == Validators()


@pytest.fixture
async def server() -> AsyncIterator[FeedServer]:
    async with FeedServer() as running:
        yield running


async def test_nothing_is_marked_seen_or_validated_before_the_broker_acks(
    server: FeedServer, tmp_path: Path
) -> None:
    # A broker address where nothing listens: every publish attempt fails.
    kafka = KafkaSettings(kafka_bootstrap_servers=f"127.0.0.1:{free_port()}")

    def producer() -> AIOKafkaProducer:
        return make_producer(kafka, "test", request_timeout_ms=1000)

    server.routes["f"] = Route(rss([("a", "t", "s"), ("b", "t", "s")]), etag='"e"')
    feed = Feed(name="f", url=server.url("f"))
    metrics = CollectorMetrics.create(new_registry("collector"))
    guard = AddressGuard(allow_private=True)
    policy = FetchPolicy()
    with SeenStore(tmp_path / "seen.db", ttl_s=100, max_entries=1000) as seen:
        publisher = Publisher(producer, "news.raw", seen, metrics, capacity=10)
        async with make_session(policy, guard) as session:
            fetcher = Fetcher(session, policy, guard, lambda: datetime.now(UTC))
            collector = Collector([feed], fetcher, seen, publisher, metrics)
            first = await collector.poll(feed)
            assert (first.result, first.published) == ("ok", 2)
            # Not acknowledged: the ids stay unseen and the ETag unstored, so the next poll
            # fetches the full body again rather than a 304 that would hide the items.
            assert seen.unseen(["f:a", "f:b"]) == ["f:a", "f:b"]
            assert seen.validators("f", feed.url) == Validators()
            again = await collector.poll(feed)
            assert (again.result, again.published, again.duplicates) == ("ok", 0, 2)
            assert "If-None-Match" not in server.request_headers["f"][-1]
            # A full buffer defers a poll's items instead of dropping some of them.
            assert not publisher.offer(_items(11))
        assert publisher.depth == 2


def _items(count: int) -> list[NewsItem]:
    now = datetime.now(UTC)
    return [
        NewsItem(id=f"x{i}", url="https://x.org", title="t", source="s", fetched_at=now)
        for i in range(count)
    ]


async def test_feed_failures_are_logged_once_per_change_of_state(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    feed = Feed(name="flaky", url="https://x.org/f", poll_interval_s=60)
    metrics = CollectorMetrics.create(new_registry("collector"))
    guard, policy = AddressGuard(), FetchPolicy()
    kafka = KafkaSettings(kafka_bootstrap_servers=f"127.0.0.1:{free_port()}")
    with SeenStore(tmp_path / "seen.db", ttl_s=100, max_entries=1000) as seen:
        publisher = Publisher(
            lambda: make_producer(kafka, "t"), "news.raw", seen, metrics, capacity=1
        )
        async with make_session(policy, guard) as session:
            fetcher = Fetcher(session, policy, guard, lambda: datetime.now(UTC))
            collector = Collector([feed], fetcher, seen, publisher, metrics)
            sequence = ["timeout", "timeout", "timeout", "ok", "ok", "http_error", "http_error"]
            delays = []
            with caplog.at_level("INFO", logger="blocwatch.collector.service"):
                for result in sequence:
                    outcome = PollOutcome(result, detail="why")
                    collector.report(feed, outcome)
                    delays.append(collector.next_delay(feed, outcome))
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "feed flaky: timeout why",
        "feed flaky recovered (ok)",
        "feed flaky: http_error why",
    ]
    assert delays[3] == 60  # healthy again: its own pace
    assert max(delays[:3]) > 60  # failing: backing off beyond the interval
