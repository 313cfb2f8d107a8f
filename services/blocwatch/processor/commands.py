"""`blocwatch process`: run one stream-processor worker until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import logging

from blocwatch.core.kafka import ensure_topics
from blocwatch.core.metrics import OpsServer, new_registry
from blocwatch.core.settings import load_settings
from blocwatch.processor.settings import ProcessorSettings

__all__ = ["register"]

log = logging.getLogger(__name__)


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
    import faust  # heavy; only this command needs it

    from blocwatch.processor.app import OpsService, Processor

    registry = new_registry("processor")
    processor = Processor(settings, registry)
    ops = OpsServer(registry, settings.metrics_host, settings.metrics_port, ready=processor.ready)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    worker = faust.Worker(
        processor.app,
        OpsService(ops),
        loop=loop,
        loglevel=settings.log_level,
        quiet=True,
        redirect_stdouts=False,
    )
    log.info(
        "processor %s: %s → %s, metrics on %s",
        settings.app_id,
        settings.topics.news_raw,
        settings.topics.news_tagged,
        ops.url,
    )
    try:
        worker.execute_from_commandline()
    except SystemExit as exited:  # mode's worker always leaves through SystemExit
        return int(exited.code or 0)
    return 0
