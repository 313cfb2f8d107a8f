"""`blocwatch collect` and `blocwatch ingest`."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from blocwatch.collector.feeds import Feed, load_feeds, shard
from blocwatch.collector.metrics import CollectorMetrics
from blocwatch.collector.normalise import FeedParseError, normalise_entries, parse_feed
from blocwatch.collector.runtime import running_collector, running_publisher
from blocwatch.collector.seen import SeenStore
from blocwatch.collector.service import utc_now
from blocwatch.collector.settings import CollectorSettings
from blocwatch.core.codec import decode
from blocwatch.core.commands import wait_for_signal
from blocwatch.core.errors import ConfigError, ContractError
from blocwatch.core.logs import configure_logging
from blocwatch.core.metrics import OpsServer, new_registry
from blocwatch.core.models import NewsItem
from blocwatch.core.settings import load_settings

__all__ = ["collect", "ingest", "register"]

log = logging.getLogger(__name__)

INGEST_FLUSH_TIMEOUT_S = 120.0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    collect_cmd = subparsers.add_parser(
        "collect",
        help="poll the RSS/Atom feeds and publish NewsItems to news.raw",
        description="Poll every enabled feed of the feeds file at its own interval until Ctrl-C.",
    )
    collect_cmd.add_argument(
        "--feeds", type=Path, help="YAML feeds file (BLOCWATCH_COLLECTOR_FEEDS_FILE)"
    )
    collect_cmd.add_argument(
        "--once", action="store_true", help="poll every feed once, publish, and exit"
    )
    collect_cmd.set_defaults(run=_run_collect)

    ingest_cmd = subparsers.add_parser(
        "ingest",
        help="publish NewsItems from a JSONL file or saved feed files (replay, backfill)",
        description="PATH is a .jsonl file of NewsItems, a saved RSS/Atom file, or a directory "
        "of them. Items already published are skipped unless --force.",
    )
    ingest_cmd.add_argument("path", type=Path, metavar="PATH")
    ingest_cmd.add_argument("--feed", help="feed name for items from saved feed files")
    ingest_cmd.add_argument(
        "--force", action="store_true", help="publish even items the seen-set already has"
    )
    ingest_cmd.set_defaults(run=_run_ingest)


def _run_collect(args: argparse.Namespace) -> int:
    settings = load_settings(CollectorSettings, collector_feeds_file=args.feeds)
    configure_logging(settings.log_level)
    feeds = load_feeds(settings.feeds_file, settings.collector_default_poll_interval_s)
    feeds = shard(feeds, settings.collector_shard_index, settings.collector_shard_count)
    if not any(feed.enabled for feed in feeds):
        raise ConfigError(
            f"{settings.feeds_file}: no enabled feed for shard "
            f"{settings.collector_shard_index} of {settings.collector_shard_count}",
            "enable at least one feed (enabled: true) or use fewer shards",
        )
    return asyncio.run(collect(settings, feeds, once=args.once))


async def collect(
    settings: CollectorSettings,
    feeds: list[Feed],
    *,
    once: bool = False,
    stop: asyncio.Event | None = None,
) -> int:
    """Run the collector until SIGINT/SIGTERM or `stop` (one round with `once`); then flush."""
    registry = new_registry("collector")
    async with running_collector(settings, feeds, registry) as running:
        if once:
            outcomes = await running.collector.run_once()
            failed = sum(1 for o in outcomes.values() if o.result not in ("ok", "not_modified"))
            queued = sum(o.published for o in outcomes.values())
            print(f"polled {len(outcomes)} feeds: {queued} new items, {failed} failed", flush=True)
            return 1 if outcomes and failed == len(outcomes) else 0  # cron notices total failure
        ops = OpsServer(
            registry,
            settings.metrics_host,
            settings.metrics_port,
            ready=lambda: running.publisher.connected,
        )
        async with ops:
            log.info(
                "collecting %d feeds; metrics on %s/metrics", len(running.collector.feeds), ops.url
            )
            done = asyncio.Event()
            poller = asyncio.create_task(running.collector.run(done))
            await (stop.wait() if stop is not None else wait_for_signal())
            done.set()
            await poller
    return 0


@dataclass
class IngestReport:
    published: int = 0
    duplicates: int = 0
    failed: int = 0


def _run_ingest(args: argparse.Namespace) -> int:
    settings = load_settings(CollectorSettings)
    configure_logging(settings.log_level)
    if not args.path.exists():
        raise ConfigError(f"{args.path} does not exist", "pass a .jsonl file, feed file or folder")
    report = asyncio.run(ingest(settings, args.path, feed_name=args.feed, force=args.force))
    print(
        f"published {report.published}, skipped {report.duplicates} already published, "
        f"{report.failed} unreadable",
        flush=True,
    )
    return 0 if not report.failed else 1


async def ingest(
    settings: CollectorSettings, path: Path, *, feed_name: str | None = None, force: bool = False
) -> IngestReport:
    """Publish NewsItems from JSONL or saved feed files, with the same no-loss publisher."""
    report = IngestReport()
    items: dict[str, NewsItem] = {}
    for file in _files(path):
        for item in _read_items(file, feed_name, report):
            items.setdefault(item.id, item)
    metrics = CollectorMetrics.create(new_registry("collector"))
    with SeenStore(
        settings.seen_db, settings.collector_seen_ttl_s, settings.collector_seen_max
    ) as seen:
        wanted = list(items) if force else seen.unseen(list(items))
        report.duplicates = len(items) - len(wanted)
        async with running_publisher(settings, seen, metrics) as publisher:
            publisher.offer([items[i] for i in wanted])
            await publisher.flush(INGEST_FLUSH_TIMEOUT_S)
            report.published = len(wanted) - publisher.depth
            report.failed += publisher.depth
    return report


def _files(path: Path) -> Iterator[Path]:
    if path.is_dir():
        yield from sorted(p for p in path.rglob("*") if p.is_file())
    else:
        yield path


def _read_items(file: Path, feed_name: str | None, report: IngestReport) -> Iterator[NewsItem]:
    if file.suffix == ".jsonl":
        yield from _jsonl_items(file, report)
        return
    try:
        parsed = parse_feed(file.read_bytes())
    except (OSError, FeedParseError) as exc:
        log.warning("%s: %s", file, exc)
        report.failed += 1
        return
    name = feed_name or re.sub(r"[^A-Za-z0-9_.-]", "-", file.stem)[:64] or "ingest"
    # Saved files have a file:// URL the feeds-file model rightly refuses: construct directly.
    feed = Feed.model_construct(
        name=name, url=file.resolve().as_uri(), source="", regions=[], topics=[], language=None
    )
    result = normalise_entries(parsed, feed, utc_now())
    report.failed += result.rejected
    yield from result.items


def _jsonl_items(file: Path, report: IngestReport) -> Iterator[NewsItem]:
    with file.open(encoding="utf-8", errors="replace") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                json.loads(line)
                yield decode(NewsItem, line)
            except (ValueError, ContractError) as exc:
                log.warning("%s line %d: %s", file, number, exc)
                report.failed += 1
