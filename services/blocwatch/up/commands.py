"""`blocwatch up [--demo]` (the whole pipeline on one machine) and `blocwatch tail TOPIC`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import yaml
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord
from rich.console import Console
from rich.text import Text

from blocwatch.core.broker import EmbeddedBroker
from blocwatch.core.commands import wait_for_signal
from blocwatch.core.errors import BrokerError
from blocwatch.core.kafka import ensure_topics, list_topics, make_consumer
from blocwatch.core.models import Alert
from blocwatch.core.settings import KafkaSettings, load_settings
from blocwatch.up.demo import FeedServer, feeds_document, load_sample
from blocwatch.up.plan import ServicePlan, plan_services
from blocwatch.up.settings import UpSettings
from blocwatch.up.supervisor import Backoff, ChildEvent, ChildSpec, Supervisor
from blocwatch.up.view import alert_panel, decode_record, model_for_topic, record_json, record_line

__all__ = ["register"]

LOG_TAIL_LINES = 8
READY_TIMEOUT_S = 120.0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    up = subparsers.add_parser(
        "up",
        help="run broker, collector, processor, alerter and console on this machine until Ctrl-C",
        description=(
            "Start the embedded broker (unless BLOCWATCH_KAFKA_BOOTSTRAP_SERVERS is set), create "
            "the topics, run collector, processor, alerter and the watch-officer console as "
            "supervised child processes "
            "(restarted with backoff if they die), and show firing alerts as they happen. "
            "Ctrl-C or SIGTERM stops everything in order."
        ),
    )
    up.add_argument(
        "--demo",
        action="store_true",
        help="serve a bundled sample of news from a local feed server (no internet needed)",
    )
    up.add_argument(
        "--no-view", action="store_true", help="do not print alerts (BLOCWATCH_UP_VIEW)"
    )
    up.set_defaults(run=_run_up)

    tail = subparsers.add_parser(
        "tail",
        help="print the messages of any topic as they arrive",
        description=(
            "Subscribe to a topic and pretty-print each message, decoded with the topic's "
            "contract; records that do not decode are shown with the reason and a safe preview. "
            "TOPIC is a name like news.tagged (the BLOCWATCH_TOPIC_PREFIX is added)."
        ),
    )
    tail.add_argument("topic", metavar="TOPIC", help="topic name, e.g. news.raw or alerts")
    tail.add_argument(
        "--from-beginning", action="store_true", help="start at the oldest message, not the end"
    )
    tail.add_argument("--json", action="store_true", help="one JSON document per line")
    tail.add_argument("--count", type=int, default=None, help="exit after this many messages")
    tail.add_argument(
        "--timeout", type=float, default=None, help="exit after this many seconds (default: never)"
    )
    tail.set_defaults(run=_run_tail)


# ---------------------------------------------------------------------------------------- tail


def resolve_topic(name: str, prefix: str) -> str:
    """Add the deployment's prefix unless the name already carries it."""
    return name if not prefix or name.startswith(prefix) else prefix + name


def _run_tail(args: argparse.Namespace) -> int:
    settings = load_settings(KafkaSettings)
    console = Console(highlight=False, soft_wrap=True)
    logging.getLogger("aiokafka").setLevel(logging.WARNING)  # stdout/stderr are for messages
    asyncio.run(_tail(settings, args, console))
    return 0


async def _tail(settings: KafkaSettings, args: argparse.Namespace, console: Console) -> None:
    topic = resolve_topic(args.topic, settings.topic_prefix)
    existing = await list_topics(settings)
    if topic not in existing:
        raise BrokerError(
            f"topic {topic} does not exist on {settings.kafka_bootstrap_servers}",
            "check the name (`blocwatch topics list`) and BLOCWATCH_TOPIC_PREFIX",
        )
    model = model_for_topic(topic, settings.topic_prefix)
    reset = "earliest" if args.from_beginning else "latest"
    consumer = make_consumer(settings, "tail", topic, group_id=None, auto_offset_reset=reset)
    await consumer.start()
    try:
        stop = asyncio.create_task(wait_for_signal())
        deadline = time.monotonic() + args.timeout if args.timeout is not None else None
        seen = 0
        async for record in _records(consumer, stop, deadline):
            decoded = decode_record(model, record.value)
            where = (record.topic, record.partition, record.offset, record.key)
            if args.json:
                print(record_json(*where, decoded, record.value), flush=True)
            else:
                console.print(record_line(*where, decoded, record.value))
            seen += 1
            if args.count is not None and seen >= args.count:
                break
        stop.cancel()
    finally:
        await consumer.stop()


