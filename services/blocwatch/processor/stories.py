"""Story clustering: near-duplicate reports of one event share a story_id. Pure, no I/O.

Each item becomes a set of normalised word shingles (title + summary, stop words dropped, words cut
to a 5-letter stem so "launches"/"launched" and "Korea"/"Korean" agree). A MinHash signature of
that set (one-permutation hashing with densification: one hash per token, not one per token per
permutation) estimates Jaccard similarity; LSH banding over the signature finds candidate stories
in O(bands) instead of comparing with every story. A candidate is accepted when its estimated
similarity reaches the threshold and the item is within the horizon of the story's first report.

Story records are plain JSON-able dicts in a mapping passed in (a dict in tests, the faust table in
the worker, whose changelog makes them survive restarts and rebalances); the band index is derived
state kept in memory and rebuilt from records through `load()`. Memory is bounded by the horizon
and by `max_stories` (oldest stories go first).
"""

from __future__ import annotations

import functools
import hashlib
import heapq
import re
import struct
from collections.abc import Iterable, MutableMapping
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from typing import Any

__all__ = [
    "SIGNATURE_SIZE",
    "StoryConfig",
    "StoryIndex",
    "StoryMatch",
    "estimate_similarity",
    "shingles",
    "signature",
]

SIGNATURE_SIZE = 32  # bins of the one-permutation MinHash
BAND_ROWS = 2  # 16 bands of 2 rows: similarity 0.3 → ~78 % candidate, 0.5 → ~99 %
SOURCES_MAX = 100  # distinct sources remembered per story (the count saturates there)
STEM = 5
_MASK32 = 0xFFFFFFFF
_ROTATE = 0x9E3779B1  # odd constant: densified bins differ from the bin they borrow from

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_STOP = frozenset(
    line.strip()
    for line in resources.files(__package__)
    .joinpath("story_stopwords.txt")
    .read_text()
    .splitlines()
    if line.strip() and not line.startswith("#")
)


def shingles(title: str, summary: str = "") -> frozenset[str]:
    """Normalised word stems of an item: the set whose overlap decides near-duplicates."""
    words = _WORD.findall(f"{title} {summary}".casefold())
    return frozenset(w[:STEM] for w in words if w not in _STOP and (len(w) > 1 or w.isdigit()))


@functools.lru_cache(maxsize=1 << 16)  # news vocabulary repeats: most stems hit the cache
def _token_hash(token: str) -> int:
    # Stable across processes (unlike hash()): every worker must compute the same signature.
    return int.from_bytes(hashlib.blake2b(token.encode(), digest_size=8).digest(), "big")


def signature(tokens: Iterable[str]) -> tuple[int, ...]:
    """One-permutation MinHash: the minimum hash per bin, empty bins filled by rotation."""
    bins: list[int | None] = [None] * SIGNATURE_SIZE
    for token in tokens:
        value = _token_hash(token)
        index, low = value % SIGNATURE_SIZE, value >> 32
        current = bins[index]
        if current is None or low < current:
            bins[index] = low
    if all(b is None for b in bins):
        return ()
    filled: list[int] = []
    for index in range(SIGNATURE_SIZE):
        distance = 0
        found = bins[index]
        while found is None:  # borrow from the next non-empty bin (Shrivastava & Li, 2014)
            distance += 1
            found = bins[(index + distance) % SIGNATURE_SIZE]
        filled.append((found + distance * _ROTATE) & _MASK32)
    return tuple(filled)


def estimate_similarity(left: tuple[int, ...], right: tuple[int, ...]) -> float:
    """Estimated Jaccard similarity: the share of bins where the signatures agree."""
    if not left or len(left) != len(right):
        return 0.0
    return sum(a == b for a, b in zip(left, right, strict=True)) / len(left)


def _bands(sig: tuple[int, ...]) -> list[int]:
    keys = []
    for start in range(0, len(sig), BAND_ROWS):
        band = sig[start : start + BAND_ROWS]
        # band number in the high bits: equal values in different bands are not a match
        keys.append((start << 64) | (band[0] << 32) | (band[-1]))
    return keys


def _encode(sig: tuple[int, ...]) -> str:
    return struct.pack(f">{len(sig)}I", *sig).hex()


def _decode(text: str) -> tuple[int, ...]:
    raw = bytes.fromhex(text)
    return struct.unpack(f">{len(raw) // 4}I", raw)


