"""Which rule patterns can match a text at all, found in one Hyperscan pass before the head scan.

Most news names no event: for such a text the head scan, and the rule patterns tried where their
heads were seen, all come to nothing, and they are most of what tagging it costs. Hyperscan (a
multi-pattern regex engine in C) compiles every rule pattern into one database in prefilter mode:
a scan then reports every pattern that may match somewhere in the text, a superset of those that
do (Hyperscan's documented guarantee for HS_FLAG_PREFILTER: it may report matches the pattern
would not make, never miss one). The tagger tries only the reported patterns, and none at all
when nothing is reported; Python's `re` still decides every match, so tags do not change.

Only ASCII text is prefiltered: the database reads patterns as UTF-8 (so "’?" is optional as a
whole) with ASCII classes, and on ASCII text Hyperscan's `\\w`, `\\b` and `\\s` then mean what
Python's do (the four ASCII separator controls, which Python counts as spaces, become spaces).
Unicode classes (HS_FLAG_UCP) would cover all text but made the database 40x slower to build.
Other text, a pattern Hyperscan cannot compile, and a machine without Hyperscan (built for x86-64
only) fall back to trying every pattern: slower, same result.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["Prefilter"]


def _hyperscan() -> Any:
    """The hyperscan module, or None where it is not built (every text gets every pattern).
    Typed Any: mypyc compiles this module where the package may be absent (pip's isolated build
    runs before dependencies are installed), so its stubs are not always there."""
    try:
        import hyperscan
    except ImportError:
        return None
    return hyperscan


hyperscan = _hyperscan()
_FLAGS = 0
if hyperscan is not None:
    _FLAGS = hyperscan.HS_FLAG_PREFILTER | hyperscan.HS_FLAG_SINGLEMATCH | hyperscan.HS_FLAG_UTF8
# Python's str patterns count \x1c-\x1f as whitespace, Hyperscan does not; both count a space.
_SPACES = bytes.maketrans(b"\x1c\x1d\x1e\x1f", b"    ")


def _note(pattern: int, start: int, end: int, flags: int, found: set[int]) -> None:
    found.add(pattern)


class Prefilter:
    """The patterns (by index into the `patterns` it was built with) that may match a text."""

    def __init__(self, patterns: Sequence[str]) -> None:
        # Patterns Hyperscan cannot compile, even approximately: always tried.
        self.always: frozenset[int] = frozenset()
        self._database: Any = None
        if hyperscan is None or not patterns:
            return
        try:
            self._database, self.always = _compile(patterns)
        except hyperscan.error:  # e.g. a CPU it does not support: no prefilter
            self._database = None

    @property
    def active(self) -> bool:
        return self._database is not None

    def possible(self, text: str) -> set[int] | None:
        """Indexes of the patterns that may match in `text`; None when it cannot tell (every
        pattern may). The caller owns the set."""
        if self._database is None or not text.isascii():
            return None
        found = set(self.always)
        try:
            self._database.scan(
                text.encode("ascii").translate(_SPACES), match_event_handler=_note, context=found
            )
        except hyperscan.error:  # e.g. the scratch space busy in another thread
            return None
        return found


def _compile(patterns: Sequence[str]) -> tuple[Any, frozenset[int]]:
    """One database of every pattern Hyperscan compiles; the indexes of those it cannot."""
    assert hyperscan is not None
    usable = list(range(len(patterns)))
    rejected: list[int] = []
    try:
        database = _database(patterns, usable)
    except hyperscan.error:  # e.g. "\\G" or a pattern that can match "": find them one by one
        for index in usable:
            try:
                _database(patterns, [index])
            except hyperscan.error:
                rejected.append(index)
        usable = [index for index in usable if index not in rejected]
        database = _database(patterns, usable) if usable else None
    return database, frozenset(rejected)


def _database(patterns: Sequence[str], indexes: list[int]) -> Any:
    assert hyperscan is not None
    database = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
    database.compile(
        expressions=[patterns[index].encode() for index in indexes],
        ids=indexes,
        elements=len(indexes),
        flags=_FLAGS,
    )
    return database
