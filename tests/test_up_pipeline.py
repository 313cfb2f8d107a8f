"""End to end: `blocwatch up` as a subprocess runs the real collector, processor and alerter.

A local feed server serves items this test writes (plus ../shared/seeds as feed entries when
present); a local webhook receiver checks the alert's HMAC signature. The session broker is
shared, so everything gets a fresh topic prefix and consumer group. Latency from an item being
available on the feed to the webhook call is printed, never asserted.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import re
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
import yaml
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from blocwatch.cli import build_parser
from blocwatch.core.broker import EmbeddedBroker, free_port
from blocwatch.core.codec import decode
from blocwatch.core.models import Alert, NewsItem, TaggedItem
from blocwatch.core.settings import KafkaSettings
from blocwatch.up.demo import DemoItem, DemoSample, FeedServer, Outlet, feeds_document

from .streams import read_topic

pytestmark = [pytest.mark.broker, pytest.mark.timeout(600)]

PIPELINE_COMMANDS = ("collect", "process", "alert")
SERVICES = ("collector", "processor", "alerter")
STOP_ORDER = ("collector", "processor", "alerter", "console")
SECRET = "e2e-webhook-secret"
START_TIMEOUT_S = 180.0
FLOW_TIMEOUT_S = 180.0


def _missing_commands() -> list[str]:
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.choices and "up" in a.choices)
    assert isinstance(subparsers.choices, dict)
    return [c for c in PIPELINE_COMMANDS if c not in subparsers.choices]


@pytest.fixture(autouse=True)
def _services_present() -> None:
    missing = _missing_commands()
    if missing:
        pytest.skip(
            "the end-to-end test runs the real services; not on this branch yet: "
            + ", ".join(f"`blocwatch {c}`" for c in missing)
        )


OUTLETS = [
    Outlet(slug="wire-a", name="Wire A"),
    Outlet(slug="wire-b", name="Wire B"),
    Outlet(slug="wire-c", name="Wire C"),
    Outlet(slug="wire-d", name="Wire D"),
]

# Written for this test: (outlet, title, summary, expected labels).
ITEMS: list[tuple[str, str, str, set[str]]] = [
    (
        "wire-a",
        "North Korea fires three ballistic missiles into the sea off its east coast",
        "North Korea launched three short-range ballistic missiles on Tuesday, South Korea's "
        "military said, in its latest weapons test.",
        {"escalation"},
    ),
    (
        "wire-b",
        "Pyongyang test-fires three short-range ballistic missiles, Seoul says",
        "North Korea test-fired three short-range ballistic missiles off its east coast, "
        "South Korea's Joint Chiefs of Staff said.",
        {"escalation"},
    ),
    (
        "wire-c",
        "South Korea and the United States stage live-fire drills near the border",
        "South Korean and American troops held combined live-fire artillery drills near the "
        "demilitarised zone.",
        {"escalation"},
    ),
    (
        "wire-b",
        "North Korea threatens to strike South Korean border units",
        "North Korea threatened to strike South Korean army units along the border if "
        "propaganda broadcasts continue.",
        {"escalation"},
    ),
    (
        "wire-d",
        "South Korea imposes sanctions on North Korean shipping companies",
        "Seoul imposed sanctions on three North Korean shipping firms accused of moving "
        "munitions to Russia.",
        {"escalation"},
    ),
    (
        "wire-c",
        "Russia and North Korea sign mutual defence treaty in Pyongyang",
        "Russia and North Korea signed a comprehensive strategic partnership treaty with a "
        "mutual defence clause.",
        {"alliance"},
    ),
    (
        "wire-d",
        "Fisheries ministers meet in Jakarta to discuss quotas",
        "Ministers from six countries met in Jakarta to discuss fishing quotas and agreed to "
        "meet again next year.",
        set(),
    ),
]

RULES = {
    "rules": [
        {
            "name": "e2e-escalation-surge",
            "type": "threshold",
            "severity": "critical",
            "filter": {"labels": ["escalation"]},
            "count": "stories",
            "threshold": 3,
            "min_sources": 2,
            "window": "6h",
            "cooldown": "1h",
        }
    ]
}


@pytest.fixture
def seed_items(request: pytest.FixtureRequest) -> list[tuple[str, str, str, set[str]]]:
    """../shared/seeds as feed entries when present (the e2e test runs without them too)."""
    try:
        shared: Path = request.getfixturevalue("shared_dir")
    except pytest.skip.Exception:
        return []
    return _seed_items(shared)


def _seed_items(shared: Path) -> list[tuple[str, str, str, set[str]]]:
    """First line the title, the rest of the text the summary; labels per the processor issue."""
    if not (shared / "seeds").is_dir():
        return []
    expected = {"000": {"alliance"}, "003": {"escalation", "alliance"}}
    seeds = []
    for path in sorted((shared / "seeds").glob("*.txt")):
        lines = [line.strip() for line in path.read_text("utf-8").splitlines() if line.strip()]
        summary = " ".join(lines[1:])[:3000]
        seeds.append(("wire-a", lines[0], summary, expected.get(path.name[:3], set())))
    return seeds


# ------------------------------------------------------------------------------ local servers


@dataclass
class Webhook:
    """A local webhook receiver recording every call with its arrival time."""

    calls: list[tuple[float, dict[str, str], bytes]] = field(default_factory=list)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def handle(self, request: web.Request) -> web.Response:
        self.calls.append((time.time(), dict(request.headers), await request.read()))
        return web.Response(text="ok")


@contextlib.asynccontextmanager
async def _webhook() -> AsyncIterator[Webhook]:
    hook = Webhook()
    app = web.Application()
    app.router.add_post("/hook", hook.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    hook.port = free_port()
    await web.TCPSite(runner, "127.0.0.1", hook.port).start()
    try:
        yield hook
    finally:
        await runner.cleanup()


# ------------------------------------------------------------------------- the `up` process


@dataclass
class Up:
    process: asyncio.subprocess.Process
    output: Path
    ports: dict[str, int]
    settings: KafkaSettings

    def text(self) -> str:
        return self.output.read_text("utf-8", errors="replace")

    def child_pids(self) -> list[int]:
        return [int(p) for p in re.findall(r"started \(pid (\d+)", self.text())]

    async def metrics(self, service: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        url = f"http://127.0.0.1:{self.ports[service]}/metrics"
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            text = await response.text()
        samples = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
        return samples

    async def metric_sum(self, service: str, name: str, **labels: str) -> float:
        samples = await self.metrics(service)
        wanted = set(labels.items())
        return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


async def _wait(
    condition: Callable[[], object], what: str, up: Up | None = None, timeout_s: float = 120.0
) -> None:
    """Poll a (sync or async) condition until true; fail with `up`'s output for diagnosis."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(aiohttp.ClientError, OSError):
            result = condition()
            if asyncio.iscoroutine(result):
                result = await result
            if result:
                return
        if up is not None and up.process.returncode is not None:
            break
        await asyncio.sleep(0.25)
    detail = up.text()[-4000:] if up is not None else ""
    raise AssertionError(f"timed out waiting for {what}\n--- blocwatch up output ---\n{detail}")


