"""The tagger's shortcuts never change an answer: the rule prefilter (Hyperscan) never drops a
pattern that matches, its cached database answers as a compiled one (and a bad cache is only
compiled again); the gazetteer's Hyperscan search finds exactly the names its regex finds; and
tags built without validation equal validated ones."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from bench.bench_tagging import make_items
from hypothesis import given, settings
from hypothesis import strategies as st

from blocwatch.core.models import Evidence, Tag
from blocwatch.processor.tagging import FieldName, cache_dir, default_tagger
from blocwatch.processor.tagging.gazetteer import Mention
from blocwatch.processor.tagging.prefilter import Prefilter
from blocwatch.processor.tagging.tagger import _JOINT_SPEC, Tagger, _lower

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"

# Written for these tests: events, near misses and routine news, in wire style.
TEXTS = (
    "Russia and North Korea signed a mutual defence pact in Pyongyang.",
    "Officials denied reports that the two countries plan to sign a defence pact.",
    "North Korea fired two ballistic missiles into the sea off its east coast.",
    "Warplanes struck rebel positions as fighting spread; six soldiers were killed.",
    "The central bank raised interest rates after inflation rose for a third month.",
    "Heavy rain flooded the capital and the airport was closed for a day.",
    "Japan and India agreed to deepen defence cooperation and share intelligence.",
    "The army held live-fire drills near the border, the defence ministry said.",
    # Name forms that do not start with a capital: the prefilter's pass looks for them too.
    "Al-Shabaab fighters attacked a base; the Kremlin and the Pentagon said nothing.",
    "Troops fired across the demilitarized zone, a spokesman for al-Shabaab said.",
    "THE KREMLIN denied it, and the kremlin's aides declined to comment.",
)


def _texts() -> list[str]:
    """The written texts, the benchmark's items and, when ../shared is there, every labelled dev
    text."""
    texts = list(TEXTS)
    for title, summary in make_items(600, event_share=0.5, seed=5):
        texts += [title, summary]
    for name in ("dev.jsonl", "modern_dev.jsonl"):
        path = SHARED / "eval" / name
        if path.exists():
            lines = path.read_text(encoding="utf-8").splitlines()
            texts += [json.loads(line)["text"] for line in lines if line.strip()]
    return texts


def _unfiltered(tagger: Tagger) -> Tagger:
    """The same rules and gazetteer with a prefilter that reports nothing: every pattern tried."""
    rules = dataclasses.replace(tagger.rules, prefilter=Prefilter(()))
    assert not rules.prefilter.active
    return Tagger(rules, tagger.gazetteer, tagger.version)


needs_hyperscan = pytest.mark.skipif(
    not default_tagger().rules.prefilter.active, reason="Hyperscan is not built for this machine"
)


@needs_hyperscan
def test_every_pattern_that_matches_a_text_is_reported() -> None:
    rules = default_tagger().rules
    missed = []
    for text in _texts():
        low = _lower(text)
        possible = rules.prefilter.possible(low)
        if possible is None:  # not ASCII: every pattern is tried
            continue
        for index, pattern in enumerate(rules.patterns):
            if index not in possible and pattern.search(low):
                missed.append((pattern.pattern[:60], text[:60]))
    assert missed == []


@needs_hyperscan
def test_routine_news_has_no_possible_pattern_and_events_have_few() -> None:
    prefilter = default_tagger().rules.prefilter
    assert prefilter.possible(_lower(TEXTS[4])) == set()
    assert prefilter.possible(_lower(TEXTS[5])) == set()
    reported = prefilter.possible(_lower(TEXTS[0]))
    assert reported
    assert len(reported) < len(default_tagger().rules.patterns) // 10


def test_tags_and_explanations_are_the_same_with_and_without_the_prefilter() -> None:
    tagger = default_tagger()
    unfiltered = _unfiltered(tagger)
    for text in _texts():
        fields: list[tuple[FieldName, str]] = [("text", text)]
        assert tagger.tag(fields) == unfiltered.tag(fields), text
        found, unfiltered_found = tagger.scan(fields), unfiltered.scan(fields)
        assert [t.fields() for t in found[0]] == [t.fields() for t in unfiltered_found[0]], text
        assert [m.fields() for m in found[1]] == [m.fields() for m in unfiltered_found[1]], text
        assert found[2] == unfiltered_found[2], text


def _names(found: tuple[list[Mention], set[str]]) -> tuple[list[tuple[object, ...]], set[str]]:
    return [m.fields() for m in found[0]], found[1]


@needs_hyperscan
def test_the_gazetteer_finds_by_hyperscan_what_its_regex_finds() -> None:
    gazetteer = default_tagger().gazetteer
    texts = [text for text in _texts() if text.isascii()]
    assert len(texts) > 1000
    for text in texts:
        assert _names(gazetteer.scan(text)) == _names(gazetteer._scan_regex(text)), text


# Name forms, pieces that extend or join them ("Iran" + "ian", "Tehran" + "i") and separators.
_NAME_PIECES = st.sampled_from(
    ["Iran", "Iranian", "Tehran", "Korea", "North Korea", "South", "the Kremlin", "U.S.", "US",
     "EU", "al-Shabaab", "Kim", "Kim Jong Un", "ian", "i", "s", "_", "-", " ", ".", "'s", "X"]
)  # fmt: skip


@needs_hyperscan
@settings(max_examples=400, deadline=None)
@given(st.lists(_NAME_PIECES, max_size=12).map("".join))
def test_names_run_together_are_found_alike_by_both_searches(text: str) -> None:
    gazetteer = default_tagger().gazetteer
    assert _names(gazetteer.scan(text)) == _names(gazetteer._scan_regex(text))


@needs_hyperscan
def test_text_the_prefilter_cannot_read_gets_every_pattern() -> None:
    prefilter = Prefilter([r"\bsigned\s+(?:a\s+)?pact\b", r"\bdrills?\b"])
    assert prefilter.possible("troops signed a pact") == {0}
    assert prefilter.possible("nothing here") == set()
    # Python counts \x1c-\x1f as spaces: so must the prefilter.
    assert prefilter.possible("signed\x1fa pact") == {0}
    assert prefilter.possible("they signed a pact in Zürich") is None


@needs_hyperscan
def test_a_pattern_hyperscan_cannot_compile_is_always_reported() -> None:
    # \G is not supported by Hyperscan; a pattern that can match "" is refused too.
    prefilter = Prefilter([r"\bdrills?\b", r"\Gfoo", r"(?:x)?"])
    assert prefilter.active
    assert prefilter.always == {1, 2}
    assert prefilter.possible("the sky") == {1, 2}
    assert prefilter.possible("joint drills") == {0, 1, 2}


CACHED = [r"\bdrills?\b", r"\Gfoo", r"\bsigned\s+(?:a\s+)?pact\b"]


def _reports(prefilter: Prefilter) -> list[set[int] | None]:
    return [prefilter.possible(text) for text in ("joint drills", "they signed a pact", "sky")]


@needs_hyperscan
def test_a_cached_database_is_loaded_by_the_next_prefilter_instead_of_compiling(
    tmp_path: Path,
) -> None:
    first = Prefilter(CACHED, tmp_path)
    [kept] = tmp_path.glob("prefilter-*.hsdb")
    written = kept.stat()
    second = Prefilter(CACHED, tmp_path)
    assert second.active
    assert second.always == first.always == {1}
    assert _reports(second) == _reports(first) == [{0, 1}, {1, 2}, {1}]
    # Loaded, not compiled: a compiled database is always written, as a new file (renamed).
    assert (kept.stat().st_ino, kept.stat().st_mtime_ns) == (written.st_ino, written.st_mtime_ns)
    assert list(tmp_path.glob("prefilter-*")) == [kept]
    # Other patterns: another file.
    Prefilter(CACHED[:1], tmp_path)
    assert len(list(tmp_path.glob("prefilter-*.hsdb"))) == 2


@needs_hyperscan
@pytest.mark.parametrize(
    "damage",
    [
        lambda data: data[: len(data) // 2],  # cut short (a full disk)
        lambda data: b"garbage\n" + data,  # not ours
        lambda data: data[:30] + bytes(64) + data[94:],  # its header overwritten
        lambda data: data[: len(data) // 2] + b"\xff" * 8 + data[len(data) // 2 + 8 :],  # code
    ],
)
def test_a_damaged_cache_file_is_compiled_again_and_rewritten(
    tmp_path: Path, damage: Callable[[bytes], bytes]
) -> None:
    expected = _reports(Prefilter(CACHED))
    Prefilter(CACHED, tmp_path)
    [path] = tmp_path.glob("prefilter-*.hsdb")
    path.write_bytes(damage(path.read_bytes()))
    assert _reports(Prefilter(CACHED, tmp_path)) == expected
    assert _reports(Prefilter(CACHED, tmp_path)) == expected  # the rewritten file loads


@needs_hyperscan
def test_a_cache_that_cannot_be_written_is_skipped(tmp_path: Path) -> None:
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("a file where the cache directory should be")
    prefilter = Prefilter(CACHED, blocked / "cache")
    assert _reports(prefilter) == [{0, 1}, {1, 2}, {1}]
    assert list(tmp_path.iterdir()) == [blocked]  # no temporary file left behind


def test_the_cache_directory_follows_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("BLOCWATCH_CACHE_DIR", raising=False)
    assert cache_dir() == tmp_path / "xdg" / "blocwatch"
    monkeypatch.setenv("BLOCWATCH_CACHE_DIR", str(tmp_path / "mine"))
    assert cache_dir() == tmp_path / "mine"
    monkeypatch.setenv("BLOCWATCH_CACHE_DIR", "off")
    assert cache_dir() is None
    monkeypatch.delenv("BLOCWATCH_CACHE_DIR")
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_dir() == Path.home() / ".cache" / "blocwatch"


def test_an_empty_prefilter_is_inactive_and_tells_nothing() -> None:
    prefilter = Prefilter(())
    assert not prefilter.active
    assert prefilter.possible("signed a pact") is None


def test_tags_built_without_validation_equal_validated_ones() -> None:
    tagging = default_tagger().tag([("title", TEXTS[0]), ("summary", TEXTS[2] + " " + TEXTS[6])])
    assert len(tagging.tags) >= 3
    for tag in tagging.tags:
        validated = Tag.model_validate(tag.model_dump(exclude_unset=True))
        assert tag == validated
        assert tag.model_fields_set == validated.model_fields_set
        assert tag.model_dump_json() == validated.model_dump_json()
        assert all(type(evidence) is Evidence for evidence in tag.evidence)
        assert [e.model_fields_set for e in tag.evidence] == [
            e.model_fields_set for e in validated.evidence
        ]


def test_every_tag_the_tagger_can_emit_validates() -> None:
    """Tags are built without validation: every spec they come from must make a valid Tag."""
    tagger = default_tagger()
    emitted = [(tag, rule.confidence) for rule in tagger.rules.rules for tag in rule.tags]
    emitted += [(tag, 0.99) for tag in _JOINT_SPEC.values()]
    for tag, confidence in emitted:
        fields = ("label", "subtype", "cameo", "plover", "intensity")
        Tag.model_validate(
            {**{name: getattr(tag, name) for name in fields}, "confidence": confidence}
        )
