"""Story clustering: near-duplicate reports of one event share a story_id. Pure, no I/O.

Each item becomes a set of normalised word shingles (title + summary, stop words dropped, words cut
to a 5-letter stem so "launches"/"launched" and "Korea"/"Korean" agree). A MinHash signature of
that set (one-permutation hashing with densification: one hash per token, not one per token per
permutation) estimates Jaccard similarity; LSH banding over the signature finds candidate stories
in O(bands) instead of comparing with every story. A candidate is accepted when its estimated
similarity reaches the threshold and the item is within the horizon of the story's first report.

Story records are plain JSON-able dicts. Every change is written through to a durable mapping
passed in (a dict in tests, the faust table in the worker, whose changelog makes them survive
restarts and rebalances); reads use a local copy, and the band index is derived from the records.
Both are rebuilt from durable state through `load()`. Memory is bounded by the horizon
and by `max_stories` (oldest stories go first).
"""

from __future__ import annotations

import functools
import hashlib
import heapq
import operator
import re
import struct
from collections.abc import Iterable, MutableMapping
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from typing import Any, Final

__all__ = [
    "SIGNATURE_SIZE",
    "StoryConfig",
    "StoryIndex",
    "StoryMatch",
    "estimate_similarity",
    "shingles",
    "signature",
    "story_signature",
]

SIGNATURE_SIZE: Final = 32  # bins of the one-permutation MinHash
BAND_ROWS: Final = 2  # 16 bands of 2 rows: similarity 0.3 → ~78 % candidate, 0.5 → ~99 %
SOURCES_MAX: Final = 100  # distinct sources remembered per story (the count saturates there)
STEM: Final = 5
_MASK32: Final = 0xFFFFFFFF
_ROTATE: Final = 0x9E3779B1  # odd constant: densified bins differ from the bin they borrow from
_EMPTY: Final = 1 << 32  # above every 32-bit bin value

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
    words = set(_WORD.findall(f"{title} {summary}".casefold()))  # news repeats words: once each
    return frozenset(w[:STEM] for w in words if w not in _STOP and (len(w) > 1 or w.isdigit()))


# ASCII text (most news) takes a faster road to the same stems: upper case lowered, letters and
# digits kept, everything else a space, then split. On ASCII, `_WORD` over the casefolded text
# finds exactly these runs; as bytes, they hash (blake2b) as their str did encoded.
_ASCII_WORDS = bytes(
    c + 32 if 65 <= c <= 90 else c if 97 <= c <= 122 or 48 <= c <= 57 else 32 for c in range(256)
)
_STOP_BYTES = frozenset(word.encode() for word in _STOP if word.isascii())
_BINS_MAX: Final = 1 << 16
_bins: dict[bytes, tuple[int, int]] = {}  # stem → (bin, value): news vocabulary repeats


def _ascii_stems(text: str) -> set[bytes]:
    words = set(text.encode("ascii").translate(_ASCII_WORDS).split())
    return {w[:STEM] for w in words if w not in _STOP_BYTES and (len(w) > 1 or w.isdigit())}


def _stem_bin(stem: bytes) -> tuple[int, int]:
    found = _bins.get(stem)
    if found is None:
        # blake2b, not hash(): every worker process must compute the same signature.
        value = int.from_bytes(hashlib.blake2b(stem, digest_size=8).digest(), "big")
        found = (value % SIGNATURE_SIZE, value >> 32)
        if len(_bins) >= _BINS_MAX:
            _bins.clear()  # a rare reset beats the bookkeeping of an LRU on every lookup
        _bins[stem] = found
    return found


def signature(tokens: Iterable[str]) -> tuple[int, ...]:
    """One-permutation MinHash: the minimum hash per bin, empty bins filled by rotation."""
    return _densified(_minima(token.encode() for token in tokens))


def _minima(stems: Iterable[bytes]) -> list[int]:
    bins = [_EMPTY] * SIGNATURE_SIZE
    for stem in stems:
        index, low = _stem_bin(stem)
        if low < bins[index]:
            bins[index] = low
    return bins


def _densified(bins: list[int]) -> tuple[int, ...]:
    last = -1
    empty = False
    for i in range(SIGNATURE_SIZE):
        if bins[i] == _EMPTY:
            empty = True
        else:
            last = i
    if last < 0:
        return ()
    if not empty:
        return tuple(bins)
    # An empty bin borrows from the next non-empty bin to its right, ring-wise, offset by the
    # distance (Shrivastava & Li, 2014). One lap backwards from the last non-empty bin carries
    # that neighbour to every empty bin.
    carry = bins[last]
    distance = 0
    for position in range(last - 1, last - SIGNATURE_SIZE, -1):  # negative: wraps to the end
        value = bins[position]
        if value != _EMPTY:
            carry, distance = value, 0
            continue
        distance += 1
        bins[position] = (carry + distance * _ROTATE) & _MASK32
    return tuple(bins)


def story_signature(title: str, summary: str = "") -> tuple[int, ...]:
    """The MinHash signature of an item's text: all a story assignment needs from the text."""
    text = f"{title} {summary}"
    if text.isascii():
        return _densified(_minima(_ascii_stems(text)))
    return signature(shingles(title, summary))


def estimate_similarity(left: tuple[int, ...], right: tuple[int, ...]) -> float:
    """Estimated Jaccard similarity: the share of bins where the signatures agree."""
    if not left or len(left) != len(right):
        return 0.0
    agreeing: int = sum(map(operator.eq, left, right))
    return agreeing / len(left)


