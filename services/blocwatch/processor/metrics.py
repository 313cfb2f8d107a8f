"""The processor's Prometheus metrics, registered on a registry passed in."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from blocwatch.core.metrics import LATENCY_BUCKETS
from blocwatch.processor.processing import Outcome

__all__ = ["ProcessorMetrics"]


class ProcessorMetrics:
    """Counters and the latency histogram named in the README's metrics table."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.items = Counter(
            "blocwatch_processor_items",
            "News items processed (tagged or not; dead letters excluded).",
            registry=registry,
        )
        self.tags = Counter(
            "blocwatch_processor_tags",
            "Tags given, by label and subtype.",
            ["label", "subtype"],
            registry=registry,
        )
        self.dead_letters = Counter(
            "blocwatch_processor_dead_letters",
            "Records of news.raw sent to news.raw.dlq (invalid or untaggable).",
            registry=registry,
        )
        self.latency = Histogram(
            "blocwatch_processor_latency_seconds",
            "Seconds from a record being consumed to its outputs being acknowledged by Kafka.",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.stories = Counter(
            "blocwatch_processor_stories",
            "New story clusters started.",
            registry=registry,
        )
        self.stories_live = Gauge(
            "blocwatch_processor_stories_live",
            "Stories currently held for clustering (bounded by horizon and cap).",
            registry=registry,
        )
        self.tagging_restarts = Counter(
            "blocwatch_processor_tagging_restarts",
            "Times the tagging processes were restarted because one died.",
            registry=registry,
        )
        self.assigned_partitions = Gauge(
            "blocwatch_processor_assigned_partitions",
            "Partitions of news.raw assigned to this worker.",
            registry=registry,
        )

    def record(self, outcome: Outcome) -> None:
        """Count one processed record (call once its outputs are acknowledged)."""
        if outcome.dead_letter is not None:
            self.dead_letters.inc()
            return
        self.items.inc()
        for label, subtype in outcome.tags:
            self.tags.labels(label=label, subtype=subtype).inc()
        if outcome.story is not None and outcome.story.new:
            self.stories.inc()
