"""Actors, roles, dyads, regions, evidence spans and the seed cases: table-driven, pure."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blocwatch.core.codec import decode, encode
from blocwatch.core.models import TaggedItem
from blocwatch.processor.tagging import TAGGER_VERSION, tag_fields, tag_text
from blocwatch.processor.tagging.gazetteer import trie_pattern
from blocwatch.processor.tagging.rules import expand_macros, pattern_heads
from blocwatch.processor.tagging.tagger import SENTENCE_END, _sentence_starts

# (text, actor codes that must be found) — names, demonyms, capitals as metonyms, leaders, blocs.
ACTORS = [
    ("Russia and North Korea signed the pact.", {"RUS", "PRK"}),
    ("Iranian drones and Syrian troops were seen near the border.", {"IRN", "SYR"}),
    ("Pyongyang said the drills were a rehearsal for invasion.", {"PRK"}),
    ("The Kremlin and Beijing issued a joint statement.", {"RUS", "CHN"}),
    ("Putin met Xi Jinping and then spoke with Erdogan.", {"RUS", "CHN", "TUR"}),
    ("Zelensky thanked Starmer for the new package.", {"UKR", "GBR"}),
    ("NATO and the EU condemned the strike; the U.N. called for restraint.", {"NATO", "EU", "UN"}),
    (
        "The U.S. and the UK joined AUKUS partner Australia in the talks.",
        {"USA", "GBR", "AUKUS", "AUS"},
    ),
    (
        "CSTO, SCO and BRICS leaders met with ASEAN envoys and the Quad.",
        {"CSTO", "SCO", "BRICS", "ASEAN", "QUAD"},
    ),
]


@pytest.mark.parametrize(("text", "codes"), ACTORS, ids=[a[0][:40] for a in ACTORS])
def test_actors(text: str, codes: set[str]) -> None:
    found = {actor.code for actor in tag_text(text).actors}
    assert codes <= found


def test_lower_case_words_are_not_actors() -> None:
    found = {a.code for a in tag_text("Let us polish the turkey and chad the jordan.").actors}
    assert found == set()


def test_actor_kinds_and_names() -> None:
    actors = {a.code: a for a in tag_text("NATO, the UN and Hamas reacted; Seoul did not.").actors}
    assert (actors["NATO"].kind, actors["UN"].kind, actors["HAMAS"].kind) == (
        "bloc",
        "organisation",
        "organisation",
    )
    assert (actors["KOR"].kind, actors["KOR"].name) == ("state", "South Korea")


# (text, expected dyads as (source, target, label))
DYADS = [
    ("Iran fired missiles at Israel on Saturday.", {("IRN", "ISR", "escalation")}),
    ("China imposed sanctions on Lithuania.", {("CHN", "LTU", "escalation")}),
    ("Russia and North Korea signed a defence treaty.", {("RUS", "PRK", "alliance")}),
    ("Japan and Australia held joint naval drills.", {("JPN", "AUS", "alliance")}),
    (
        "The United States and Britain struck Houthi targets in Yemen.",
        {("USA", "GBR", "alliance"), ("USA", "HOUTHIS", "escalation")},
    ),
]


@pytest.mark.parametrize(("text", "dyads"), DYADS, ids=[d[0][:40] for d in DYADS])
def test_dyads(text: str, dyads: set[tuple[str, str, str | None]]) -> None:
    found = {(d.source, d.target, d.label) for d in tag_text(text).dyads}
    assert dyads <= found, found


def test_roles_follow_the_dyad() -> None:
    roles = {a.code: a.role for a in tag_text("Iran fired missiles at Israel.").actors}
    assert roles == {"IRN": "source", "ISR": "target"}


def test_reporting_country_is_not_the_target() -> None:
    tagging = tag_text("North Korea test-fired a ballistic missile, South Korea said.")
    assert {a.code: a.role for a in tagging.actors}["KOR"] == "participant"


# (text, regions that must be found) — from actors and from place names.
REGIONS = [
    ("North Korea fired a missile.", {"Korean Peninsula"}),
    ("Shots were fired across the DMZ.", {"Korean Peninsula"}),
    ("Chinese ships rammed a Philippine boat.", {"South China Sea"}),
    ("Warships sailed through the Taiwan Strait.", {"Taiwan Strait"}),
    ("A cable was cut in the Baltic Sea.", {"Baltic"}),
    ("Drones hit a port in Crimea.", {"Black Sea"}),
    ("Israel struck targets in Gaza.", {"Middle East"}),
    ("Juntas in Mali and Niger formed a confederation.", {"Sahel"}),
]


@pytest.mark.parametrize(("text", "regions"), REGIONS, ids=[r[0][:40] for r in REGIONS])
def test_regions(text: str, regions: set[str]) -> None:
    assert regions <= set(tag_text(text).regions)


def test_no_region_without_actors_or_places() -> None:
    assert tag_text("The central bank raised rates.").regions == []


@pytest.mark.parametrize(
    ("title", "summary"),
    [
        ("Russia and North Korea sign defence pact", "Pyongyang test-fired missiles on Friday."),
        ("Sanctions announced", "The EU imposed sanctions — and Kyiv got 18 billion euros in aid."),
        ("Ünïcödé İstanbul headline: troops clashed", "İİİ Militants attacked a base, killing 3."),
    ],
)
def test_evidence_spans_point_into_their_field(title: str, summary: str) -> None:
    tagging = tag_text(title, summary)
    assert tagging.tags
    fields = {"title": title, "summary": summary}
    for tag in tagging.tags:
        assert tag.evidence
        for evidence in tag.evidence:
            assert fields[evidence.field][evidence.start : evidence.end] == evidence.text
            assert evidence.rule.startswith(("alliance.", "escalation.", "both."))


def test_text_field_evidence() -> None:
    text = "Turkey gave the militia an ultimatum."
    (tag,) = tag_fields([("text", text)]).tags
    (evidence,) = tag.evidence
    assert (evidence.field, text[evidence.start : evidence.end]) == ("text", "ultimatum")


# Seed cases in our own words (the seeds themselves are checked in test_tagging_eval.py).
def test_seed_000_pact_and_partnership_are_alliance() -> None:
    tagging = tag_text(
        "Putin and Kim sign partnership",
        "Russian President Vladimir Putin and North Korean leader Kim Jong Un signed a "
        "comprehensive strategic partnership; Moscow and Pyongyang also agreed a mutual "
        "defence pact, while NATO welcomed two new members.",
    )
    subtypes = {(t.label, t.subtype) for t in tagging.tags}
    assert {("alliance", "defence_pact"), ("alliance", "strategic_partnership")} <= subtypes
    assert {t.label for t in tagging.tags} == {"alliance"}


def test_seed_003_tests_drills_live_fire_and_the_treaty() -> None:
    tagging = tag_text(
        "Balloons, drills and missile tests on the Korean peninsula",
        "The North carried out a hypersonic missile test and fired cruise missiles. The South "
        "resumed live-fire exercises near the border and held warplane drills with the US, "
        "while Moscow and Pyongyang ratified their mutual defence treaty.",
    )
    subtypes = {(t.label, t.subtype) for t in tagging.tags}
    assert {("escalation", "weapons_test"), ("escalation", "exercise")} <= subtypes
    assert "alliance" in {t.label for t in tagging.tags}
    assert "Korean Peninsula" in tagging.regions


def test_untagged_item_is_empty_and_version_is_set() -> None:
    assert tag_text("Italy wins the World Cup on penalties").tags == []
    assert tag_text("").tags == []
    assert TAGGER_VERSION.count(".") == 2


def test_trie_pattern_matches_exactly_its_words() -> None:
    regex = re.compile("(?:" + trie_pattern(["war", "warn", "warship", "pact"]) + r")\Z")
    for word in ("war", "warn", "warship", "pact"):
        assert regex.match(word)
    for word in ("wa", "warsh", "pac", "x"):
        assert not regex.match(word)


@pytest.mark.parametrize(
    ("pattern", "heads"),
    [
        (r"\bthreat(?:en|ens)?\b", {"threat"}),
        (r"\b(?:sign|ink)\w* {w3}pact", {"sign", "ink"}),
        (r"\b\d+ (?:million|billion)", set("0123456789")),
        (r"\b(?:co-?operation)", {"co"}),
        (r"\b[a-z]+ing\b", None),
    ],
)
def test_pattern_heads(pattern: str, heads: set[str] | None) -> None:
    assert pattern_heads(expand_macros(pattern)) == heads


@settings(max_examples=80, deadline=None)
@given(
    st.text(alphabet=st.characters(codec="utf-8"), max_size=300),
    st.text(alphabet="abcdeilmnorstuy .,;:'-\nİß", max_size=300),
)
def test_any_text_tags_without_error_and_spans_hold(title: str, summary: str) -> None:
    words = " missile test signed a pact with Russia, did not join NATO; troops killed "
    tagging = tag_text(title + words, summary + words)
    fields = {"title": title + words, "summary": summary + words}
    for tag in tagging.tags:
        for evidence in tag.evidence:
            assert fields[evidence.field][evidence.start : evidence.end] == evidence.text


def test_tagging_fits_the_tagged_item_contract() -> None:
    tagging = tag_text("US and UK strike Houthi targets", "Russia and Iran signed a defence pact.")
    now = datetime.now(UTC)
    item = TaggedItem(
        id="x",
        url="https://example.org/x",
        title="t",
        source="s",
        fetched_at=now,
        tags=tagging.tags,
        actors=tagging.actors,
        dyads=tagging.dyads,
        regions=tagging.regions,
        story_id="s1",
        tagged_at=now,
        tagger_version=TAGGER_VERSION,
    )
    back = decode(TaggedItem, encode(item))
    assert back.labels == {"alliance", "escalation"}
    assert back.tags == tagging.tags
    assert ("USA", "GBR", "alliance") in {(d.source, d.target, d.label) for d in back.dyads}


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet="aZ9)%. !?\n\t\"”’'U.S", max_size=60))
def test_sentence_starts_are_where_the_sentence_end_pattern_ends(text: str) -> None:
    expected = [0, *(match.end() for match in SENTENCE_END.finditer(text))]
    assert _sentence_starts(text) == expected


def test_sentence_starts_in_wire_text() -> None:
    text = 'Smith said the U.S. would act. "We will!" he said.\n\nTroops moved?! Yes.'
    starts = _sentence_starts(text)
    assert [text[start : start + 5] for start in starts] == [
        "Smith",
        '"We w',
        "he sa",
        "Troop",
        "Yes.",
    ]
    assert starts == [0, *(match.end() for match in SENTENCE_END.finditer(text))]