def _bands(sig: tuple[int, ...]) -> list[int]:
    # BAND_ROWS == 2 rows per band, folded into one key below 2**62, which mypyc keeps unboxed
    # (an exact 68-bit key of band number and both rows cost 4x as much to make): the band number
    # in the top bits keeps equal rows in different bands apart; the two 32-bit rows overlap by 6
    # bits, so two row pairs share a key by chance with odds of 2**-58.
    keys = []
    for band in range(len(sig) // 2):
        keys.append((band << 58) | ((sig[2 * band] << 26) ^ sig[2 * band + 1]))
    return keys


def _encode(sig: tuple[int, ...]) -> str:
    return struct.pack(f">{len(sig)}I", *sig).hex()


@functools.lru_cache(maxsize=4096)  # stories that keep matching are decoded once
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
        self._records: dict[str, Any] = {}  # local reads: the durable mapping may be slow to read
        self._bands: dict[int, str] = {}  # band key → most recent story with that band
        self._by_age: list[tuple[float, str]] = []  # (first_seen, story_id) heap for expiry
        self._live: dict[str, float] = {}  # story_id → first_seen, to skip stale heap entries

    def __len__(self) -> int:
        return len(self._live)

    def assign(
        self, item_id: str, title: str, summary: str, source: str, at: datetime
    ) -> StoryMatch:
        """Put one item into its story (existing or new) and record the source."""
        return self.assign_signature(item_id, story_signature(title, summary), source, at)

    def assign_signature(
        self, item_id: str, sig: tuple[int, ...], source: str, at: datetime
    ) -> StoryMatch:
        """`assign` with the item's `story_signature` already computed (possibly elsewhere)."""
        when = at.timestamp()
        self.expire(when - self.config.horizon_seconds)
        bands = _bands(sig)
        best_id, best_score = self._best_candidate(sig, bands, when)
        if best_id is None:
            story_id = _story_id(item_id)
            new = story_id not in self._live  # an item seen again (redelivery) is not news
            self._write(story_id, {"sig": _encode(sig), "first": when, "src": [source]})
            self._index(story_id, when, bands)
            while len(self._live) > self.config.max_stories:
                self._drop_oldest()
            return StoryMatch(story_id, 1, new=new, similarity=1.0)
        record = self._records[best_id]
        sources = record["src"]
        if source not in sources and len(sources) < SOURCES_MAX:
            sources = [*sources, source]  # a new record: the written one may still be in use
            self._write(best_id, {**record, "src": sources})  # a write per item adding a source
        return StoryMatch(best_id, len(sources), new=False, similarity=best_score)

    def _best_candidate(
        self, sig: tuple[int, ...], bands: list[int], when: float
    ) -> tuple[str | None, float]:
        best_id: str | None = None
        best_score = 0.0
        for story_id in {self._bands[key] for key in bands if key in self._bands}:
            record = self._records.get(story_id)
            if record is None or abs(when - record["first"]) > self.config.horizon_seconds:
                continue
            score = estimate_similarity(sig, _decode(record["sig"]))
            if score >= self.config.similarity and score > best_score:
                best_id, best_score = story_id, score
        return best_id, best_score

    def load(self, story_id: str, record: dict[str, Any] | None) -> None:
        """Index a record read back from durable state (changelog), or forget a deleted one."""
        if record is None:
            self._forget(story_id, self._records.pop(story_id, None))
            return
        current = self._records.get(story_id)
        if current is None and self._beyond_cap(record["first"]):
            # The changelog echoes this worker's own writes, often long after the cap dropped
            # the story: re-indexing it (until its deletion is read back too) grew memory past
            # the cap by the changelog lag — 200,000 stories held for a cap of 100,000.
            return
        # Sources only grow: merging keeps a newer local copy (or another worker's concurrent
        # update) from being overwritten by an older record read back from the changelog.
        self._records[story_id] = record if current is None else _merged(current, record)
        if story_id not in self._live:
            self._index(story_id, record["first"], _bands(_decode(record["sig"])))
            while len(self._live) > self.config.max_stories:
                self._drop_oldest()

    def _beyond_cap(self, first: float) -> bool:
        """Whether a story first reported at `first` is older than everything the cap keeps."""
        if len(self._live) < self.config.max_stories:
            return False
        while self._by_age and self._live.get(self._by_age[0][1]) != self._by_age[0][0]:
            heapq.heappop(self._by_age)  # stale heap entries of stories already gone
        return bool(self._by_age) and first <= self._by_age[0][0]

    def _write(self, story_id: str, record: dict[str, Any]) -> None:
        self._records[story_id] = record
        self.records[story_id] = record

    def _index(self, story_id: str, first: float, bands: list[int]) -> None:
        for key in bands:
            self._bands[key] = story_id
        self._live[story_id] = first
        heapq.heappush(self._by_age, (first, story_id))

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
        record = self._records.pop(story_id, None)
        self._forget(story_id, record)
        self.records.pop(story_id, None)
        return [story_id]

    def _forget(self, story_id: str, record: dict[str, Any] | None) -> None:
        self._live.pop(story_id, None)
        if record is None:
            return
        for key in _bands(_decode(record["sig"])):
            if self._bands.get(key) == story_id:
                del self._bands[key]


def _merged(current: dict[str, Any], other: dict[str, Any]) -> dict[str, Any]:
    extra = [source for source in other["src"] if source not in current["src"]]
    if not extra:
        return current
    return {**current, "src": (list(current["src"]) + extra)[:SOURCES_MAX]}


def _story_id(item_id: str) -> str:
    # Derived from the first item, so reprocessing that item (at-least-once) finds the same story.
    return "s-" + hashlib.blake2b(item_id.encode(), digest_size=10).hexdigest()
