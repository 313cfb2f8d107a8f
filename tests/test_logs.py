"""quiet_logger: overlapping quiet blocks (concurrent tasks) restore the level once, at the end."""

from __future__ import annotations

import asyncio
import logging

from blocwatch.core.logs import quiet_logger


async def test_overlapping_quiet_blocks_restore_the_level_when_the_last_ends() -> None:
    logger = logging.getLogger("blocwatch-test-quiet")
    logger.setLevel(logging.INFO)
    first_in, second_in, first_out = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def first() -> None:
        with quiet_logger(logger.name):
            first_in.set()
            await second_in.wait()
        first_out.set()

    async def second() -> None:
        await first_in.wait()
        with quiet_logger(logger.name):
            second_in.set()
            await first_out.wait()  # the first block ends while this one is still open
            assert logger.level == logging.CRITICAL

    await asyncio.gather(first(), second())
    assert logger.level == logging.INFO
