"""The poll loop: every feed at its own pace, failing feeds backing off, nothing blocking.

One task per feed. A poll is fetch → parse → normalise → drop ids already seen or queued →
hand the rest to the publisher. Validators are stored only once a poll's items are acknowledged,
so a 304 can never hide items that were lost in a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from blocwatch.collector.feeds import Feed
from blocwatch.collector.fetch import Fetched, Fetcher, FetchResult, Validators
from blocwatch.collector.metrics import CollectorMetrics
from blocwatch.collector.normalise import FeedParseError, normalise_entries, parse_feed
from blocwatch.collector.publish import Publisher
from blocwatch.collector.seen import SeenStore
from blocwatch.core.models import NewsItem

__all__ = ["Collector", "FeedState", "PollOutcome", "PollResult", "backoff_delay"]

log = logging.getLogger(__name__)

PollResult = FetchResult | str  # a fetch result, or "parse_error"
OK_RESULTS = frozenset({"ok", "not_modified"})
# Parsing a large document blocks the loop; past this size it runs in a worker thread.
PARSE_IN_THREAD_BYTES = 256 * 1024
FIRST_POLL_SPREAD_S = 2.0


def utc_now() -> datetime:
    return datetime.now(UTC)


def backoff_delay(failures: int, interval_s: float, cap_s: float, rng: random.Random) -> float:
    """Exponential backoff from the feed's own interval, capped, with 'equal' jitter."""
    ceiling = float(min(max(cap_s, interval_s), interval_s * 2 ** max(failures - 1, 0)))
    return ceiling / 2 + rng.uniform(0, ceiling / 2)


@dataclass(frozen=True)
class PollOutcome:
    result: PollResult
    published: int = 0  # items handed to the publisher
    duplicates: int = 0
    retry_after_s: float | None = None
    detail: str = ""


@dataclass
class FeedState:
    """What the scheduler remembers about a feed between polls."""

    failures: int = 0
    last_result: str = ""