@dataclass(frozen=True)
class StoryConfig:
    horizon_seconds: float = 12 * 3600
    similarity: float = 0.3
    max_stories: int = 100_000


@dataclass(frozen=True)
class StoryMatch:
    """The story an item was assigned to, and how many distinct sources reported it so far."""

    story_id: str
    sources: int
    new: bool
    similarity: float


class StoryIndex:
    """Assigns items to stories. `records` holds story_id → record dicts (the durable state)."""

    def __init__(
        self,
        config: StoryConfig,
        records: MutableMapping[str, Any] | None = None,
    ) -> None:
        self.config = config
        self.records: MutableMapping[str, Any] = {} if records is None else records
        self._bands: dict[int, str] = {}  # band key → most recent story with that band
        self._by_age: list[tuple[float, str]] = []  # (first_seen, story_id) heap for expiry
        self._live: dict[str, float] = {}  # story_id → first_seen, to skip stale heap entries

    def __len__(self) -> int:
        return len(self._live)

    def assign(
        self, item_id: str, title: str, summary: str, source: str, at: datetime
    ) -> StoryMatch:
        """Put one item into its story (existing or new) and record the source."""
        when = at.timestamp()
        self.expire(when - self.config.horizon_seconds)
        sig = signature(shingles(title, summary))
        best_id, best_score = self._best_candidate(sig, when)
        if best_id is None:
            story_id = _story_id(item_id)
            new = story_id not in self._live  # an item seen again (redelivery) is not news
            self._store(story_id, {"sig": _encode(sig), "first": when, "src": [source]})
            return StoryMatch(story_id, 1, new=new, similarity=1.0)
        record = dict(self.records[best_id])
        sources = list(record["src"])
        if source not in sources and len(sources) < SOURCES_MAX:
            sources.append(source)
            record["src"] = sources
            self.records[best_id] = record  # one write per item that adds a source
        return StoryMatch(best_id, len(sources), new=False, similarity=best_score)

    def _best_candidate(self, sig: tuple[int, ...], when: float) -> tuple[str | None, float]:
        best_id: str | None = None
        best_score = 0.0
        for story_id in {self._bands[key] for key in _bands(sig) if key in self._bands}:
            record = self.records.get(story_id)
            if record is None or abs(when - record["first"]) > self.config.horizon_seconds:
                continue
            score = estimate_similarity(sig, _decode(record["sig"]))
            if score >= self.config.similarity and score > best_score:
                best_id, best_score = story_id, score
        return best_id, best_score

    def _store(self, story_id: str, record: dict[str, Any]) -> None:
        self.records[story_id] = record
        self.load(story_id, record)
        while len(self._live) > self.config.max_stories:
            self._drop_oldest()

    def load(self, story_id: str, record: dict[str, Any] | None) -> None:
        """Index a record read back from durable state (changelog), or forget a deleted one."""
        if record is None:
            # a deletion: the records mapping may still hold what the bands were
            self._forget(story_id, self.records.get(story_id))
            return
        if story_id in self._live:
            return
        for key in _bands(_decode(record["sig"])):
            self._bands[key] = story_id
        self._live[story_id] = record["first"]
        heapq.heappush(self._by_age, (record["first"], story_id))

    def expire(self, before: float) -> list[str]:
        """Drop stories first reported before `before` (unix seconds); returns their ids."""
        dropped = []
        while self._by_age and self._by_age[0][0] < before:
            dropped += self._drop_oldest()
        return dropped

    def _drop_oldest(self) -> list[str]:
        first, story_id = heapq.heappop(self._by_age)
        if self._live.get(story_id) != first:
            return []  # stale heap entry
        record = self.records.get(story_id)
        self._forget(story_id, record)
        if record is not None:
            del self.records[story_id]
        return [story_id]

    def _forget(self, story_id: str, record: dict[str, Any] | None) -> None:
        self._live.pop(story_id, None)
        if record is None:
            return
        for key in _bands(_decode(record["sig"])):
            if self._bands.get(key) == story_id:
                del self._bands[key]


def _story_id(item_id: str) -> str:
    # Derived from the first item, so reprocessing that item (at-least-once) finds the same story.
    return "s-" + hashlib.blake2b(item_id.encode(), digest_size=10).hexdigest()
