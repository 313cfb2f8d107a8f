"""Story clustering: rewrites of one event share a story; other events do not; bounded state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from blocwatch.processor.stories import (
    StoryConfig,
    StoryIndex,
    estimate_similarity,
    shingles,
    signature,
    story_signature,
)

T0 = datetime(2026, 6, 19, 8, 0, tzinfo=UTC)

# The same two events as written by different outlets (our own example headlines).
MISSILE = [
    (
        "North Korea fires ballistic missile into sea, Seoul says",
        "North Korea fired a ballistic missile off its east coast on Tuesday, South Korea's "
        "military said, the latest in a series of launches.",
        "Harbour Times",
    ),
    (
        "N. Korea launches ballistic missile off east coast - South Korean military",
        "Pyongyang launched a ballistic missile toward the East Sea on Tuesday, according to "
        "South Korea's Joint Chiefs of Staff.",
        "Peninsula Wire",
    ),
]
PACT = [
    (
        "Russia and North Korea sign mutual defence pact",
        "Vladimir Putin and Kim Jong Un signed a comprehensive strategic partnership treaty "
        "including a mutual defence clause in Pyongyang.",
        "Harbour Times",
    ),
    (
        "Putin, Kim sign pact pledging mutual military assistance",
        "Russia's Putin and North Korea's Kim signed a strategic partnership agreement in "
        "Pyongyang that commits each to help the other if attacked.",
        "Steppe Daily",
    ),
]
UNRELATED = [
    ("EU agrees sanctions package against Iran over drone supplies", "", "Brussels Post"),
    ("China holds live-fire drills near Taiwan", "The PLA held exercises.", "Strait Monitor"),
]


def _index(**config: float) -> StoryIndex:
    return StoryIndex(StoryConfig(**config))  # type: ignore[arg-type]


def test_shingles_normalise_case_stop_words_and_word_forms() -> None:
    assert shingles("Korea LAUNCHES missiles", "the Korean launch") == {"korea", "launc", "missi"}


def test_signature_is_stable_and_estimates_similarity() -> None:
    tokens = shingles(*MISSILE[0][:2])
    assert signature(tokens) == signature(set(tokens))
    assert estimate_similarity(signature(tokens), signature(tokens)) == 1.0
    unrelated = signature(shingles(UNRELATED[0][0]))
    assert estimate_similarity(signature(tokens), unrelated) < 0.2
    assert signature([]) == ()
    one = signature(["korea"])  # 31 empty bins, each filled from its neighbour at its distance
    assert len(one) == 32
    assert len(set(one)) == 32


# ASCII letters of both cases, digits, the underscore (not a word character here), punctuation,
# whitespace of several kinds and a stop word: what the ASCII road must treat as `_WORD` does.
_ASCII_TEXT = st.lists(
    st.sampled_from([*"aZq9_ -.,'\t\n\x0b\x1f", "the", "Korea", "US", "1", "x"]), max_size=30
).map("".join)


@settings(max_examples=300, deadline=None)
@given(title=_ASCII_TEXT, summary=_ASCII_TEXT)
def test_ascii_text_gets_the_signature_of_its_shingles(title: str, summary: str) -> None:
    # story_signature takes a faster road for ASCII text; the stems and hashes must not change.
    assert story_signature(title, summary) == signature(shingles(title, summary))


def test_non_ascii_text_still_gets_a_signature() -> None:
    text = "Türkiye und Österreich unterzeichnen Abkommen"
    assert story_signature(text) == signature(shingles(text))
    assert len(story_signature(text)) == 32


def test_rewritten_reports_from_different_outlets_share_a_story() -> None:
    index = _index()
    ids = {}
    for n, (title, summary, source) in enumerate(MISSILE + PACT):
        match = index.assign(f"item-{n}", title, summary, source, T0 + timedelta(minutes=n))
        ids[n] = match
    assert ids[0].new
    assert ids[0].sources == 1
    assert ids[1].story_id == ids[0].story_id
    assert not ids[1].new
    assert ids[1].sources == 2
    assert ids[2].new
    assert ids[2].story_id != ids[0].story_id
    assert ids[3].story_id == ids[2].story_id
    assert ids[3].sources == 2


def test_unrelated_stories_stay_apart() -> None:
    index = _index()
    stories = {
        index.assign(f"u{n}", title, summary, source, T0).story_id
        for n, (title, summary, source) in enumerate([MISSILE[0], PACT[0], *UNRELATED])
    }
    assert len(stories) == 4


def test_sources_are_counted_once_each() -> None:
    index = _index()
    title, summary, _ = MISSILE[0]
    counts = [
        index.assign(f"c{n}", title, summary, source, T0).sources
        for n, source in enumerate(["A", "A", "B", "A", "C"])
    ]
    assert counts == [1, 1, 2, 2, 3]


def test_redelivered_item_is_not_a_new_story() -> None:
    index = _index()
    title, summary, source = PACT[0]
    first = index.assign("same", title, summary, source, T0)
    again = index.assign("same", title, summary, source, T0)
    assert first.new
    assert not again.new
    assert again.story_id == first.story_id
    assert again.sources == 1


def test_story_closes_after_the_horizon_and_is_expired() -> None:
    index = _index(horizon_seconds=3600)
    title, summary, source = MISSILE[0]
    first = index.assign("h1", title, summary, source, T0)
    late = index.assign("h2", *MISSILE[1][:2], MISSILE[1][2], T0 + timedelta(hours=2))
    assert late.new
    assert late.story_id != first.story_id
    assert first.story_id not in index.records  # expired, state released
    assert len(index) == 1


def test_memory_is_capped_oldest_first() -> None:
    index = _index(max_stories=3)
    for n in range(10):
        index.assign(f"cap{n}", f"unique headline number {n} zeta{n}", "", "S", T0)
    assert len(index) == 3
    assert len(index.records) == 3


def test_changelog_echoes_of_dropped_stories_do_not_grow_past_the_cap() -> None:
    index = _index(max_stories=3)
    echoes: list[tuple[str, dict[str, Any]]] = []
    for n in range(10):
        when = T0 + timedelta(seconds=n)
        story = index.assign(f"e{n}", f"unique headline number {n} zeta{n}", "", "S", when)
        echoes.append((story.story_id, dict(index.records[story.story_id])))
    # the changelog reads every write back, dropped stories included, after the drops
    for story_id, record in echoes:
        index.load(story_id, record)
    assert len(index) == 3
    assert set(index.records) == {story_id for story_id, _ in echoes[-3:]}
    # a newer story from another worker still joins, pushing the oldest out
    other = _index()
    title, summary, source = MISSILE[0]
    later = T0 + timedelta(minutes=5)
    theirs = other.assign("o1", title, summary, source, later).story_id
    index.load(theirs, dict(other.records[theirs]))
    assert len(index) == 3
    assert index.assign("o2", *MISSILE[1][:2], MISSILE[1][2], later).story_id == theirs


def test_state_reloads_from_records_like_a_restart() -> None:
    before = _index()
    title, summary, source = PACT[0]
    story = before.assign("r1", title, summary, source, T0).story_id
    records = dict(before.records)  # what the changelog holds
    after = StoryIndex(StoryConfig(), records)
    for story_id, record in records.items():
        after.load(story_id, record)
    match = after.assign("r2", *PACT[1][:2], PACT[1][2], T0 + timedelta(minutes=5))
    assert match.story_id == story
    assert match.sources == 2
    after.load(story, None)  # a deletion read back from the changelog
    assert len(after) == 0


def test_records_read_back_merge_sources_instead_of_overwriting() -> None:
    index = _index()
    title, summary, _ = PACT[0]
    story = index.assign("m1", title, summary, "A", T0).story_id
    index.assign("m2", title, summary, "B", T0)
    stale = {**index.records[story], "src": ["A", "C"]}  # an older or concurrent copy
    index.load(story, stale)
    assert index.assign("m3", title, summary, "A", T0).sources == 3  # A, B and C
