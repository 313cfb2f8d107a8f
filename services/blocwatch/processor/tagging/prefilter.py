"""Which rule patterns can match a text at all, found in one Hyperscan pass before the head scan.

Most news names no event: for such a text the head scan, and the rule patterns tried where their
heads were seen, all come to nothing, and they are most of what tagging it costs. Hyperscan (a
multi-pattern regex engine in C) compiles every rule pattern into one database in prefilter mode:
a scan then reports every pattern that may match somewhere in the text, a superset of those that
do (Hyperscan's documented guarantee for HS_FLAG_PREFILTER: it may report matches the pattern
would not make, never miss one). The tagger tries only the reported patterns, and none at all
when nothing is reported; Python's `re` still decides every match, so tags do not change.

Only ASCII text is prefiltered: the database reads a pattern with non-ASCII characters as UTF-8
(so "’?" is optional as a whole) and the others byte by byte (the same on ASCII text, and their
automata are smaller: −1.5 % of an event item's instructions), with ASCII classes, and on ASCII
text Hyperscan's `\\w`, `\\b` and `\\s` then mean what Python's do (the four ASCII separator
controls, which Python counts as spaces, become spaces). Unicode classes (HS_FLAG_UCP) would
cover all text but made the database 40x slower to build. Other text, a pattern Hyperscan cannot
compile, and a machine without Hyperscan (built for x86-64 only) fall back to trying every
pattern: slower, same result.

Compiling the database takes 1-2 s, most of a tagger's load; given a cache directory, the
compiled database is kept there (Hyperscan's own serialisation), named by a digest of everything
it is compiled from, and loaded by the next process in milliseconds. A cache file that is
missing, unreadable, damaged or made for another CPU is simply compiled again and rewritten.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import platform
import tempfile
from collections.abc import Sequence
from pathlib import Path
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
_UTF8 = 0
if hyperscan is not None:
    _FLAGS = hyperscan.HS_FLAG_PREFILTER | hyperscan.HS_FLAG_SINGLEMATCH
    _UTF8 = hyperscan.HS_FLAG_UTF8
# Python's str patterns count \x1c-\x1f as whitespace, Hyperscan does not; both count a space.
_SPACES = bytes.maketrans(b"\x1c\x1d\x1e\x1f", b"    ")
_CACHE_MAGIC = b"blocwatch-prefilter 1\n"
log = logging.getLogger(__name__)


def _note(pattern: int, start: int, end: int, flags: int, found: set[int]) -> None:
    found.add(pattern)


class Prefilter:
    """The patterns (by index into the `patterns` it was built with) that may match a text."""

    def __init__(self, patterns: Sequence[str], cache: Path | None = None) -> None:
        """`cache`: a directory to keep the compiled database in (None: compile every time)."""
        # Patterns Hyperscan cannot compile, even approximately: always tried.
        self.always: frozenset[int] = frozenset()
        self._database: Any = None
        if hyperscan is None or not patterns:
            return
        path = None if cache is None else cache / f"prefilter-{_digest(patterns)}.hsdb"
        loaded = None if path is None else _load(path)
        if loaded is not None:
            self._database, self.always = loaded
            return
        try:
            self._database, self.always = _compile(patterns)
        except hyperscan.error:  # e.g. a CPU it does not support: no prefilter
            self._database = None
            return
        if path is not None and self._database is not None:
            _store(path, self._database, self.always)

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


def _digest(patterns: Sequence[str]) -> str:
    """Names a compiled database by all it depends on: patterns, flags, library, CPU."""
    assert hyperscan is not None
    made_from = [hyperscan.__version__, f"{_FLAGS} {_UTF8}", platform.machine(), *patterns]
    return hashlib.sha256("\0".join(made_from).encode()).hexdigest()[:32]


def _load(path: Path) -> tuple[Any, frozenset[int]] | None:
    """A database kept by `_store`, or None when there is none that works here."""
    assert hyperscan is not None
    try:
        with path.open("rb") as file:
            if file.readline() != _CACHE_MAGIC:
                raise ValueError("not a prefilter cache file")
            always = frozenset(int(index) for index in json.loads(file.readline()))
            database = hyperscan.loadb(file.read(), hyperscan.HS_MODE_BLOCK)
        database.scratch = hyperscan.Scratch(database)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError, hyperscan.error) as exc:  # damaged, other CPU…
        log.info("prefilter cache %s not used (%s): compiling the rules again", path, exc)
        return None
    return database, always


def _store(path: Path, database: Any, always: frozenset[int]) -> None:
    """Keep a compiled database for the next process; a cache that cannot be written is skipped."""
    assert hyperscan is not None
    written = ""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Written aside and renamed: a process reading meanwhile sees the old file or the new.
        with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".tmp", delete=False) as file:
            written = file.name
            file.write(_CACHE_MAGIC + json.dumps(sorted(always)).encode() + b"\n")
            file.write(hyperscan.dumpb(database))
        os.replace(written, path)
    except OSError as exc:
        log.info("prefilter cache %s not written (%s)", path, exc)
        if written:
            with contextlib.suppress(OSError):
                os.unlink(written)


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
        flags=[_FLAGS if patterns[index].isascii() else _FLAGS | _UTF8 for index in indexes],
    )
    return database
