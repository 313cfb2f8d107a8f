"""The `blocwatch` command: one entry point, a subcommand per task, `--help` on each.

Each package contributes its subcommands through a `register(subparsers)` function; errors a
person can act on are printed as one line with the fix, never as a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from pydantic_settings import BaseSettings

from blocwatch import __version__
from blocwatch.alerter import commands as alerter_commands
from blocwatch.alerter.settings import AlerterSettings
from blocwatch.collector import commands as collector_commands
from blocwatch.collector.settings import CollectorSettings
from blocwatch.compiled import REBUILD, stale_modules
from blocwatch.console import commands as console_commands
from blocwatch.console.settings import ConsoleSettings
from blocwatch.core import commands as core_commands
from blocwatch.core.errors import BlocwatchError
from blocwatch.core.logs import configure_logging
from blocwatch.core.settings import BrokerSettings, KafkaSettings, settings_rows
from blocwatch.processor import commands as processor_commands
from blocwatch.processor.settings import ProcessorSettings
from blocwatch.processor.tagging import commands as tagging_commands
from blocwatch.up import commands as up_commands
from blocwatch.up.settings import UpSettings

__all__ = ["SETTINGS_CLASSES", "build_parser", "main"]

Register = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]

REGISTRARS: tuple[Register, ...] = (
    core_commands.register,
    collector_commands.register,
    tagging_commands.register,
    alerter_commands.register,
    processor_commands.register,
    up_commands.register,
    console_commands.register,
)

# Every settings class; `blocwatch settings` prints their variables and the README lists them.
SETTINGS_CLASSES: tuple[type[BaseSettings], ...] = (
    KafkaSettings,
    BrokerSettings,
    CollectorSettings,
    AlerterSettings,
    ProcessorSettings,
    UpSettings,
    ConsoleSettings,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="blocwatch",
        description="Event-streaming alerts for geopolitical news: alliance and escalation events.",
    )
    parser.add_argument("--version", action="version", version=f"blocwatch {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for register in REGISTRARS:
        register(subparsers)
    settings = subparsers.add_parser(
        "settings", help="print every BLOCWATCH_* environment variable with its default"
    )
    settings.set_defaults(run=_run_settings)
    return parser


def all_settings_rows() -> list[tuple[str, str, str]]:
    """(variable, default, meaning) of every settings class, each variable once."""
    rows: dict[str, tuple[str, str, str]] = {}
    for cls in SETTINGS_CLASSES:
        for row in settings_rows(cls):
            rows.setdefault(row[0], row)
    return list(rows.values())


def _run_settings(_: argparse.Namespace) -> int:
    print("| variable | default | meaning |")
    print("|---|---|---|")
    for name, default, description in all_settings_rows():
        print(f"| `{name}` | `{default}` | {description} |")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging()
    stale = stale_modules()
    if stale:  # Python would import the old compiled code, silently: refuse instead
        modules = ", ".join(f"blocwatch.{name}" for name in stale)
        print(f"blocwatch: error: compiled before its source changed: {modules}", file=sys.stderr)
        print(f"  fix: {REBUILD}", file=sys.stderr)
        return 2
    try:
        code: int = args.run(args)
        sys.stdout.flush()  # here, where a reader that left is caught below, not at exit
        return code
    except BlocwatchError as exc:
        print(f"blocwatch: error: {exc.message}", file=sys.stderr)
        if exc.fix:
            print(f"  fix: {exc.fix}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader left early (`blocwatch tag … | head`): nothing to report. Point stdout at
        # /dev/null so that the interpreter's final flush does not fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, as a shell reports a writer its reader left
