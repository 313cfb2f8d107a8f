"""The alerter's Prometheus metrics (names agreed in HELPERS.md; bounded labels only)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from blocwatch.core.metrics import LATENCY_BUCKETS

__all__ = ["AlerterMetrics"]


@dataclass(frozen=True)
class AlerterMetrics:
    items: Counter
    alerts: Counter
    notifications: Counter
    notification_duration: Histogram
    end_to_end: Histogram
    rule_errors: Counter
    active_silences: Gauge
    dead_letters: Counter
    late_items: Counter
    outbox_depth: Gauge
    assigned_partitions: Gauge
    rebuilding: Gauge

    @classmethod
    def create(cls, registry: CollectorRegistry) -> AlerterMetrics:
        return cls(
            items=Counter(
                "blocwatch_alerter_items_total", "Tagged items consumed.", registry=registry
            ),
            alerts=Counter(
                "blocwatch_alerter_alerts_total",
                "Alert decisions by rule, severity and status (firing, resolved, silenced).",
                ["rule", "severity", "status"],
                registry=registry,
            ),
            notifications=Counter(
                "blocwatch_alerter_notifications_total",
                "Delivery attempts by receiver and result (sent, failed, dead_lettered).",
                ["receiver", "result"],
                registry=registry,
            ),
            notification_duration=Histogram(
                "blocwatch_alerter_notification_duration_seconds",
                "Duration of one delivery attempt.",
                ["receiver"],
                buckets=LATENCY_BUCKETS,
                registry=registry,
            ),
            end_to_end=Histogram(
                "blocwatch_alerter_end_to_end_latency_seconds",
                "From the newest contributing item's fetched_at to the notification sent.",
                buckets=LATENCY_BUCKETS,
                registry=registry,
            ),
            rule_errors=Counter(
                "blocwatch_alerter_rule_errors_total",
                "Rule evaluations that raised.",
                ["rule"],
                registry=registry,
            ),
            active_silences=Gauge(
                "blocwatch_alerter_active_silences", "Silences in force now.", registry=registry
            ),
            dead_letters=Counter(
                "blocwatch_alerter_dead_letters_total",
                "Records sent to a dead-letter topic (poison input, undeliverable notifications).",
                registry=registry,
            ),
            late_items=Counter(
                "blocwatch_alerter_late_items_total",
                "Items older than every window plus the allowed lateness (not evaluated).",
                registry=registry,
            ),
            outbox_depth=Gauge(
                "blocwatch_alerter_outbox_depth",
                "Notifications waiting for delivery (including retries).",
                registry=registry,
            ),
            # one alerter must hold every partition (windows span them all); after a broker
            # restart this shows whether it got the recreated topic's partitions back
            assigned_partitions=Gauge(
                "blocwatch_alerter_assigned_partitions",
                "Partitions of news.tagged assigned to this alerter.",
                registry=registry,
            ),
            # silence while rebuilding means "not looked yet", not "nothing happened"
            rebuilding=Gauge(
                "blocwatch_alerter_rebuilding",
                "1 while a fresh state store re-reads news.tagged (no alert is decided meanwhile).",
                registry=registry,
            ),
        )
