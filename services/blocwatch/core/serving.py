"""Serving an aiohttp app on host:port, with the readable error and the port the OS chose."""

from __future__ import annotations

from aiohttp import web

from blocwatch.core.errors import ConfigError

__all__ = ["serve_app"]


async def serve_app(
    app: web.Application, host: str, port: int, *, what: str, fix: str
) -> tuple[web.AppRunner, int]:
    """Start `app`; returns its runner (for cleanup) and the bound port (useful for port 0).

    A port that cannot be bound is a ConfigError: "cannot serve <what> on host:port: reason".
    """
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise ConfigError(f"cannot serve {what} on {host}:{port}: {exc.strerror}", fix) from exc
    sockets = getattr(site._server, "sockets", None) or []
    return runner, (sockets[0].getsockname()[1] if sockets else port)