async def _healthy(up: Up) -> bool:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        for service in up.ports:
            url = f"http://127.0.0.1:{up.ports[service]}/healthz"
            async with session.get(url) as response:
                if response.status != 200:
                    return False
    return True


@contextlib.asynccontextmanager
async def _up(
    broker: EmbeddedBroker,
    tmp_path: Path,
    feeds_file: Path,
    extra_env: dict[str, str],
    services: tuple[str, ...] = SERVICES,
) -> AsyncIterator[Up]:
    prefix = f"e2e{uuid.uuid4().hex[:8]}."
    ports = {s: free_port() for s in services}
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text(yaml.safe_dump(RULES), encoding="utf-8")
    env = {
        **os.environ,
        "BLOCWATCH_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
        "BLOCWATCH_TOPIC_PREFIX": prefix,
        "BLOCWATCH_UP_RUN_DIR": str(tmp_path / "run"),
        "BLOCWATCH_UP_SERVICES": ",".join(services),
        "BLOCWATCH_UP_RESTART_INITIAL_S": "0.5",
        "BLOCWATCH_COLLECTOR_FEEDS_FILE": str(feeds_file),
        "BLOCWATCH_COLLECTOR_ALLOW_PRIVATE_ADDRESSES": "true",
        "BLOCWATCH_COLLECTOR_MAX_BACKOFF_S": "2",
        "BLOCWATCH_COLLECTOR_CONNECT_TIMEOUT_S": "2",
        "BLOCWATCH_PROCESSOR_SESSION_TIMEOUT_SECONDS": "10",
        "BLOCWATCH_PROCESSOR_REBALANCE_TIMEOUT_SECONDS": "10",
        "BLOCWATCH_PROCESSOR_HEARTBEAT_INTERVAL_SECONDS": "1",
        "BLOCWATCH_ALERTER_RULES_FILE": str(rules_file),
        "BLOCWATCH_ALERTER_GROUP_ID": f"{prefix}alerter",
        "BLOCWATCH_ALERTER_TICK_S": "1",
        "COLUMNS": "160",
        **{f"BLOCWATCH_{s.upper()}_METRICS_PORT": str(p) for s, p in ports.items()},
        **extra_env,
    }
    output = tmp_path / "up.out"
    with output.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "blocwatch",
            "up",
            env=env,
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
        )
    settings = KafkaSettings(kafka_bootstrap_servers=broker.bootstrap_servers, topic_prefix=prefix)
    up = Up(process, output, ports, settings)
    try:
        yield up
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), 90)
        if process.returncode is None:
            process.kill()
            await process.wait()


