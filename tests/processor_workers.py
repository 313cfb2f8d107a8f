"""Processor workers as real subprocesses for broker tests, and helpers to drive and read them.

`python -m tests.processor_workers` runs a worker whose tagger is a keyword fake (injected through
`run_worker(tag=...)`), so routing to events.* is tested without depending on tagger quality.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from blocwatch.core.broker import free_port
from blocwatch.core.codec import decode
from blocwatch.core.kafka import make_consumer, make_producer
from blocwatch.core.models import Evidence, NewsItem, Tag, TaggedItem
from blocwatch.core.settings import KafkaSettings
from blocwatch.processor.tagging import Tagging

__all__ = [
    "Worker",
    "distinct_ids",
    "keyword_tagger",
    "news_bytes",
    "produce",
    "read_until",
]

REPO = Path(__file__).resolve().parents[1]
BLOCWATCH = Path(sys.executable).with_name("blocwatch")

# Short group timeouts: a stopped or killed worker's partitions move within seconds.
FAST_GROUP = {
    "BLOCWATCH_PROCESSOR_SESSION_TIMEOUT_SECONDS": "6",
    "BLOCWATCH_PROCESSOR_REBALANCE_TIMEOUT_SECONDS": "6",
    "BLOCWATCH_PROCESSOR_HEARTBEAT_INTERVAL_SECONDS": "1",
    "BLOCWATCH_LOG_LEVEL": "WARNING",
}


def keyword_tagger(title: str, summary: str) -> Tagging:
    """ "pact" → alliance, "drill" → escalation: enough to test routing."""
    tags = []
    for word, label, subtype, cameo, plover in (
        ("pact", "alliance", "defence_pact", "057", "AGREE"),
        ("drill", "escalation", "exercise", "150", "MOBILIZE"),
    ):
        at = title.find(word)
        if at >= 0:
            evidence = [Evidence(rule=f"fake.{word}", text=word, start=at, end=at + len(word))]
            tags.append(
                Tag(
                    label=label,
                    subtype=subtype,
                    cameo=cameo,
                    plover=plover,
                    intensity=4.0,
                    confidence=0.9,
                    evidence=evidence,
                )
            )
    return Tagging(tags=tags)


def news_bytes(item_id: str, title: str, source: str = "Harbour Times") -> bytes:
    item = NewsItem(
        id=item_id,
        url=f"https://example.org/{item_id}",
        title=title,
        source=source,
        fetched_at=datetime.now(UTC),
    )
    return item.model_dump_json().encode()


class Worker:
    """One processor worker subprocess with its own metrics port and data dir."""

    def __init__(
        self,
        settings: KafkaSettings,
        tmp: Path,
        name: str,
        *,
        fake_tagger: bool = False,
        tagging_processes: int = 0,
    ) -> None:
        self.name = name
        self.port = free_port()
        self.ready_statuses: set[int] = set()  # /readyz answers seen while waiting
        self.log = tmp / f"{name}.log"
        env = {
            **os.environ,
            **FAST_GROUP,
            "BLOCWATCH_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
            "BLOCWATCH_TOPIC_PREFIX": settings.topic_prefix,
            "BLOCWATCH_TOPIC_PARTITIONS": str(settings.topic_partitions),
            "BLOCWATCH_PROCESSOR_METRICS_PORT": str(self.port),
            "BLOCWATCH_PROCESSOR_DATA_DIR": str(tmp / f"{name}-data"),
            "BLOCWATCH_PROCESSOR_TAGGING_PROCESSES": str(tagging_processes),
        }
        command = [sys.executable, "-m", "tests.processor_workers"] if fake_tagger else [
            str(BLOCWATCH), "process"]  # fmt: skip
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                command, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT
            )

    def _get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=2) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as exc:
            with exc:  # close its socket: /readyz is polled while it answers 503
                return exc.code, ""
        except OSError:
            return 0, ""

    def metric(self, name: str) -> float | None:
        _, body = self._get("/metrics")
        for line in body.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return None

    async def wait_ready(self, timeout_s: float = 90.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"{self.name} exited: {self.log.read_text()[-2000:]}")
            status, _ = await asyncio.to_thread(self._get, "/readyz")
            self.ready_statuses.add(status)
            if status == 200:
                return
            await asyncio.sleep(0.3)
        raise AssertionError(
            f"{self.name} not ready in {timeout_s}s: {self.log.read_text()[-2000:]}"
        )

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout_s: float = 30.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout=timeout_s)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)


async def produce(settings: KafkaSettings, topic: str, records: Iterable[tuple[bytes, bytes]],
                  pause_s: float = 0.0) -> None:  # fmt: skip
    producer = make_producer(settings, "test")
    await producer.start()
    try:
        for key, value in records:
            await producer.send(topic, value, key=key)
            if pause_s:
                await asyncio.sleep(pause_s)
        await producer.flush()
    finally:
        await producer.stop()


def distinct_ids(values: Iterable[bytes]) -> set[str]:
    return {decode(TaggedItem, value).id for value in values}


async def read_until(
    settings: KafkaSettings, topic: str, want: set[str], timeout_s: float = 60.0
) -> list[bytes]:
    """Read `topic` from the start until the keys seen cover `want` or the deadline passes."""
    consumer = make_consumer(settings, "test-reader", topic, group_id=None)
    await consumer.start()
    values: list[bytes] = []
    seen: set[str] = set()
    deadline = time.monotonic() + timeout_s
    try:
        while not want <= seen and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            for records in batch.values():
                for record in records:
                    values.append(record.value)
                    seen.add(record.key.decode() if record.key else "")
    finally:
        await consumer.stop()
    return values


def _main() -> int:
    from blocwatch.core.settings import load_settings
    from blocwatch.processor.app import run_worker
    from blocwatch.processor.settings import ProcessorSettings

    settings = load_settings(ProcessorSettings)
    return run_worker(settings, tag=keyword_tagger, tagger_version="fake-1")


if __name__ == "__main__":
    sys.exit(_main())