async def _records(
    consumer: AIOKafkaConsumer, stop: asyncio.Task[None], deadline: float | None
) -> AsyncIterator[ConsumerRecord[bytes, bytes]]:
    """Records until a signal arrives or the deadline passes."""
    while not stop.done() and (deadline is None or time.monotonic() < deadline):
        batch = await consumer.getmany(timeout_ms=200)
        for part in batch.values():
            for record in part:
                yield record


# ------------------------------------------------------------------------------------------ up


def _run_up(args: argparse.Namespace) -> int:
    settings = load_settings(UpSettings)
    console = Console(highlight=False)
    logging.getLogger("aiokafka").setLevel(logging.WARNING)  # the view's consumer chatter
    asyncio.run(_up(settings, args, console, dict(os.environ)))
    return 0


def _run_dir(settings: UpSettings) -> Path:
    if settings.up_run_dir is not None:
        settings.up_run_dir.mkdir(parents=True, exist_ok=True)
        return settings.up_run_dir
    return Path(tempfile.mkdtemp(prefix="blocwatch-up-"))


async def _up(
    settings: UpSettings, args: argparse.Namespace, console: Console, environ: dict[str, str]
) -> None:
    stop = asyncio.create_task(wait_for_signal())  # a Ctrl-C during start-up stops cleanly too
    run_dir = _run_dir(settings)
    async with contextlib.AsyncExitStack() as stack:
        external = "kafka_bootstrap_servers" in settings.model_fields_set
        if external:
            servers = settings.kafka_bootstrap_servers
            console.print(f"broker:   {servers} (external, from BLOCWATCH_KAFKA_BOOTSTRAP_SERVERS)")
        else:
            broker = EmbeddedBroker(
                settings.broker_host,
                settings.broker_port,
                settings.broker_binary,
                log_path=run_dir / "broker.log",
            )
            await stack.enter_async_context(broker)
            servers = broker.bootstrap_servers
            console.print(f"broker:   {servers} (embedded, memory storage: a restart forgets all)")
        kafka = settings.model_copy(update={"kafka_bootstrap_servers": servers})
        created = await ensure_topics(kafka)
        console.print(
            f"topics:   {', '.join(kafka.topics.all())} "
            f"({len(created)} created, prefix {kafka.topic_prefix!r})"
        )
        overrides: dict[str, str] = {}
        if args.demo:
            overrides = await _start_demo(settings, run_dir, stack, console)
        plans = plan_services(
            settings, environ, bootstrap_servers=servers, run_dir=run_dir, overrides=overrides
        )
        _print_plans(console, plans, run_dir)
        if settings.up_view and not args.no_view:
            view = asyncio.create_task(_show_alerts(kafka, console, from_beginning=not external))
            view.add_done_callback(_report_crash(console))
            stack.push_async_callback(_cancel, view)
        supervisor = Supervisor(
            [
                ChildSpec(p.name, p.argv, p.env, p.log_path, settings.up_stop_timeout_s)
                for p in plans
            ],
            backoff=Backoff(
                initial_s=settings.up_restart_initial_s, max_s=settings.up_restart_max_s
            ),
            report=_reporter(console, {p.name: p for p in plans}),
        )
        await supervisor.start()
        stack.push_async_callback(supervisor.stop)
        ready = asyncio.create_task(_announce_ready(plans, console))
        stack.push_async_callback(_cancel, ready)
        console.print("[dim]press Ctrl-C to stop[/dim]")
        await stop
        _keep_stopping(console)
        order = [p.name for p in plans] + (["feeds"] if args.demo else [])
        order += [] if external else ["broker"]
        console.print(f"stopping: {' → '.join(order)}")
    console.print("stopped")


async def _start_demo(
    settings: UpSettings, run_dir: Path, stack: contextlib.AsyncExitStack, console: Console
) -> dict[str, str]:
    """Serve the bundled sample and point the collector at it; returns env overrides."""
    sample = load_sample()
    server = FeedServer(sample, host=settings.up_demo_host, port=settings.up_demo_port)
    await stack.enter_async_context(server)
    feeds_file = run_dir / "demo-feeds.yaml"
    document = feeds_document(sample, server.base_url, settings.up_demo_poll_interval_s)
    feeds_file.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    last = max(item.at for item in sample.items)
    console.print(
        f"demo:     {len(sample.items)} invented news items from {len(sample.outlets)} outlets, "
        f"released over {last / 60:.0f} min at {server.base_url}/"
    )
    overrides = {
        "BLOCWATCH_COLLECTOR_FEEDS_FILE": str(feeds_file),
        # the demo server is on loopback, which the collector refuses by default (SSRF)
        "BLOCWATCH_COLLECTOR_ALLOW_PRIVATE_ADDRESSES": "true",
    }
    rules = demo_rules_file()
    if rules is not None:
        overrides["BLOCWATCH_ALERTER_RULES_FILE"] = str(rules)
    return overrides


