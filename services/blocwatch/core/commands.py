"""Foundation commands: `broker`, `topics create|list`, `schemas write|check`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from collections.abc import Awaitable
from pathlib import Path

from blocwatch.core.broker import EmbeddedBroker
from blocwatch.core.errors import ConfigError
from blocwatch.core.kafka import ensure_topics, list_topics
from blocwatch.core.schemas import stale_schemas, write_schemas
from blocwatch.core.settings import BrokerSettings, KafkaSettings, load_settings

__all__ = ["register", "run_until_signal", "wait_for_signal"]

DEFAULT_SCHEMA_DIR = Path("schemas")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    broker = subparsers.add_parser(
        "broker",
        help="run the embedded Kafka-protocol broker (memory only) until Ctrl-C",
        description="Run the bundled Tansu broker; prints its address once it answers Kafka.",
    )
    broker.add_argument("--host", help="listen address (BLOCWATCH_BROKER_HOST, 127.0.0.1)")
    broker.add_argument("--port", type=int, help="listen port (BLOCWATCH_BROKER_PORT, 9092)")
    broker.add_argument(
        "--create-topics", action="store_true", help="create every blocwatch topic once it is up"
    )
    broker.set_defaults(run=_run_broker)

    topics = subparsers.add_parser("topics", help="create or list the blocwatch topics")
    topic_commands = topics.add_subparsers(dest="topics_command", metavar="ACTION", required=True)
    create = topic_commands.add_parser(
        "create", help="create every topic that does not exist yet (idempotent)"
    )
    create.set_defaults(run=_run_topics_create)
    listing = topic_commands.add_parser("list", help="list topics on the cluster")
    listing.set_defaults(run=_run_topics_list)

    schemas = subparsers.add_parser("schemas", help="write or check schemas/*.schema.json")
    schema_commands = schemas.add_subparsers(
        dest="schemas_command", metavar="ACTION", required=True
    )
    for name, runner, text in (
        ("write", _run_schemas_write, "regenerate the JSON Schemas from the models"),
        ("check", _run_schemas_check, "exit 1 if a schema file differs from its model"),
    ):
        sub = schema_commands.add_parser(name, help=text)
        sub.add_argument("--dir", type=Path, default=DEFAULT_SCHEMA_DIR, help="schema directory")
        sub.set_defaults(run=runner)


async def wait_for_signal() -> None:
    """Block until SIGINT or SIGTERM: the way every long-running command stops cleanly."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError):
                loop.remove_signal_handler(sig)


async def run_until_signal(work: Awaitable[None]) -> None:
    """Run until SIGINT/SIGTERM, or until `work` ends — then re-raise its error, never hide it."""
    stop = asyncio.ensure_future(wait_for_signal())
    running = asyncio.ensure_future(work)
    done, pending = await asyncio.wait({stop, running}, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    for task in done:
        task.result()


def _run_broker(args: argparse.Namespace) -> int:
    settings = load_settings(BrokerSettings, broker_host=args.host, broker_port=args.port)

    async def serve() -> None:
        broker = EmbeddedBroker(settings.broker_host, settings.broker_port, settings.broker_binary)
        async with broker:
            print(f"broker ready: {broker.bootstrap_servers} (memory storage)", flush=True)
            if args.create_topics:
                topic_settings = settings.model_copy(
                    update={"kafka_bootstrap_servers": broker.bootstrap_servers}
                )
                created = await ensure_topics(topic_settings)
                print(f"topics created: {len(created)}", flush=True)
            print("press Ctrl-C to stop", flush=True)
            await wait_for_signal()
        print("broker stopped", flush=True)

    asyncio.run(serve())
    return 0


def _run_topics_create(_: argparse.Namespace) -> int:
    settings = load_settings(KafkaSettings)
    wanted = settings.topics.all()
    created = asyncio.run(ensure_topics(settings, wanted))
    for name in wanted:
        print(f"{'created' if name in created else 'exists '}  {name}")
    return 0


def _run_topics_list(_: argparse.Namespace) -> int:
    settings = load_settings(KafkaSettings)
    topics = asyncio.run(list_topics(settings))
    ours = set(settings.topics.all())
    for name in sorted(topics):
        marker = "" if name in ours else "  (not a blocwatch topic)"
        print(f"{name}  partitions={topics[name]}{marker}")
    missing = sorted(ours - topics.keys())
    for name in missing:
        print(f"{name}  MISSING (run `blocwatch topics create`)")
    return 0


def _run_schemas_write(args: argparse.Namespace) -> int:
    for path in write_schemas(args.dir):
        print(f"wrote {path}")
    return 0


def _run_schemas_check(args: argparse.Namespace) -> int:
    stale = stale_schemas(args.dir)
    if stale:
        raise ConfigError(
            f"schemas out of date in {args.dir}: {', '.join(stale)}",
            "run `blocwatch schemas write` and commit the result",
        )
    print(f"schemas in {args.dir} match the models")
    return 0
