"""The alerter on the embedded broker with a real local webhook receiver (aiohttp)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiokafka import AIOKafkaProducer
from prometheus_client import CollectorRegistry

from blocwatch.alerter.rules import parse_rules
from blocwatch.alerter.service import REBUILDING, Alerter
from blocwatch.alerter.settings import AlerterSettings
from blocwatch.alerter.store import StateStore
from blocwatch.cli import main
from blocwatch.core.broker import free_port
from blocwatch.core.codec import decode, encode
from blocwatch.core.kafka import make_producer
from blocwatch.core.metrics import new_registry
from blocwatch.core.models import Alert, AlertAction, DeadLetter, TaggedItem
from blocwatch.core.settings import KafkaSettings

from .alerting import T0, WebhookServer, tagged, wait_until
from .streams import read_topic

pytestmark = pytest.mark.broker

SECRET = "hmac-key-not-for-logs"
TOKEN = "tok-SEKRIT-123"

SURGE = """
rules:
  - name: surge
    severity: critical
    filter: {labels: [escalation], regions: [Korean Peninsula]}
    count: stories
    threshold: 3
    group_by: [region]
    window: 1h
    cooldown: 10m
    renotify_growth: 2
    resolve: true
    receivers: [webhook]
"""


@dataclass
class LiveClock:
    """Real time passing from T0, plus jumps the test makes (so retries still happen)."""

    base: datetime = T0
    offset: timedelta = timedelta(0)
    _start: float = field(default_factory=time.monotonic)

    def __call__(self) -> datetime:
        return self.base + timedelta(seconds=time.monotonic() - self._start) + self.offset

    def advance(self, delta: timedelta) -> None:
        self.offset += delta


@dataclass
class Rig:
    settings: AlerterSettings
    hook: WebhookServer
    clock: LiveClock
    producer: AIOKafkaProducer
    registry: CollectorRegistry = field(default_factory=lambda: new_registry("alerter"))

    def sample(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0

    async def publish(self, *items: TaggedItem) -> None:
        for item in items:
            await self.producer.send_and_wait(
                self.settings.topics.news_tagged, encode(item), key=item.id.encode()
            )

    async def publish_batched(self, *items: TaggedItem) -> None:
        """All sent before any is awaited: record batches of several records, like the
        processor writes (the embedded broker's ListOffsets then reads low)."""
        topic = self.settings.topics.news_tagged
        sent = [await self.producer.send(topic, encode(i), key=i.id.encode()) for i in items]
        await asyncio.gather(*sent)

    @asynccontextmanager
    async def alerter(self, rules: str = SURGE, **overrides: Any) -> AsyncIterator[Alerter]:
        settings = self.settings.model_copy(update=overrides)
        self.registry = new_registry("alerter")
        service = Alerter(
            settings,
            parse_rules(rules, "test.yaml"),
            registry=self.registry,
            clock=self.clock,
            # the embedded broker holds a join for half the session timeout: keep it short
            consumer_options={"session_timeout_ms": 1000, "heartbeat_interval_ms": 200},
        )
        async with service:
            await wait_until(lambda: service.ready)
            yield service

    async def processed(self, count: int) -> None:
        """Wait until the running alerter consumed `count` items and its outbox is empty."""
        await wait_until(lambda: self.sample("blocwatch_alerter_items_total") >= count)
        await wait_until(lambda: self.sample("blocwatch_alerter_outbox_depth") == 0)


@pytest.fixture
async def rig(kafka_settings: KafkaSettings, tmp_path: Path) -> AsyncIterator[Rig]:
    hook = WebhookServer(secret=SECRET.encode())
    await hook.start()
    settings = AlerterSettings(
        **kafka_settings.model_dump(),
        alerter_data_dir=tmp_path / "alerter",
        alerter_group_id=f"alerter-{uuid.uuid4().hex[:8]}",
        alerter_metrics_port=0,
        alerter_webhook_urls=f"{hook.url}?token={TOKEN}",
        alerter_webhook_secret=SECRET,
        alerter_console=False,
        alerter_tick_s=0.2,
        alerter_retry_attempts=4,
        alerter_retry_initial_s=0.05,
        alerter_retry_max_s=0.2,
    )
    producer = make_producer(settings, "test")
    await producer.start()
    try:
        yield Rig(settings, hook, LiveClock(), producer)
    finally:
        await producer.stop()
        await hook.stop()


def stories(*names: str, at: datetime = T0, **kw: Any) -> list[TaggedItem]:
    return [tagged(name, at=at + timedelta(seconds=n), **kw) for n, name in enumerate(names)]


def statuses(hook: WebhookServer) -> list[tuple[str, int]]:
    return [(str(a["status"]), int(a["notification"])) for a in hook.received]  # type: ignore[call-overload]


async def test_fires_once_at_the_nth_distinct_story_not_for_n_copies(rig: Rig) -> None:
    copies = [tagged(f"copy{n}", story="one-test", source=f"outlet{n}") for n in range(4)]
    async with rig.alerter():
        await rig.publish(*copies)
        await rig.processed(4)
        assert rig.hook.attempts == 0  # four articles about one missile test are one story
        await rig.publish(*stories("s2", "s3"))
        await wait_until(lambda: len(rig.hook.received) == 1)
        await rig.publish(*stories("s4"))  # 4 stories: below the growth factor, no re-notify
        await rig.processed(7)
    alert = Alert.model_validate(rig.hook.received[0])
    assert rig.hook.signatures_ok == [True]
    assert (alert.status, alert.counts.stories, alert.counts.sources) == ("firing", 3, 5)
    assert len(rig.hook.received) == 1
    published = await read_topic(rig.settings, rig.settings.topics.alerts, count=1, idle_s=0.3)
    assert len(published) == 1
    assert published[0].key == alert.fingerprint.encode()
    assert decode(Alert, published[0].value).fingerprint == alert.fingerprint
    assert rig.sample(
        "blocwatch_alerter_alerts_total", rule="surge", severity="critical", status="firing"
    ) == 1  # fmt: skip
    assert (
        rig.sample("blocwatch_alerter_notifications_total", receiver="webhook", result="sent") == 1
    )
    assert rig.sample("blocwatch_alerter_end_to_end_latency_seconds_count") == 1


async def test_cooldown_growth_renotify_and_resolve(rig: Rig) -> None:
    async with rig.alerter():
        await rig.publish(*stories("a", "b", "c"))
        await wait_until(lambda: statuses(rig.hook) == [("firing", 1)])
        await rig.publish(*stories("d", "e", "f"))  # doubled, but inside the 10m cooldown
        await rig.processed(6)
        assert statuses(rig.hook) == [("firing", 1)]
        rig.clock.advance(timedelta(minutes=11))
        await wait_until(lambda: len(rig.hook.received) == 2)
        rig.clock.advance(timedelta(hours=1))
        await wait_until(lambda: len(rig.hook.received) == 3)
    assert statuses(rig.hook) == [("firing", 1), ("firing", 2), ("resolved", 3)]
    assert rig.hook.received[1]["counts"] == {
        "schema_version": 1,
        "items": 6,
        "stories": 6,
        "sources": 1,
    }
    assert all(rig.hook.signatures_ok)


async def test_silence_suppresses_until_expired(
    rig: Rig, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = str(rig.settings.alerter_data_dir)
    # `blocwatch silence` runs on the wall clock, so this test's alerter does too
    rig.clock = LiveClock(base=datetime.now(UTC))
    add = ["silence", "add", "rule=surge", "region=Korean Peninsula", "--duration", "1d"]
    assert main([*add, "--comment", "annual drill", "--data-dir", data_dir]) == 0
    silence_id = capsys.readouterr().out.split()[1]
    async with rig.alerter():
        await rig.publish(*stories("a", "b", "c", at=rig.clock.base))
        await rig.processed(3)
        silenced = {"rule": "surge", "severity": "critical", "status": "silenced"}
        await wait_until(lambda: rig.sample("blocwatch_alerter_alerts_total", **silenced) == 1)
        assert rig.sample("blocwatch_alerter_active_silences") == 1
        assert rig.hook.attempts == 0
        assert main(["silence", "list", "--all", "--data-dir", data_dir]) == 0
        assert "annual drill" in capsys.readouterr().out
        assert main(["silence", "expire", silence_id, "--data-dir", data_dir]) == 0
        await wait_until(lambda: len(rig.hook.received) == 1)
    assert statuses(rig.hook) == [("firing", 1)]


async def test_webhook_down_then_up_is_delivered_after_retry_with_a_valid_signature(
    rig: Rig,
) -> None:
    rig.hook.down = True
    async with rig.alerter(alerter_retry_attempts=50):
        await rig.publish(*stories("a", "b", "c"))
        await wait_until(lambda: rig.hook.attempts >= 2)
        rig.hook.down = False
        await wait_until(lambda: len(rig.hook.received) == 1)
        failed = rig.sample(
            "blocwatch_alerter_notifications_total", receiver="webhook", result="failed"
        )
    assert failed >= 2
    assert rig.hook.signatures_ok == [True]


async def test_receiver_down_past_the_budget_lands_in_the_dead_letter_topic(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    rig.hook.down = True
    caplog.set_level(logging.DEBUG)
    async with rig.alerter():
        await rig.publish(*stories("a", "b", "c"))
        dlq = rig.settings.topics.dlq(rig.settings.topics.alerts)
        records = await read_topic(rig.settings, dlq, count=1)
    assert rig.hook.attempts == 4
    letter = decode(DeadLetter, records[0].value)
    assert letter.stage == "notify:webhook"
    assert letter.error == "webhook: gave up after 4 attempts: HTTP 503"
    assert decode(Alert, letter.value).rule == "surge"
    assert rig.sample(
        "blocwatch_alerter_notifications_total", receiver="webhook", result="dead_lettered"
    ) == 1  # fmt: skip
    # secrets never reach logs, alerts or dead letters
    for text in (caplog.text, records[0].value.decode()):
        assert TOKEN not in text
        assert SECRET not in text


async def test_restart_mid_window_keeps_the_window_and_never_renotifies(rig: Rig) -> None:
    async with rig.alerter():
        await rig.publish(*stories("a", "b"))
        await rig.processed(2)
    async with rig.alerter():  # restarted: the first two stories are still in its window
        await rig.publish(*stories("c"))
        await wait_until(lambda: len(rig.hook.received) == 1)
        await rig.processed(1)
    # a new consumer group re-reads every record: redeliveries neither count nor re-notify
    async with rig.alerter(alerter_group_id="another-group") as again:
        await rig.processed(3)
        await wait_until(lambda: again.batches >= 3)
    assert statuses(rig.hook) == [("firing", 1)]
    assert rig.hook.received[0]["counts"]["stories"] == 3  # type: ignore[index]


async def test_lost_data_dir_is_rebuilt_from_kafka_without_renotifying(rig: Rig) -> None:
    elsewhere = [tagged(f"x{n}", regions=("Baltic",)) for n in range(60)]  # not this rule's
    async with rig.alerter():
        await rig.publish_batched(*elsewhere[:30], *stories("a", "b", "c"), *elsewhere[30:])
        await wait_until(lambda: statuses(rig.hook) == [("firing", 1)])
        await rig.processed(63)
    shutil.rmtree(rig.settings.alerter_data_dir)  # the volume is gone; Kafka still has it all
    async with rig.alerter():
        await rig.publish(*stories("d", "e", "f", at=T0 + timedelta(minutes=1)))
        await rig.processed(66)  # the replay counts again
        assert statuses(rig.hook) == [("firing", 1)]  # the record came back from `alerts`
        await wait_until(lambda: rig.sample("blocwatch_alerter_rebuilding") == 0)
        rig.clock.advance(timedelta(minutes=11))  # past the cooldown: 6 stories ≥ 2 × 3
        await wait_until(lambda: len(rig.hook.received) == 2)
    assert statuses(rig.hook) == [("firing", 1), ("firing", 2)]
    assert rig.hook.received[1]["counts"]["stories"] == 6  # type: ignore[index]


async def test_a_rebuild_killed_half_way_is_done_again_at_the_next_start(rig: Rig) -> None:
    async with rig.alerter():
        await rig.publish(*stories("a", "b", "c"))
        await wait_until(lambda: statuses(rig.hook) == [("firing", 1)])
        await rig.processed(3)
    shutil.rmtree(rig.settings.alerter_data_dir)
    # What an alerter killed right after starting on the empty volume leaves: a store that
    # knows its first start but holds nothing from Kafka yet.
    rig.settings.alerter_data_dir.mkdir()
    with StateStore(rig.settings.state_file) as store:
        store.set_meta(REBUILDING, T0.isoformat())
        store.set_meta("first_started_at", T0.isoformat())
    async with rig.alerter():
        await rig.publish(*stories("d", "e", "f", at=T0 + timedelta(minutes=1)))
        await rig.processed(6)
        assert statuses(rig.hook) == [("firing", 1)]  # not a second #1
        rig.clock.advance(timedelta(minutes=11))
        await wait_until(lambda: len(rig.hook.received) == 2)
    assert statuses(rig.hook) == [("firing", 1), ("firing", 2)]
    assert rig.hook.received[1]["counts"]["stories"] == 6  # type: ignore[index]
    with StateStore(rig.settings.state_file) as store:
        assert store.get_meta(REBUILDING) is None  # rebuilt: the next start will not redo it


async def test_poison_records_go_to_the_dead_letter_topic(rig: Rig) -> None:
    async with rig.alerter() as service:
        await rig.producer.send_and_wait(rig.settings.topics.news_tagged, b'{"id": 1', key=b"k")
        dlq = rig.settings.topics.dlq(rig.settings.topics.news_tagged)
        [record] = await read_topic(rig.settings, dlq, count=1)
        await rig.publish(*stories("a", "b", "c"))
        await wait_until(lambda: len(rig.hook.received) == 1)  # the stream went on
        async with aiohttp.ClientSession() as session:
            assert service._ops is not None
            async with session.get(f"{service._ops.url}/metrics") as response:
                exposition = await response.text()
            async with session.get(f"{service._ops.url}/readyz") as response:
                assert response.status == 200
    letter = decode(DeadLetter, record.value)
    assert (letter.stage, letter.value, letter.key) == ("alerter", b'{"id": 1', b"k")
    assert "invalid TaggedItem" in letter.error
    for name in (
        "blocwatch_alerter_items_total",
        "blocwatch_alerter_dead_letters_total",
        "blocwatch_alerter_notification_duration_seconds_bucket",
        "blocwatch_alerter_end_to_end_latency_seconds_bucket",
        "blocwatch_alerter_active_silences",
        'blocwatch_build_info{service="alerter"',
    ):
        assert name in exposition


def test_secrets_stay_out_of_repr_help_and_settings(capsys: pytest.CaptureFixture[str]) -> None:
    settings = AlerterSettings(
        alerter_webhook_urls=f"https://hooks.example/x?token={TOKEN}",
        alerter_webhook_secret=SECRET,
        alerter_apprise_urls=f"tgram://{TOKEN}/12345",
    )
    assert TOKEN not in repr(settings)
    assert SECRET not in repr(settings)
    for command in (["alert", "--help"], ["settings"]):
        with pytest.raises(SystemExit) if "--help" in command else nullcontext():
            main(command)
        out = capsys.readouterr().out
        assert TOKEN not in out
        assert SECRET not in out
    assert TOKEN not in json.dumps(settings.model_dump(mode="json"))


async def _scrape(session: aiohttp.ClientSession, port: int, name: str) -> float | None:
    """A sample of the alerter subprocess's /metrics, None while it is not serving yet."""
    try:
        async with session.get(f"http://127.0.0.1:{port}/metrics") as response:
            text = await response.text()
    except aiohttp.ClientError:
        return None
    match = re.search(rf"^{name} ([0-9.e+]+)$", text, re.MULTILINE)
    return float(match[1]) if match else None


async def _wait_metric(port: int, name: str, wanted: float) -> None:
    deadline = time.monotonic() + 60
    async with aiohttp.ClientSession() as session:
        while await _scrape(session, port, name) != wanted:
            assert time.monotonic() < deadline, f"{name} never reached {wanted}"
            await asyncio.sleep(0.1)


def _start_alerter(rig: Rig, rules: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    settings = rig.settings
    env = {
        **os.environ,
        "BLOCWATCH_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "BLOCWATCH_TOPIC_PREFIX": settings.topic_prefix,
        "BLOCWATCH_ALERTER_RULES_FILE": str(rules),
        "BLOCWATCH_ALERTER_DATA_DIR": str(settings.alerter_data_dir),
        "BLOCWATCH_ALERTER_GROUP_ID": settings.alerter_group_id,
        "BLOCWATCH_ALERTER_METRICS_PORT": str(port),
        "BLOCWATCH_ALERTER_WEBHOOK_URLS": f"{rig.hook.url}?token={TOKEN}",
        "BLOCWATCH_ALERTER_WEBHOOK_SECRET": SECRET,
        "BLOCWATCH_ALERTER_CONSOLE": "false",
        "BLOCWATCH_ALERTER_TICK_S": "0.2",
        "BLOCWATCH_ALERTER_SESSION_TIMEOUT_MS": "1000",
    }
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "blocwatch", "alert"], env=env, stdout=out, stderr=out
        )


async def test_alerter_killed_mid_window_fires_once_after_restart(rig: Rig, tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(SURGE)
    log = tmp_path / "alerter.log"
    now = datetime.now(UTC)  # the subprocess runs on the wall clock
    port = free_port()
    first = _start_alerter(rig, rules, port, log)
    try:
        await rig.publish(*stories("a", "b", at=now))
        await _wait_metric(port, "blocwatch_alerter_items_total", 2)
    finally:
        first.kill()  # SIGKILL mid-window: no clean shutdown of anything
        first.wait()
    port = free_port()
    second = _start_alerter(rig, rules, port, log)
    try:
        await rig.publish(*stories("c", at=now + timedelta(seconds=5)))
        await wait_until(lambda: len(rig.hook.received) == 1, timeout_s=60)
        await _wait_metric(port, "blocwatch_alerter_outbox_depth", 0)
    finally:
        second.terminate()
        second.wait(timeout=30)
    assert statuses(rig.hook) == [("firing", 1)]
    assert rig.hook.received[0]["counts"]["stories"] == 3  # type: ignore[index]
    assert rig.hook.signatures_ok == [True]
    output = log.read_text()
    assert "alerter running" in output
    assert TOKEN not in output
    assert SECRET not in output


REPEATING = SURGE.replace("cooldown: 10m", "cooldown: 1m\n    repeat_interval: 5m")


async def test_console_acknowledgement_mutes_repeats_until_growth(rig: Rig) -> None:
    async with rig.alerter(REPEATING) as service:
        await rig.publish(*stories("a", "b", "c"))
        await wait_until(lambda: statuses(rig.hook) == [("firing", 1)])
        fingerprint = str(rig.hook.received[0]["fingerprint"])
        ack = AlertAction(
            id="ack-1", fingerprint=fingerprint, action="acknowledge", who="kim", at=rig.clock()
        )
        await rig.producer.send_and_wait(
            rig.settings.topics.alert_actions, encode(ack), key=fingerprint.encode()
        )
        await wait_until(lambda: fingerprint in service.acknowledged)
        rig.clock.advance(timedelta(minutes=6))  # repeat_interval passed: muted, not sent
        silenced = {"rule": "surge", "severity": "critical", "status": "silenced"}
        await wait_until(lambda: rig.sample("blocwatch_alerter_alerts_total", **silenced) == 1)
        assert len(rig.hook.received) == 1
        rig.clock.advance(timedelta(minutes=2))  # past the cooldown of the muted repeat
        await rig.publish(*stories("d", "e", "f", at=T0 + timedelta(minutes=7)))  # grew ×2
        await wait_until(lambda: len(rig.hook.received) == 2)
        assert fingerprint not in service.acknowledged
