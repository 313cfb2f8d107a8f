"""The collector's Prometheus metrics, registered on a registry passed in."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import get_args

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from blocwatch.collector.fetch import FetchResult
from blocwatch.core.metrics import LATENCY_BUCKETS

__all__ = ["RESULTS", "CollectorMetrics"]

RESULTS: tuple[str, ...] = (*get_args(FetchResult), "parse_error")


@dataclass(frozen=True)
class CollectorMetrics:
    fetches: Counter
    fetch_duration: Histogram
    published: Counter
    duplicates: Counter
    parse_failures: Counter
    buffer_depth: Gauge
    last_success: Gauge
    publish_failures: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry) -> CollectorMetrics:
        return cls(
            fetches=Counter(
                "blocwatch_collector_fetches_total",
                "Feed fetches by feed and result (ok, not_modified, http_error, timeout, "
                "network_error, too_large, parse_error, blocked, retry_later).",
                ["feed", "result"],
                registry=registry,
            ),
            fetch_duration=Histogram(
                "blocwatch_collector_fetch_duration_seconds",
                "Time to fetch one feed, redirects and body included.",
                ["feed"],
                buckets=LATENCY_BUCKETS,
                registry=registry,
            ),
            published=Counter(
                "blocwatch_collector_items_published_total",
                "Items acknowledged by the broker on news.raw.",
                ["feed"],
                registry=registry,
            ),
            duplicates=Counter(
                "blocwatch_collector_duplicates_skipped_total",
                "Entries skipped because they were already published or queued.",
                ["feed"],
                registry=registry,
            ),
            parse_failures=Counter(
                "blocwatch_collector_parse_failures_total",
                "Feed documents that could not be parsed plus entries that were not valid items.",
                ["feed"],
                registry=registry,
            ),
            buffer_depth=Gauge(
                "blocwatch_collector_buffer_depth",
                "Items waiting for a broker acknowledgement.",
                registry=registry,
            ),
            last_success=Gauge(
                "blocwatch_collector_last_success_timestamp_seconds",
                "Unix time of the feed's last successful poll (200 parsed, or 304).",
                ["feed"],
                registry=registry,
            ),
            publish_failures=Counter(
                "blocwatch_collector_publish_failures_total",
                "Publish attempts the broker did not acknowledge (the items are retried).",
                registry=registry,
            ),
        )

    def declare(self, feeds: Iterable[str]) -> None:
        """Create every feed's series at zero, so rates and alerts see feeds that never polled."""
        for feed in feeds:
            for result in RESULTS:
                self.fetches.labels(feed=feed, result=result)
            self.fetch_duration.labels(feed=feed)
            self.published.labels(feed=feed)
            self.duplicates.labels(feed=feed)
            self.parse_failures.labels(feed=feed)
