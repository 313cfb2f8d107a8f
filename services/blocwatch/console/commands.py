"""`blocwatch console`: the watch-officer web page."""

from __future__ import annotations

import argparse
import asyncio

from blocwatch.console.service import Console
from blocwatch.console.settings import ConsoleSettings
from blocwatch.core.commands import run_until_signal
from blocwatch.core.kafka import ensure_topics
from blocwatch.core.logs import configure_logging
from blocwatch.core.metrics import new_registry
from blocwatch.core.settings import load_settings

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    console = subparsers.add_parser(
        "console",
        help="serve the watch-officer console: live alert board, evidence, acknowledge/silence",
        description="Read the alerts and alerts.actions topics from the beginning and serve the "
        "live alert board. Actions (acknowledge, claim, silence) are published to alerts.actions. "
        "Settings: BLOCWATCH_CONSOLE_* (see `blocwatch settings`).",
    )
    console.add_argument("--host", help="address of the web page (BLOCWATCH_CONSOLE_HOST)")
    console.add_argument("--port", type=int, help="port of the web page (BLOCWATCH_CONSOLE_PORT)")
    console.set_defaults(run=_run_console)


def _run_console(args: argparse.Namespace) -> int:
    settings = load_settings(ConsoleSettings, console_host=args.host, console_port=args.port)
    configure_logging(settings.log_level)

    async def serve() -> None:
        # The actions topic may be new to an older deployment: create what is missing.
        await ensure_topics(settings, [settings.topics.alerts, settings.topics.alert_actions])
        async with Console(settings, registry=new_registry("console")) as console:
            print(f"console: {console.url}", flush=True)
            print(
                f"console metrics: http://{settings.metrics_host}:{settings.metrics_port}/metrics",
                flush=True,
            )
            await run_until_signal(console.wait())

    asyncio.run(serve())
    return 0
