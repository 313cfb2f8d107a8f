"""The collector end to end on the embedded broker and a real local feed server."""

from __future__ import annotations

import asyncio
import re
import socket
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from blocwatch.cli import main
from blocwatch.collector.commands import collect
from blocwatch.collector.feeds import Feed
from blocwatch.collector.runtime import running_collector
from blocwatch.core import broker as broker_module
from blocwatch.core.broker import EmbeddedBroker, free_port
from blocwatch.core.codec import decode, encode
from blocwatch.core.kafka import ensure_topics
from blocwatch.core.metrics import new_registry
from blocwatch.core.models import NewsItem
from blocwatch.core.settings import KafkaSettings

from .collecting import collector_settings, eventually, sample
from .feedserver import FeedServer, Route, rss
from .streams import read_topic

pytestmark = pytest.mark.broker

MARKUP = re.compile(r"<\s*/?\s*[A-Za-z!?]|javascript:", re.IGNORECASE)


@pytest.fixture
async def server() -> AsyncIterator[FeedServer]:
    async with FeedServer() as running:
        yield running


def items(start: int, stop: int) -> list[tuple[str, str, str]]:
    return [(f"g{i}", f"Headline {i}", f"Summary <b>{i}</b>") for i in range(start, stop)]


async def test_dedup_and_validators_survive_a_restart(
    server: FeedServer, kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    settings = collector_settings(kafka_settings, tmp_path)
    server.routes["a"] = Route(rss(items(0, 3)), etag='"e1"')
    feed = Feed(name="a", url=server.url("a"))

    async with running_collector(settings, [feed], new_registry("collector")) as run:
        outcomes = await run.collector.run_once()
        assert outcomes["a"].published == 3
    # A new process: the 304 uses validators stored by the previous one.
    registry = new_registry("collector")
    async with running_collector(settings, [feed], registry) as run:
        assert (await run.collector.run_once())["a"].result == "not_modified"
    assert server.request_headers["a"][-1]["If-None-Match"] == '"e1"'
    # A server that ignores validators: the seen-set still stops duplicates; new items pass.
    server.routes["a"] = Route(rss(items(0, 4)))
    registry = new_registry("collector")
    async with running_collector(settings, [feed], registry) as run:
        outcome = (await run.collector.run_once())["a"]
    assert (outcome.published, outcome.duplicates) == (1, 3)
    assert sample(registry, "blocwatch_collector_duplicates_skipped_total", feed="a") == 3
    assert sample(registry, "blocwatch_collector_items_published_total", feed="a") == 1

    records = await read_topic(kafka_settings, kafka_settings.topics.news_raw, count=4, idle_s=0.5)
    ids = [r.key.decode() for r in records if r.key]
    assert sorted(ids) == ["a:g0", "a:g1", "a:g2", "a:g3"]
    item = decode(NewsItem, records[0].value)
    assert item.summary in {f"Summary {i}" for i in range(4)}


async def test_failing_feeds_never_delay_healthy_ones(
    server: FeedServer, kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    # Timeouts far longer than the test: the hanging fetch stays open while the others go on.
    settings = collector_settings(
        kafka_settings, tmp_path, collector_read_timeout_s=120.0, collector_total_timeout_s=120.0
    )
    server.routes["hang"] = Route(rss(items(0, 1)), hang=asyncio.Event())
    server.routes["busy"] = Route(status=503, headers={"Retry-After": "600"})
    server.routes["junk"] = Route(b"<html><body>not a feed", content_type="text/html")
    server.routes["gone"] = Route(status=500)
    server.routes["good"] = Route(rss(items(0, 2)))
    feeds = [
        Feed(name=name, url=server.url(name), poll_interval_s=1.0)
        for name in ("hang", "busy", "junk", "gone", "good")
    ]
    registry = new_registry("collector")

    def fetches(feed: str, result: str) -> float:
        return sample(registry, "blocwatch_collector_fetches_total", feed=feed, result=result)

    async with running_collector(settings, feeds, registry) as run:
        stop = asyncio.Event()
        task = asyncio.create_task(run.collector.run(stop))
        await eventually(lambda: server.in_flight["hang"] == 1, "hanging request open")
        await eventually(lambda: fetches("good", "ok") >= 3, "good feed polled repeatedly")
        await eventually(lambda: fetches("junk", "parse_error") >= 1, "junk counted")
        await eventually(lambda: fetches("busy", "retry_later") >= 1, "busy counted")
        await eventually(lambda: fetches("gone", "http_error") >= 1, "5xx counted")
        # Still the first request: nothing the hanging server did held the others back.
        assert server.hits["hang"] == 1
        assert server.in_flight["hang"] == 1
        stop.set()
        await task  # returns promptly: the hanging fetch is abandoned
    assert sample(registry, "blocwatch_collector_items_published_total", feed="good") == 2
    assert sample(registry, "blocwatch_collector_duplicates_skipped_total", feed="good") >= 4
    assert sample(registry, "blocwatch_collector_parse_failures_total", feed="junk") >= 1
    assert server.hits["busy"] == 1  # Retry-After: 600 honoured
    assert sample(registry, "blocwatch_collector_last_success_timestamp_seconds", feed="good") > 0
    assert run.collector.states["gone"].failures >= 1


async def test_hanging_server_times_out_and_is_counted(
    server: FeedServer, kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    settings = collector_settings(kafka_settings, tmp_path)  # read timeout 1 s, total 3 s
    server.routes["hang"] = Route(rss(items(0, 1)), hang=asyncio.Event())
    server.routes["good"] = Route(rss(items(0, 2)))
    feeds = [Feed(name=name, url=server.url(name)) for name in ("hang", "good")]
    registry = new_registry("collector")
    async with running_collector(settings, feeds, registry) as run:
        outcomes = await run.collector.run_once()
    assert outcomes["hang"].result == "timeout"
    assert outcomes["good"].published == 2
    labels = {"feed": "hang", "result": "timeout"}
    assert sample(registry, "blocwatch_collector_fetches_total", **labels) == 1


def _bind_check_reusing_address(host: str, port: int) -> None:
    # core's check binds without SO_REUSEADDR, so the TIME_WAIT connections of the broker we
    # just stopped make the same port look taken; a listening socket still makes this fail.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))


async def test_broker_down_then_back_loses_nothing(
    server: FeedServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(broker_module, "_check_port_free", _bind_check_reusing_address)
    broker = EmbeddedBroker(port=free_port(), log_path=tmp_path / "tansu.log")
    await broker.start()
    try:
        kafka = KafkaSettings(kafka_bootstrap_servers=broker.bootstrap_servers, topic_prefix="bd.")
        await ensure_topics(kafka)
        settings = collector_settings(kafka, tmp_path, collector_publish_timeout_s=2.0)
        server.routes["f"] = Route(rss(items(0, 5)))
        feed = Feed(name="f", url=server.url("f"), poll_interval_s=1.0)
        registry = new_registry("collector")

        def published() -> float:
            return sample(registry, "blocwatch_collector_items_published_total", feed="f")

        def failures() -> float:
            return sample(registry, "blocwatch_collector_publish_failures_total")

        async with running_collector(settings, [feed], registry) as run:
            stop = asyncio.Event()
            task = asyncio.create_task(run.collector.run(stop))
            await eventually(lambda: published() == 5, "first items published")
            before = await read_topic(kafka, kafka.topics.news_raw, count=5)

            await broker.stop()
            server.routes["f"] = Route(rss(items(0, 12)))
            await eventually(lambda: run.publisher.depth == 7, "new items buffered", 60)
            # Down for longer than a publish attempt: the buffered items were refused, not lost.
            await eventually(lambda: failures() >= 1, "a publish attempt failed", 60)
            assert published() == 5

            # Memory storage: the broker comes back empty and the collector recreates news.raw
            # itself (BLOCWATCH_COLLECTOR_CREATE_TOPICS, on by default).
            await broker.start()
            await eventually(lambda: published() == 12, "buffer drained after recovery", 90)
            stop.set()
            await task
        after = await read_topic(kafka, kafka.topics.news_raw, count=7, idle_s=1.0)
    finally:
        await broker.stop()
    counts = Counter(r.key.decode() for r in before + after if r.key)
    assert counts == Counter({f"f:g{i}": 1 for i in range(12)})


async def test_feedparser_corpus(
    server: FeedServer, kafka_settings: KafkaSettings, tmp_path: Path, shared_dir: Path
) -> None:
    corpus = shared_dir / "feeds" / "feedparser-tests"
    if not corpus.is_dir():
        pytest.skip("feedparser corpus not present")
    files = sorted(corpus.rglob("*.xml"))
    feeds = []
    for index, path in enumerate(files):
        name = f"c{index:04d}"
        server.routes[name] = Route(path.read_bytes(), content_type="application/xml")
        feeds.append(Feed(name=name, url=server.url(name)))
    settings = collector_settings(kafka_settings, tmp_path, collector_per_host_concurrency=16)
    registry = new_registry("collector")
    async with running_collector(settings, feeds, registry) as run:
        outcomes = await run.collector.run_once()
    verdicts: Counter[str] = Counter()
    for outcome in outcomes.values():
        if outcome.result == "ok":
            verdicts["published" if outcome.published or outcome.duplicates else "empty"] += 1
        else:
            assert outcome.result == "parse_error", outcome
            verdicts["failed"] += 1
    assert sum(verdicts.values()) == len(files) > 2000
    assert verdicts["published"] > 400
    total = int(sum(o.published for o in outcomes.values()))
    records = await read_topic(kafka_settings, kafka_settings.topics.news_raw, count=total)
    assert len(records) == total
    for record in records:
        item = decode(NewsItem, record.value)
        for text in (item.title, item.summary):
            assert not MARKUP.search(text), (item.feed, text[:200])


async def test_collect_once_and_ingest_commands(
    server: FeedServer,
    kafka_settings: KafkaSettings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    feeds_file = tmp_path / "feeds.yaml"
    feeds_file.write_text(f"feeds:\n  - {{name: cli, url: '{server.url('cli')}'}}\n")
    server.routes["cli"] = Route(rss(items(0, 2)))
    monkeypatch.setenv("BLOCWATCH_KAFKA_BOOTSTRAP_SERVERS", kafka_settings.kafka_bootstrap_servers)
    monkeypatch.setenv("BLOCWATCH_TOPIC_PREFIX", kafka_settings.topic_prefix)
    monkeypatch.setenv("BLOCWATCH_COLLECTOR_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("BLOCWATCH_COLLECTOR_ALLOW_PRIVATE_ADDRESSES", "true")
    # The CLI runs its own event loop: a thread, so this loop keeps serving the feeds.
    assert await asyncio.to_thread(main, ["collect", "--once", "--feeds", str(feeds_file)]) == 0
    assert "polled 1 feeds: 2 new items, 0 failed" in capsys.readouterr().out

    replay = tmp_path / "replay.jsonl"
    item = NewsItem(
        id="replay-1",
        url="https://x.org/1",
        title="Replayed",
        source="x",
        fetched_at="2026-11-23T10:00:00Z",
    )
    replay.write_text(encode(item).decode() + "\n{not json}\n")
    saved = tmp_path / "saved.xml"
    saved.write_bytes(rss([("s1", "Saved", "From disk")]))
    assert await asyncio.to_thread(main, ["ingest", str(replay)]) == 1  # one bad line, reported
    assert await asyncio.to_thread(main, ["ingest", str(saved), "--feed", "archive"]) == 0
    assert await asyncio.to_thread(main, ["ingest", str(saved), "--feed", "archive"]) == 0
    assert "published 0, skipped 1 already published" in capsys.readouterr().out.splitlines()[-1]
    records = await read_topic(kafka_settings, kafka_settings.topics.news_raw, count=4, idle_s=0.5)
    ids = sorted(r.key.decode() for r in records if r.key)
    assert ids == ["archive:s1", "cli:g0", "cli:g1", "replay-1"]


def test_invalid_feeds_file_fails_at_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    feeds_file = tmp_path / "feeds.yaml"
    feeds_file.write_text("feeds:\n  - {name: ok, url: 'https://x.org/f'}\n  - {name: bad}\n")
    assert main(["collect", "--feeds", str(feeds_file)]) == 2
    error = capsys.readouterr().err
    assert str(feeds_file) in error
    assert "entry 1 ('bad'): field url" in error


async def test_collect_serves_metrics_and_health(
    server: FeedServer, kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    port = free_port()
    settings = collector_settings(kafka_settings, tmp_path, collector_metrics_port=port)
    server.routes["m"] = Route(rss(items(0, 2)))
    feed = Feed(name="m", url=server.url("m"), poll_interval_s=60)
    stop = asyncio.Event()
    task = asyncio.create_task(collect(settings, [feed], stop=stop))
    metrics = ""
    async with aiohttp.ClientSession() as client:

        async def scrape() -> str:
            try:
                async with client.get(f"http://127.0.0.1:{port}/metrics") as response:
                    return await response.text()
            except aiohttp.ClientError:
                return ""

        published = 'blocwatch_collector_items_published_total{feed="m"} 2.0'
        deadline = asyncio.get_running_loop().time() + 30
        while published not in metrics and asyncio.get_running_loop().time() < deadline:
            metrics = await scrape()
            await asyncio.sleep(0.05)
        async with client.get(f"http://127.0.0.1:{port}/healthz") as response:
            assert response.status == 200
        async with client.get(f"http://127.0.0.1:{port}/readyz") as response:
            assert response.status == 200
    stop.set()
    assert await task == 0
    assert published in metrics
    for name in (
        'blocwatch_collector_fetches_total{feed="m",result="ok"} 1.0',
        'blocwatch_collector_fetch_duration_seconds_count{feed="m"} 1.0',
        "blocwatch_collector_buffer_depth 0.0",
        'blocwatch_collector_fetches_total{feed="m",result="timeout"} 0.0',
        'blocwatch_collector_parse_failures_total{feed="m"} 0.0',
        'blocwatch_collector_last_success_timestamp_seconds{feed="m"}',
        'blocwatch_build_info{service="collector"',
    ):
        assert name in metrics