class Collector:
    def __init__(
        self,
        feeds: list[Feed],
        fetcher: Fetcher,
        seen: SeenStore,
        publisher: Publisher,
        metrics: CollectorMetrics,
        *,
        max_backoff_s: float = 3600.0,
        clock_skew_s: float = 300.0,
        concurrency: int = 100,
        clock: Callable[[], datetime] = utc_now,
        rng: random.Random | None = None,
    ) -> None:
        self.feeds = [f for f in feeds if f.enabled]
        self.fetcher = fetcher
        self.seen = seen
        self.publisher = publisher
        self.metrics = metrics
        self.max_backoff_s = max_backoff_s
        self.skew = timedelta(seconds=clock_skew_s)
        self.clock = clock
        self.rng = rng or random.Random()
        self.states = {feed.name: FeedState() for feed in self.feeds}
        metrics.declare(self.states)
        self._slots = asyncio.Semaphore(concurrency)

    # -- one poll ------------------------------------------------------------------------------

    async def poll(self, feed: Feed) -> PollOutcome:
        """Fetch, parse and queue one feed; never raises for bad input or network trouble."""
        validators = self.seen.validators(feed.name, feed.url)
        started = time.monotonic()
        async with self._slots:
            fetched = await self.fetcher.fetch(feed.url, validators)
        self.metrics.fetch_duration.labels(feed=feed.name).observe(time.monotonic() - started)
        outcome = await self._handle(feed, fetched)
        self.metrics.fetches.labels(feed=feed.name, result=outcome.result).inc()
        if outcome.result in OK_RESULTS:
            self.metrics.last_success.labels(feed=feed.name).set(time.time())
        return outcome

    async def _handle(self, feed: Feed, fetched: Fetched) -> PollOutcome:
        if fetched.result == "not_modified":
            self._store_validators(feed, fetched.validators)
            return PollOutcome("not_modified")
        if fetched.result != "ok":
            return PollOutcome(
                fetched.result, retry_after_s=fetched.retry_after_s, detail=fetched.detail
            )
        fetched_at = self.clock()
        try:
            items, rejected = await self._parse(feed, fetched, fetched_at)
        except FeedParseError as exc:
            self.metrics.parse_failures.labels(feed=feed.name).inc()
            return PollOutcome("parse_error", detail=str(exc))
        if rejected:
            self.metrics.parse_failures.labels(feed=feed.name).inc(rejected)
        return self._queue(feed, items, fetched.validators)

    async def _parse(
        self, feed: Feed, fetched: Fetched, fetched_at: datetime
    ) -> tuple[list[NewsItem], int]:
        def work() -> tuple[list[NewsItem], int]:
            parsed: Any = parse_feed(fetched.body, fetched.content_type)
            result = normalise_entries(parsed, feed, fetched_at, self.skew)
            return result.items, result.rejected

        if len(fetched.body) > PARSE_IN_THREAD_BYTES:
            return await asyncio.to_thread(work)
        return work()

    def _queue(self, feed: Feed, items: list[NewsItem], validators: Validators) -> PollOutcome:
        unique = list({item.id: item for item in items}.values())
        fresh_ids = set(self.seen.unseen([item.id for item in unique]))
        new = [i for i in unique if i.id in fresh_ids and not self.publisher.is_pending(i.id)]
        duplicates = len(items) - len(new)
        if duplicates:
            self.metrics.duplicates.labels(feed=feed.name).inc(duplicates)
        if not new:
            self._store_validators(feed, validators)
            return PollOutcome("ok", duplicates=duplicates)
        if not self.publisher.offer(new, lambda: self._store_validators(feed, validators)):
            # Not lost: nothing was marked seen and no validators stored, the next poll retries.
            return PollOutcome("ok", duplicates=duplicates, detail="buffer full, items deferred")
        return PollOutcome("ok", published=len(new), duplicates=duplicates)

    def _store_validators(self, feed: Feed, validators: Validators) -> None:
        if validators.etag or validators.last_modified:
            self.seen.save_validators(feed.name, feed.url, validators)

    # -- scheduling ----------------------------------------------------------------------------

    def next_delay(self, feed: Feed, outcome: PollOutcome) -> float:
        """Seconds until the feed's next poll, updating its failure count."""
        state = self.states[feed.name]
        if outcome.result in OK_RESULTS:
            state.failures = 0
            return feed.poll_interval_s
        state.failures += 1
        backoff = backoff_delay(state.failures, feed.poll_interval_s, self.max_backoff_s, self.rng)
        if outcome.result == "retry_later" and outcome.retry_after_s is not None:
            return max(outcome.retry_after_s, feed.poll_interval_s)
        return backoff

    def report(self, feed: Feed, outcome: PollOutcome) -> None:
        """Log a feed's result once per change of state, not on every poll."""
        state = self.states[feed.name]
        if outcome.result == state.last_result:
            return
        previous, state.last_result = state.last_result, outcome.result
        if outcome.result in OK_RESULTS:
            if previous and previous not in OK_RESULTS:
                log.info("feed %s recovered (%s)", feed.name, outcome.result)
            return
        log.warning("feed %s: %s %s", feed.name, outcome.result, outcome.detail)

    async def run_feed(self, feed: Feed, stop: asyncio.Event) -> None:
        delay = self.rng.uniform(0, min(feed.poll_interval_s, FIRST_POLL_SPREAD_S))
        while not await _wait(stop, delay):
            try:
                outcome = await self.poll(feed)
            except Exception as exc:  # a bug must not kill the feed's loop: count and go on
                log.exception("feed %s: unexpected error", feed.name)
                outcome = PollOutcome("network_error", detail=f"{type(exc).__name__}: {exc}")
                self.metrics.fetches.labels(feed=feed.name, result="network_error").inc()
            self.report(feed, outcome)
            delay = self.next_delay(feed, outcome)

    async def run(self, stop: asyncio.Event) -> None:
        """Poll every enabled feed until `stop` is set; fetches in flight are abandoned."""
        tasks = [
            asyncio.create_task(self.run_feed(feed, stop), name=f"feed:{feed.name}")
            for feed in self.feeds
        ]
        try:
            await stop.wait()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def run_once(self) -> dict[str, PollOutcome]:
        """Poll every enabled feed once, concurrently (cron, backfill)."""
        outcomes = await asyncio.gather(*(self.poll(feed) for feed in self.feeds))
        for feed, outcome in zip(self.feeds, outcomes, strict=True):
            self.report(feed, outcome)
        return {feed.name: outcome for feed, outcome in zip(self.feeds, outcomes, strict=True)}


async def _wait(stop: asyncio.Event, delay: float) -> bool:
    """Sleep up to `delay` seconds; True when `stop` was set meanwhile."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(delay):
            await stop.wait()
    return stop.is_set()
