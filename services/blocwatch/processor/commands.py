"""`blocwatch process`: run one stream-processor worker until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import asyncio

from blocwatch.core.kafka import ensure_topics
from blocwatch.core.settings import load_settings
from blocwatch.processor.settings import ProcessorSettings

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    process = subparsers.add_parser(
        "process",
        help="run a stream-processor worker: tag news.raw into news.tagged and events.*",
        description=(
            "Consume news.raw, tag every item (alliance / escalation), cluster near-duplicate "
            "reports into stories, and publish to news.tagged, events.<label> and news.raw.dlq. "
            "Run several workers with the same BLOCWATCH_PROCESSOR_GROUP_ID to share partitions. "
            "Stops cleanly on SIGTERM or Ctrl-C. Settings: BLOCWATCH_PROCESSOR_* (see README)."
        ),
    )
    process.add_argument(
        "--metrics-port", type=int, help="metrics/health port (BLOCWATCH_PROCESSOR_METRICS_PORT)"
    )
    process.set_defaults(run=_run_process)


def _run_process(args: argparse.Namespace) -> int:
    settings = load_settings(ProcessorSettings, processor_metrics_port=args.metrics_port)
    # Topics first, in their own loop: a missing cluster fails here with a readable BrokerError.
    asyncio.run(ensure_topics(settings))
    return _work(settings)


def _work(settings: ProcessorSettings) -> int:
    from blocwatch.processor.app import run_worker  # faust is heavy; only this command needs it

    return run_worker(settings)
