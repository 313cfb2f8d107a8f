"""Metrics helpers: every service serves /metrics, /healthz and /readyz the same way.

Conventions (see README, Metrics): names start with `blocwatch_`, base units (seconds, bytes),
counters end in `_total`, label values are bounded (feed and rule names from config, labels).
Registries are passed in, never the global default, so tests and several services in one process
do not collide.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, generate_latest

from blocwatch import __version__
from blocwatch.core.serving import serve_app

__all__ = ["LATENCY_BUCKETS", "OpsServer", "new_registry"]

# Seconds, from sub-second stream hops to a slow feed poll.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


def new_registry(service: str) -> CollectorRegistry:
    """A fresh registry carrying `blocwatch_build_info{service, version}`."""
    registry = CollectorRegistry()
    info = Gauge(
        "blocwatch_build_info",
        "Always 1; labels carry the service name and package version.",
        ["service", "version"],
        registry=registry,
    )
    info.labels(service=service, version=__version__).set(1)
    return registry


def _expose_readiness(registry: CollectorRegistry, ready: Callable[[], bool]) -> None:
    """`blocwatch_ready` mirrors /readyz so Prometheus can graph and alert on readiness."""
    try:
        gauge = Gauge(
            "blocwatch_ready",
            "1 when /readyz answers 200: Kafka connected and, for consumers, partitions assigned.",
            registry=registry,
        )
    except ValueError:  # a second OpsServer on the same registry: the first one's gauge stays
        return
    gauge.set_function(lambda: 1.0 if ready() else 0.0)


class OpsServer:
    """aiohttp server for /metrics, /healthz (process alive) and /readyz (ready() is true)."""

    def __init__(
        self,
        registry: CollectorRegistry,
        host: str,
        port: int,
        ready: Callable[[], bool] = lambda: True,
    ) -> None:
        self.registry = registry
        self.host = host
        self.port = port
        self.ready = ready
        self._runner: web.AppRunner | None = None
        _expose_readiness(registry, lambda: self.ready())

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        return app

    async def _metrics(self, _: web.Request) -> web.Response:
        body = generate_latest(self.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _healthz(self, _: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _readyz(self, _: web.Request) -> web.Response:
        if self.ready():
            return web.Response(text="ready\n")
        return web.Response(status=503, text="not ready\n")

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        self._runner, self.port = await serve_app(
            self._app(),
            self.host,
            self.port,
            what="metrics",
            fix="choose another port with the service's BLOCWATCH_*_METRICS_PORT",
        )

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> OpsServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