async def _stop_cleanly(up: Up, sig: signal.Signals = signal.SIGTERM) -> None:
    """SIGTERM or Ctrl-C: exit code 0, children stopped in order, none left behind."""
    pids = up.child_pids()
    up.process.send_signal(sig)
    code = await asyncio.wait_for(up.process.wait(), 90)
    text = up.text()
    assert code == 0, text[-3000:]
    stopped = re.findall(r"(\w+): stopped", text)
    assert [s for s in stopped if s in STOP_ORDER] == [s for s in STOP_ORDER if s in up.ports]
    assert pids
    for pid in pids:
        assert _state(pid) in ("gone", "State:\tZ (zombie)")


def _state(pid: int) -> str:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("State:"):
                return line
    return "gone"


def _by_title(values: list[bytes], model: type[NewsItem]) -> dict[str, NewsItem]:
    decoded = [decode(model, v) for v in values]
    return {item.title: item for item in decoded}


# ------------------------------------------------------------------------------------ tests


async def test_up_runs_the_whole_pipeline_end_to_end(
    broker: EmbeddedBroker, tmp_path: Path, seed_items: list[tuple[str, str, str, set[str]]]
) -> None:
    items = ITEMS + seed_items
    sample = DemoSample(outlets=OUTLETS, items=[])
    async with FeedServer(sample) as feeds, _webhook() as hook:
        feeds_file = tmp_path / "feeds.yaml"
        document = feeds_document(sample, feeds.base_url, interval_s=1.0)
        feeds_file.write_text(yaml.safe_dump(document), encoding="utf-8")
        env = {
            "BLOCWATCH_ALERTER_WEBHOOK_URLS": hook.url,
            "BLOCWATCH_ALERTER_WEBHOOK_SECRET": SECRET,
        }
        async with _up(broker, tmp_path, feeds_file, env) as up:
            await _wait(lambda: _healthy(up), "every service's /healthz", up, START_TIMEOUT_S)
            await _wait(lambda: feeds.requests >= len(OUTLETS), "the collector polling", up)

            published_at = time.time()
            for index, (outlet, title, summary, _) in enumerate(items):
                feeds.add(DemoItem(id=f"e2e-{index}", outlet=outlet, title=title, summary=summary))

            await _wait(lambda: hook.calls, "the webhook call", up, FLOW_TIMEOUT_S)
            received_at, headers, body = hook.calls[0]
            latency = received_at - published_at
            print(f"\nlatency feed item available → webhook call: {latency:.2f}s")

            signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
            assert hmac.compare_digest(headers["X-Blocwatch-Signature"], signature)
            alert = Alert.model_validate(json.loads(body))
            assert alert.rule == "e2e-escalation-surge"
            assert alert.status == "firing"
            assert alert.counts.stories >= 3

            topics = up.settings.topics
            raw = await read_topic(up.settings, topics.news_raw, count=len(items), timeout_s=60)
            news = _by_title([r.value for r in raw], NewsItem)
            assert {title for _, title, _, _ in items} <= news.keys()

            tagged_records = await read_topic(
                up.settings, topics.news_tagged, count=len(items), timeout_s=60
            )
            tagged = {
                item.title: item for item in (decode(TaggedItem, r.value) for r in tagged_records)
            }
            for _, title, _, labels in items:
                assert labels <= tagged[title].labels, (title, tagged[title].tags)
                if not labels:
                    assert not tagged[title].labels, (title, tagged[title].tags)

            [alert_record, *_] = await read_topic(up.settings, topics.alerts, count=1)
            assert decode(Alert, alert_record.value).fingerprint == alert.fingerprint

            n = len(items)
            count = up.metric_sum
            assert await count("collector", "blocwatch_collector_items_published_total") >= n
            assert await count("processor", "blocwatch_processor_items_total") >= n
            assert await count("alerter", "blocwatch_alerter_items_total") >= n
            assert await count("alerter", "blocwatch_alerter_alerts_total", status="firing") >= 1
            sent = {"receiver": "webhook", "result": "sent"}
            assert await count("alerter", "blocwatch_alerter_notifications_total", **sent) >= 1
            await _wait(  # the console view shows the alert too
                lambda: "CRITICAL FIRING e2e-escalation-surge" in up.text(), "the console view", up
            )
            await _stop_cleanly(up)


