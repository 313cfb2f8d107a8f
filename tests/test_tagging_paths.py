"""The fast tagging path agrees with the explaining one, and the gazetteer's shortcuts change
nothing: pure tests over generated texts."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from blocwatch.processor.tagging import FieldName, default_tagger, tag_text

# Words that exercise every branch: triggers of both families, cues, clause breaks, contexts,
# actors (capitalised and not), days, reporting verbs, punctuation.
_VOCABULARY = (
    "Russia and China North Korea the Kremlin al-Shabaab Seoul NATO Ukraine U.S. "
    "signed a mutual defence pact test-fired ballistic missiles began joint drills live-fire "
    "exercises sanctions against struck killing militants police protesters arrested "
    "did not denied plans to urged lifted could after but ; : , and on Monday said with "
    "into the sea near border . ! ?"
)
_WORDS = _VOCABULARY.split()

_TEXT = st.lists(st.sampled_from(_WORDS), max_size=40).map(" ".join)


@settings(max_examples=300, deadline=None)
@given(title=_TEXT, summary=_TEXT)
def test_tag_keeps_exactly_the_triggers_scan_keeps(title: str, summary: str) -> None:
    """`tag` skips suppressed triggers and their reasons; what it keeps must be what `scan`
    (the explaining path) keeps."""
    tagger = default_tagger()
    fields: list[tuple[FieldName, str]] = [("title", title), ("summary", summary)]
    triggers, _, _ = tagger.scan(fields)
    kept = {(t.rule.id, t.field, t.start, t.end) for t in triggers if t.labels}
    assert all(t.suppressed for t in triggers if not t.labels)
    tagging = tagger.tag(fields)
    evidence = {(e.rule, e.field, e.start, e.end) for tag in tagging.tags for e in tag.evidence}
    assert evidence <= kept
    assert {label for t in triggers for label in t.labels} == tagging.labels
    if all(len(tag.evidence) < 5 for tag in tagging.tags):  # evidence is capped at five
        assert evidence == kept


def test_names_in_lower_case_are_found_beside_capitalised_ones() -> None:
    """The gazetteer skips to capitals unless a lower-case name occurs in the text."""

    def codes(text: str) -> list[str]:
        return [actor.code for actor in tag_text(text).actors]

    assert codes("Somalia said al-Shabaab fighters attacked Kenya.") == ["SOM", "ALSHABAAB", "KEN"]
    assert codes("Somalia said fighters attacked Kenya.") == ["SOM", "KEN"]
    assert codes("Manila and the Philippines navy met the Kremlin envoy.") == ["PHL", "RUS"]
