"""Soak: the broker killed and restarted empty again and again under the whole pipeline.

The long variant of `tests/test_faults_broker_restart.py` (not part of `make bench`, which stays
under ten minutes): a real collector, processor and alerter run as subprocesses on one embedded
broker; each round feeds items before, during and after a kill + empty restart, and checks every
item reached `news.tagged` and every consumer holds all partitions of its recreated input topic.
Prints one line per round and exits non-zero on any loss or crash.

    python -m bench.soak                      # 10 rounds of 3 × 50 items
    python -m bench.soak --rounds 50 --items 200
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

from tests.feedserver import FeedServer
from tests.pipeline import Pipeline, consumers_resumed, restart_round

from blocwatch.core.broker import EmbeddedBroker, free_port
from blocwatch.core.kafka import ensure_topics
from blocwatch.core.logs import quiet_logger
from blocwatch.core.settings import KafkaSettings

__all__ = ["main"]


async def soak(rounds: int, items: int, tmp: Path) -> int:
    broker = EmbeddedBroker(port=free_port(), log_path=tmp / "tansu.log")
    await broker.start()
    lost = 0
    try:
        kafka = KafkaSettings(kafka_bootstrap_servers=broker.bootstrap_servers, topic_prefix="s.")
        await ensure_topics(kafka)
        async with FeedServer() as feeds:
            pipeline = Pipeline.start(kafka, feeds, tmp)
            try:
                for number in range(1, rounds + 1):
                    began = time.monotonic()
                    missing = await restart_round(pipeline, broker, items, timeout_s=300)
                    lost += len(missing)
                    await consumers_resumed(pipeline, timeout_s=120)
                    dead = [s.name for s in pipeline.services if not s.alive()]
                    print(
                        f"round {number}/{rounds}: {3 * items} items, {len(missing)} missing, "
                        f"{time.monotonic() - began:.0f} s, exited: {dead or 'none'}",
                        flush=True,
                    )
                    if dead:
                        return 1
            finally:
                pipeline.close()
    finally:
        await broker.stop()
    print(f"soak: {rounds} restarts, {rounds * 3 * items} items, {lost} lost (logs in {tmp})")
    return 1 if lost else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--items", type=int, default=50, help="items per phase of a round")
    args = parser.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="blocwatch-soak-"))
    with quiet_logger("aiokafka"):
        return asyncio.run(soak(args.rounds, args.items, tmp))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
