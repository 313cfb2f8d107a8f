"""Processor stage throughput vs a bare faust passthrough agent, same broker, same N messages.

All run as subprocesses on one embedded broker, one at a time, in ROUNDS rounds of the three
workers, each round in another order (a rotation, then mirrored), each run on its own topic prefix
holding the same N pre-loaded NewsItems (~400 bytes). "processor" is `blocwatch process` as
configured by default (BLOCWATCH_PROCESSOR_TAGGING_PROCESSES=auto: one tagging process beside
the worker on a machine with two CPUs or more, as this one); "in-process" is the same with all
tagging in the worker's own process (=0), what a pod limited to one CPU runs. Throughput is N
divided by the span between the first and the last output record's timestamp, so worker start-up
is not counted. Goal: the processor (decode, tag, cluster, route, await acks, then commit) reaches
≥ 0.8 of the passthrough (`async for value in stream: await topic.send(value=value)`).

The machine is shared and steps between speeds within minutes, so a ratio is only taken between
runs of the same round (a minute or two apart), and the median of the rounds' ratios is reported
with their range. Each worker is also measured per CPU-second of its process and its children
(the tagging process included), which a busy neighbour disturbs far less; peak RSS adds the
children's too.

`python -m bench.bench_processor [N]`; `python -m bench` runs it with the default N.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.results import Measurement, child_pids, peak_rss_mb
from blocwatch.core.broker import EmbeddedBroker, free_port
from blocwatch.core.kafka import ensure_topics, make_consumer, make_producer
from blocwatch.core.models import NewsItem
from blocwatch.core.settings import KafkaSettings
from blocwatch.processor.pool import tagging_processes

__all__ = ["main"]

DEFAULT_N = 6_000
WORKERS = ("passthrough", "processor", "in-process")
ROUNDS = 4
CONFIGS = {"in-process": "0"}  # BLOCWATCH_PROCESSOR_TAGGING_PROCESSES; others: the default
GOAL = 0.8
TAGGING_PROCESSES = "BLOCWATCH_PROCESSOR_TAGGING_PROCESSES"
REPO = Path(__file__).resolve().parents[1]
HEADLINES = [
    "North Korea fires ballistic missile into the sea off its east coast, Seoul says",
    "Russia and North Korea sign mutual defence pact during summit in Pyongyang",
    "EU foreign ministers agree new sanctions package over drone supplies",
    "Foreign ministers meet in Geneva to discuss humanitarian corridor",
    "China holds live-fire drills in the Taiwan Strait after presidential transit",
    "Philippines and Japan sign reciprocal access agreement for joint exercises",
]


def _items(n: int) -> list[tuple[bytes, bytes]]:
    now = datetime.now(UTC)
    records = []
    for i in range(n):
        headline = HEADLINES[i % len(HEADLINES)]
        item = NewsItem(
            id=f"bench-{i}",
            url=f"https://example.org/world/{i}",
            title=f"{headline} ({i})",
            summary=f"{headline}. Officials gave details on day {i % 97} of the developments.",
            source=f"Outlet {i % 13}",
            feed=f"feed-{i % 13}",
            fetched_at=now,
        )
        records.append((item.id.encode(), item.model_dump_json().encode()))
    return records


async def _load(settings: KafkaSettings, records: list[tuple[bytes, bytes]]) -> None:
    await ensure_topics(settings)
    producer = make_producer(settings, "bench", linger_ms=20)
    await producer.start()
    try:
        for key, value in records:
            await producer.send(settings.topics.news_raw, value, key=key)
        await producer.flush()
    finally:
        await producer.stop()


def _peak_rss_with_children(pid: int) -> float:
    return peak_rss_mb(pid) + sum(_peak_rss_with_children(child) for child in child_pids(pid))


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its live children (its tagging processes), from
    Linux /proc, to normalise away a busy machine."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:  # a child that exited meanwhile
        return 0.0
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return own + sum(_cpu_seconds(child) for child in child_pids(pid))


async def _observe(settings: KafkaSettings, topic: str, n: int, pid: int) -> tuple[float, float]:
    """(wall msg/s, msg per worker CPU-second) over the outputs, once N distinct ones arrived.

    Wall: N over the span between the first and last output's producer timestamp (start-up is
    not counted). CPU: outputs after the first poll that saw any, over the worker's CPU time
    between that poll and the last.
    """
    consumer = make_consumer(settings, "bench-reader", topic, group_id=None)
    await consumer.start()
    keys: set[bytes] = set()
    first, last = float("inf"), 0.0
    cpu_start, seen_at_start = 0.0, 0
    deadline = time.monotonic() + 60 + n / 100
    try:
        while len(keys) < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{topic}: {len(keys)} of {n} outputs in time")
            for records in (await consumer.getmany(timeout_ms=200)).values():
                if not keys:
                    cpu_start, seen_at_start = _cpu_seconds(pid), len(records)
                for record in records:
                    keys.add(record.key or b"")
                    first = min(first, record.timestamp / 1000)
                    last = max(last, record.timestamp / 1000)
        cpu = _cpu_seconds(pid) - cpu_start
    finally:
        await consumer.stop()
    return n / max(last - first, 1e-3), (n - seen_at_start) / max(cpu, 1e-3)


def _spawn(
    command: list[str], settings: KafkaSettings, data: Path, log: Path, processes: str | None
) -> Any:
    inherited = {k: v for k, v in os.environ.items() if k != TAGGING_PROCESSES}
    env = {
        **inherited,
        "BLOCWATCH_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "BLOCWATCH_TOPIC_PREFIX": settings.topic_prefix,
        "BLOCWATCH_PROCESSOR_DATA_DIR": str(data),
        "BLOCWATCH_PROCESSOR_METRICS_PORT": str(free_port()),
        "BLOCWATCH_LOG_LEVEL": "WARNING",
        **({} if processes is None else {TAGGING_PROCESSES: processes}),
    }
    with open(log, "wb") as out:
        return subprocess.Popen(command, env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)


async def _measure(
    name: str, command: list[str], settings: KafkaSettings, n: int, tmp: Path
) -> tuple[float, float, float]:
    """(msg/s wall, msg per CPU-second, peak RSS in MB) of one worker over n messages."""
    config = CONFIGS.get(name.rstrip("0123456789"))
    worker = _spawn(command, settings, tmp / f"{name}-data", tmp / f"{name}.log", config)
    try:
        wall, per_cpu = await _observe(settings, settings.topics.news_tagged, n, worker.pid)
        return wall, per_cpu, _peak_rss_with_children(worker.pid)
    finally:
        worker.terminate()
        worker.wait(timeout=60)


def _round_order(round_: int) -> tuple[str, ...]:
    """Round r: the workers rotated by r, every other round mirrored, so each takes every place."""
    turn = round_ % len(WORKERS)
    order = WORKERS[turn:] + WORKERS[:turn]
    return order[::-1] if round_ % 2 else order


Round = dict[str, tuple[float, float, float]]  # worker → (msg/s wall, msg per CPU-s, RSS MB)


async def _bench(n: int, rounds: int = ROUNDS) -> list[Round]:
    records = _items(n)
    blocwatch = str(Path(sys.executable).with_name("blocwatch"))
    commands = {
        "passthrough": [sys.executable, "-m", "bench.bench_processor", "passthrough"],
        "processor": [blocwatch, "process"],
        "in-process": [blocwatch, "process"],
    }
    results: list[Round] = []
    with tempfile.TemporaryDirectory(prefix="bench-processor-") as tmp:
        async with EmbeddedBroker(log_path=Path(tmp) / "broker.log") as broker:
            base = KafkaSettings(kafka_bootstrap_servers=broker.bootstrap_servers)
            for round_ in range(rounds):
                measured: Round = {}
                for name in _round_order(round_):
                    run = f"{name}{round_}"
                    settings = base.model_copy(update={"topic_prefix": f"{run}."})
                    await _load(settings, records)
                    measured[name] = await _measure(run, commands[name], settings, n, Path(tmp))
                    print(f"  round {round_ + 1}: {name:<12} {measured[name][0]:>7,.0f} msg/s",
                          flush=True)  # fmt: skip
                results.append(measured)
    return results


def _run_passthrough() -> int:
    """The baseline worker: same faust options, consume → topic.send, nothing else."""
    import faust

    from blocwatch.core.settings import load_settings
    from blocwatch.processor.app import faust_config
    from blocwatch.processor.settings import ProcessorSettings

    settings = load_settings(ProcessorSettings)
    app = faust.App(f"{settings.app_id}-passthrough", **faust_config(settings))
    source = app.topic(settings.topics.news_raw, key_serializer="raw", value_serializer="raw")
    sink = app.topic(settings.topics.news_tagged, key_serializer="raw", value_serializer="raw")

    @app.agent(source)
    async def passthrough(stream: Any) -> None:
        async for key, value in stream.items():
            await sink.send(key=key, value=value)

    worker = faust.Worker(app, loglevel="WARNING", quiet=True, redirect_stdouts=False)
    worker.spinner = None  # as in run_worker: keeps the root logger at WARNING
    try:
        worker.execute_from_commandline()
    except SystemExit as exited:
        return int(exited.code or 0)
    return 0


def _ratios(rounds: list[Round], name: str, what: int) -> list[float]:
    """`name` over the passthrough of the same round, per round; what: 0 wall, 1 per CPU-s."""
    return [measured[name][what] / measured["passthrough"][what] for measured in rounds]


def main() -> list[Measurement]:
    n = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else DEFAULT_N
    print(f"processor stage vs bare faust passthrough, N={n} messages, {ROUNDS} rounds, "
          "embedded broker")  # fmt: skip
    rounds = asyncio.run(_bench(n))
    for name in WORKERS:
        for what, unit in ((0, "msg/s"), (1, "msg per CPU-s"), (2, "MB peak RSS")):
            values = [measured[name][what] for measured in rounds]
            runs = ", ".join(f"{v:,.0f}" for v in values)
            print(f"  {name:<12} {unit:<14} median {statistics.median(values):>7,.0f}  ({runs})")
    processes = tagging_processes("auto")
    default = f"stage ({processes} tagging process by default here)"
    measurements = []
    for name, label in (("processor", default), ("in-process", "stage tagging in-process")):
        for what, kind in ((0, "wall clock"), (1, "per CPU-second")):
            ratios = _ratios(rounds, name, what)
            ratio = statistics.median(ratios)
            verdict = "meets" if ratio >= GOAL else "below"
            spread = ", ".join(f"{r:.2f}" for r in ratios)
            print(f"  {name} ratio, {kind:<15} median {ratio:.2f} ({verdict} goal ≥ {GOAL}); "
                  f"rounds: {spread}")  # fmt: skip
            measurements.append(
                Measurement("processor", f"{label} / bare faust passthrough, {kind}", ratio, "x",
                            GOAL, note=f"median of {len(ratios)} rounds ({min(ratios):.2f}–"
                            f"{max(ratios):.2f}), N={n:,}")
            )  # fmt: skip
    memory = [
        Measurement(
            "memory",
            f"{name}: peak RSS of a worker{extra} after {n:,} items",
            max(measured[name][2] for measured in rounds),
            "MB",
        )
        for name, extra in (
            ("processor", " + its tagging process" if processes else ""),
            ("in-process", ""),
        )
    ]
    return [*measurements, *memory]


if __name__ == "__main__":
    if sys.argv[1:2] == ["passthrough"]:
        sys.exit(_run_passthrough())
    main()