async def test_unreachable_feed_server_is_survived_and_caught_up(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    sample = DemoSample(outlets=OUTLETS[:1], items=[])
    port = free_port()
    feeds_file = tmp_path / "feeds.yaml"
    document = feeds_document(sample, f"http://127.0.0.1:{port}", interval_s=1.0)
    feeds_file.write_text(yaml.safe_dump(document), encoding="utf-8")
    services = ("collector", "processor")
    async with _up(broker, tmp_path, feeds_file, {}, services) as up:
        await _wait(lambda: _healthy(up), "the services' /healthz", up, START_TIMEOUT_S)

        async def failures() -> float:
            return await up.metric_sum(
                "collector", "blocwatch_collector_fetches_total", result="network_error"
            )

        await _wait(lambda: _at_least(failures, 2), "failed fetches counted", up)
        assert "exited" not in up.text()  # failing fetches are not a crash

        # A child that dies is reported and restarted: kill the collector outright.
        [collector_pid] = re.findall(r"collector: started \(pid (\d+)", up.text())
        os.kill(int(collector_pid), signal.SIGKILL)
        await _wait(lambda: "collector: restarted" in up.text(), "the collector restarted", up)
        assert "collector exited with code -9" in up.text()
        await _wait(lambda: _healthy(up), "the restarted collector's /healthz", up)

        _, title, summary, _ = ITEMS[0]
        outlet = OUTLETS[0].slug
        late = DemoItem(id="late-1", outlet=outlet, title=title, summary=summary)
        async with FeedServer(DemoSample(outlets=OUTLETS[:1], items=[late]), port=port):
            topics = up.settings.topics
            tagged = await read_topic(up.settings, topics.news_tagged, count=1, timeout_s=120)
            assert [decode(TaggedItem, r.value).title for r in tagged] == [title]
        ok = await up.metric_sum("collector", "blocwatch_collector_fetches_total", result="ok")
        assert ok >= 1
        assert "processor exited" not in up.text()
        await _stop_cleanly(up)


async def _at_least(value: Callable[[], object], minimum: float) -> bool:
    result = value()
    if asyncio.iscoroutine(result):
        result = await result
    assert isinstance(result, int | float)
    return result >= minimum


async def test_up_demo_starts_its_own_broker_and_fires_an_alert(tmp_path: Path) -> None:
    """`make up`: no broker given, bundled demo news; the Korean Peninsula alert shows up."""
    ports = {s: free_port() for s in (*SERVICES, "console")}
    page_port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "BLOCWATCH_KAFKA_BOOTSTRAP_SERVERS"}
    env.update(
        {
            "BLOCWATCH_BROKER_PORT": str(free_port()),
            "BLOCWATCH_UP_RUN_DIR": str(tmp_path / "run"),
            "BLOCWATCH_UP_DEMO_POLL_INTERVAL_S": "1",
            "BLOCWATCH_ALERTER_CONSOLE": "false",
            "BLOCWATCH_CONSOLE_PORT": str(page_port),
            "COLUMNS": "160",
            **{f"BLOCWATCH_{s.upper()}_METRICS_PORT": str(p) for s, p in ports.items()},
        }
    )
    output = tmp_path / "up.out"
    with output.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "blocwatch", "up", "--demo", env=env, stdout=out, stderr=out
        )
    up = Up(process, output, ports, KafkaSettings())
    try:
        await _wait(
            lambda: "CRITICAL FIRING demo-korean-peninsula-escalation" in up.text(),
            "the demo's Korean Peninsula alert in the console",
            up,
            FLOW_TIMEOUT_S,
        )
        assert "(embedded, memory storage" in up.text()
        assert f"console: http://127.0.0.1:{page_port}/" in up.text()
        await _wait(lambda: _healthy(up), "every service's /healthz, the console's too", up)
        assert await up.metric_sum("alerter", "blocwatch_alerter_alerts_total") >= 1
        await _stop_cleanly(up, signal.SIGINT)  # what Ctrl-C sends
        assert "broker" in up.text().rsplit("stopping:", 1)[1]
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
