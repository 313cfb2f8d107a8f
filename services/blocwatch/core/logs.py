"""Logging set-up shared by every command."""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
from collections.abc import Iterator

__all__ = ["configure_logging", "quiet_logger"]


def configure_logging(level: str = "INFO") -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )


# Quiet blocks overlap (concurrent tasks, and the processor's consumer thread): each saving and
# restoring the level itself would let the last one out restore another block's CRITICAL and
# silence the library for good. Nesting depth and the level to restore, per logger name.
_quieted: dict[str, tuple[int, int]] = {}
_quieted_lock = threading.Lock()


@contextlib.contextmanager
def quiet_logger(name: str) -> Iterator[None]:
    """Silence a library logger for a block whose failures we report ourselves."""
    logger = logging.getLogger(name)
    with _quieted_lock:
        depth, previous = _quieted.get(name, (0, logger.level))
        _quieted[name] = (depth + 1, previous)
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        with _quieted_lock:
            depth, previous = _quieted.pop(name)
            if depth > 1:
                _quieted[name] = (depth - 1, previous)
            else:
                logger.setLevel(previous)
