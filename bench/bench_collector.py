"""Collector throughput: 1,000 feeds on a local server (half answer 304), one collector process.

Steady state per round: 500 feeds answer 304; 500 answer 200 with 20 items of which one is new.

Prints feeds polled per minute and CPU seconds per 1,000 polls for the collector (fetch with
validators, parse, normalise, dedup, publish to the embedded broker) beside plain sequential
fetching of the same URLs (GET and read the body, nothing else) measured in the same run.
The feed server runs in its own process, so the CPU figures are the collector's alone.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import tempfile
import time
from pathlib import Path

import aiohttp
from aiohttp import web

from bench.results import Measurement
from blocwatch.collector.feeds import Feed
from blocwatch.collector.runtime import running_collector
from blocwatch.collector.settings import CollectorSettings
from blocwatch.core.broker import EmbeddedBroker, free_port
from blocwatch.core.kafka import ensure_topics
from blocwatch.core.metrics import new_registry
from blocwatch.core.settings import KafkaSettings

FEEDS = 1000
ITEMS_PER_FEED = 20
HOSTS = 50  # feeds spread over 127.0.0.1…127.0.0.50 so the per-host limit behaves as in life
ROUNDS = 3
GOAL_PER_MIN = 1000.0


def feed_body(index: int, first: int = 0) -> bytes:
    items = "".join(
        f"<item><guid>https://news.example.org/{index}/{n}</guid>"
        f"<title>Feed {index} headline {n}: talks on a defence pact &amp; drills</title>"
        f"<link>https://news.example.org/{index}/{n}?utm_source=rss</link>"
        f"<description>&lt;p&gt;Summary {n} of feed {index}, with &lt;b&gt;markup&lt;/b&gt; "
        f"and enough words to look like a real wire item about a missile test.&lt;/p&gt;"
        f"</description><pubDate>Mon, 23 Nov 2026 10:{n:02d}:00 GMT</pubDate></item>"
        for n in range(first, first + ITEMS_PER_FEED)
    )
    return (
        f"<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel>"
        f"<title>Bench feed {index}</title><link>https://news.example.org/</link>{items}"
        "</channel></rss>"
    ).encode()


def serve(port: int, ready: multiprocessing.synchronize.Event) -> None:
    """The feed server process: even feeds carry an ETag (304 on repeat); odd ones do not and
    gain one new item per request (the other 19 are duplicates the collector must skip)."""
    bodies = {i: feed_body(i) for i in range(0, FEEDS, 2)}
    hits = dict.fromkeys(range(FEEDS), 0)

    async def handle(request: web.Request) -> web.Response:
        index = int(request.match_info["index"])
        headers = {"Content-Type": "application/rss+xml"}
        if index % 2 == 0:
            etag = f'"v{index}"'
            headers["ETag"] = etag
            if request.headers.get("If-None-Match") == etag:
                return web.Response(status=304, headers=headers)
            return web.Response(body=bodies[index], headers=headers)
        hits[index] += 1
        return web.Response(body=feed_body(index, hits[index]), headers=headers)

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/feed/{index}", handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "0.0.0.0", port, backlog=1024).start()
        ready.set()
        await asyncio.Event().wait()

    asyncio.run(main())


def urls(port: int) -> list[str]:
    return [f"http://127.0.0.{1 + i % HOSTS}:{port}/feed/{i}" for i in range(FEEDS)]


async def sequential(all_urls: list[str]) -> tuple[float, float]:
    """Plain sequential fetching: (wall seconds, CPU seconds) for one pass over the URLs."""
    async with aiohttp.ClientSession() as session:
        wall, cpu = time.perf_counter(), time.process_time()
        for url in all_urls:
            async with session.get(url) as response:
                await response.read()
        return time.perf_counter() - wall, time.process_time() - cpu


async def collector_rounds(
    kafka: KafkaSettings, all_urls: list[str], data_dir: Path
) -> list[tuple[float, float, int]]:
    """(wall, CPU, items published) per round of polling every feed once."""
    settings = CollectorSettings(
        kafka_bootstrap_servers=kafka.kafka_bootstrap_servers,
        topic_prefix=kafka.topic_prefix,
        collector_data_dir=data_dir,
        collector_allow_private_addresses=True,  # the server is on loopback
        collector_concurrency=100,
        collector_buffer_size=FEEDS * ITEMS_PER_FEED,
    )
    feeds = [Feed(name=f"f{i:04d}", url=url) for i, url in enumerate(all_urls)]
    rounds = []
    async with running_collector(settings, feeds, new_registry("collector")) as run:
        for _ in range(ROUNDS + 1):  # the first round publishes everything; then steady state
            wall, cpu = time.perf_counter(), time.process_time()
            outcomes = await run.collector.run_once()
            await run.publisher.flush(120)
            published = sum(o.published for o in outcomes.values())
            rounds.append((time.perf_counter() - wall, time.process_time() - cpu, published))
    return rounds


async def measure(port: int) -> list[Measurement]:
    all_urls = urls(port)
    async with EmbeddedBroker() as broker:
        kafka = KafkaSettings(kafka_bootstrap_servers=broker.bootstrap_servers, topic_prefix="b.")
        await ensure_topics(kafka, [kafka.topics.news_raw])
        await sequential(all_urls[:50])  # warm up the server process
        seq_wall, seq_cpu = await sequential(all_urls)
        with tempfile.TemporaryDirectory() as data_dir:
            rounds = await collector_rounds(kafka, all_urls, Path(data_dir))
    return report(seq_wall, seq_cpu, rounds)


def report(
    seq_wall: float, seq_cpu: float, rounds: list[tuple[float, float, int]]
) -> list[Measurement]:
    seq_rate = FEEDS / seq_wall * 60
    first_wall, first_cpu, first_items = rounds[0]
    steady = rounds[1:]
    wall = sum(r[0] for r in steady) / len(steady)
    cpu = sum(r[1] for r in steady) / len(steady)
    rate = FEEDS / wall * 60
    print(
        f"{FEEDS} feeds x {ITEMS_PER_FEED} items on {HOSTS} hosts; on repeat half answer 304, "
        "half 200 with one new item"
    )
    print(f"{'path':<44}{'feeds/min':>12}{'CPU s/1000 polls':>18}")
    print(
        f"{'plain sequential GET (no parse)':<44}{seq_rate:>12,.0f}{seq_cpu / FEEDS * 1000:>18.2f}"
    )
    print(
        f"{'collector, first round (' + str(first_items) + ' items published)':<44}"
        f"{FEEDS / first_wall * 60:>12,.0f}{first_cpu / FEEDS * 1000:>18.2f}"
    )
    print(f"{'collector, steady state (200/304 mix)':<44}{rate:>12,.0f}{cpu / FEEDS * 1000:>18.2f}")
    print(f"collector / sequential rate: {rate / seq_rate:.2f}x")
    verdict = "meets" if rate >= GOAL_PER_MIN else "MISSES"
    print(f"goal >= {GOAL_PER_MIN:,.0f} feeds/min in one process: {verdict}")
    baseline = f"plain sequential GET {seq_rate:,.0f}/min"
    return [
        Measurement("collector", "feeds/min, steady state, one process", rate, "feeds/min",
                    GOAL_PER_MIN, note=baseline),
        Measurement("collector", "feeds/min, first round (every item new)",
                    FEEDS / first_wall * 60, "feeds/min", GOAL_PER_MIN),
    ]  # fmt: skip


def main() -> list[Measurement]:
    port = free_port()
    context = multiprocessing.get_context("spawn")
    ready = context.Event()
    server = context.Process(target=serve, args=(port, ready), daemon=True)
    server.start()
    try:
        if not ready.wait(30):
            raise RuntimeError("feed server did not start")
        return asyncio.run(measure(port))
    finally:
        server.terminate()
        server.join(10)


if __name__ == "__main__":
    main()
