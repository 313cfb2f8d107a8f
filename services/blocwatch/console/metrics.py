"""The console's metrics: `blocwatch_console_*` on a registry passed in."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge

__all__ = ["ConsoleMetrics"]


@dataclass(frozen=True)
class ConsoleMetrics:
    actions: Counter
    sse_clients: Gauge
    alerts_tracked: Gauge
    records: Counter
    invalid_records: Counter
    rejected_requests: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry) -> ConsoleMetrics:
        return cls(
            actions=Counter(
                "blocwatch_console_actions_total",
                "Actions officers took in this console (published to alerts.actions).",
                ["action"],
                registry=registry,
            ),
            sse_clients=Gauge(
                "blocwatch_console_sse_clients",
                "Open live-update (Server-Sent Events) connections.",
                registry=registry,
            ),
            alerts_tracked=Gauge(
                "blocwatch_console_alerts_tracked",
                "Alerts on the board by display status.",
                ["status"],
                registry=registry,
            ),
            records=Counter(
                "blocwatch_console_records_total",
                "Records read from the alerts and alerts.actions topics.",
                ["topic"],
                registry=registry,
            ),
            invalid_records=Counter(
                "blocwatch_console_invalid_records_total",
                "Records that did not decode (skipped; the topic's owner dead-letters them).",
                ["topic"],
                registry=registry,
            ),
            rejected_requests=Counter(
                "blocwatch_console_rejected_requests_total",
                "Requests refused, by reason (auth, csrf, invalid).",
                ["reason"],
                registry=registry,
            ),
        )
