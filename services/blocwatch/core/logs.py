"""Logging set-up shared by every command."""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
from collections.abc import Iterator

__all__ = ["configure_logging", "quiet_logger"]


class _CurrentStderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to sys.stderr as it is at each record: whoever swapped it in may have closed the
    stream that was current at set-up (pytest's capture does, between tests)."""

    @property
    def stream(self) -> object:
        return sys.stderr

    @stream.setter
    def stream(self, _value: object) -> None:
        pass


def configure_logging(level: str = "INFO") -> None:
    handler = _CurrentStderr()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)


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