def demo_rules_file() -> Path | None:
    """Rules tuned to the demo sample, when shipped beside it."""
    path = Path(__file__).with_name("demo_rules.yaml")
    return path if path.exists() else None


def _print_plans(console: Console, plans: list[ServicePlan], run_dir: Path) -> None:
    for plan in plans:
        extra = f"  file: {plan.config_file}" if plan.config_file else ""
        extra += f"  page: {plan.page_url}" if plan.page_url else ""
        console.print(
            f"{plan.name + ':':<10}blocwatch {plan.service.command:<8} "
            f"metrics {plan.metrics_url}{extra}"
        )
    for plan in plans:
        if plan.page_url:
            console.print(f"{plan.name}: {plan.page_url}")
    console.print(f"logs:     {run_dir}/<service>.log")


def _reporter(console: Console, plans: dict[str, ServicePlan]) -> Callable[[ChildEvent], None]:
    log_start: dict[str, int] = {}  # where each child's current run begins in its log

    def report(event: ChildEvent) -> None:
        log = plans[event.name].log_path
        if event.kind == "started":
            log_start[event.name] = log.stat().st_size if log.exists() else 0
            if event.restarts:
                console.print(
                    f"{event.name}: restarted (pid {event.pid}, restart #{event.restarts})"
                )
            else:
                console.print(f"{event.name}: started (pid {event.pid})")
        elif event.kind == "exited":
            console.print(
                f"[red]{event.name} exited with code {event.returncode}[/red] (log: {log})"
            )
            for line in _log_tail(log, log_start.get(event.name, 0)):
                console.print(Text(f"  {line}", style="dim"))
        elif event.kind == "restarting":
            console.print(f"[yellow]{event.name}: restarting in {event.delay_s:.1f}s[/yellow]")
        elif event.kind == "gave_up":
            console.print(f"[red]{event.name}: gave up after {event.restarts} restarts[/red]")
        elif event.kind == "stopped":
            console.print(f"{event.name}: stopped")

    return report


def _log_tail(path: Path, start: int) -> list[str]:
    """The last lines a child wrote since `start` (its current run)."""
    try:
        with path.open("rb") as log:
            log.seek(start)
            text = log.read().decode("utf-8", errors="replace")
    except OSError:
        return []
    return text.splitlines()[-LOG_TAIL_LINES:]


async def _announce_ready(plans: list[ServicePlan], console: Console) -> None:
    """Print once every service's metrics endpoint answers: the pipeline is running."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    pending = {p.name: p.metrics_url.replace("/metrics", "/healthz") for p in plans}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        while pending and time.monotonic() < deadline:
            for name, url in list(pending.items()):
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with session.get(url) as response:
                        if response.status == 200:
                            del pending[name]
            await asyncio.sleep(0.5)
    if pending:
        console.print(f"[yellow]not answering yet: {', '.join(pending)}[/yellow]")
    else:
        console.print("[green]pipeline up:[/green] every service answers /healthz")


async def _show_alerts(settings: KafkaSettings, console: Console, *, from_beginning: bool) -> None:
    """Print each alert as it arrives on the alerts topic."""
    reset = "earliest" if from_beginning else "latest"
    topic = settings.topics.alerts
    consumer = make_consumer(settings, "up-view", topic, group_id=None, auto_offset_reset=reset)
    await consumer.start()
    try:
        while True:
            batch = await consumer.getmany(timeout_ms=500)
            for part in batch.values():
                for record in part:
                    _show_alert(console, record)
    finally:
        await consumer.stop()


def _show_alert(console: Console, record: ConsumerRecord[bytes, bytes]) -> None:
    decoded = decode_record(Alert, record.value)
    if isinstance(decoded.message, Alert):
        console.print(alert_panel(decoded.message))
    else:
        where = (record.topic, record.partition, record.offset, record.key)
        console.print(record_line(*where, decoded, record.value))


def _report_crash(console: Console) -> Callable[[asyncio.Task[None]], None]:
    """The console view is a convenience: if it fails, say so once; the pipeline runs on."""

    def done(task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            console.print(f"[red]alert view stopped: {task.exception()!r}[/red]")

    return done


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def _keep_stopping(console: Console) -> None:
    """After the first Ctrl-C, further ones must not abort the ordered stop (orphans)."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, console.print, "already stopping, please wait…")
